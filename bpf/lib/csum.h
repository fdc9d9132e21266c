/* SPDX-License-Identifier: GPL-2.0 */
/* Checksums computed from scratch over small buffers (a re-created SYN): IPv4 header and TCP
 * with its pseudo header. Incremental updates of packets in flight live in nat.h. */
#ifndef FS_BPF_CSUM_H
#define FS_BPF_CSUM_H

#include "common.h"
#include "failsteer/failsteer.h"

static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* IPv4 header checksum of hdr (hl bytes, a multiple of 4, at most 60); the checksum field
 * must be zero. Returns the value to store, or 0 and sets *err. */
static __always_inline __u16 csum_ipv4_hdr(void *hdr, __u32 hl, int *err)
{
	__s64 sum = bpf_csum_diff(NULL, 0, hdr, hl & 63, 0);

	if (sum < 0)
		*err = (int)sum;
	return csum_fold32(sum);
}

/* Sum of the TCP pseudo header of a segment of len bytes from src to dst (bpf_csum_diff's:
 * negative on error). */
static __always_inline __s64 csum_tcp_pseudo(__u32 len, const __u32 *src, const __u32 *dst,
					     __u8 family)
{
	struct { __u32 src[4], dst[4]; __u32 len; __u32 nexthdr; } ph6 = {};
	struct { __u32 src, dst; __u16 proto; __u16 len; } ph4 = {};
	__s64 sum;

	if (family == FS_AF_INET) {
		ph4.src = src[0];
		ph4.dst = dst[0];
		ph4.proto = bpf_htons(IPPROTO_TCP);
		ph4.len = bpf_htons((__u16)len);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph4, sizeof(ph4), 0);
	} else {
		__builtin_memcpy(ph6.src, src, 16);
		__builtin_memcpy(ph6.dst, dst, 16);
		ph6.len = bpf_htonl(len);
		ph6.nexthdr = bpf_htonl(IPPROTO_TCP);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph6, sizeof(ph6), 0);
	}
	return sum;
}

/* What the checksum field of a CHECKSUM_PARTIAL segment holds: its pseudo header's sum,
 * folded, not inverted (the device or skb_checksum_help adds the segment's own). */
static __always_inline __u16 csum_tcp_partial(__u32 len, const __u32 *src, const __u32 *dst,
					      __u8 family, int *err)
{
	__s64 sum = csum_tcp_pseudo(len, src, dst, family);

	if (sum < 0)
		*err = (int)sum;
	return (__u16)~csum_fold32(sum);
}

/* TCP checksum of a segment of len bytes (headers only here; a multiple of 4, at most 60)
 * from src to dst; the checksum field must be zero. */
static __always_inline __u16 csum_tcp(void *seg, __u32 len, const __u32 *src, const __u32 *dst,
				      __u8 family, int *err)
{
	__s64 sum = csum_tcp_pseudo(len, src, dst, family);

	if (sum >= 0)
		sum = bpf_csum_diff(NULL, 0, seg, len & 63, (__u32)sum);
	if (sum < 0)
		*err = (int)sum;
	return csum_fold32(sum);
}

#endif
