/* SPDX-License-Identifier: GPL-2.0 */
/* failsteer: every map key/value, index and constant shared by BPF and userspace. */
#ifndef FAILSTEER_H
#define FAILSTEER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#include <linux/bpf.h>
#endif

#define FS_MAX_BACKENDS 8 /* backends per service, primary first */
#define FS_LAT_BUCKETS 32 /* log2 buckets of SYN->SYN-ACK latency in microseconds */
#define FS_SERVICE_NAME_MAX 48 /* service names, NUL included */
#define FS_SYN_MAX 128    /* bytes kept of a client SYN: IPv4 60 + TCP 60, IPv6 40 + TCP 60 */

/* Address families as stored in maps (not AF_* so the layout is self-contained). */
#define FS_AF_INET 4
#define FS_AF_INET6 6

/* An IP address and TCP port, both in network byte order. IPv4 lives in addr[0]. */
struct fs_endpoint {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
};
_Static_assert(sizeof(struct fs_endpoint) == 20, "fs_endpoint layout");

/* Service flags. */
#define FS_SVC_F_RETRY (1u << 0) /* re-send unanswered SYNs to the next backend (zero-error failover) */

/* services map value: key is the fs_endpoint clients connect to. Userspace writes it. */
struct fs_service {
	__u32 svc_id;             /* index into per-service state in userspace */
	__u8 n_backends;          /* 1..FS_MAX_BACKENDS */
	__u8 active;              /* index into backends[] that new flows get */
	__u16 flags;              /* FS_SVC_F_* */
	__u32 connect_timeout_ms; /* SYN without SYN-ACK for this long counts as a timeout */
	__u8 down_mask;           /* bit i: the daemon believes backend i down (P(down) >= 0.5) */
	__u8 attached_mask;       /* bit i: the route to backend i leaves through an interface
				   * the programs are attached to */
	__u8 pad[2];
	__u32 backend_ids[FS_MAX_BACKENDS]; /* index into backend_stats */
	struct fs_endpoint backends[FS_MAX_BACKENDS];
	/* Interface the route to each backend leaves through (0 = unknown), kept by the daemon:
	 * host mode redirects there, as the FIB helper only searches routes via the skb's own. */
	__u32 backend_ifindex[FS_MAX_BACKENDS];
};
_Static_assert(sizeof(struct fs_service) == 240, "fs_service layout");

/* A TCP flow as seen on the wire, one direction. */
struct fs_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 pad[3];
};
_Static_assert(sizeof(struct fs_flow_key) == 40, "fs_flow_key layout");

/* Direction of a flow entry. Each steered connection has two entries:
 * FWD keyed (client -> service), REV keyed (backend -> client). */
#define FS_DIR_FWD 1
#define FS_DIR_REV 2

/* Connection state, kept in the REV entry (the one that sees the backend's answers). */
#define FS_ST_SYN_SENT 1    /* SYN steered, no SYN-ACK yet */
#define FS_ST_ESTABLISHED 2 /* SYN-ACK seen */
#define FS_ST_MOVED 3       /* unanswered flow moved to another backend: drop this one's answers */

/* Flow flags. */
#define FS_FL_TIMED_OUT (1u << 0) /* the attempt's failure was counted (connect timeout,
				   * ICMP error or refusing reset): no other counts */
#define FS_FL_FIN (1u << 1)       /* a FIN went this way (snd_nxt is just past it) */
#define FS_FL_RST (1u << 2)       /* closed by a reset: swept after the close linger */
#define FS_FL_RETRY (1u << 3)     /* the service re-sends unanswered SYNs to the next backend */
#define FS_FL_PEER_FIN (1u << 4)  /* the other way sent a FIN that this way has not acked yet */
#define FS_FL_FIN_ACKED (1u << 5) /* the FIN that went this way was acknowledged */
#define FS_FL_PEER_CLOSED (1u << 6) /* a FIN or a reset went the other way: swept as closing */
#define FS_FL_SYN_ONLY (1u << 7)  /* the client has not acknowledged its backend's SYN-ACK
				   * yet (never answered, or spoofed): swept as unanswered */
/* A connection whose two FINs were both acknowledged is deleted by the data path at once;
 * one that closed otherwise (reset, a FIN one way only) is swept after the close linger. */

/* flows map value (LRU). Written by the BPF programs; swept by userspace. */
struct fs_flow {
	__u64 syn_ns;            /* when the SYN was steered to the current backend */
	__u64 last_ns;           /* last in-window packet, coarse clock, for the idle sweep */
	struct fs_endpoint nat;  /* FWD: backend to send to; REV: service to answer as */
	__u32 backend_id;        /* index into backend_stats */
	__u32 client_isn;        /* sequence number of the client's SYN */
	__u32 snd_nxt;           /* next sequence number of this way's sender (FWD: from the
				  * client's SYN and its data; REV: from the SYN-ACK, until then
				  * the end of the client's SYN it must acknowledge), moved on by
				  * data and FIN segments near it; resets and FINs are judged
				  * against it */
	__u32 syn_slot;          /* 1 + slot of the client's SYN in syn_store, 0 = none kept */
	__u8 dir;                /* FS_DIR_* */
	__u8 state;              /* FS_ST_* (REV) */
	__u8 backend_idx;        /* index in the service's backends[] */
	__u8 flags;              /* FS_FL_* */
	__u8 tried;              /* bitmask of backend indexes this flow was sent to */
	__u8 pad[3];
	__u32 oif;               /* FWD: interface of the route to the backend (host mode sends
				  * there), 0 = unknown; REV: the client's side, where its SYN came
				  * in (0: this node's own), see from_backend_side */
};
_Static_assert(sizeof(struct fs_flow) == 64, "fs_flow layout");

/* Connect deadlines. Per-flow BPF timers cannot be relied on (their allocation fails under
 * load in softirq context), so each new or moved flow writes its deadline into a ring and
 * one BPF timer works through the ring, not the flow table. Deadlines of services with the
 * same connect timeout enter the ring in the order they fall due: the timer walks them in
 * order from the tail, frees those of connections answered meanwhile (so that answered
 * connections do not wake it), and fires again when the next connection still waiting is
 * due (at most FS_DEADLINE_MIN_NS late). A deadline that overtakes an earlier, longer one
 * (mixed timeouts) is found by a slice sweep that sees every live slot (between the
 * walk's tail and the head: the others are free) within FS_DEADLINE_PASS_NS. */
#define FS_DEADLINE_PERIOD_NS (5ull * 1000 * 1000) /* longest timer interval, slice sweep period */
#define FS_DEADLINE_PASS_NS (50ull * 1000 * 1000)  /* a slice sweep pass over the live slots */
#define FS_DEADLINE_MIN_NS (100ull * 1000)         /* shortest timer interval */
#define FS_DEADLINE_WALK_MAX 8192                   /* deadlines handled in order per timer run */

/* deadlines map value (array, a ring): the REV key of a connecting flow and when its
 * connect timeout expires. Written by the programs, cleared by the timer when due or when
 * the connection was answered. */
struct fs_deadline {
	struct fs_flow_key rkey;
	__u32 client_isn; /* which connection on these ports: a reused tuple is another one */
	__u32 pad;
	__u64 due_ns;     /* 0: free slot */
};
_Static_assert(sizeof(struct fs_deadline) == 56, "fs_deadline layout");

/* deadline_ctl map value (array, one slot): the deadline timer and the cursors of the
 * deadlines and syn_store rings. */
struct fs_deadline_ctl {
	struct bpf_timer timer;
	__u64 head;     /* next slot to write (mod ring size), advanced atomically */
	__u64 tail;     /* oldest slot the in-order walk has not passed yet */
	__u64 cursor;   /* next position the slice sweep looks at, in [tail, head) */
	__u64 pending;  /* occupied slots; nothing to do while zero */
	__u64 sweeps;   /* timer runs, for inspection */
	__u64 slice_ns; /* when the last slice sweep ran */
	__u64 syn_head; /* next slot of the syn_store ring, advanced atomically */
};
_Static_assert(sizeof(struct fs_deadline_ctl) == 72, "fs_deadline_ctl layout");

/* syn_store map value (array, a ring: each new connection of a retrying service takes the
 * next slot, and its flow entries remember which): the client's SYN as received, IP and TCP
 * headers with options, so it can be re-sent elsewhere while the flow is unanswered. A ring
 * costs no hash insert nor delete per connection; a slot is reused only after ring-size
 * newer connections (a quarter of the flow table), and a reader checks the SYN's sequence
 * number and port before using it. */
struct fs_syn {
	__u16 len;      /* bytes in data: IP header + TCP header */
	__u16 l4_off;   /* TCP header offset in data */
	__u8 family;    /* FS_AF_* */
	__u8 pad[3];
	__u8 data[FS_SYN_MAX];
};
_Static_assert(sizeof(struct fs_syn) == 8 + FS_SYN_MAX, "fs_syn layout");

/* retry_events ring buffer records: a connect deadline passed for an unanswered flow of a
 * retrying service. The daemon re-sends the stored SYN to the next backend, or resets the
 * client when every backend has been tried. */
struct fs_retry_event {
	struct fs_flow_key fwd; /* client -> service */
	__u32 client_isn;
	__u32 syn_slot;         /* fs_flow.syn_slot: where the client's SYN is kept */
	__u8 backend_idx;       /* the backend that timed out: stale if the flow moved since */
	__u8 pad[7];
};
_Static_assert(sizeof(struct fs_retry_event) == 56, "fs_retry_event layout");

/* backend_stats map value (per-CPU array indexed by backend id): the fault evidence the
 * detector reads every tick, kept small so that reading thousands of backends is cheap.
 * Written by BPF. */
struct fs_backend_stats {
	__u64 attempts;        /* new connections steered to it (first SYN) */
	__u64 syn_retrans;     /* SYN retransmissions of flows on it */
	__u64 established;     /* SYN-ACK seen */
	__u64 resets;          /* acceptable RSTs from it on tracked flows */
	__u64 resets_connect;  /* ... of which answered a SYN (connection refused) */
	__u64 timeouts;        /* no SYN-ACK within the service's connect timeout */
	__u64 icmp_errors;     /* ICMP/ICMPv6 unreachable quoting a connecting flow */
	__u64 retried;         /* flows moved away from it to the next backend */
};
_Static_assert(sizeof(struct fs_backend_stats) == 8 * 8, "fs_backend_stats layout");

/* backend_pending map value (array indexed by backend id, mmapable): set to 1 by BPF after
 * it counted evidence (any backend_stats counter) for the backend, cleared by the daemon
 * before it reads them, so that a tick reads only the backends something happened to. */
struct fs_backend_pending {
	__u64 pending;
};
_Static_assert(sizeof(struct fs_backend_pending) == 8, "fs_backend_pending layout");

/* backend_traffic map value (per-CPU array indexed by backend id): volume and connect
 * latency, read only for metrics and status. Written by BPF. */
struct fs_backend_traffic {
	__u64 pkts_to;         /* packets steered to it */
	__u64 bytes_to;
	__u64 pkts_from;       /* packets from it, reverse-rewritten */
	__u64 bytes_from;
	__u64 latency_sum_us;  /* sum of SYN->SYN-ACK latencies */
	__u64 latency_hist[FS_LAT_BUCKETS]; /* bucket i: latency_us in [2^i, 2^(i+1)), bucket 0 also < 1 */
};
_Static_assert(sizeof(struct fs_backend_traffic) == 5 * 8 + FS_LAT_BUCKETS * 8, "fs_backend_traffic layout");

/* global_stats map value (per-CPU array, one slot). Written by BPF. */
struct fs_global_stats {
	__u64 flows_created;   /* flow entries inserted (two per connection) */
	__u64 flows_deleted;   /* flow entries deleted by the data path (closes, refusals, reuse) */
	__u64 flow_misses;     /* non-SYN packets to a service with no flow entry */
	__u64 fib_failures;    /* host mode: no route to a rewritten destination */
	__u64 icmp_unmatched;  /* ICMP errors quoting TCP that matched no connecting flow */
	__u64 rst_rejected;    /* RSTs from a backend outside the acceptable window */
	__u64 retry_failures;  /* zero-error retries that could not be sent */
	__u64 deadline_overflows; /* connect deadlines lost to a full deadline ring */
};
_Static_assert(sizeof(struct fs_global_stats) == 64, "fs_global_stats layout");

/* Userspace-owned state, kept in pinned maps so that a restarted daemon adopts it, the CLI
 * reads and steers it without talking to the daemon, and bpftool shows it. Probabilities are
 * parts per billion (bpftool prints no floating point). */
#define FS_PPB 1000000000u

/* service_ctl map value (array by svc_id): the operator's override, written by the CLI. */
#define FS_MODE_AUTO 0
#define FS_MODE_FORCED 1
struct fs_service_ctl {
	__u32 mode;         /* FS_MODE_* */
	__u32 forced_idx;   /* backend index while forced */
	__u64 changed_ms;   /* CLOCK_REALTIME of the last change, for status */
};
_Static_assert(sizeof(struct fs_service_ctl) == 16, "fs_service_ctl layout");

/* service_state map value (array by svc_id): the daemon's decision state. */
struct fs_service_state {
	__u32 failovers;        /* automatic or forced moves away from the primary */
	__u32 failbacks;        /* moves back to the primary */
	__u32 backoff_level;    /* failback hold is failback_hold_ms << backoff_level
				 * (hold 0: 1 s << (backoff_level - 1) from level 1) */
	__u32 all_down;         /* 1 while every backend looked down (node network suspected) */
	__u64 up_since_ms;      /* CLOCK_MONOTONIC ms since the primary looked up, 0 if not */
	__u64 last_failback_ms; /* CLOCK_MONOTONIC ms of the last failback, or of the last
				 * lowering of backoff_level since (its clock) */
	__u64 last_switch_ms;   /* CLOCK_REALTIME ms of the last change of active backend */
	char name[FS_SERVICE_NAME_MAX]; /* the config's service name, for the CLI and bpftool */
};
_Static_assert(sizeof(struct fs_service_state) == 88, "fs_service_state layout");

/* daemon_state map value (array, one slot): the daemon's heartbeat, written at its start,
 * every tick and at a clean stop, so
 * that a restarted daemon knows how long nobody was watching and the CLI can tell a
 * daemon that stopped or hangs from one that decides. */
#define FS_DAEMON_F_STOPPED 1u /* it stopped on a signal (not killed, not hung) */
struct fs_daemon_state {
	__u32 pid;
	__u32 tick_ms;            /* its configured period */
	__u32 flags;              /* FS_DAEMON_F_* */
	__u32 pad;
	__u64 started_ms;         /* CLOCK_REALTIME ms (Unix epoch) it started */
	__u64 last_tick_mono_ms;  /* CLOCK_MONOTONIC ms of its last tick, start or clean stop */
	__u64 ticks;
};
_Static_assert(sizeof(struct fs_daemon_state) == 40, "fs_daemon_state layout");

/* Per-second rates the daemon keeps in backend_model, x1000. */
enum fs_rate {
	FS_RATE_ATTEMPTS,
	FS_RATE_ESTABLISHED,
	FS_RATE_RESETS,
	FS_RATE_TIMEOUTS,
	FS_RATE_ICMP,
	FS_RATE_PROBE_OK,
	FS_RATE_PROBE_FAIL,
	FS_RATE_RETRIED,
	FS_RATE_NR
};

/* backend_model map value (array by backend id): the Markov model of one backend. */
struct fs_backend_model {
	__u32 p_down_ppb;         /* filtered posterior P(down) */
	__u32 fail_up_ppb;        /* learned failure rate of an attempt while up */
	__u32 trans_ppb[2][2];    /* P_ij = P(S_t+1 = j | S_t = i), 0 = up, 1 = down */
	__u64 counts_milli[2][2]; /* forgotten expected transition counts (x1000) */
	__u64 up_attempts_milli;  /* forgotten attempts/failures while up, for fail_up */
	__u64 up_failures_milli;
	__u64 mtbf_ms;            /* mean time between failures, from P */
	__u64 mttr_ms;            /* mean time to repair, from P */
	__u32 availability_ppb;   /* steady-state P(up) */
	__u32 evidence_ticks;     /* ticks that carried evidence */
	__u32 rate_milli[FS_RATE_NR]; /* enum fs_rate, per second x1000 */
	__u64 good_since_ms;      /* CLOCK_MONOTONIC ms since P(up) >= failback threshold, 0 if not */
	__u32 good_threshold_ppb; /* ... the failback threshold good_since_ms was measured against */
	__u32 step_ms;            /* mean time between evidence steps, which P is per (0: unknown) */
	struct fs_backend_stats prev; /* counters the next delta is taken from */
};
_Static_assert(sizeof(struct fs_backend_model) ==
	       8 + 16 + 32 + 16 + 16 + 8 + 4 * FS_RATE_NR + 16 + sizeof(struct fs_backend_stats),
	       "fs_backend_model layout");

/* Map and program names, shared so the loader, CLI and docs agree. */
#define FS_MAP_SERVICES "services"
#define FS_MAP_FLOWS "flows"
#define FS_MAP_BACKEND_STATS "backend_stats"
#define FS_MAP_BACKEND_TRAFFIC "backend_traffic"
#define FS_MAP_BACKEND_PENDING "backend_pending"
#define FS_MAP_GLOBAL_STATS "global_stats"
#define FS_MAP_SERVICE_CTL "service_ctl"
#define FS_MAP_SERVICE_STATE "service_state"
#define FS_MAP_BACKEND_MODEL "backend_model"
#define FS_MAP_SYN_STORE "syn_store"
#define FS_MAP_RETRY_EVENTS "retry_events"
#define FS_MAP_DEADLINES "deadlines"
#define FS_MAP_DEADLINE_CTL "deadline_ctl"
#define FS_MAP_DAEMON_STATE "daemon_state"

/* Probe sockets carry this mark so the egress program never steers them; so do the
 * daemon's resets to clients and ICMP errors the egress program already redirected. */
#define FS_PROBE_MARK 0x46530001u
/* A SYN the daemon re-sends after a connect timeout: move the flow to the next backend. */
#define FS_RETRY_MARK 0x46530002u

/* TC attachment: fixed handle and priority so a restarted daemon replaces its own filter. */
#define FS_TC_HANDLE 0xf5
#define FS_TC_PRIORITY 0xf5

/* Defaults for load-time sizes. */
#define FS_DEFAULT_FLOW_TABLE_SIZE 262144
#define FS_DEFAULT_MAX_SERVICES 16384
#define FS_DEFAULT_MAX_BACKENDS 4096

#endif /* FAILSTEER_H */
