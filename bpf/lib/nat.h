/* SPDX-License-Identifier: GPL-2.0 */
/* Address/port rewriting of a parsed TCP packet in a TC skb, with incremental checksums.
 * The helpers handle CHECKSUM_PARTIAL skbs (only the pseudo-header part is patched then). */
#ifndef FS_BPF_NAT_H
#define FS_BPF_NAT_H

#include "common.h"
#include "parse.h"

#define IPV4_CSUM_OFF 10
#define IPV4_SRC_OFF 12
#define IPV4_DST_OFF 16
#define IPV6_SRC_OFF 8
#define IPV6_DST_OFF 24
#define TCP_CSUM_OFF 16

/* Rewrites the destination (dst_side) or source of p to ep. Returns 0 or a negative error;
 * packet pointers are invalid afterwards. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, bool dst_side,
				       const struct fs_endpoint *ep)
{
	const __u32 *old_addr = dst_side ? p->key.dst : p->key.src;
	__u16 old_port = dst_side ? p->key.dport : p->key.sport;
	__u32 tcsum = p->l4_off + TCP_CSUM_OFF;
	__u32 port_off = p->l4_off + (dst_side ? 2 : 0);
	int err;

	if (p->family == FS_AF_INET) {
		__u32 off = p->l3_off + (dst_side ? IPV4_DST_OFF : IPV4_SRC_OFF);

		if (old_addr[0] != ep->addr[0]) {
			err = bpf_skb_store_bytes(skb, off, &ep->addr[0], 4, 0);
			if (!err)
				err = bpf_l3_csum_replace(skb, p->l3_off + IPV4_CSUM_OFF, old_addr[0],
							  ep->addr[0], 4);
			if (!err)
				err = bpf_l4_csum_replace(skb, tcsum, old_addr[0], ep->addr[0],
							  BPF_F_PSEUDO_HDR_FLAG | 4);
			if (err)
				return err;
		}
	} else {
		__u32 off = p->l3_off + (dst_side ? IPV6_DST_OFF : IPV6_SRC_OFF);

		if (old_addr[0] != ep->addr[0] || old_addr[1] != ep->addr[1] ||
		    old_addr[2] != ep->addr[2] || old_addr[3] != ep->addr[3]) {
			__s64 diff = bpf_csum_diff((__be32 *)old_addr, 16, (__be32 *)ep->addr, 16, 0);

			if (diff < 0)
				return diff;
			err = bpf_skb_store_bytes(skb, off, ep->addr, 16, 0);
			if (!err)
				err = bpf_l4_csum_replace(skb, tcsum, 0, diff, BPF_F_PSEUDO_HDR_FLAG);
			if (err)
				return err;
		}
	}
	if (old_port != ep->port) {
		err = bpf_skb_store_bytes(skb, port_off, &ep->port, 2, 0);
		if (!err)
			err = bpf_l4_csum_replace(skb, tcsum, old_port, ep->port, 2);
		if (err)
			return err;
	}
	return 0;
}

#endif
