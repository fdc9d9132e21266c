/* SPDX-License-Identifier: GPL-2.0 */
/* Flow keys: building the pair of keys (client->service, backend->client) of one connection. */
#ifndef FS_BPF_FLOW_H
#define FS_BPF_FLOW_H

#include "common.h"
#include "failsteer/failsteer.h"

/* Key of the REV entry: packets from backend ep to the client of fwd. */
static __always_inline void flow_rev_key(struct fs_flow_key *rev, const struct fs_flow_key *fwd,
					 const struct fs_endpoint *ep)
{
	__builtin_memcpy(rev->src, ep->addr, 16);
	__builtin_memcpy(rev->dst, fwd->src, 16);
	rev->sport = ep->port;
	rev->dport = fwd->sport;
	rev->family = fwd->family;
	rev->pad[0] = rev->pad[1] = rev->pad[2] = 0;
}

/* Key of the FWD entry from a packet's REV key and the service endpoint it answers as. */
static __always_inline void flow_fwd_key(struct fs_flow_key *fwd, const struct fs_flow_key *rev,
					 const struct fs_endpoint *svc)
{
	__builtin_memcpy(fwd->src, rev->dst, 16);
	__builtin_memcpy(fwd->dst, svc->addr, 16);
	fwd->sport = rev->dport;
	fwd->dport = svc->port;
	fwd->family = rev->family;
	fwd->pad[0] = fwd->pad[1] = fwd->pad[2] = 0;
}

/* The endpoint a packet was sent to (dst side) or from. */
static __always_inline void flow_endpoint(struct fs_endpoint *ep, const struct fs_flow_key *k,
					  bool dst_side)
{
	__builtin_memcpy(ep->addr, dst_side ? k->dst : k->src, 16);
	ep->port = dst_side ? k->dport : k->sport;
	ep->family = k->family;
	ep->pad = 0;
}

/* True if one side of a key (addr and port: src/sport or dst/dport) is ep. */
static __always_inline bool flow_side_is(const __u32 *addr, __u16 port, const struct fs_endpoint *ep)
{
	return port == ep->port && addr[0] == ep->addr[0] && addr[1] == ep->addr[1] &&
	       addr[2] == ep->addr[2] && addr[3] == ep->addr[3];
}

/* Reverses a key in place (the quoted packet of an ICMP error is in the other direction). */
static __always_inline void flow_key_swap(struct fs_flow_key *k)
{
	__u32 t;
	__u16 p;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		t = k->src[i];
		k->src[i] = k->dst[i];
		k->dst[i] = t;
	}
	p = k->sport;
	k->sport = k->dport;
	k->dport = p;
}

#endif
