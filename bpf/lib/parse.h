/* SPDX-License-Identifier: GPL-2.0 */
/* Packet parsing: Ethernet (+VLAN), IPv4/IPv6 (+options/extension headers), TCP and ICMP errors. */
#ifndef FS_BPF_PARSE_H
#define FS_BPF_PARSE_H

#include "common.h"
#include "failsteer/failsteer.h"

#ifndef PARSE_MAX_VLAN
#define PARSE_MAX_VLAN 2
#endif
#ifndef PARSE_MAX_IPV6_EXT
#define PARSE_MAX_IPV6_EXT 4
#endif

/* What the parser learned about one TCP packet, as offsets so they survive helper calls. */
struct pkt {
	struct fs_flow_key key; /* src/dst/ports as on the wire */
	__u32 l3_off;
	__u32 l4_off;
	__u32 seq;
	__u32 ack_seq;
	__u32 payload_len;      /* TCP payload bytes */
	__u32 l3_len;           /* IP header + payload, from the IP header */
	__u8 tcp_flags;
	__u8 family;
	__u32 q3_off;           /* ICMP errors: offsets of the quoted IP and TCP headers */
	__u32 q4_off;
};

struct cursor {
	void *pos;
	void *end;
};

/* Returns the ethertype after any VLAN tags, or -1 if truncated. */
static __always_inline int parse_eth(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	struct vlan_hdr { __be16 tci; __be16 proto; } *vh;
	__u16 proto;

	if ((void *)(eth + 1) > c->end)
		return -1;
	proto = eth->h_proto;
	c->pos = eth + 1;
#pragma unroll
	for (int i = 0; i < PARSE_MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return -1;
		proto = vh->proto;
		c->pos = vh + 1;
	}
	return bpf_ntohs(proto);
}

/* A walk of IPv4 options (ipv4_opts_unsteerable), one option a step. Small: it and the
 * step sit on top of the programs' deepest stack. */
struct ipv4_opt_walk {
	struct __sk_buff *skb;
	__u32 off; /* where the options start in skb */
	__u32 n;   /* bytes of options */
	__u32 i;   /* where the next option starts */
	int bad;
};

static long ipv4_opt_step(__u64 k, struct ipv4_opt_walk *w)
{
	__u32 i = w->i;
	__u8 type, len = 0; /* 0: none, refused below */

	if (i >= w->n)
		return 1;
	if (bpf_skb_load_bytes(w->skb, w->off + i, &type, 1))
		goto bad;
	if (type == IPOPT_END)
		return 1;
	if (type == IPOPT_NOOP) {
		w->i = i + 1;
		return 0;
	}
	if (i + 1 < w->n && bpf_skb_load_bytes(w->skb, w->off + i + 1, &len, 1))
		goto bad;
	if (type == IPOPT_LSRR || type == IPOPT_SSRR || len < 2 || i + len > w->n)
		goto bad;
	w->i = i + len;
	return 0;
bad:
	w->bad = 1;
	return 1;
}

/* 1 if the n bytes of IPv4 options at off in skb hold a source route (LSRR, SSRR: daddr is
 * the next waypoint, neither the service the client connected to nor what its TCP checksum
 * covers) or cannot be walked, else 0. Only headers with options pay for it. A global
 * function stepping with bpf_loop: the verifier checks one step, once. */
__noinline int ipv4_opts_unsteerable(struct __sk_buff *skb, __u32 off, __u32 n)
{
	struct ipv4_opt_walk w = { .skb = skb, .off = off, .n = n };

	if (!skb || n > 40)
		return 1;
	bpf_loop(40, ipv4_opt_step, &w, 0);
	return w.bad;
}

/* Fills addresses; returns the L4 protocol, or -1 for truncated, malformed or fragmented,
 * or (skb given: the frame at data in it) a source-routed packet. */
static __always_inline int parse_ipv4(struct cursor *c, __u32 *src, __u32 *dst, __u32 *l3_len,
				      struct __sk_buff *skb, void *data)
{
	struct iphdr *ip = c->pos;
	__u32 hl;

	if ((void *)(ip + 1) > c->end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	hl = ip->ihl * 4;
	if (c->pos + hl > c->end)
		return -1;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	if (skb && hl > sizeof(*ip) &&
	    ipv4_opts_unsteerable(skb, (__u32)((void *)(ip + 1) - data), hl - sizeof(*ip)))
		return -1;
	src[0] = ip->saddr;
	dst[0] = ip->daddr;
	*l3_len = bpf_ntohs(ip->tot_len);
	c->pos += hl;
	return ip->protocol;
}

static __always_inline int parse_ipv6(struct cursor *c, __u32 *src, __u32 *dst, __u32 *l3_len)
{
	struct ipv6hdr *ip6 = c->pos;
	struct ipv6_opt_hdr *eh;
	__u8 nexthdr, cur;

	if ((void *)(ip6 + 1) > c->end)
		return -1;
	if (ip6->version != 6)
		return -1;
	__builtin_memcpy(src, &ip6->saddr, 16);
	__builtin_memcpy(dst, &ip6->daddr, 16);
	*l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	nexthdr = ip6->nexthdr;
	c->pos = ip6 + 1;
#pragma unroll
	for (int i = 0; i < PARSE_MAX_IPV6_EXT; i++) {
		if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING && nexthdr != NEXTHDR_DEST &&
		    nexthdr != NEXTHDR_AUTH)
			break;
		eh = c->pos;
		if ((void *)(eh + 1) > c->end)
			return -1;
		cur = nexthdr;
		/* Segments left: daddr is not the final destination the TCP checksum covers,
		 * nor what the client connected to. Not ours to rewrite. */
		if (cur == NEXTHDR_ROUTING && (void *)eh + 4 <= c->end && ((__u8 *)eh)[3])
			return -1;
		nexthdr = eh->nexthdr;
		/* AH counts its length in 4-byte units, the others in 8-byte units (RFC 4302, 8200). */
		if (cur == NEXTHDR_AUTH)
			c->pos += (eh->hdrlen + 2) * 4;
		else
			c->pos += (eh->hdrlen + 1) * 8;
		if (c->pos > c->end)
			return -1;
	}
	if (nexthdr == NEXTHDR_FRAGMENT)
		return -1;
	return nexthdr;
}

/* Parses L3 after the Ethernet header (IPv4 options walked if skb is given: the frame at
 * data in it); returns the L4 protocol or -1. */
static __always_inline int parse_l3(struct cursor *c, int ethertype, __u32 *src, __u32 *dst,
				    __u8 *family, __u32 *l3_len, struct __sk_buff *skb, void *data)
{
	if (ethertype == ETH_P_IP) {
		*family = FS_AF_INET;
		return parse_ipv4(c, src, dst, l3_len, skb, data);
	}
	if (ethertype == ETH_P_IPV6) {
		*family = FS_AF_INET6;
		return parse_ipv6(c, src, dst, l3_len);
	}
	return -1;
}

/* Parses a whole TCP/IP packet into p. Returns 0 for TCP, 1 for an ICMP error worth
 * a look (cursor left at the ICMP header), -1 for anything else. */
static __always_inline int parse_packet(struct __sk_buff *skb, void *data, void *data_end,
					struct pkt *p, struct cursor *c)
{
	struct tcphdr *th;
	__u32 thl;
	int ethertype, proto;

	c->pos = data;
	c->end = data_end;
	ethertype = parse_eth(c);
	if (ethertype < 0)
		return -1;
	p->l3_off = c->pos - data;
	proto = parse_l3(c, ethertype, p->key.src, p->key.dst, &p->key.family, &p->l3_len, skb, data);
	if (proto < 0)
		return -1;
	p->family = p->key.family;
	p->l4_off = c->pos - data;
	if (proto == IPPROTO_ICMP && p->family == FS_AF_INET)
		return 1;
	if (proto == IPPROTO_ICMPV6_NR && p->family == FS_AF_INET6)
		return 1;
	if (proto != IPPROTO_TCP)
		return -1;
	th = c->pos;
	if ((void *)(th + 1) > c->end)
		return -1;
	thl = th->doff * 4;
	if (thl < sizeof(*th) || c->pos + thl > c->end)
		return -1;
	p->key.sport = th->source;
	p->key.dport = th->dest;
	p->seq = bpf_ntohl(th->seq);
	p->ack_seq = bpf_ntohl(th->ack_seq);
	p->tcp_flags = ((__u8 *)th)[13];
	if (p->l3_len < p->l4_off - p->l3_off + thl)
		return -1;
	p->payload_len = p->l3_len - (p->l4_off - p->l3_off) - thl;
	return 0;
}

/* What an ICMP(v6) error quoting a TCP packet says of its destination. */
enum icmp_kind {
	ICMP_KIND_UNREACH, /* destination unreachable: a failure of the backend */
	ICMP_KIND_OTHER,   /* path MTU (fragmentation needed, packet too big), time exceeded */
};

/* For an ICMP(v6) error at c->pos (data is the frame's start), fills k with the quoted TCP
 * flow (as sent: src is our side), seq with its sequence number and p's q3_off and q4_off.
 * Returns its enum icmp_kind, or -1 for anything else. */
static __always_inline int parse_icmp_quote(struct cursor *c, void *data, struct pkt *p,
					    struct fs_flow_key *k, __u32 *seq)
{
	struct icmphdr { __u8 type; __u8 code; __u16 csum; __u32 unused; } *ih = c->pos;
	struct tcp_quote { __be16 source; __be16 dest; __be32 seq; } *tq;
	__u8 family = p->family;
	__u32 quoted_len;
	int proto, kind;

	if ((void *)(ih + 1) > c->end)
		return -1;
	if (family == FS_AF_INET) {
		if (ih->type == ICMP_DEST_UNREACH)
			kind = ih->code == ICMP_FRAG_NEEDED ? ICMP_KIND_OTHER : ICMP_KIND_UNREACH;
		else if (ih->type == ICMP_TIME_EXCEEDED)
			kind = ICMP_KIND_OTHER;
		else
			return -1;
	} else {
		if (ih->type == ICMPV6_DEST_UNREACH)
			kind = ICMP_KIND_UNREACH;
		else if (ih->type == ICMPV6_PKT_TOOBIG || ih->type == ICMPV6_TIME_EXCEED)
			kind = ICMP_KIND_OTHER;
		else
			return -1;
	}
	c->pos = ih + 1;
	p->q3_off = c->pos - data;
	__builtin_memset(k, 0, sizeof(*k));
	k->family = family;
	if (family == FS_AF_INET)
		/* Options not walked: a source-routed packet never got a flow, so its
		 * quote matches none. */
		proto = parse_ipv4(c, k->src, k->dst, &quoted_len, NULL, NULL);
	else
		proto = parse_ipv6(c, k->src, k->dst, &quoted_len);
	if (proto != IPPROTO_TCP)
		return -1;
	tq = c->pos;
	if ((void *)(tq + 1) > c->end)
		return -1;
	p->q4_off = c->pos - data;
	k->sport = tq->source;
	k->dport = tq->dest;
	*seq = bpf_ntohl(tq->seq);
	return kind;
}

#endif
