// SPDX-License-Identifier: GPL-2.0
/* failsteer TC programs: steer new connections to a service's active backend, keep each
 * connection on its backend, reverse-rewrite replies, and count per-backend fault evidence. */
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/flow.h"
#include "failsteer/failsteer.h"

#define CLOCK_MONOTONIC 1
#define AF_INET 2
#define AF_INET6 10
#define RST_WINDOW 65536u /* acceptable distance of a RST's seq from the expected one */

/* Services by the endpoint clients connect to; userspace writes, programs read. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FS_DEFAULT_MAX_SERVICES);
	__type(key, struct fs_endpoint);
	__type(value, struct fs_service);
} services SEC(".maps");

/* Two entries per connection (FWD, REV); programs write, userspace sweeps idle ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FS_DEFAULT_FLOW_TABLE_SIZE);
	__type(key, struct fs_flow_key);
	__type(value, struct fs_flow);
} flows SEC(".maps");

/* Per-backend fault evidence, per CPU; programs write, the detector sums. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fs_backend_stats);
} backend_stats SEC(".maps");

/* Data-path totals (flow table churn, rejected resets, ...), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_global_stats);
} global_stats SEC(".maps");

/* Userspace-owned, pinned with the rest so a restarted daemon and the CLI share them:
 * the operator's overrides (CLI writes), decision state and backend models (daemon writes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct fs_service_ctl);
} service_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct fs_service_state);
} service_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fs_backend_model);
} backend_model SEC(".maps");

static __always_inline struct fs_backend_stats *bstats(__u32 id)
{
	return bpf_map_lookup_elem(&backend_stats, &id);
}

static __always_inline struct fs_global_stats *gstats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&global_stats, &zero);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >= 1ull << 32) { v >>= 32; r += 32; }
	if (v >= 1ull << 16) { v >>= 16; r += 16; }
	if (v >= 1ull << 8) { v >>= 8; r += 8; }
	if (v >= 1ull << 4) { v >>= 4; r += 4; }
	if (v >= 1ull << 2) { v >>= 2; r += 2; }
	if (v >= 1ull << 1) r += 1;
	return r;
}

/* Connect deadline of a REV entry: count a timeout if no SYN-ACK came. */
static int connect_timeout_cb(void *map, struct fs_flow_key *key, struct fs_flow *f)
{
	struct fs_backend_stats *s;

	if (f->state != FS_ST_SYN_SENT || (f->flags & FS_FL_TIMED_OUT))
		return 0;
	f->flags |= FS_FL_TIMED_OUT;
	s = bstats(f->backend_id);
	if (s)
		s->timeouts++;
	return 0;
}

/* Inserts the FWD and REV entries of a new connection (or moves an unanswered one) to
 * backend idx of svc and arms the connect deadline. Returns 0 with the backend filled in. */
static __always_inline int flow_steer(const struct pkt *p, const struct fs_service *svc, __u32 idx,
				      __u8 tried, struct fs_endpoint *backend, __u32 *backend_id,
				      __u32 *oif)
{
	struct fs_flow fwd = {}, rev = {};
	struct fs_flow_key rkey;
	struct fs_global_stats *g;
	struct fs_backend_stats *s;
	struct fs_flow *r;
	__u64 now = bpf_ktime_get_ns();

	if (idx >= FS_MAX_BACKENDS || idx >= svc->n_backends)
		return -1;
	*backend = svc->backends[idx];
	*backend_id = svc->backend_ids[idx];
	*oif = svc->backend_ifindex[idx];

	fwd.nat = *backend;
	fwd.backend_id = svc->backend_ids[idx];
	fwd.client_isn = p->seq;
	fwd.connect_timeout_ms = svc->connect_timeout_ms;
	fwd.dir = FS_DIR_FWD;
	fwd.backend_idx = idx;
	fwd.tried = tried | (1u << idx);
	fwd.syn_ns = now;
	fwd.last_ns = now;
	fwd.oif = svc->backend_ifindex[idx];

	rev = fwd;
	flow_endpoint(&rev.nat, &p->key, true);
	rev.dir = FS_DIR_REV;
	rev.state = FS_ST_SYN_SENT;

	flow_rev_key(&rkey, &p->key, backend);
	if (bpf_map_update_elem(&flows, &p->key, &fwd, BPF_ANY) ||
	    bpf_map_update_elem(&flows, &rkey, &rev, BPF_ANY))
		return -1;
	g = gstats();
	if (g)
		g->flows_created += 2;
	s = bstats(fwd.backend_id);
	if (s)
		s->attempts++;

	r = bpf_map_lookup_elem(&flows, &rkey);
	if (r && svc->connect_timeout_ms &&
	    !bpf_timer_init(&r->timer, &flows, CLOCK_MONOTONIC) &&
	    !bpf_timer_set_callback(&r->timer, connect_timeout_cb))
		bpf_timer_start(&r->timer, (__u64)svc->connect_timeout_ms * 1000000, 0);
	return 0;
}

static __always_inline void flow_delete_pair(const struct fs_flow_key *fwd_key,
					     const struct fs_flow_key *rev_key)
{
	struct fs_global_stats *g = gstats();
	__u64 n = 0;

	if (!bpf_map_delete_elem(&flows, fwd_key))
		n++;
	if (!bpf_map_delete_elem(&flows, rev_key))
		n++;
	if (g)
		g->flows_deleted += n;
}

/* Host mode: after a destination rewrite at egress the route chosen for the original
 * destination may be wrong; look it up again and send the packet where it now belongs. */
static __always_inline int route_rewritten(struct __sk_buff *skb, const struct pkt *p,
					   const struct fs_endpoint *to, __u32 oif)
{
	struct bpf_fib_lookup fib = {};
	struct fs_global_stats *g;
	int rc;

	if (p->family == FS_AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = p->key.src[0];
		fib.ipv4_dst = to->addr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->key.src, 16);
		__builtin_memcpy(fib.ipv6_dst, to->addr, 16);
	}
	fib.l4_protocol = IPPROTO_TCP;
	fib.tot_len = p->l3_len;
	/* An output lookup only considers routes via fib.ifindex: use the backend's. */
	fib.ifindex = oif ? oif : skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
			return TC_ACT_OK;
		if (fib.ifindex == skb->ifindex)
			return TC_ACT_OK;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	g = gstats();
	if (g)
		g->fib_failures++;
	return TC_ACT_OK;
}

static __always_inline int steer_out(struct __sk_buff *skb, const struct pkt *p,
				     const struct fs_endpoint *to, __u32 oif, bool egress)
{
	if (nat_rewrite(skb, p, true, to))
		return TC_ACT_OK;
	if (egress && (p->key.dport != to->port || p->key.dst[0] != to->addr[0] ||
		       p->key.dst[1] != to->addr[1] || p->key.dst[2] != to->addr[2] ||
		       p->key.dst[3] != to->addr[3]))
		return route_rewritten(skb, p, to, oif);
	return TC_ACT_OK;
}

static __always_inline bool is_pure_syn(const struct pkt *p)
{
	return (p->tcp_flags & (TCP_FL_SYN | TCP_FL_ACK | TCP_FL_RST)) == TCP_FL_SYN;
}

static __always_inline void count_to(__u32 backend_id, const struct __sk_buff *skb)
{
	struct fs_backend_stats *s = bstats(backend_id);

	if (s) {
		s->pkts_to++;
		s->bytes_to += skb->len;
	}
}

/* A client SYN for a tuple that has a FWD entry: a retransmission, or a new connection
 * reusing the tuple. Updates *to and *backend_id when the flow (re)starts elsewhere. */
static __always_inline int handle_fwd_syn(struct pkt *p, struct fs_flow *f, struct fs_endpoint *to,
					  __u32 *backend_id, __u32 *oif)
{
	struct fs_backend_stats *s;
	struct fs_endpoint svc_ep;
	struct fs_service *svc;
	struct fs_flow_key rkey;
	struct fs_flow *r;
	__u8 tried = f->tried;

	flow_rev_key(&rkey, &p->key, to);
	r = bpf_map_lookup_elem(&flows, &rkey);
	flow_endpoint(&svc_ep, &p->key, true);
	svc = bpf_map_lookup_elem(&services, &svc_ep);
	if (r && r->state == FS_ST_SYN_SENT && p->seq == f->client_isn) {
		/* Nobody holds state for an unanswered SYN: let it follow the current choice. */
		s = bstats(f->backend_id);
		if (s)
			s->syn_retrans++;
		if (!svc || svc->active == f->backend_idx)
			return 0;
	} else {
		if (!svc)
			return 0;
		tried = 0;
	}
	if (flow_steer(p, svc, svc->active, tried, to, backend_id, oif))
		return -1;
	if (r)
		bpf_map_delete_elem(&flows, &rkey);
	return 0;
}

/* A client packet of a tracked connection. */
static __always_inline int handle_fwd(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f,
				      bool egress)
{
	struct fs_endpoint to = f->nat;
	__u32 backend_id = f->backend_id, oif = f->oif;
	struct fs_flow_key rkey;

	if (is_pure_syn(p)) {
		if (handle_fwd_syn(p, f, &to, &backend_id, &oif))
			return TC_ACT_OK;
	} else {
		f->last_ns = bpf_ktime_get_coarse_ns();
		if (p->tcp_flags & TCP_FL_FIN)
			f->flags |= FS_FL_FIN;
		if (p->tcp_flags & TCP_FL_RST) {
			flow_rev_key(&rkey, &p->key, &to);
			flow_delete_pair(&p->key, &rkey);
		}
	}
	count_to(backend_id, skb);
	return steer_out(skb, p, &to, oif, egress);
}

/* A backend's packet to a client of a tracked connection. */
static __always_inline int handle_rev(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f)
{
	struct fs_backend_stats *s = bstats(f->backend_id);
	struct fs_endpoint svc_ep = f->nat;
	struct fs_global_stats *g;
	struct fs_flow_key fkey;
	__u8 fl = p->tcp_flags;

	if (s) {
		s->pkts_from++;
		s->bytes_from += skb->len;
	}
	f->last_ns = bpf_ktime_get_coarse_ns();
	if (fl & TCP_FL_RST) {
		bool ok;

		if (f->state == FS_ST_SYN_SENT)
			/* RFC 793: in SYN-SENT a reset is acceptable if it acks our SYN. */
			ok = (fl & TCP_FL_ACK) && p->ack_seq == f->client_isn + 1;
		else
			/* RFC 5961: only a reset near the next expected sequence counts. */
			ok = p->seq - f->srv_nxt < RST_WINDOW;
		if (ok) {
			if (s) {
				s->resets++;
				if (f->state == FS_ST_SYN_SENT)
					s->resets_connect++;
			}
			flow_fwd_key(&fkey, &p->key, &svc_ep);
			flow_delete_pair(&fkey, &p->key);
		} else {
			g = gstats();
			if (g)
				g->rst_rejected++;
		}
	} else if (f->state == FS_ST_SYN_SENT) {
		if ((fl & (TCP_FL_SYN | TCP_FL_ACK)) == (TCP_FL_SYN | TCP_FL_ACK) &&
		    p->ack_seq == f->client_isn + 1) {
			__u64 us = (bpf_ktime_get_ns() - f->syn_ns) / 1000;

			f->state = FS_ST_ESTABLISHED;
			f->srv_nxt = p->seq + 1;
			if (s) {
				s->established++;
				s->latency_sum_us += us;
				s->latency_hist[log2_u64(us) & (FS_LAT_BUCKETS - 1)]++;
			}
		}
	} else {
		__u32 end = p->seq + p->payload_len + (fl & TCP_FL_FIN ? 1 : 0);

		if ((__s32)(end - f->srv_nxt) > 0)
			f->srv_nxt = end;
		if (fl & TCP_FL_FIN)
			f->flags |= FS_FL_FIN;
	}
	nat_rewrite(skb, p, false, &svc_ep);
	return TC_ACT_OK;
}

/* ICMP unreachable quoting a connecting flow (as sent to the backend) counts against it,
 * but only if it quotes the client's SYN sequence exactly: blind ICMP must not count. */
static __always_inline void handle_icmp(struct pkt *p, struct cursor *c)
{
	struct fs_backend_stats *s;
	struct fs_global_stats *g;
	struct pkt q = {};
	struct fs_flow *r;

	if (parse_icmp_quote(c, p->family, &q))
		return;
	flow_key_swap(&q.key);
	r = bpf_map_lookup_elem(&flows, &q.key);
	if (r && r->dir == FS_DIR_REV && r->state == FS_ST_SYN_SENT && q.seq == r->client_isn) {
		s = bstats(r->backend_id);
		if (s)
			s->icmp_errors++;
		return;
	}
	g = gstats();
	if (g)
		g->icmp_unmatched++;
}

static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct fs_global_stats *g;
	struct fs_endpoint svc_ep, to;
	struct fs_service *svc;
	struct cursor c;
	struct pkt p = {};
	struct fs_flow *f;
	__u32 backend_id, oif;
	int kind;

	kind = parse_packet(data, data_end, &p, &c);
	if (kind < 0 && data_end - data < skb->len && data_end - data < 256) {
		/* Headers may sit outside the linear area; pull them in and try again. */
		if (bpf_skb_pull_data(skb, skb->len < 256 ? skb->len : 256))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&p, 0, sizeof(p));
		kind = parse_packet(data, data_end, &p, &c);
	}
	if (kind < 0)
		return TC_ACT_OK;
	if (kind == 1) {
		handle_icmp(&p, &c);
		return TC_ACT_OK;
	}

	f = bpf_map_lookup_elem(&flows, &p.key);
	if (f) {
		if (f->dir == FS_DIR_FWD)
			return handle_fwd(skb, &p, f, egress);
		if (f->dir == FS_DIR_REV)
			return handle_rev(skb, &p, f);
		return TC_ACT_OK;
	}

	flow_endpoint(&svc_ep, &p.key, true);
	svc = bpf_map_lookup_elem(&services, &svc_ep);
	if (!svc)
		return TC_ACT_OK;
	if (!is_pure_syn(&p)) {
		/* Began before we loaded, or its entry was evicted: pass unchanged, but count. */
		g = gstats();
		if (g)
			g->flow_misses++;
		return TC_ACT_OK;
	}
	if (flow_steer(&p, svc, svc->active, 0, &to, &backend_id, &oif))
		return TC_ACT_OK;
	count_to(backend_id, skb);
	return steer_out(skb, &p, &to, oif, egress);
}

/* Gateway mode (and replies in host mode): before routing, on every configured interface. */
SEC("tc")
int fs_tc_ingress(struct __sk_buff *skb)
{
	return handle(skb, false);
}

/* Host mode: connections of local processes. Forwarded packets were handled at ingress. */
SEC("tc")
int fs_tc_egress(struct __sk_buff *skb)
{
	if (skb->ingress_ifindex || skb->mark == FS_PROBE_MARK)
		return TC_ACT_OK;
	return handle(skb, true);
}

char LICENSE[] SEC("license") = "GPL";
