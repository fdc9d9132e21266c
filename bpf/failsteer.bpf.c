// SPDX-License-Identifier: GPL-2.0
/* failsteer TC programs: steer new connections to a service's active backend, keep each
 * connection on its backend, reverse-rewrite replies, and count per-backend fault evidence. */
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/flow.h"
#include "lib/csum.h"
#include "failsteer/failsteer.h"

#define CLOCK_MONOTONIC 1
#define AF_INET 2
#define AF_INET6 10
#define RST_WINDOW 65536u /* acceptable distance of a RST's seq from the expected one */
/* ... and of a data or FIN segment's: larger than any receive window here (Linux's largest
 * default receive buffer is 6 MiB), so that losses before this node never leave a way's
 * tracked sequence behind for good, yet a blind guess rarely lands in it. */
#define SEQ_WINDOW (16u << 20)
#define SEQ_CREEP 65536u /* see seq_advance */
/* Replies up to these L3 lengths fit every link (IPv4's minimum datagram, IPv6's minimum
 * MTU): reply_too_big() is not asked. */
#define REPLY_MTU_MIN4 576
#define REPLY_MTU_MIN6 1280
#define ETH_HLEN 14
#define __noinline __attribute__((noinline))
#define VERDICT_TRY_RETRY 1000 /* handler to top frame: try retry_in_kernel() */

/* Where a flow's client packets go. */
struct steer_target {
	struct fs_endpoint ep;
	__u32 backend_id;
	__u32 oif;      /* host mode: interface of the route to ep, 0 = unknown */
	__u32 syn_slot; /* the flow's fs_flow.syn_slot, carried when it moves */
	__u32 syn_data; /* bytes of data the SYN carries (TCP Fast Open) */
	__u32 client_if; /* interface the client's SYN came in on, 0 = this node's own */
};

/* Set by the loader to the deadlines and syn_store maps' sizes. */
const volatile __u32 deadline_slots = FS_DEFAULT_FLOW_TABLE_SIZE / 16;
const volatile __u32 syn_slots = FS_DEFAULT_FLOW_TABLE_SIZE / 4;

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

/* Per-backend fault evidence, per CPU; programs write, the detector sums every tick. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fs_backend_stats);
} backend_stats SEC(".maps");

/* Which backends' fault counters changed since the daemon last read them (see
 * struct fs_backend_pending); the daemon maps it into its memory. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FS_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fs_backend_pending);
} backend_pending SEC(".maps");

/* Per-backend packets, bytes and connect latency, per CPU; for metrics and status only,
 * apart so that the detector's tick does not copy them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fs_backend_traffic);
} backend_traffic SEC(".maps");

/* Data-path totals (flow table churn, rejected resets, ...), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_global_stats);
} global_stats SEC(".maps");

/* Userspace-owned, pinned with the rest so a restarted daemon and the CLI share them:
 * the operator's overrides (CLI writes, the daemon reads them mapped into its memory),
 * decision state and backend models (daemon writes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
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

/* Client SYNs of retrying services, a ring (see struct fs_syn); programs write. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_DEFAULT_FLOW_TABLE_SIZE / 4);
	__type(key, __u32);
	__type(value, struct fs_syn);
} syn_store SEC(".maps");

/* Connect deadlines of retrying flows, for the daemon to re-send or give up. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} retry_events SEC(".maps");

/* Connect deadlines of connecting flows, a ring swept by one periodic timer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_DEFAULT_FLOW_TABLE_SIZE / 16);
	__type(key, __u32);
	__type(value, struct fs_deadline);
} deadlines SEC(".maps");

/* The sweeping timer and the ring's cursors. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_deadline_ctl);
} deadline_ctl SEC(".maps");

/* The daemon's heartbeat (no program touches it: pinned with the rest for the CLI). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_daemon_state);
} daemon_state SEC(".maps");

/* Per-CPU scratch to build a SYN in (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_syn);
} syn_scratch SEC(".maps");

/* Per-CPU scratch for the two flow entries of a new connection. */
struct flow_pair {
	struct fs_flow fwd, rev;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_pair);
} flow_scratch SEC(".maps");

static __always_inline struct fs_backend_stats *bstats(__u32 id)
{
	return bpf_map_lookup_elem(&backend_stats, &id);
}

/* Flags backend id for the daemon's next tick after one of its backend_stats counters was
 * counted. Counter first, flag second, in program order only: a CPU may still publish the
 * counter after the daemon cleared a flag that was already set, and then the daemon sees
 * that count at its next read of all backends (every FULL_READ_TICKS), not at once. */
static __always_inline void evidence_counted(__u32 id)
{
	struct fs_backend_pending *a = bpf_map_lookup_elem(&backend_pending, &id);

	asm volatile("" ::: "memory");
	if (a && !a->pending)
		a->pending = 1;
}

static __always_inline struct fs_backend_traffic *btraffic(__u32 id)
{
	return bpf_map_lookup_elem(&backend_traffic, &id);
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

/* The backend an unanswered flow tries next: the first by priority that it has not tried
 * and the daemon does not believe down. -1 when none is left. */
static __always_inline int next_backend(const struct fs_service *svc, __u8 tried)
{
#pragma unroll
	for (int i = 0; i < FS_MAX_BACKENDS; i++)
		if (i < svc->n_backends && !(tried & (1u << i)) && !(svc->down_mask & (1u << i)))
			return i;
	return -1;
}

/* A connect deadline passed for the flow whose REV entry is f: count a timeout if no
 * SYN-ACK came, and for a retrying service tell the daemon. */
static __always_inline void connect_deadline(const struct fs_flow_key *key, struct fs_flow *f)
{
	struct fs_retry_event ev = {};
	struct fs_backend_stats *s;

	if (f->dir != FS_DIR_REV || f->state != FS_ST_SYN_SENT || (f->flags & FS_FL_TIMED_OUT))
		return;
	f->flags |= FS_FL_TIMED_OUT;
	s = bstats(f->backend_id);
	if (s) {
		s->timeouts++;
		evidence_counted(f->backend_id);
	}
	if (!(f->flags & FS_FL_RETRY))
		return;
	/* Which backend is next is the daemon's call: it re-sends through the egress
	 * program, which moves the flow. */
	flow_fwd_key(&ev.fwd, key, &f->nat);
	ev.client_isn = f->client_isn;
	ev.syn_slot = f->syn_slot;
	ev.backend_idx = f->backend_idx;
	if (bpf_ringbuf_output(&retry_events, &ev, sizeof(ev), 0)) {
		/* Ring full (the daemon is behind): this connection is left to the client's
		 * own SYN retransmission, which follows the service's current choice. */
		struct fs_global_stats *g = gstats();

		if (g)
			g->retry_failures++;
	}
}

static __always_inline struct fs_deadline_ctl *deadline_ctl_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&deadline_ctl, &zero);
}

/* Records that the flow with REV key rkey must be answered by due_ns. */
/* Is the connection a deadline is for (REV key, ISN) still waiting for its answer? Its
 * entry, if so, in *f. The ISN tells a later connection on the same ports from it. */
static __always_inline bool deadline_waits(const struct fs_flow_key *key, __u32 isn,
					   struct fs_flow **f)
{
	*f = bpf_map_lookup_elem(&flows, key);
	return *f && (*f)->client_isn == isn && (*f)->dir == FS_DIR_REV &&
	       (*f)->state == FS_ST_SYN_SENT && !((*f)->flags & FS_FL_TIMED_OUT);
}

static __always_inline void deadline_push(const struct fs_flow_key *rkey, __u32 isn, __u64 due_ns)
{
	struct fs_deadline_ctl *ctl = deadline_ctl_get();
	struct fs_global_stats *g;
	struct fs_deadline *d;
	struct fs_flow *old;
	__u32 slot;

	if (!ctl || !deadline_slots)
		return;
	slot = (__u32)(__sync_fetch_and_add(&ctl->head, 1) % deadline_slots);
	d = bpf_map_lookup_elem(&deadlines, &slot);
	if (!d)
		return;
	/* Take the slot before filling it: the timer may be expiring what it held, and only
	 * one of us may win it (see deadline_settle). due_ns is written last. */
	if (__sync_lock_test_and_set(&d->due_ns, 0)) {
		/* Ring full: the oldest deadline goes. Lost only if its connection still waits
		 * (else it was answered, and not freed yet); then say so. */
		g = deadline_waits(&d->rkey, d->client_isn, &old) ? gstats() : NULL;
		if (g)
			g->deadline_overflows++;
	} else {
		__sync_fetch_and_add(&ctl->pending, 1);
	}
	d->rkey = *rkey;
	d->client_isn = isn;
	d->due_ns = due_ns;
}

/* Settles slot d of the ring, seen holding deadline due: frees it, and if its connection
 * is still waiting for an answer, expires it. A connection that was answered (or moved,
 * closed, evicted) needs no deadline any more: its slot is freed before it is due, so that
 * the timer only ever waits for connections that are still waiting. Returns false, leaving
 * the slot alone, for a waiting connection whose deadline is not due yet (now < due); true
 * when the slot was settled, or taken by a writer in the meantime. */
static __always_inline bool deadline_settle(struct fs_deadline *d, __u64 due, __u64 now,
					    struct fs_deadline_ctl *ctl)
{
	struct fs_flow_key key = d->rkey;
	struct fs_flow *f;
	bool waiting = deadline_waits(&key, d->client_isn, &f);

	if (waiting && now < due)
		return false;
	if (__sync_val_compare_and_swap(&d->due_ns, due, 0) != due)
		return true;
	__sync_fetch_and_sub(&ctl->pending, 1);
	if (waiting)
		connect_deadline(&key, f);
	return true;
}

struct sweep_ctx {
	__u64 now;
	__u64 next_due; /* walk: the first deadline not due yet, 0 if none */
	__u64 start;    /* slice sweep: first position, in [head - live, head) */
	__u64 head;     /* slice sweep: the head it was started with */
	__u64 live;     /* slice sweep: positions between the tail and that head */
	struct fs_deadline_ctl *ctl;
};

/* One step of the in-order walk from the tail: settle a deadline that is due or no longer
 * needed, pass a free slot, or stop at the first connection still waiting whose deadline
 * is not due yet (or at the head). */
static long deadline_walk_one(__u64 i, struct sweep_ctx *c)
{
	struct fs_deadline_ctl *ctl = c->ctl;
	__u64 tail = ctl->tail, head = ctl->head, due;
	struct fs_deadline *d;
	__u32 slot;

	if (tail >= head)
		return 1;
	if (head - tail > deadline_slots) { /* the ring wrapped over the tail */
		ctl->tail = head - deadline_slots;
		return 0;
	}
	slot = (__u32)(tail % deadline_slots);
	d = bpf_map_lookup_elem(&deadlines, &slot);
	if (!d)
		return 1;
	due = d->due_ns;
	/* A free slot at the head may be one a writer has claimed but not filled yet. */
	if (!due && tail + 1 >= head)
		return 1;
	if (due && !deadline_settle(d, due, c->now, ctl)) {
		c->next_due = due;
		return 1;
	}
	ctl->tail = tail + 1;
	return 0;
}

/* The ring position i steps after start, wrapped within the live window [head - live,
 * head) (i < live). */
static __always_inline __u64 sweep_pos(const struct sweep_ctx *c, __u64 i)
{
	__u64 pos = c->start + i;

	return pos >= c->head ? pos - c->live : pos;
}

/* One slot of the slice sweep: settles a deadline that is due, or no longer needed even
 * if not due (answered behind one still waiting, which holds up the in-order walk: freed
 * here, they do not fill the ring). The context stays the same across iterations (the
 * count of cleared slots goes straight to ctl->pending) so the verifier sees the loop
 * converge. */
static long deadline_sweep_one(__u64 i, struct sweep_ctx *c)
{
	__u32 slot = (__u32)(sweep_pos(c, i) % deadline_slots);
	struct fs_deadline *d;
	__u64 due;

	d = bpf_map_lookup_elem(&deadlines, &slot);
	if (!d)
		return 0;
	due = d->due_ns;
	if (due)
		deadline_settle(d, due, c->now, c->ctl);
	return 0;
}

/* Sweeps a slice of the live window, the positions between the tail and the head (no
 * other slot holds a deadline: the walk frees what it passes, writers claim at the head),
 * sized by the time since the last slice so that every live slot is seen within
 * FS_DEADLINE_PASS_NS. The window, not the ring: the ring is sized for the flow table, the
 * window by the connections waiting now, so an idle-ish node with a big table does not
 * sweep millions of free slots a second. */
static __always_inline void deadline_slice(struct sweep_ctx *c, __u64 since)
{
	struct fs_deadline_ctl *ctl = c->ctl;
	__u64 slice, tail = ctl->tail;

	c->head = ctl->head;
	c->live = c->head > tail ? c->head - tail : 0;
	if (c->live > deadline_slots)
		c->live = deadline_slots;
	ctl->slice_ns = c->now;
	if (!c->live)
		return;
	if (since > FS_DEADLINE_PASS_NS)
		since = FS_DEADLINE_PASS_NS;
	slice = c->live * since / FS_DEADLINE_PASS_NS + 1;
	if (slice > c->live)
		slice = c->live;
	/* The cursor goes on where the last slice stopped, unless the window moved past it. */
	c->start = ctl->cursor;
	if (c->start < c->head - c->live || c->start >= c->head)
		c->start = c->head - c->live;
	bpf_loop((__u32)slice, deadline_sweep_one, c, 0);
	ctl->cursor = sweep_pos(c, slice % c->live);
}

/* Walks the due deadlines in order, at least every FS_DEADLINE_PERIOD_NS also sweeps a
 * slice of the live window (deadline_slice), and fires again when the next deadline in
 * order is due. Nothing to do while no deadline is pending. */
static int deadline_timer_cb(void *map, __u32 *key, struct fs_deadline_ctl *ctl)
{
	struct sweep_ctx c = { .now = bpf_ktime_get_ns(), .ctl = ctl };
	__u64 delay = FS_DEADLINE_PERIOD_NS, since = c.now - ctl->slice_ns;
	long walked;

	ctl->sweeps++;
	if (ctl->pending && deadline_slots) {
		walked = bpf_loop(FS_DEADLINE_WALK_MAX, deadline_walk_one, &c, 0);
		if (walked >= FS_DEADLINE_WALK_MAX)
			delay = FS_DEADLINE_MIN_NS; /* more are due: come back soon */
		if (since >= FS_DEADLINE_PERIOD_NS)
			deadline_slice(&c, since);
	}
	if (c.next_due && c.next_due - c.now < delay)
		delay = c.next_due - c.now;
	if (delay < FS_DEADLINE_MIN_NS)
		delay = FS_DEADLINE_MIN_NS;
	bpf_timer_start(&ctl->timer, delay, 0);
	return 0;
}

/* Inserts the FWD and REV entries of connection fkey (client -> service, SYN sequence isn),
 * new or moved, on backend idx of svc and arms the connect deadline. Returns 0 with the
 * backend filled in. */
static __noinline int flow_steer(const struct fs_flow_key *fkey, __u32 isn,
				 const struct fs_service *svc, __u32 idx_tried, struct steer_target *t)
{
	__u32 idx = idx_tried & 0xff;
	__u8 tried = idx_tried >> 8;
	struct fs_flow_key rkey;
	struct fs_global_stats *g;
	struct fs_backend_stats *s;
	struct flow_pair *fp;
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;

	fp = bpf_map_lookup_elem(&flow_scratch, &zero);
	if (!fp || idx >= FS_MAX_BACKENDS || idx >= svc->n_backends)
		return -1;
	__builtin_memset(&fp->fwd, 0, sizeof(fp->fwd));
#define fwd (fp->fwd)
#define rev (fp->rev)
	t->ep = svc->backends[idx];
	t->backend_id = svc->backend_ids[idx];
	t->oif = svc->backend_ifindex[idx];

	fwd.nat = t->ep;
	fwd.backend_id = svc->backend_ids[idx];
	fwd.client_isn = isn;
	fwd.snd_nxt = isn + 1 + t->syn_data; /* the client's next sequence number */
	fwd.syn_slot = t->syn_slot;
	fwd.dir = FS_DIR_FWD;
	fwd.backend_idx = idx;
	fwd.tried = tried | (1u << idx);
	fwd.syn_ns = now;
	fwd.last_ns = now;
	fwd.oif = svc->backend_ifindex[idx];
	/* Both entries are swept as unanswered until the client acknowledges its backend. */
	fwd.flags = FS_FL_SYN_ONLY;
	if (svc->flags & FS_SVC_F_RETRY)
		fwd.flags |= FS_FL_RETRY;

	rev = fwd;
	/* Where the client's side is (from_backend_side). */
	rev.oif = t->client_if;
	/* The backend's, from its SYN-ACK; until then the end of the SYN, which the SYN-ACK
	 * (or a refusing reset) acknowledges all or, Fast Open data refused, the SYN of. */
	rev.snd_nxt = fwd.snd_nxt;
	flow_endpoint(&rev.nat, fkey, true);
	rev.dir = FS_DIR_REV;
	rev.state = FS_ST_SYN_SENT;

	flow_rev_key(&rkey, fkey, &t->ep);
	g = gstats();
	/* Count only entries that did not exist (a move or a reuse overwrites), so that
	 * userspace can tell evictions from closes. */
	if (!bpf_map_update_elem(&flows, fkey, &fwd, BPF_NOEXIST)) {
		if (g)
			g->flows_created++;
	} else if (bpf_map_update_elem(&flows, fkey, &fwd, BPF_ANY)) {
		return -1;
	}
	if (!bpf_map_update_elem(&flows, &rkey, &rev, BPF_NOEXIST)) {
		if (g)
			g->flows_created++;
	} else if (bpf_map_update_elem(&flows, &rkey, &rev, BPF_ANY)) {
		return -1;
	}
	s = bstats(fwd.backend_id);
	if (s) {
		s->attempts++;
		evidence_counted(fwd.backend_id);
	}
#undef fwd
#undef rev

	if (svc->connect_timeout_ms)
		deadline_push(&rkey, isn, now + (__u64)svc->connect_timeout_ms * 1000000);
	return 0;
}

/* Deletes a flow entry, counted so that userspace can tell deletes from evictions. */
static __always_inline void flow_delete(const struct fs_flow_key *key)
{
	struct fs_global_stats *g;

	if (bpf_map_delete_elem(&flows, key))
		return;
	g = gstats();
	if (g)
		g->flows_deleted++;
}

static __always_inline void flow_delete_pair(const struct fs_flow_key *fwd_key,
					     const struct fs_flow_key *rev_key)
{
	flow_delete(fwd_key);
	flow_delete(rev_key);
}

/* Moves an unanswered flow to backend idx. The old backend's REV entry stays as a tombstone
 * so that a late SYN-ACK from it is dropped instead of reaching the client. */
static __always_inline int flow_move(const struct fs_flow_key *fkey, __u32 isn,
				     const struct fs_service *svc, __u32 idx, __u8 tried,
				     const struct fs_flow_key *old_rkey, struct steer_target *t)
{
	struct fs_flow *old;

	if (flow_steer(fkey, isn, svc, idx | (__u32)tried << 8, t))
		return -1;
	/* After a reload the same backend may sit at another index: its entry is the new one. */
	if (flow_side_is(old_rkey->src, old_rkey->sport, &t->ep))
		return 0;
	old = bpf_map_lookup_elem(&flows, old_rkey);
	if (old && old->dir == FS_DIR_REV)
		old->state = FS_ST_MOVED;
	return 0;
}

/* Key of the other entry of the connection whose entry f was found under p's key. */
static __always_inline void flow_peer_key(struct fs_flow_key *peer, const struct pkt *p,
					  const struct fs_flow *f)
{
	if (f->dir == FS_DIR_FWD)
		flow_rev_key(peer, &p->key, &f->nat);
	else
		flow_fwd_key(peer, &p->key, &f->nat);
}

/* A reset went the way of entry f: the other entry is flagged too, so that the daemon
 * sweeps both after the close linger (it sweeps an entry by its own flags and age; the
 * other way may never see another packet). Flagged only: a reset may be spoofed, and the
 * sweep waits for both ways to fall silent. */
static __always_inline void flow_reset_seen(const struct pkt *p, struct fs_flow *f)
{
	struct fs_flow_key peer_key;
	struct fs_flow *peer;

	f->flags |= FS_FL_RST;
	flow_peer_key(&peer_key, p, f);
	peer = bpf_map_lookup_elem(&flows, &peer_key);
	if (peer)
		peer->flags |= FS_FL_PEER_CLOSED;
}

/* Clean close: when this packet (of entry f, a connection's FWD or REV) acknowledges the
 * other way's FIN and the FIN that went this way was acknowledged before, both entries are
 * deleted, so that closed connections do not crowd live ones out of the table. The caller
 * must not touch f afterwards (the entry may already hold another flow); it steers this last
 * ACK from its own copy. A FIN retransmitted after the last ACK was lost then passes unsteered
 * (all data was acknowledged: only the closing socket's last word goes astray). The ACK must
 * name the FIN's sequence exactly: a partial ACK or a guess never ends a flow. */
static __always_inline void flow_close(const struct pkt *p, struct fs_flow *f)
{
	bool fin = p->tcp_flags & TCP_FL_FIN;
	bool acks_peer = (p->tcp_flags & TCP_FL_ACK) && (f->flags & FS_FL_PEER_FIN);
	struct fs_flow_key peer_key;
	struct fs_flow *peer;

	if (!fin && !acks_peer)
		return;
	flow_peer_key(&peer_key, p, f);
	peer = bpf_map_lookup_elem(&flows, &peer_key);
	if (!peer)
		return;
	if (fin)
		peer->flags |= FS_FL_PEER_FIN | FS_FL_PEER_CLOSED;
	if (!acks_peer || !(peer->flags & FS_FL_FIN) || p->ack_seq != peer->snd_nxt)
		return;
	f->flags &= ~FS_FL_PEER_FIN;
	peer->flags |= FS_FL_FIN_ACKED;
	if (!(f->flags & FS_FL_FIN_ACKED))
		return;
	if (f->dir == FS_DIR_FWD)
		flow_delete_pair(&p->key, &peer_key);
	else
		flow_delete_pair(&peer_key, &p->key);
}

/* A route lookup's addresses, for a TCP packet of family (FS_AF_*) from src to dst. */
static __always_inline void fib_addrs(struct bpf_fib_lookup *fib, __u8 family, const __u32 *src,
				      const __u32 *dst)
{
	if (family == FS_AF_INET) {
		fib->family = AF_INET;
		fib->ipv4_src = src[0];
		fib->ipv4_dst = dst[0];
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
	fib->l4_protocol = IPPROTO_TCP;
}

/* Sends a packet whose destination was rewritten (host mode, or a re-created SYN) out of
 * the interface of the route to it: the route the kernel chose for the original
 * destination, if any, may be wrong. Falls back to the kernel's routing. */
static __noinline int route_to(struct __sk_buff *skb, const __u32 *src,
				    const struct fs_endpoint *to, __u32 oif, bool egress)
{
	struct bpf_fib_lookup fib = {};
	struct fs_global_stats *g;
	int rc;

	fib_addrs(&fib, to->family, src, to->addr);
	/* tot_len 0: the helper checks the skb itself, which lets GSO packets (host mode)
	 * through instead of answering FRAG_NEEDED for their super-packet length. */
	fib.tot_len = 0;
	/* An output lookup only considers routes via fib.ifindex: use the backend's. */
	fib.ifindex = oif ? oif : skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
			return TC_ACT_OK;
		/* At egress on the right device already: carry on. At ingress (a re-created
		 * SYN) always redirect: up the stack it would be a martian (host mode). */
		if (egress && fib.ifindex == skb->ifindex)
			return TC_ACT_OK;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* Hand over the next hop the lookup found: without it the helper routes the
		 * skb again from headers that an injected (re-sent) SYN may not have set. */
		struct bpf_redir_neigh nh = { .nh_family = fib.family };

		if (fib.family == AF_INET)
			nh.ipv4_nh = fib.ipv4_dst;
		else
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	g = gstats();
	if (g)
		g->fib_failures++;
	return TC_ACT_OK;
}

static __always_inline int steer_out(struct __sk_buff *skb, const struct pkt *p,
				     const struct steer_target *t, bool egress)
{
	const struct fs_endpoint *to = &t->ep;

	if (nat_rewrite(skb, p, true, to))
		return TC_ACT_OK;
	if (egress && !flow_side_is(p->key.dst, p->key.dport, to))
		return route_to(skb, p->key.src, to, t->oif, true);
	return TC_ACT_OK;
}

static __always_inline bool is_pure_syn(const struct pkt *p)
{
	return (p->tcp_flags & (TCP_FL_SYN | TCP_FL_ACK | TCP_FL_RST)) == TCP_FL_SYN;
}

static __always_inline void count_to(__u32 backend_id, const struct __sk_buff *skb)
{
	struct fs_backend_traffic *t = btraffic(backend_id);

	if (t) {
		t->pkts_to++;
		t->bytes_to += skb->len;
	}
}

/* Keeps the client's first SYN (IP and TCP headers) of a retrying service in the next slot
 * of the syn_store ring so it can be re-sent to another backend. Only plain frames and SYNs
 * without data (no TCP Fast Open). Returns the flow's syn_slot (1 + slot), 0 if not kept. */
static __always_inline __u32 syn_save(struct __sk_buff *skb, const struct pkt *p)
{
	struct fs_deadline_ctl *ctl = deadline_ctl_get();
	__u32 len = p->l3_len, slot;
	struct fs_syn *sc;

	if (p->l3_off != ETH_HLEN || p->payload_len || len > FS_SYN_MAX || len < 40 || !ctl ||
	    !syn_slots)
		return 0;
	slot = (__u32)(__sync_fetch_and_add(&ctl->syn_head, 1) % syn_slots);
	sc = bpf_map_lookup_elem(&syn_store, &slot);
	if (!sc)
		return 0;
	sc->len = len;
	sc->l4_off = p->l4_off - p->l3_off;
	sc->family = p->family;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, sc->data, len)) {
		sc->len = 0;
		return 0;
	}
	return slot + 1;
}

/* Rewrites the packet in skb (an error about fkey's SYN) into the client's SYN addressed to
 * backend 'to', checksums computed from scratch (the stored copy may carry a partial
 * checksum). A CHECKSUM_PARTIAL error (a reset made by nftables' reject, which veth passes
 * on as it is) stays one: its TCP checksum field gets the pseudo header's sum, which the
 * device completes, and the TCP header must be where its checksum starts. Returns 0; -1 if
 * the packet is untouched; -2 if it was damaged on the way. */
static __noinline int syn_rebuild(struct __sk_buff *skb, const struct fs_flow_key *fkey,
				  const struct fs_endpoint *to, __u32 isn, __u32 syn_slot)
{
	__u32 zero = 0, slot = syn_slot - 1, len, l4, ihl, *src;
	struct fs_syn *syn, *sc;
	__u8 *tcp;
	int err = 0;
	__u16 c;

	if (!syn_slot)
		return -1;
	syn = bpf_map_lookup_elem(&syn_store, &slot);
	sc = bpf_map_lookup_elem(&syn_scratch, &zero);
	if (!syn || !sc)
		return -1;
	__builtin_memcpy(sc, syn, sizeof(*sc));
	len = sc->len;
	l4 = sc->l4_off;
	if (len > FS_SYN_MAX || l4 < 20 || l4 > 60 || len < l4 + 20 || len - l4 > 60)
		return -1;
	tcp = sc->data + (l4 & 63);
	/* The slot may have been reused by a later connection since. */
	if (bpf_ntohl(*(__u32 *)(tcp + 4)) != isn || *(__u16 *)tcp != fkey->sport ||
	    sc->family != fkey->family)
		return -1;
	src = (__u32 *)(sc->data + (sc->family == FS_AF_INET ? IPV4_SRC_OFF : IPV6_SRC_OFF));
	if (src[0] != fkey->src[0] || (sc->family == FS_AF_INET6 &&
				      (src[1] != fkey->src[1] || src[2] != fkey->src[2] ||
				       src[3] != fkey->src[3])))
		return -1;
	if (sc->family == FS_AF_INET) {
		ihl = l4;
		__builtin_memcpy(sc->data + IPV4_DST_OFF, to->addr, 4);
		sc->data[IPV4_CSUM_OFF] = sc->data[IPV4_CSUM_OFF + 1] = 0;
		c = csum_ipv4_hdr(sc->data, ihl, &err);
		__builtin_memcpy(sc->data + IPV4_CSUM_OFF, &c, 2);
	} else {
		__builtin_memcpy(sc->data + IPV6_DST_OFF, to->addr, 16);
	}
	__builtin_memcpy(tcp + 2, &to->port, 2);
	tcp[TCP_CSUM_OFF] = tcp[TCP_CSUM_OFF + 1] = 0;
	if (skb_ip_summed(skb) == CHECKSUM_PARTIAL) {
		if (!skb_partial_csum_at(skb, ETH_HLEN + l4))
			return -1;
		c = csum_tcp_partial((len - l4) & 63, fkey->src, to->addr, sc->family, &err);
	} else {
		c = csum_tcp(tcp, (len - l4) & 63, fkey->src, to->addr, sc->family, &err);
	}
	__builtin_memcpy(tcp + TCP_CSUM_OFF, &c, 2);
	if (err)
		return -1;
	if (bpf_skb_change_tail(skb, ETH_HLEN + len, 0))
		return -2;
	len = sc->len; /* re-read and re-check: the verifier wants the size bounds right here */
	if (len < 40 || len > FS_SYN_MAX)
		return -2;
	/* RECOMPUTE_CSUM: a CHECKSUM_COMPLETE skb's sum follows the new bytes (the flag does
	 * nothing to other skbs). */
	if (bpf_skb_store_bytes(skb, ETH_HLEN, sc->data, len,
				BPF_F_INVALIDATE_HASH | BPF_F_RECOMPUTE_CSUM))
		return -2;
	return 0;
}

/* Zero-error failover: a reset or ICMP error answered the SYN of the unanswered flow whose
 * REV entry is rkey. If another backend is left, the error becomes the client's SYN to it,
 * sent from here; the client never sees the error. Returns a verdict, or -1 to pass the
 * error on. Called from the top frame: the stack of the handlers is gone by then. */
static __noinline int retry_in_kernel(struct __sk_buff *skb, __u32 l3_off,
				      const struct fs_flow_key *rkey)
{
	struct fs_endpoint svc_ep;
	struct steer_target t;
	struct fs_backend_stats *s;
	struct fs_global_stats *g;
	struct fs_service *svc;
	struct fs_flow_key fkey;
	struct fs_flow *r = bpf_map_lookup_elem(&flows, rkey);
	__u32 old_id, isn, syn_slot;
	__u8 tried;
	int next, rc;

	if (!r || r->dir != FS_DIR_REV || r->state != FS_ST_SYN_SENT || !(r->flags & FS_FL_RETRY) ||
	    l3_off != ETH_HLEN)
		return -1;
	svc_ep = r->nat;
	old_id = r->backend_id;
	isn = r->client_isn;
	syn_slot = r->syn_slot;
	tried = r->tried;
	svc = bpf_map_lookup_elem(&services, &svc_ep);
	if (!svc)
		return -1;
	next = next_backend(svc, tried);
	if (next < 0 || next >= FS_MAX_BACKENDS)
		return -1; /* every backend tried: the last error goes to the client */
	flow_fwd_key(&fkey, rkey, &svc_ep);
	rc = syn_rebuild(skb, &fkey, &svc->backends[next], isn, syn_slot);
	if (rc) {
		g = gstats();
		if (g)
			g->retry_failures++;
		return rc == -1 ? -1 : TC_ACT_SHOT;
	}
	t.syn_slot = syn_slot;
	t.syn_data = 0; /* only SYNs without data are kept */
	t.client_if = r->oif;
	if (flow_move(&fkey, isn, svc, next, tried, rkey, &t))
		return TC_ACT_SHOT;
	s = bstats(old_id);
	if (s) {
		s->retried++;
		evidence_counted(old_id);
	}
	count_to(t.backend_id, skb);
	return route_to(skb, fkey.src, &t.ep, t.oif, false);
}

/* A client SYN for a tuple that has a FWD entry: a retransmission, a SYN the daemon re-sends
 * after a connect timeout (retry), or a new connection reusing the tuple. Updates *to,
 * *backend_id and *oif when the flow (re)starts elsewhere. Returns 0, or -1 to drop. */
static __always_inline int handle_fwd_syn(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f,
					  struct steer_target *t, bool retry)
{
	struct fs_backend_stats *s;
	struct fs_endpoint svc_ep;
	struct fs_service *svc;
	struct fs_flow_key rkey;
	struct fs_flow *r;
	__u8 tried = f->tried;
	__u32 old_id = f->backend_id;
	int idx;

	flow_rev_key(&rkey, &p->key, &t->ep);
	r = bpf_map_lookup_elem(&flows, &rkey);
	if (r && r->state == FS_ST_ESTABLISHED && p->seq == f->client_isn && !retry)
		return 0; /* a duplicate of the SYN that was answered: same backend */
	flow_endpoint(&svc_ep, &p->key, true);
	svc = bpf_map_lookup_elem(&services, &svc_ep);
	if (r && r->state == FS_ST_SYN_SENT && p->seq == f->client_isn) {
		if (!svc)
			return 0;
		if (retry) {
			/* The daemon re-sends after a connect timeout: next untried backend. Only
			 * if the deadline passed here: a connection the client's own retransmission
			 * moved meanwhile is waiting on a backend that has had no time yet. */
			if (!(r->flags & FS_FL_TIMED_OUT))
				return -1;
			idx = next_backend(svc, tried);
			if (idx < 0)
				return -1;
			t->client_if = r->oif; /* re-sent by this node: the client is where it was */
		} else {
			/* Nobody holds state for an unanswered SYN: it may follow the current
			 * choice, but never back to a backend it already tried. */
			s = bstats(old_id);
			if (s) {
				s->syn_retrans++;
				evidence_counted(old_id);
			}
			idx = svc->active;
			if (idx == f->backend_idx || idx >= FS_MAX_BACKENDS || (tried & (1u << idx)))
				return 0;
		}
		if (flow_move(&p->key, p->seq, svc, idx, tried, &rkey, t))
			return -1;
		if (retry) {
			s = bstats(old_id);
			if (s) {
				s->retried++;
				evidence_counted(old_id);
			}
		}
		return 0;
	}
	if (retry || !svc)
		return retry ? -1 : 0;
	/* Another SYN on a connection not closed (no reset seen, not a FIN each way: a
	 * half-closed one still carries data) is no new connection yet: it goes where the
	 * connection is, changing nothing, and the backend answers it (a challenge ACK). A
	 * client that did start anew answers that with a reset, which marks the entries,
	 * and its next SYN starts afresh. So a SYN in the client's name cannot move a live
	 * connection nor pin a timeout on its backend. */
	if (r && r->state == FS_ST_ESTABLISHED && !((f->flags | r->flags) & FS_FL_RST) &&
	    !(f->flags & r->flags & FS_FL_FIN))
		return 0;
	/* Same tuple, new connection (port reuse): start afresh. The old REV entry goes
	 * first: the new one may have the very same key (same backend). */
	if (r)
		flow_delete(&rkey);
	t->syn_slot = svc->flags & FS_SVC_F_RETRY ? syn_save(skb, p) : 0;
	if (flow_steer(&p->key, p->seq, svc, svc->active, t))
		return -1;
	return 0;
}

/* A sequence number within window of a way's next one, either side (a retransmission, a
 * reset answering what the other end acknowledged, data ahead of a loss before us). A
 * blind segment farther away changes nothing: it must not move the tracked sequence (the
 * next genuine reset would be refused), mark a FIN (the entries would be swept after the
 * close linger, under a live connection) or keep the entry from the idle sweep. */
static __always_inline bool seq_near(__u32 seq, __u32 nxt, __u32 window)
{
	return seq - nxt < window || nxt - seq < window;
}

/* Moves a way's tracked next sequence on to a segment's end. A segment that starts past it
 * (data lost before this node) moves it by at most its own length and SEQ_CREEP: a genuine
 * stream catches up within a few segments, while a blind segment that lands in the window
 * cannot set it to a value its sender knows, to aim a reset at (otherwise ~260 blind
 * segments 16 MiB apart would walk it there). */
static __always_inline void seq_advance(struct fs_flow *f, __u32 end, __u32 len)
{
	__u32 lead = end - f->snd_nxt, cap = len + SEQ_CREEP;

	if ((__s32)lead > 0)
		f->snd_nxt += lead < cap ? lead : cap;
}

/* The client's ACK of a connection still flagged unanswered (FS_FL_SYN_ONLY): if it
 * acknowledges what its backend sent through here (the SYN-ACK, some data: at most
 * RST_WINDOW behind the backend's next sequence), the connection was answered and both
 * entries become an ordinary connection's. An ACK alone proves nothing: whoever sent the SYN
 * knows its own sequence numbers, a spoofer not the backend's. */
static __noinline void flow_answered(const struct pkt *p, struct fs_flow *f)
{
	struct fs_flow_key rkey;
	struct fs_flow *r;

	flow_rev_key(&rkey, &p->key, &f->nat);
	r = bpf_map_lookup_elem(&flows, &rkey);
	if (!r || r->state != FS_ST_ESTABLISHED || r->snd_nxt - p->ack_seq > RST_WINDOW)
		return;
	r->flags &= ~FS_FL_SYN_ONLY;
	f->flags &= ~FS_FL_SYN_ONLY;
}

/* A client packet of a tracked connection. */
static __noinline int handle_fwd(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f,
				      bool egress, bool retry)
{
	struct steer_target t = { .ep = f->nat, .backend_id = f->backend_id, .oif = f->oif,
				  .syn_slot = f->syn_slot, .syn_data = p->payload_len,
				  .client_if = egress ? 0 : skb->ifindex };

	if (is_pure_syn(p)) {
		if (handle_fwd_syn(skb, p, f, &t, retry))
			return TC_ACT_SHOT;
	} else {
		bool fin = p->tcp_flags & TCP_FL_FIN, rst = p->tcp_flags & TCP_FL_RST;
		bool near = seq_near(p->seq, f->snd_nxt, rst ? RST_WINDOW : SEQ_WINDOW);
		__u32 end = p->seq + p->payload_len + (fin ? 1 : 0);

		if (near) {
			f->last_ns = bpf_ktime_get_coarse_ns();
			if ((f->flags & FS_FL_SYN_ONLY) && (p->tcp_flags & TCP_FL_ACK))
				flow_answered(p, f);
		}
		if (rst) {
			/* Not deleted: a spoofed reset must not tear the flow out from under a
			 * live connection. One near the client's next sequence (RFC 5961 spirit;
			 * either side of it: a reset answering the backend carries what the
			 * backend acknowledged, which may lag what passed here) flags the
			 * entries, swept after the close linger; a blind one changes nothing
			 * here (the backend judges it as well). */
			if (near)
				flow_reset_seen(p, f);
		} else if (near) {
			seq_advance(f, end, end - p->seq);
			if (fin)
				f->flags |= FS_FL_FIN;
		}
		if (near)
			flow_close(p, f); /* last use of f */
	}
	count_to(t.backend_id, skb);
	return steer_out(skb, p, &t, egress);
}

/* An acknowledgement of the client's SYN, while connecting: of the SYN alone or of the
 * data it carried too (Fast Open), up to the SYN's end kept in snd_nxt. */
static __always_inline bool acks_syn(const struct fs_flow *f, __u32 ack)
{
	return ack - (f->client_isn + 1) <= f->snd_nxt - (f->client_isn + 1);
}

/* A backend's packet to a client of a tracked connection. */
/* Evidence against a backend (a reset, an ICMP error) does not count if it came in where the
 * client's SYN came in (the REV entry's oif) while the route to the backend leaves through
 * another interface the programs are attached to: a client could otherwise send resets in
 * its backend's name for connections whose sequence numbers it knows (its own) and push
 * the service to fail over for everyone. Sides cannot be told apart, and everything counts,
 * on a one-armed node, with the route unknown, or leaving through a device the programs do
 * not see as such (a VLAN or a bridge over the one they are on); replies coming back
 * another way than the route out count too. Looked up only for resets and ICMP errors. */
static __always_inline bool from_backend_side(const struct __sk_buff *skb, const struct fs_flow *f,
					      bool egress)
{
	struct fs_service *svc;
	__u32 idx = f->backend_idx, route;

	if (egress || !f->oif || skb->ifindex != f->oif || idx >= FS_MAX_BACKENDS)
		return true;
	svc = bpf_map_lookup_elem(&services, &f->nat);
	if (!svc)
		return true;
	route = svc->backend_ifindex[idx];
	return !route || route == f->oif || !(svc->attached_mask & (1u << idx));
}

/* Is a reply too big for the link to its client, client_if (the interface the client's SYN
 * came in on), and not to be fragmented on the way? The length check against that device is
 * cheap; a route lookup confirms that the reply leaves there (the kernel must agree, or it
 * would forward the packet as it is). */
static __noinline bool reply_too_big(struct __sk_buff *skb, const struct pkt *p, __u32 client_if)
{
	struct bpf_fib_lookup fib = {};
	__u32 len = p->l3_len;
	__u64 flags;
	long rc;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (len <= (p->family == FS_AF_INET ? REPLY_MTU_MIN4 : REPLY_MTU_MIN6) ||
	    p->l3_off > NAT_MAX_OFF)
		return false;
	if (p->family == FS_AF_INET) {
		struct iphdr *ip = data + p->l3_off;

		if ((void *)(ip + 1) > end || !(ip->frag_off & bpf_htons(IP_DF)))
			return false; /* fragmented by the kernel, after the rewrite */
		fib.tos = ip->tos;
	} else {
		__be32 *first = data + p->l3_off;

		if ((void *)(first + 1) > end)
			return false;
		fib.flowinfo = *first & bpf_htonl(0x0fffffff); /* class and label: ECMP hashes */
	}
	/* L3 lengths against the MTU, as the kernel's forwarding compares them (a frame's
	 * length would count a VLAN tag); a GSO packet's segments (the helper takes no
	 * length then). */
	flags = skb->gso_size ? BPF_MTU_CHK_SEGS : 0;
	if (flags)
		len = 0;
	rc = bpf_check_mtu(skb, client_if, &len, 0, flags);
	if (rc != BPF_MTU_CHK_RET_FRAG_NEEDED && rc != BPF_MTU_CHK_RET_SEGS_TOOBIG)
		return false;
	/* The flow as the kernel's input route sees it (ports, class, mark: multipath hashes
	 * and policy rules); it must pick the same way, or it would forward the packet as it
	 * is. A kernel without the mark flag refuses: the reply is rewritten as usual. */
	fib_addrs(&fib, p->family, p->key.src, p->key.dst);
	fib.sport = p->key.sport;
	fib.dport = p->key.dport;
	fib.mark = skb->mark;
	fib.ifindex = skb->ifindex;
	/* Found, the route's device is checked against the packet too (FRAG_NEEDED). */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH | BPF_FIB_LOOKUP_MARK);
	return (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) &&
	       fib.ifindex == client_if;
}

/* A REV entry still marked unanswered (FS_FL_SYN_ONLY) whose FWD entry is not: the client's
 * ACK came under a data path that cleared the FWD entry's mark alone (before both carried
 * it). Looked up only while the mark is there. */
static __noinline void rev_answered(const struct pkt *p, struct fs_flow *r)
{
	struct fs_flow_key fkey;
	struct fs_flow *f;

	flow_fwd_key(&fkey, &p->key, &r->nat);
	f = bpf_map_lookup_elem(&flows, &fkey);
	if (f && !(f->flags & FS_FL_SYN_ONLY))
		r->flags &= ~FS_FL_SYN_ONLY;
}

static __noinline int handle_rev(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f, bool egress)
{
	struct fs_backend_traffic *t = btraffic(f->backend_id);
	struct fs_endpoint svc_ep = f->nat;
	__u32 client_if = egress ? 0 : f->oif;
	struct fs_backend_stats *s;
	struct fs_global_stats *g;
	struct fs_flow_key fkey;
	__u8 fl = p->tcp_flags;

	if (f->state == FS_ST_MOVED)
		return TC_ACT_SHOT; /* late answer of a backend the flow left: not for the client */
	if (t) {
		t->pkts_from++;
		t->bytes_from += skb->len;
	}
	/* A segment of an open connection keeps it from the idle sweep only if near, a reset
	 * only if acceptable (below). */
	if (f->state == FS_ST_SYN_SENT)
		f->last_ns = bpf_ktime_get_coarse_ns();
	if (fl & TCP_FL_RST) {
		bool ok, connecting = f->state == FS_ST_SYN_SENT;

		if (connecting)
			/* RFC 793: in SYN-SENT a reset is acceptable if it acks our SYN. */
			ok = (fl & TCP_FL_ACK) && acks_syn(f, p->ack_seq);
		else
			/* RFC 5961: only a reset near the next expected sequence counts, either
			 * side of it: a backend that lost its state resets with what the client
			 * acknowledged, which may lag what passed here. */
			ok = seq_near(p->seq, f->snd_nxt, RST_WINDOW);
		ok = ok && from_backend_side(skb, f, egress);
		s = ok ? bstats(f->backend_id) : NULL;
		if (ok && connecting) {
			/* One failure per attempt: not again after its connect timeout or ICMP
			 * error (a backend that blackholed the SYN, then came back refusing the
			 * client's retransmission). Nothing can come after it: the entries go,
			 * or move with a retry (one that fails leaves the deadline to act). */
			if (s && !(f->flags & FS_FL_TIMED_OUT)) {
				s->resets++;
				s->resets_connect++;
				evidence_counted(f->backend_id);
			}
			if (f->flags & FS_FL_RETRY)
				return VERDICT_TRY_RETRY;
			flow_fwd_key(&fkey, &p->key, &svc_ep);
			flow_delete_pair(&fkey, &p->key);
		} else if (ok) {
			/* Counted once; the entries linger and are swept (a reset in the window
			 * but off the exact sequence only earns a challenge ACK from the client,
			 * so the connection may well live on). */
			if (s && !(f->flags & FS_FL_RST)) {
				s->resets++;
				evidence_counted(f->backend_id);
			}
			f->last_ns = bpf_ktime_get_coarse_ns();
			flow_reset_seen(p, f);
		} else {
			g = gstats();
			if (g)
				g->rst_rejected++;
		}
	} else if (f->state == FS_ST_SYN_SENT) {
		if ((fl & (TCP_FL_SYN | TCP_FL_ACK)) == (TCP_FL_SYN | TCP_FL_ACK) &&
		    acks_syn(f, p->ack_seq)) {
			__u64 us = (bpf_ktime_get_ns() - f->syn_ns) / 1000;

			f->state = FS_ST_ESTABLISHED;
			f->snd_nxt = p->seq + 1 + p->payload_len; /* past its data, if it carries any */
			/* Evidence for the backend only from its side, as against it: a client
			 * must not keep a dead backend looking alive with SYN-ACKs it forged. The
			 * connection is answered all the same (a reply that came back by the
			 * client's side is no failure either). */
			s = from_backend_side(skb, f, egress) ? bstats(f->backend_id) : NULL;
			if (s) {
				s->established++;
				evidence_counted(f->backend_id);
			}
			if (s && t) {
				t->latency_sum_us += us;
				t->latency_hist[log2_u64(us) & (FS_LAT_BUCKETS - 1)]++;
			}
		}
	} else if (seq_near(p->seq, f->snd_nxt, SEQ_WINDOW)) {
		__u32 end = p->seq + p->payload_len + (fl & TCP_FL_FIN ? 1 : 0);

		f->last_ns = bpf_ktime_get_coarse_ns();
		if (f->flags & FS_FL_SYN_ONLY)
			rev_answered(p, f);
		seq_advance(f, end, end - p->seq);
		if (fl & TCP_FL_FIN)
			f->flags |= FS_FL_FIN;
		flow_close(p, f); /* last use of f */
	}
	/* Left as the backend sent it, this node's "fragmentation needed" / "packet too big"
	 * goes to the backend itself, by the route to it, quoting the packet as sent: path MTU
	 * discovery toward the client needs nothing of the service address's next hop, the
	 * primary, which may be down (icmp_to_backend would). */
	if (client_if && reply_too_big(skb, p, client_if))
		return TC_ACT_OK;
	nat_rewrite(skb, p, false, &svc_ep);
	return TC_ACT_OK;
}

/* A reset that refused a connection and could not be retried: the client gets it. */
static __noinline int rev_pass_reset(struct __sk_buff *skb, struct pkt *p)
{
	struct fs_flow *f = bpf_map_lookup_elem(&flows, &p->key);
	struct fs_endpoint svc_ep;
	struct fs_flow_key fkey;

	if (!f)
		return TC_ACT_OK;
	svc_ep = f->nat;
	flow_fwd_key(&fkey, &p->key, &svc_ep);
	flow_delete_pair(&fkey, &p->key);
	nat_rewrite(skb, p, false, &svc_ep);
	return TC_ACT_OK;
}

/* An ICMP(v6) error quoting a tracked connection as it was sent to its backend goes to the
 * client quoting it as the client sent it (to the service), or the client could not match
 * it: path MTU discovery would fail for good, and a refused connect would wait for the
 * client's own retries. The client judges its sequence number itself. A connecting flow
 * of a retrying service whose retry could not be made here (no SYN kept for it: the
 * daemon could not re-send it either) but that still has a backend to try keeps it from
 * the client, whose own retransmission follows the service's choice. */
static __noinline int icmp_to_client(struct __sk_buff *skb, struct pkt *p, bool connect_failed)
{
	struct fs_flow *r = bpf_map_lookup_elem(&flows, &p->key);
	struct fs_endpoint svc_ep;
	struct fs_service *svc;

	if (!r || r->dir != FS_DIR_REV)
		return TC_ACT_OK;
	if (r->state == FS_ST_MOVED)
		return TC_ACT_SHOT; /* about a backend the connection left: not for the client */
	svc_ep = r->nat;
	if (connect_failed && r->state == FS_ST_SYN_SENT && (r->flags & FS_FL_RETRY)) {
		/* The error was counted: its connect deadline is not a second failure (nor can
		 * the daemon re-send what could not be re-sent here). */
		r->flags |= FS_FL_TIMED_OUT;
		svc = bpf_map_lookup_elem(&services, &svc_ep);
		if (svc && next_backend(svc, r->tried) >= 0)
			return TC_ACT_OK;
	}
	if (!flow_side_is(p->key.src, p->key.sport, &svc_ep)) /* else quoted as it was sent */
		nat_icmp_quote(skb, p, false, p->key.src, p->key.sport, &svc_ep);
	return TC_ACT_OK;
}

/* An ICMP(v6) error about a packet sent to a client as the service (a router on the client's
 * side, or this node forwarding a reply, found it too big or undeliverable) is addressed to
 * the service; it belongs to the backend that sent the packet, quoting it as that backend
 * sent it. Else path MTU discovery toward the client fails for good on a backup: the
 * primary, or nobody, would get the error. At ingress the stack routes it after the
 * rewrite; this node's own errors are already routed (egress), to the service address. */
static __noinline int icmp_to_backend(struct __sk_buff *skb, struct pkt *p, struct fs_flow *f,
				      bool egress)
{
	struct fs_endpoint be = f->nat;
	__u32 src[4] = {};
	__u32 oif = f->oif;

	/* p->key is the FWD key (client -> service); the quote was sent the other way. */
	if (flow_side_is(p->key.dst, p->key.dport, &be))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, p->l3_off + (p->family == FS_AF_INET ? IPV4_SRC_OFF :
						       IPV6_SRC_OFF),
			       src, p->family == FS_AF_INET ? 4 : 16))
		return TC_ACT_OK;
	if (nat_icmp_quote(skb, p, true, p->key.dst, p->key.dport, &be))
		return TC_ACT_OK;
	if (!egress)
		return TC_ACT_OK;
	/* Redirected, it passes an egress program again: handled once (fs_tc_egress). */
	skb->mark = FS_PROBE_MARK;
	return route_to(skb, src, &be, oif, true);
}

/* ICMP unreachable quoting a connecting flow (as sent to the backend) counts against it,
 * but only if it quotes the client's SYN sequence exactly: blind ICMP must not count. For a
 * retrying service the error becomes the SYN to the next backend. Every error quoting a
 * tracked flow then goes to its client (icmp_to_client), or about a reply to its backend
 * (icmp_to_backend). */
static __noinline int handle_icmp(struct __sk_buff *skb, struct pkt *p, struct cursor *c, bool egress)
{
	struct fs_backend_stats *s;
	struct fs_global_stats *g;
	struct fs_flow *r;
	__u32 seq;
	int kind;

	/* p->key is reused for the quoted flow, as the REV entry would see it. */
	kind = parse_icmp_quote(c, (void *)(long)skb->data, p, &p->key, &seq);
	if (kind < 0)
		return TC_ACT_OK;
	flow_key_swap(&p->key);
	r = bpf_map_lookup_elem(&flows, &p->key);
	if (r && r->dir == FS_DIR_FWD)
		return icmp_to_backend(skb, p, r, egress);
	if (kind == ICMP_KIND_UNREACH && r && r->dir == FS_DIR_REV && r->state == FS_ST_SYN_SENT &&
	    seq == r->client_isn && from_backend_side(skb, r, egress)) {
		/* One failure per attempt: after its connect timeout (a router gives up on a
		 * neighbour after seconds) the error is no second one. */
		s = r->flags & FS_FL_TIMED_OUT ? NULL : bstats(r->backend_id);
		if (s) {
			s->icmp_errors++;
			evidence_counted(r->backend_id);
		}
		/* A retry that cannot be made here leaves the connection to its deadline,
		 * which has the daemon re-send it. */
		if (r->flags & FS_FL_RETRY)
			return VERDICT_TRY_RETRY;
		/* One failure per attempt: its connect deadline is not a second one. */
		r->flags |= FS_FL_TIMED_OUT;
	} else if (kind == ICMP_KIND_UNREACH) {
		g = gstats();
		if (g)
			g->icmp_unmatched++;
	}
	return icmp_to_client(skb, p, false);
}

static __always_inline int handle(struct __sk_buff *skb, bool egress, bool retry)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct fs_global_stats *g;
	struct fs_endpoint svc_ep;
	struct steer_target t;
	struct fs_service *svc;
	struct cursor c;
	struct pkt p = {};
	struct fs_flow *f;
	int kind, verdict;

	kind = parse_packet(skb, data, data_end, &p, &c);
	if ((kind < 0 || kind == 1) && data_end - data < skb->len && data_end - data < 256) {
		/* Headers (an ICMP error's quote too) may sit outside the linear area; pull
		 * them in and try again. */
		if (bpf_skb_pull_data(skb, skb->len < 256 ? skb->len : 256))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&p, 0, sizeof(p));
		kind = parse_packet(skb, data, data_end, &p, &c);
	}
	if (kind < 0)
		return TC_ACT_OK;
	if (kind == 1) {
		verdict = handle_icmp(skb, &p, &c, egress);
		if (verdict != VERDICT_TRY_RETRY)
			return verdict;
		verdict = retry_in_kernel(skb, p.l3_off, &p.key);
		return verdict >= 0 ? verdict : icmp_to_client(skb, &p, true);
	}

	f = bpf_map_lookup_elem(&flows, &p.key);
	if (f) {
		if (f->dir == FS_DIR_FWD)
			return handle_fwd(skb, &p, f, egress, retry);
		if (f->dir != FS_DIR_REV)
			return TC_ACT_OK;
		verdict = handle_rev(skb, &p, f, egress);
		if (verdict != VERDICT_TRY_RETRY)
			return verdict;
		verdict = retry_in_kernel(skb, p.l3_off, &p.key);
		return verdict >= 0 ? verdict : rev_pass_reset(skb, &p);
	}
	if (retry)
		return TC_ACT_SHOT; /* the flow is gone (answered, closed): nothing to re-send */

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
	t.syn_slot = svc->flags & FS_SVC_F_RETRY ? syn_save(skb, &p) : 0;
	t.syn_data = p.payload_len;
	t.client_if = egress ? 0 : skb->ifindex;
	if (flow_steer(&p.key, p.seq, svc, svc->active, &t))
		return TC_ACT_OK;
	count_to(t.backend_id, skb);
	return steer_out(skb, &p, &t, egress);
}

/* A packet passed on (rewritten or not) goes on to what follows on the hook, other tools'
 * tcx programs and clsact filters, as it would without failsteer: TC_ACT_OK would end the
 * chain there (under tcx, every clsact filter of the device). */
static __always_inline int pass_on(int verdict)
{
	return verdict == TC_ACT_OK ? TC_ACT_UNSPEC : verdict;
}

/* Gateway mode (and replies in host mode): before routing, on every configured interface. */
SEC("tc")
int fs_tc_ingress(struct __sk_buff *skb)
{
	return pass_on(handle(skb, false, false));
}

/* Host mode: connections of local processes (forwarded packets were handled at ingress,
 * probes are never steered), and SYNs the daemon re-sends after a connect timeout. */
SEC("tc")
int fs_tc_egress(struct __sk_buff *skb)
{
	bool retry = skb->mark == FS_RETRY_MARK;

	if (skb->ingress_ifindex || skb->mark == FS_PROBE_MARK)
		return TC_ACT_UNSPEC;
	/* Handled once: after a redirect or a neighbour resolution the packet passes an
	 * egress hook again, as the SYN to the new backend it now is. */
	if (retry)
		skb->mark = 0;
	return pass_on(handle(skb, true, retry));
}

/* Run once by the loader (bpf_prog_test_run, process context) to start the sweeping timer,
 * or to hand a running one (a restarted daemon) over to this program's callback. */
SEC("tc")
int fs_deadline_setup(struct __sk_buff *skb)
{
	struct fs_deadline_ctl *ctl = deadline_ctl_get();
	long err;

	if (!ctl)
		return 1;
	err = bpf_timer_init(&ctl->timer, &deadline_ctl, CLOCK_MONOTONIC);
	if (err && err != -16 /* EBUSY: already running */)
		return 2;
	if (bpf_timer_set_callback(&ctl->timer, deadline_timer_cb))
		return 3;
	if (bpf_timer_start(&ctl->timer, FS_DEADLINE_PERIOD_NS, 0))
		return 4;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
