/* SPDX-License-Identifier: GPL-2.0 */
/* Address/port rewriting of a parsed TCP packet in a TC skb, with incremental checksums
 * (RFC 1624) written through direct packet access. The TCP checksum depends on the skb's
 * ip_summed: CHECKSUM_PARTIAL holds only the pseudo-header sum (the port is summed later, by
 * the stack or the NIC), the others the full checksum. CHECKSUM_COMPLETE also carries
 * skb->csum, the sum of the packet from the IP header on: for IPv6 the rewrite leaves it as
 * it is (the TCP checksum cancels the address and port changes), for IPv4 it moves by the
 * TCP checksum's change (the IP header checksum cancels the address change), which only
 * bpf_l4_csum_replace can apply. */
#ifndef FS_BPF_NAT_H
#define FS_BPF_NAT_H

#include "common.h"
#include "parse.h"
#include <bpf/bpf_core_read.h>

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The skb's ip_summed (CHECKSUM_*). bpf_cast_to_kern_ctx costs nothing: the verifier turns
 * it into a register move. */
static __always_inline int skb_ip_summed(struct __sk_buff *ctx)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(ctx);

	return (int)BPF_CORE_READ_BITFIELD(kskb, ip_summed);
}

/* A CHECKSUM_PARTIAL skb's checksum: whether it is the TCP one at offset l4 of the packet
 * (the device, or skb_checksum_help, sums from csum_start and stores at csum_offset). */
static __always_inline bool skb_partial_csum_at(struct __sk_buff *ctx, __u32 l4)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(ctx);

	/* Direct reads of the trusted pointer (no bpf_probe_read_kernel: lockdown forbids it). */
	return (__u64)(long)kskb->head + kskb->csum_start == (__u64)(long)kskb->data + l4 &&
	       kskb->csum_offset == 16 /* TCP_CSUM_OFF */;
}

#define IPV4_CSUM_OFF 10
#define IPV4_SRC_OFF 12
#define IPV4_DST_OFF 16
#define IPV6_SRC_OFF 8
#define IPV6_DST_OFF 24
#define TCP_CSUM_OFF 16
#define NAT_MAX_OFF 0x7fff /* headers deeper than this are not in a linear skb head */

/* 16-bit ones' complement sum of a 32-bit word; byte order does not matter as long as every
 * word of one checksum is taken the same way. */
static __always_inline __u32 csum_word32(__u32 w)
{
	return (w & 0xffff) + (w >> 16);
}

static __always_inline __u16 csum_fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* What a checksum gains when the words in old[0..n) become new[0..n): ~old + new. */
static __always_inline __u32 csum_delta(const __u32 *old, const __u32 *new, int n)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < n)
			sum += csum_word32(~old[i]) + csum_word32(new[i]);
	return csum_fold16(sum);
}

/* Rewrites the destination (dst_side) or source of p to ep. Returns 0, or a negative error:
 * the packet is then unchanged, except if a checksum helper failed on an IPv4
 * CHECKSUM_COMPLETE skb after the rewrite (it cannot on a packet just written). Packet
 * pointers are invalid afterwards. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, bool dst_side,
				       const struct fs_endpoint *ep)
{
	const __u32 *old_addr = dst_side ? p->key.dst : p->key.src;
	__u16 old_port = dst_side ? p->key.dport : p->key.sport;
	__u32 l3 = p->l3_off, l4 = p->l4_off, addr_delta = 0;
	bool addr_moved = false;
	int n = p->family == FS_AF_INET ? 1 : 4;
	void *data, *end;
	struct tcphdr *th;
	int err;

	if (l3 > NAT_MAX_OFF || l4 > NAT_MAX_OFF)
		return -1;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	th = data + l4;
	if ((void *)(th + 1) > end)
		return -1;
	if (old_addr[0] != ep->addr[0] || old_addr[1] != ep->addr[1] ||
	    old_addr[2] != ep->addr[2] || old_addr[3] != ep->addr[3]) {
		addr_moved = true;
		addr_delta = csum_delta(old_addr, ep->addr, n);
		if (p->family == FS_AF_INET) {
			struct iphdr *ip = data + l3;

			if ((void *)(ip + 1) > end)
				return -1;
			if (dst_side)
				ip->daddr = ep->addr[0];
			else
				ip->saddr = ep->addr[0];
			ip->check = ~csum_fold16((__u16)~ip->check + addr_delta);
		} else {
			struct ipv6hdr *ip6 = data + l3;

			if ((void *)(ip6 + 1) > end)
				return -1;
			if (dst_side)
				__builtin_memcpy(&ip6->daddr, ep->addr, 16);
			else
				__builtin_memcpy(&ip6->saddr, ep->addr, 16);
		}
	}
	if (!addr_moved && old_port == ep->port)
		return 0;
	if (old_port != ep->port) {
		if (dst_side)
			th->dest = ep->port;
		else
			th->source = ep->port;
	}
	switch (skb_ip_summed(skb)) {
	case CHECKSUM_PARTIAL:
		if (addr_moved)
			th->check = csum_fold16((__u32)th->check + addr_delta);
		return 0;
	case CHECKSUM_COMPLETE:
		if (p->family == FS_AF_INET)
			break;
		/* fallthrough: IPv6 leaves skb->csum unchanged */
	default:
		if (old_port != ep->port)
			addr_delta += (__u16)~old_port + (__u32)ep->port;
		th->check = ~csum_fold16((__u16)~th->check + addr_delta);
		return 0;
	}
	/* IPv4 CHECKSUM_COMPLETE: the helpers update skb->csum with the TCP checksum (the
	 * pseudo-header flag) and not for the port, whose change the checksum cancels. */
	if (addr_moved) {
		err = bpf_l4_csum_replace(skb, l4 + TCP_CSUM_OFF, old_addr[0], ep->addr[0],
					  BPF_F_PSEUDO_HDR_FLAG | 4);
		if (err)
			return err;
	}
	if (old_port != ep->port)
		return bpf_l4_csum_replace(skb, l4 + TCP_CSUM_OFF, old_port, ep->port, 2);
	return 0;
}

/* Rewrites one side of the TCP packet an ICMP(v6) error quotes (headers at p->q3_off and
 * p->q4_off): its destination (src_side false: an error about a packet sent to a backend,
 * going to the client) or its source and the error's own destination (src_side true: an
 * error about a packet sent to a client as the service, going to the backend that sent it),
 * old_addr and old_port in the quote as sent, to ep. The quoted IPv4 header checksum and, if
 * quoted, the TCP checksum follow; the ICMP checksum takes every change (for ICMPv6 the
 * pseudo-header's too), so the sum of the message, and with it a CHECKSUM_COMPLETE skb's
 * csum, stays as it was. Returns 0, or -1 with the packet untouched (also when the error is
 * not addressed to old_addr). Packet pointers are invalid afterwards. */
static __always_inline int nat_icmp_quote(struct __sk_buff *skb, const struct pkt *p,
					  bool src_side, const __u32 *old_addr, __u16 old_port,
					  const struct fs_endpoint *ep)
{
	__u32 q3 = p->q3_off, q4 = p->q4_off, l3 = p->l3_off, l4 = p->l4_off, delta, msg;
	int n = p->family == FS_AF_INET ? 1 : 4;
	void *data, *end;
	__u16 *icsum, *qport, *qcsum, old;

	if (q3 > NAT_MAX_OFF || q4 > NAT_MAX_OFF || l3 > NAT_MAX_OFF || l4 > NAT_MAX_OFF ||
	    skb_ip_summed(skb) == CHECKSUM_PARTIAL)
		return -1;
	/* The quote ends with the IP datagram, not the frame: bytes after it (padding, a
	 * trailer) are no part of the message nor of its checksum. */
	if (q4 + 4 > l3 + p->l3_len)
		return -1;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	icsum = data + l4 + 2;
	qport = data + q4 + (src_side ? 0 : 2);
	if ((void *)(icsum + 1) > end || (void *)(qport + 1) > end)
		return -1;
	delta = csum_delta(old_addr, ep->addr, n);
	msg = delta;
	if (p->family == FS_AF_INET) {
		struct iphdr *ip = data + q3, *outer = data + l3;

		if ((void *)(ip + 1) > end || (void *)(outer + 1) > end)
			return -1;
		if (src_side) {
			if (outer->daddr != old_addr[0])
				return -1;
			outer->daddr = ep->addr[0];
			outer->check = ~csum_fold16((__u16)~outer->check + delta);
			ip->saddr = ep->addr[0];
		} else {
			ip->daddr = ep->addr[0];
		}
		old = ip->check;
		ip->check = ~csum_fold16((__u16)~old + delta);
		msg += (__u16)~old + (__u32)ip->check;
	} else {
		struct ipv6hdr *ip6 = data + q3, *outer = data + l3;
		__u32 *odst = (__u32 *)&outer->daddr;

		if ((void *)(ip6 + 1) > end || (void *)(outer + 1) > end)
			return -1;
		if (src_side) {
			if (odst[0] != old_addr[0] || odst[1] != old_addr[1] ||
			    odst[2] != old_addr[2] || odst[3] != old_addr[3])
				return -1;
			__builtin_memcpy(odst, ep->addr, 16);
			msg += delta; /* in the ICMPv6 checksum's pseudo-header */
			__builtin_memcpy(&ip6->saddr, ep->addr, 16);
		} else {
			__builtin_memcpy(&ip6->daddr, ep->addr, 16);
		}
	}
	if (old_port != ep->port) {
		*qport = ep->port;
		delta += (__u16)~old_port + (__u32)ep->port;
		msg += (__u16)~old_port + (__u32)ep->port;
	}
	/* Routers quote 8 bytes of TCP, hosts more: the checksum only if it is there. */
	qcsum = data + q4 + TCP_CSUM_OFF;
	if ((void *)(qcsum + 1) <= end && q4 + TCP_CSUM_OFF + 2 <= l3 + p->l3_len) {
		old = *qcsum;
		*qcsum = ~csum_fold16((__u16)~old + csum_fold16(delta));
		msg += (__u16)~old + (__u32)*qcsum;
	}
	*icsum = ~csum_fold16((__u16)~*icsum + csum_fold16(msg));
	return 0;
}

#endif
