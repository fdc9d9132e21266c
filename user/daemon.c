/* The failsteer daemon; see daemon.h. */
#include "daemon.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <math.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "detector.h"
#include "flows.h"
#include "loader.h"
#include "log.h"
#include "maparray.h"
#include "metrics.h"
#include "probes.h"
#include "retry.h"
#include "routes.h"
#include "stats.h"

#define SWEEP_INTERVAL_S 10.0
/* A walk of the flow table is spread over the ticks of this long (a full 262,144-entry
 * table takes 80 ms to read: in one tick it would hold up the detector), at least
 * SWEEP_MIN_BATCHES batches (FLOW_SWEEP_BATCH entries) a tick. Short, because evictions
 * are counted over a whole walk, a lower bound looser by the connections that come and go
 * meanwhile. */
#define SWEEP_WALK_S 1.0
#define SWEEP_MIN_BATCHES 8
/* ... and at most this share of a tick: a table too large for that (millions of entries)
 * takes longer to walk rather than hold up the detector. */
#define SWEEP_TICK_SHARE 0.1
#define PROBE_SUSPICION DET_DOUBT_P_DOWN /* P(active down) above which backups get probed too */
/* Probes per round to a backend believed down: enough to see a recovery within a second or
 * so; half as many while the service is backing off (it has been flapping: no hurry). */
#define PROBE_BURST 8
/* A backend in doubt (det_in_doubt()) while the service is healthy gets its round of probes
 * every PROBE_IDLE_SPREAD probe intervals until trusted again: its down-mask bit (zero-error
 * retries skip it) and the next failover's choice must not rest on what was true long ago.
 * Each round that nothing answered doubles the spacing, up to PROBE_IDLE_SPREAD <<
 * PROBE_IDLE_MAX_SHIFT intervals: a backend gone for good costs little. */
#define PROBE_IDLE_SPREAD 4
#define PROBE_IDLE_MAX_SHIFT 3
#define RATE_WINDOW_S 1.0
#define RATE_FLOOR 1e-4 /* per second: a smoothed rate below this is zero */
/* Fault counters are read for the backends the data path flagged (backend_pending), one
 * system call each, unless more than one in PER_ID_READ_RATIO is flagged: then all in
 * batches. All of them every FULL_READ_TICKS too, which bounds how late a count published
 * in the instant its flag was being cleared is seen. */
#define PER_ID_READ_RATIO 8
#define FULL_READ_TICKS 10
#define ROUTE_REFRESH_S 5.0

struct backend_rt {
	__u32 id;
	struct fs_endpoint ep;
	double probe_ok, probe_fail; /* results collected since the last tick */
	double next_probe_s;
	double rate[FS_RATE_NR];     /* per second, smoothed over RATE_WINDOW_S */
	bool settled;                /* rates decayed to zero and model saved: idle is free */
	bool answered;               /* a probe answered since the last round was sent */
	bool idle_round;             /* the last round was an idle re-check (see PROBE_IDLE_SPREAD) */
	int idle_silent;             /* idle rounds in a row that nothing answered (capped) */
	struct fs_backend_stats prev;
};

struct service_rt {
	struct cfg_service cfg;
	__u32 svc_id;
	struct fs_service val;       /* as written to the services map */
	struct backend_rt be[FS_MAX_BACKENDS];
	struct det_service det;
	struct det_settings set;
	struct fs_service_state st;
	__u64 ctl_changed_ms;        /* the operator's command last seen in service_ctl */
	bool failback_capped;        /* said that failback cannot come yet (det_failback_capped) */
	bool probe_due;              /* ticked: schedule_all_probes looks at its backends */
};

struct daemon {
	struct cfg cfg;
	struct loader ld;
	struct model_params mp;
	struct service_rt *svcs;
	int n_svcs;
	__u32 n_svc_ids, n_backend_ids; /* highest id in use + 1 */
	struct service_rt **owner;      /* backend id -> service, for probe results */
	int *owner_idx;
	struct probes *probes;
	int probe_cursor;               /* the service probes are scheduled from first */
	struct metrics *metrics;
	struct retrier *retrier;
	struct ring_buffer *retry_rb;
	struct fs_backend_stats *stats;
	__u32 *pending_ids;             /* backends flagged in backend_pending this tick */
	bool full_read_due;             /* read every backend's counters next tick */
	struct fs_backend_pending *pending; /* backend_pending, mapped (max_backends entries) */
	size_t pending_len;
	const struct fs_service_ctl *ctl_map; /* service_ctl, mapped read-only (max_services entries) */
	size_t ctl_map_len;
	struct fs_backend_model *models;
	struct fs_service_state *states;
	struct fs_backend_model *models_saved; /* what the maps hold, once saved_valid */
	struct fs_service_state *states_saved;
	bool saved_valid;
	double next_sweep_s;
	double next_routes_s;
	struct flow_sweep sweep;        /* the walk of the flow table under way */
	__u64 sweep_created;            /* global counters when that walk began */
	__u64 sweep_deleted_before;
	__s64 evictions_base;           /* unaccounted flow-table losses before we started */
	bool have_evictions_base;
	__u64 evictions;
	__u64 ticks;
	__u64 flows_live;
	double last_tick_cost_s;
	struct fs_daemon_state hb;      /* our heartbeat, as written to daemon_state */
	double away_s;                  /* start: how long no daemon ticked (< 0 unknown); 0 after */
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static __u64 realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

static __u32 to_ppb(double p)
{
	return (__u32)llround((p < 0 ? 0 : p > 1 ? 1 : p) * FS_PPB);
}

/* Model state <-> pinned map value. */
static void model_save(const struct service_rt *s, int b, const struct model_params *mp,
		       struct fs_backend_model *out)
{
	const struct model *m = &s->det.models[b];
	double P[2][2];

	memset(out, 0, sizeof(*out));
	model_transitions(m, mp, P);
	out->p_down_ppb = to_ppb(m->p_down);
	out->fail_up_ppb = to_ppb(model_fail_up(m, mp));
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			out->trans_ppb[i][j] = to_ppb(P[i][j]);
			out->counts_milli[i][j] = (__u64)llround(m->counts[i][j] * 1000);
		}
	out->up_attempts_milli = (__u64)llround(m->up_attempts * 1000);
	out->up_failures_milli = (__u64)llround(m->up_failures * 1000);
	out->mtbf_ms = (__u64)llround(fmin(model_mtbf_s(m, mp), 1e12) * 1000);
	out->mttr_ms = (__u64)llround(fmin(model_mttr_s(m, mp), 1e12) * 1000);
	out->availability_ppb = to_ppb(model_availability(m, mp));
	out->evidence_ticks = (__u32)m->steps;
	for (int r = 0; r < FS_RATE_NR; r++)
		out->rate_milli[r] = (__u32)llround(fmin(s->be[b].rate[r], 4e6) * 1000);
	out->good_since_ms = s->det.good_since_s[b] < 0 ? 0 : (__u64)llround(s->det.good_since_s[b] * 1000);
	out->good_threshold_ppb = to_ppb(s->set.failback_threshold);
	out->step_ms = (__u32)llround(fmin(m->step_s * 1000, 4e9));
	out->prev = s->be[b].prev;
}

/* A restarted daemon (away_s > 0: no daemon ticked for that long; < 0: unknown) takes as
 * evidence only what it sees itself: the counters of the time away (cur), read in one
 * tick, would look like a burst, and a fault that came and went meanwhile would fail the
 * service over when it starts. A failback hold under way carries on, but the time away
 * does not count toward it. A reload (away_s 0) carries everything on. */
static void model_restore(struct service_rt *s, int b, const struct fs_backend_model *in,
			  double away_s, const struct fs_backend_stats *cur)
{
	det_model_from_record(in, &s->det.models[b]);
	for (int r = 0; r < FS_RATE_NR; r++)
		s->be[b].rate[r] = in->rate_milli[r] / 1000.0;
	/* CLOCK_MONOTONIC is the machine's: a failback hold under way carries on, unless the
	 * threshold it was measured against is now stricter (then the hold starts again). */
	bool bar_kept = in->good_threshold_ppb >= to_ppb(s->set.failback_threshold);

	s->det.good_since_s[b] = in->good_since_ms && bar_kept && away_s >= 0
					 ? in->good_since_ms / 1000.0 + away_s : -1;
	s->be[b].prev = away_s ? *cur : in->prev;
}

static bool same_ep(const struct fs_endpoint *a, const struct fs_endpoint *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* Backends the model believes down, as the data path's retries read them. */
static __u8 down_mask_of(const struct service_rt *s)
{
	__u8 mask = 0;

	for (int b = 0; b < s->cfg.n_backends; b++)
		if (s->det.models[b].p_down >= DET_ACCEPTABLE_P_DOWN)
			mask |= (__u8)(1u << b);
	return mask;
}

/* The interface of the route to ep, 0 when there is none, or was unless the kernel gave
 * no answer; rb may be NULL. */
static __u32 oif_hint(struct route_batch *rb, const struct fs_endpoint *ep, __u32 was)
{
	int oif = rb ? route_batch_oif(rb, ep) : route_oif(ep);

	if (!route_answer(oif))
		return was;
	return oif > 0 ? (__u32)oif : 0;
}

static void free_runtime(struct daemon *d)
{
	free(d->svcs);
	free(d->owner);
	free(d->owner_idx);
	free(d->stats);
	free(d->pending_ids);
	free(d->models);
	free(d->states);
	free(d->models_saved);
	free(d->states_saved);
	d->svcs = NULL;
	d->owner = NULL;
	d->owner_idx = NULL;
	d->stats = NULL;
	d->pending_ids = NULL;
	d->models = NULL;
	d->states = NULL;
	d->models_saved = NULL;
	d->states_saved = NULL;
	d->saved_valid = false;
	d->n_svcs = 0;
}

/* A service forced to a backend stays forced to that site (address) wherever the new
 * config lists it; forcing a backend that is gone returns the service to auto. */
static void forced_follow_site(struct fs_maps *m, const struct service_rt *s,
			       const struct fs_service *was, struct fs_service_ctl *ctl)
{
	__u32 old_idx = ctl->forced_idx;
	int now = -1;

	if (ctl->mode != FS_MODE_FORCED)
		return;
	if (old_idx < was->n_backends && old_idx < FS_MAX_BACKENDS)
		for (int b = 0; b < s->cfg.n_backends && now < 0; b++)
			if (same_ep(&s->cfg.backends[b], &was->backends[old_idx]))
				now = b;
	if (now == (int)old_idx)
		return;
	if (now < 0) {
		ctl->mode = FS_MODE_AUTO;
		log_warn("service %s: the forced backend is no longer configured: back to auto",
			 s->cfg.name);
	} else {
		ctl->forced_idx = (__u32)now;
		log_info("service %s: still forced to the same backend, now index %d", s->cfg.name, now);
	}
	if (bpf_map_update_elem(m->service_ctl, &s->svc_id, ctl, BPF_ANY))
		log_warn("service %s: writing forced mode: %s", s->cfg.name, strerror(errno));
}

/* Has backend id counted anything since the maps were created? */
static bool backend_id_used(const struct fs_maps *m, __u32 id)
{
	static const struct fs_backend_stats no_stats;
	static const struct fs_backend_traffic no_traffic;
	struct fs_backend_stats st;
	struct fs_backend_traffic tr;

	return stats_read_backend(m->backend_stats, id, &st) || memcmp(&st, &no_stats, sizeof(st)) ||
	       stats_read_traffic(m->backend_traffic, id, &tr) || memcmp(&tr, &no_traffic, sizeof(tr));
}

/* An id for a backend new to the maps: the lowest free one that never counted anything,
 * looking a little way past the lowest free one, which may have just been given up by a
 * removed backend whose connections live on and still count against it; else the lowest
 * free one. Its counters, flag and model start from zero either way: its metrics must not
 * carry another backend's history. *next is the lowest id that may be free. */
static __u32 fresh_backend_id(const struct fs_maps *m, const bool *used, __u32 max, __u32 *next)
{
	enum { LOOK = 64 };
	static const struct fs_backend_model no_model;
	static const struct fs_backend_pending no_flag;
	__u32 id = UINT32_MAX, looked = 0;

	while (used[*next])
		(*next)++;
	for (__u32 i = *next; i < max && looked < LOOK; i++) {
		if (used[i])
			continue;
		looked++;
		if (!backend_id_used(m, i)) {
			id = i;
			break;
		}
	}
	if (id == UINT32_MAX)
		id = *next;
	if (stats_clear(m->backend_stats, id, sizeof(struct fs_backend_stats)) ||
	    stats_clear(m->backend_traffic, id, sizeof(struct fs_backend_traffic)) ||
	    bpf_map_update_elem(m->backend_model, &id, &no_model, BPF_ANY) ||
	    bpf_map_update_elem(m->backend_pending, &id, &no_flag, BPF_ANY))
		log_warn("backend id %u: clearing a removed backend's counters: %s", id, strerror(errno));
	return id;
}

/* Which backends' routes leave through an interface the programs are attached to: only
 * there can the data path tell a backend's side from its clients' (from_backend_side). */
static __u8 attached_mask_of(const struct service_rt *s, const __u32 *attached, int n)
{
	__u8 mask = 0;

	for (int b = 0; b < s->cfg.n_backends; b++)
		for (int i = 0; i < n && s->val.backend_ifindex[b]; i++)
			if (attached[i] == s->val.backend_ifindex[b])
				mask |= (__u8)(1u << b);
	return mask;
}

/* The config's interfaces by index (0 for one that is gone), looked up once per pass. */
static void attached_ifindexes(const struct cfg *cfg, __u32 *out)
{
	for (int i = 0; i < cfg->n_interfaces; i++)
		out[i] = if_nametoindex(cfg->interfaces[i]);
}

/* A reload keeps what only the running daemon knows of a service and of its backends that
 * stay (same address; same id and address): when each was last heard from, probe results
 * not counted yet and the probes' pacing, the last failback, and, on the same active site,
 * an outage under way (its blind wait, its all-down warning, its failover's time). A
 * restart has none of it. */
static void carry_runtime(struct service_rt *s, const struct service_rt *was, int n_was)
{
	const struct service_rt *o = NULL;

	for (int i = 0; i < n_was && !o; i++)
		if (was[i].svc_id == s->svc_id && same_ep(&was[i].cfg.address, &s->cfg.address))
			o = &was[i];
	if (!o)
		return;
	for (int b = 0; b < s->cfg.n_backends; b++) {
		struct backend_rt *be = &s->be[b];

		for (int ob = 0; ob < o->cfg.n_backends; ob++) {
			const struct backend_rt *obe = &o->be[ob];

			if (obe->id != be->id || !same_ep(&obe->ep, &be->ep))
				continue;
			be->probe_ok = obe->probe_ok;
			be->probe_fail = obe->probe_fail;
			be->next_probe_s = obe->next_probe_s;
			be->answered = obe->answered;
			be->idle_round = obe->idle_round;
			be->idle_silent = obe->idle_silent;
			s->det.last_ok_s[b] = o->det.last_ok_s[ob];
			s->det.models[b].stepped_at_s = o->det.models[ob].stepped_at_s;
			s->det.last_fail_s[b] = o->det.last_fail_s[ob];
		}
	}
	/* The flap window runs from the last failback itself, which the pinned state does not
	 * keep once the back-off level was lowered (it keeps the back-off clock). */
	s->det.last_failback_s = o->det.last_failback_s;
	s->failback_capped = o->failback_capped; /* said already */
	if (same_ep(&s->be[s->det.active].ep, &o->be[o->det.active].ep)) {
		s->det.down_since_s = o->det.down_since_s;
		s->det.all_down = o->det.all_down;
		s->det.failover_s = o->det.failover_s;
	}
}

/* Builds the runtime from cfg and whatever the pinned maps hold (a previous daemon's
 * services, ids, active backends, models): the one path for start, restart and reload. */
static int sync_from_maps(struct daemon *d, char *err, size_t errlen)
{
	const struct cfg *cfg = &d->cfg;
	struct fs_maps *m = &d->ld.maps;
	struct fs_endpoint key, next;
	struct fs_service old;
	bool *svc_used = calloc(cfg->max_services, 1), *be_used = calloc(cfg->max_backends, 1);
	bool *active_gone = calloc((size_t)cfg->n_services + 1, 1); /* its active site was removed */
	struct service_rt *svcs = calloc((size_t)cfg->n_services + 1, sizeof(*svcs));
	int rc = 0, nkeys = 0;
	struct { struct fs_endpoint key; struct fs_service val; } *existing = NULL;
	struct route_batch *rb = route_batch_new(); /* NULL: one lookup each, slower */
	struct service_rt *was_rt = NULL;
	__u32 attached[CFG_MAX_IFACES];
	int n_was = 0;

	attached_ifindexes(cfg, attached);

	if (!svc_used || !be_used || !svcs || !active_gone) {
		rc = -ENOMEM;
		goto out;
	}
	/* What the maps hold now. */
	for (int e = bpf_map_get_next_key(m->services, NULL, &key); !e;
	     e = bpf_map_get_next_key(m->services, &key, &next), key = next) {
		void *grown;

		if (bpf_map_lookup_elem(m->services, &key, &old))
			continue;
		grown = realloc(existing, (size_t)(nkeys + 1) * sizeof(*existing));
		if (!grown) {
			rc = -ENOMEM;
			goto out;
		}
		existing = grown;
		existing[nkeys].key = key;
		existing[nkeys].val = old;
		nkeys++;
	}

	/* Keep the ids (and so the counters, models and state) of what is still configured. */
	for (int i = 0; i < cfg->n_services; i++) {
		struct service_rt *s = &svcs[i];
		const struct cfg_service *c = &cfg->services[i];

		s->cfg = *c;
		s->svc_id = UINT32_MAX;
		for (int b = 0; b < FS_MAX_BACKENDS; b++)
			s->be[b].id = UINT32_MAX;
		for (int k = 0; k < nkeys; k++) {
			const struct fs_service *o = &existing[k].val;

			if (!same_ep(&existing[k].key, &c->address) || o->svc_id >= cfg->max_services)
				continue;
			s->svc_id = o->svc_id;
			svc_used[o->svc_id] = true;
			for (int b = 0; b < c->n_backends; b++)
				for (int ob = 0; ob < o->n_backends && ob < FS_MAX_BACKENDS; ob++)
					if (same_ep(&c->backends[b], &o->backends[ob]) &&
					    o->backend_ids[ob] < cfg->max_backends && !be_used[o->backend_ids[ob]]) {
						s->be[b].id = o->backend_ids[ob];
						be_used[o->backend_ids[ob]] = true;
					}
			/* The active backend stays the same site, wherever it now is in the list. */
			s->val.active = 0;
			active_gone[i] = true;
			if (o->active < o->n_backends)
				for (int b = 0; b < c->n_backends; b++)
					if (same_ep(&c->backends[b], &o->backends[o->active])) {
						s->val.active = (__u8)b;
						active_gone[i] = false;
					}
			break;
		}
	}
	/* New services and backends get the lowest free ids. */
	__u32 next_svc = 0, next_be = 0;
	d->n_svc_ids = d->n_backend_ids = 0;
	for (int i = 0; i < cfg->n_services; i++) {
		struct service_rt *s = &svcs[i];

		if (s->svc_id == UINT32_MAX) {
			while (svc_used[next_svc])
				next_svc++;
			s->svc_id = next_svc;
			svc_used[next_svc] = true;
		}
		if (s->svc_id + 1 > d->n_svc_ids)
			d->n_svc_ids = s->svc_id + 1;
		for (int b = 0; b < s->cfg.n_backends; b++) {
			if (s->be[b].id == UINT32_MAX) {
				s->be[b].id = fresh_backend_id(m, be_used, cfg->max_backends, &next_be);
				be_used[s->be[b].id] = true;
			}
			if (s->be[b].id + 1 > d->n_backend_ids)
				d->n_backend_ids = s->be[b].id + 1;
		}
	}

	was_rt = d->svcs; /* the running daemon's, on a reload */
	n_was = d->n_svcs;
	d->svcs = NULL;
	free_runtime(d);
	d->svcs = svcs;
	d->n_svcs = cfg->n_services;
	svcs = NULL;
	d->owner = calloc(d->n_backend_ids + 1, sizeof(*d->owner));
	d->owner_idx = calloc(d->n_backend_ids + 1, sizeof(*d->owner_idx));
	d->stats = calloc(d->n_backend_ids + 1, sizeof(*d->stats));
	d->pending_ids = calloc(d->n_backend_ids + 1, sizeof(*d->pending_ids));
	d->full_read_due = true;
	d->models = calloc(d->n_backend_ids + 1, sizeof(*d->models));
	d->states = calloc(d->n_svc_ids + 1, sizeof(*d->states));
	d->models_saved = calloc(d->n_backend_ids + 1, sizeof(*d->models_saved));
	d->states_saved = calloc(d->n_svc_ids + 1, sizeof(*d->states_saved));
	d->saved_valid = false;
	if (!d->owner || !d->owner_idx || !d->stats || !d->pending_ids || !d->models || !d->states ||
	    !d->models_saved || !d->states_saved) {
		rc = -ENOMEM;
		goto out;
	}
	rc = maparray_read(m->backend_model, d->n_backend_ids, sizeof(*d->models), d->models);
	if (!rc)
		rc = maparray_read(m->service_state, d->n_svc_ids, sizeof(*d->states), d->states);
	if (!rc)
		rc = maparray_read_percpu_sum(m->backend_stats, d->n_backend_ids, sizeof(*d->stats), d->stats);
	if (rc) {
		snprintf(err, errlen, "reading pinned state: %s", strerror(-rc));
		goto out;
	}

	/* Services no longer configured stop taking new flows (existing flows carry on);
	 * removed first, so that a reload never needs more room than max_services. */
	for (int k = 0; k < nkeys; k++) {
		bool keep = false;

		for (int i = 0; i < d->n_svcs; i++)
			keep |= same_ep(&existing[k].key, &d->svcs[i].cfg.address);
		if (!keep) {
			bpf_map_delete_elem(m->services, &existing[k].key);
			log_info("service with svc_id %u removed from the data path", existing[k].val.svc_id);
		}
	}

	for (int i = 0; i < d->n_svcs; i++) {
		struct service_rt *s = &d->svcs[i];
		const struct fs_service *was = NULL; /* what the maps held for it */
		struct fs_service_ctl ctl;
		bool reused_svc;

		for (int k = 0; k < nkeys; k++)
			if (same_ep(&existing[k].key, &s->cfg.address) && existing[k].val.svc_id == s->svc_id)
				was = &existing[k].val;
		reused_svc = was != NULL;
		s->set.failover_threshold = s->cfg.failover_threshold;
		s->set.failback_threshold = s->cfg.failback_threshold;
		s->set.failback_hold_s = s->cfg.failback_hold_ms / 1000.0;
		/* A probe goes out within an interval of the suspicion, and its answer or its
		 * timeout is read on the tick after. */
		s->set.blind_s = s->cfg.probe_interval_ms
			? (s->cfg.probe_interval_ms + s->cfg.connect_timeout_ms + d->cfg.tick_ms) / 1000.0 : 0;
		det_service_init(&s->det, s->cfg.n_backends, s->val.active);
		s->val.svc_id = s->svc_id;
		s->val.n_backends = (__u8)s->cfg.n_backends;
		s->val.connect_timeout_ms = s->cfg.connect_timeout_ms;
		s->val.flags = s->cfg.zero_error_retry ? FS_SVC_F_RETRY : 0;
		for (int b = 0; b < s->cfg.n_backends; b++) {
			struct backend_rt *be = &s->be[b];
			bool reused = false;

			be->ep = s->cfg.backends[b];
			s->val.backends[b] = be->ep;
			s->val.backend_ifindex[b] = oif_hint(rb, &be->ep, 0);
			s->val.backend_ids[b] = be->id;
			d->owner[be->id] = s;
			d->owner_idx[be->id] = b;
			for (int k = 0; k < nkeys && reused_svc; k++)
				for (int ob = 0; ob < existing[k].val.n_backends && ob < FS_MAX_BACKENDS; ob++)
					if (existing[k].val.backend_ids[ob] == be->id &&
					    same_ep(&existing[k].val.backends[ob], &be->ep))
						reused = true;
			if (reused && (d->models[be->id].evidence_ticks || d->models[be->id].p_down_ppb ||
				       d->models[be->id].good_since_ms)) {
				model_restore(s, b, &d->models[be->id], d->away_s, &d->stats[be->id]);
			} else {
				/* Fresh id: counters may hold a removed backend's history. */
				be->prev = d->stats[be->id];
				memset(be->rate, 0, sizeof(be->rate));
			}
		}
		/* Its active site removed: the first backend the models believe up, as a
		 * failover would choose, not the primary blindly (a dead one would take new
		 * connections until the detector failed the service over again). */
		if (active_gone[i]) {
			int b = 0;

			while (b < s->cfg.n_backends && s->det.models[b].p_down >= DET_ACCEPTABLE_P_DOWN)
				b++;
			if (b == s->cfg.n_backends)
				b = 0; /* all believed down: the primary, as for a new service */
			s->val.active = (__u8)b;
			s->det.active = b;
			log_info("service %s: its active backend was removed: now on backend %d, the first "
				 "more likely up than down", s->cfg.name, b);
		}
		s->val.down_mask = down_mask_of(s);
		s->val.attached_mask = attached_mask_of(s, attached, cfg->n_interfaces);
		if (reused_svc) {
			s->st = d->states[s->svc_id];
			s->det.backoff_level = (int)(s->st.backoff_level <= DET_MAX_BACKOFF ? s->st.backoff_level : 0);
			s->det.failovers = s->st.failovers;
			s->det.failbacks = s->st.failbacks;
			/* CLOCK_MONOTONIC is the machine's: a restarted daemon keeps the flap
			 * history (and, from the models, failback holds under way). */
			/* Only the back-off clock is kept: the flap window runs from it too
			 * (a failover soon after a lowering then counts as a flap: cautious). */
			s->det.last_failback_s = s->st.last_failback_ms ? s->st.last_failback_ms / 1000.0 : -1;
			s->det.backoff_clock_s = s->det.last_failback_s;
			ctl = d->ctl_map[s->svc_id];
			forced_follow_site(m, s, was, &ctl);
			s->ctl_changed_ms = ctl.changed_ms;
			/* The override as it stands, not from the next tick: an 'auto' between
			 * this rebuild and that tick is a change, to be logged as one. */
			s->det.mode = ctl.mode == FS_MODE_FORCED ? FS_MODE_FORCED : FS_MODE_AUTO;
			s->det.forced_idx = (int)ctl.forced_idx;
		} else {
			memset(&s->st, 0, sizeof(s->st));
			memset(&ctl, 0, sizeof(ctl));
			bpf_map_update_elem(m->service_ctl, &s->svc_id, &ctl, BPF_ANY);
		}
		carry_runtime(s, was_rt, n_was);
		snprintf(s->st.name, sizeof(s->st.name), "%s", s->cfg.name);
		/* State first: the CLI finds services by the name in it. */
		if (bpf_map_update_elem(m->service_state, &s->svc_id, &s->st, BPF_ANY) ||
		    bpf_map_update_elem(m->services, &s->cfg.address, &s->val, BPF_ANY)) {
			rc = -errno;
			snprintf(err, errlen, "writing service %s: %s", s->cfg.name, strerror(errno));
			goto out;
		}
		log_info("service %s: %s, svc_id %u, active backend %d of %d%s", s->cfg.name,
			 reused_svc ? "adopted" : "new", s->svc_id, s->val.active, s->cfg.n_backends,
			 reused_svc ? " (kept)" : "");
	}
out:
	route_batch_free(rb);
	free(was_rt);
	free(existing);
	free(active_gone);
	free(svc_used);
	free(be_used);
	free(svcs);
	return rc;
}

static void probe_done(void *ctx, __u32 tag, const struct fs_endpoint *ep, bool ok)
{
	struct daemon *d = ctx;
	struct service_rt *s;

	/* A probe of a backend removed by a reload, maybe with its id given to another. */
	if (tag >= d->n_backend_ids || !(s = d->owner[tag]) || !same_ep(ep, &s->be[d->owner_idx[tag]].ep))
		return;
	if (ok) {
		s->be[d->owner_idx[tag]].probe_ok++;
		s->be[d->owner_idx[tag]].answered = true;
	} else
		s->be[d->owner_idx[tag]].probe_fail++;
}

/* A service at rest has an idle re-check due (one that probes). */
static bool idle_probe_due(const struct daemon *d, const struct service_rt *s, double now)
{
	if (!s->cfg.probe_interval_ms)
		return false;
	for (int b = 0; b < s->cfg.n_backends; b++)
		if (b != s->det.active && now >= s->be[b].next_probe_s && det_in_doubt(&s->det.models[b], &d->mp))
			return true;
	return false;
}

/* Probes only where passive evidence is missing: the backends a failover would move to
 * or a failback would return to, and backends in doubt. A healthy service whose backends
 * are all trusted costs no probe at all. */
static int schedule_probes(struct daemon *d, struct service_rt *s, double now)
{
	double interval = s->cfg.probe_interval_ms / 1000.0;
	bool suspicious = s->det.active != 0 ||
			  s->det.models[s->det.active].p_down > PROBE_SUSPICION;

	if (!s->cfg.probe_interval_ms)
		return 0;
	for (int b = 0; b < s->cfg.n_backends; b++) {
		struct backend_rt *be = &s->be[b];
		int burst = s->det.models[b].p_down <= 0.5 ? 1 : s->det.backoff_level ? PROBE_BURST / 2 : PROBE_BURST;
		double spacing = 1;

		if (b == s->det.active)
			continue;
		/* Suspicion cuts an idle re-check's spacing short. */
		if (suspicious && be->idle_round && be->next_probe_s > now + interval)
			be->next_probe_s = now;
		if (now < be->next_probe_s)
			continue;
		if (probes_room(d->probes) < burst)
			return -EBUSY; /* this round waits for a tick with room, unchanged */
		if (!suspicious) {
			if (!det_in_doubt(&s->det.models[b], &d->mp))
				continue; /* healthy and trusted: no probe traffic */
			if (be->idle_round && !be->answered)
				be->idle_silent += be->idle_silent < PROBE_IDLE_MAX_SHIFT;
			else
				be->idle_silent = 0;
			spacing = PROBE_IDLE_SPREAD << be->idle_silent;
		}
		be->idle_round = !suspicious;
		be->answered = false;
		be->next_probe_s = now + interval * spacing;
		for (int i = 0; i < burst; i++)
			probes_start(d->probes, &be->ep, s->cfg.connect_timeout_ms, be->id, now, probe_done, d);
	}
	return 0;
}

/* Probe slots are bounded (a site of many services down at once can fill them): the
 * service that found none goes first on the next tick, so none waits behind the others
 * for good. */
static void schedule_all_probes(struct daemon *d, double now)
{
	int n = d->n_svcs, stop = -1;

	for (int k = 0; k < n; k++) {
		int i = (d->probe_cursor + k) % n;
		struct service_rt *s = &d->svcs[i];

		if (!s->probe_due)
			continue;
		if (stop < 0 && schedule_probes(d, s, now) == -EBUSY)
			stop = i;
		if (stop < 0)
			s->probe_due = false;
	}
	if (stop >= 0)
		d->probe_cursor = stop;
}

/* The data path's copy of a running service (s->val), whole: one entry, one writer's view. */
static void write_service(struct daemon *d, struct service_rt *s, const char *what)
{
	if (bpf_map_update_elem(d->ld.maps.services, &s->cfg.address, &s->val, BPF_EXIST))
		log_warn("service %s: writing %s: %s", s->cfg.name, what, strerror(errno));
}

/* Host mode redirects to the interface of the route to each backend: keep it current. */
static void refresh_routes(struct daemon *d)
{
	struct route_batch *rb = route_batch_new();
	__u32 attached[CFG_MAX_IFACES];

	attached_ifindexes(&d->cfg, attached);

	for (int i = 0; i < d->n_svcs; i++) {
		struct service_rt *s = &d->svcs[i];
		bool changed = false;

		for (int b = 0; b < s->cfg.n_backends; b++) {
			__u32 v = oif_hint(rb, &s->be[b].ep, s->val.backend_ifindex[b]);

			if (v != s->val.backend_ifindex[b]) {
				s->val.backend_ifindex[b] = v;
				changed = true;
			}
		}
		if (changed) {
			s->val.attached_mask = attached_mask_of(s, attached, d->cfg.n_interfaces);
			write_service(d, s, "routes");
		}
	}
	route_batch_free(rb);
}

/* Returns true when every rate has decayed to zero. */
static bool update_rates(struct backend_rt *be, const struct fs_backend_stats *cur, double dt)
{
	const double delta[FS_RATE_NR] = {
		[FS_RATE_ATTEMPTS] = stats_grew(cur->attempts, be->prev.attempts),
		[FS_RATE_ESTABLISHED] = stats_grew(cur->established, be->prev.established),
		[FS_RATE_RESETS] = stats_grew(cur->resets, be->prev.resets),
		[FS_RATE_TIMEOUTS] = stats_grew(cur->timeouts, be->prev.timeouts),
		[FS_RATE_ICMP] = stats_grew(cur->icmp_errors, be->prev.icmp_errors),
		[FS_RATE_PROBE_OK] = be->probe_ok,
		[FS_RATE_PROBE_FAIL] = be->probe_fail,
		[FS_RATE_RETRIED] = stats_grew(cur->retried, be->prev.retried),
	};
	double a = dt >= RATE_WINDOW_S ? 1 : dt / RATE_WINDOW_S;

	bool zero = true;

	for (int r = 0; r < FS_RATE_NR; r++) {
		be->rate[r] += a * (delta[r] / dt - be->rate[r]);
		/* Snapped, so that an idle backend reaches a fixed point tick() can skip. */
		if (be->rate[r] < RATE_FLOOR)
			be->rate[r] = 0;
		zero &= be->rate[r] == 0;
	}
	return zero;
}

static void apply_decision(struct daemon *d, struct service_rt *s, enum det_event ev,
			   const char *why, int before)
{
	if (ev == DET_ALL_DOWN) {
		log_warn("service %s: %s", s->cfg.name, why);
		return;
	}
	log_info("service %s: %s", s->cfg.name, why);
	if (s->det.active == before)
		return;
	s->val.active = (__u8)s->det.active;
	write_service(d, s, "active backend");
	s->st.last_switch_ms = realtime_ms();
}

/* The data path's zero-error retries skip backends the model believes down. */
static void update_down_mask(struct daemon *d, struct service_rt *s)
{
	__u8 mask = down_mask_of(s);

	if (mask == s->val.down_mask)
		return;
	s->val.down_mask = mask;
	write_service(d, s, "down mask");
}

/* A retrying flow's connect deadline passed: re-send its SYN to the first backend it has
 * not tried that the model does not believe down, or, with none left, fail the client. */
static int on_retry_event(void *ctx, void *data, size_t len)
{
	struct daemon *d = ctx;
	const struct fs_retry_event *ev = data;
	struct fs_endpoint svc_ep = { 0 };
	struct service_rt *s = NULL;
	struct fs_flow fwd;
	int rc, next = -1;

	if (len < sizeof(*ev) || !retrier_still_connecting(d->retrier, ev, &fwd))
		return 0;
	memcpy(svc_ep.addr, ev->fwd.dst, 16);
	svc_ep.port = ev->fwd.dport;
	svc_ep.family = ev->fwd.family;
	for (int i = 0; i < d->n_svcs && !s; i++)
		if (same_ep(&d->svcs[i].cfg.address, &svc_ep))
			s = &d->svcs[i];
	for (int b = 0; s && b < s->cfg.n_backends && next < 0; b++)
		if (!(fwd.tried & (1u << b)) && !(s->val.down_mask & (1u << b)))
			next = b;
	if (next >= 0) {
		/* No route known to the backend: the first interface's egress program tries
		 * (resolved now: a reload may have changed the interfaces). */
		int oif = (int)s->val.backend_ifindex[next];

		rc = retrier_resend(d->retrier, ev, oif ? oif : (int)if_nametoindex(d->cfg.interfaces[0]));
	} else {
		rc = retrier_reset_client(d->retrier, ev);
	}
	if (rc && rc != -ENOENT)
		log_warn("zero-error retry (%s): %s", next >= 0 ? "re-send" : "client reset", strerror(-rc));
	return 0;
}

/* Writes models and service states back to their maps, so that a restarted daemon, the
 * CLI and the metrics see them: all of them after a (re)load, then only what changed (an
 * idle service's model settles and costs nothing). */
static void persist_models(struct daemon *d)
{
	struct fs_maps *m = &d->ld.maps;
	int rc;

	if (!d->saved_valid) {
		rc = maparray_write(m->backend_model, d->n_backend_ids, sizeof(*d->models), d->models);
		if (!rc)
			rc = maparray_write(m->service_state, d->n_svc_ids, sizeof(*d->states), d->states);
		if (!rc) {
			memcpy(d->models_saved, d->models, d->n_backend_ids * sizeof(*d->models));
			memcpy(d->states_saved, d->states, d->n_svc_ids * sizeof(*d->states));
			d->saved_valid = true;
		}
	} else {
		rc = maparray_write_changed(m->backend_model, d->n_backend_ids, sizeof(*d->models),
					    d->models, d->models_saved);
		if (rc >= 0)
			rc = maparray_write_changed(m->service_state, d->n_svc_ids, sizeof(*d->states),
						    d->states, d->states_saved);
	}
	if (rc < 0) {
		d->saved_valid = false; /* some writes may be lost: write everything next time */
		log_warn("persisting model state: %s", strerror(-rc));
	}
}

/* Brings d->stats up to date: the backends whose fault counters the data path flagged
 * since the last tick, or all of them when that is cheaper or due. An idle backend costs
 * no system call. */
static int read_fault_counters(struct daemon *d)
{
	int fd = d->ld.maps.backend_stats, rc = 0;
	__u32 n = d->n_backend_ids, flagged = 0;

	/* Flag cleared before the read: an event after it flags the backend again. */
	for (__u32 id = 0; id < n; id++)
		if (__atomic_load_n(&d->pending[id].pending, __ATOMIC_RELAXED) &&
		    __atomic_exchange_n(&d->pending[id].pending, 0, __ATOMIC_SEQ_CST))
			d->pending_ids[flagged++] = id;
	if (d->full_read_due || d->ticks % FULL_READ_TICKS == 0 || flagged * PER_ID_READ_RATIO > n) {
		rc = maparray_read_percpu_sum(fd, n, sizeof(*d->stats), d->stats);
		d->full_read_due = rc != 0;
		return rc;
	}
	for (__u32 i = 0; i < flagged && !rc; i++)
		rc = stats_read_backend(fd, d->pending_ids[i], &d->stats[d->pending_ids[i]]);
	if (rc)
		d->full_read_due = true; /* the flags of the rest are gone */
	return rc;
}

/* The heartbeat in daemon_state: at start, every tick, and at a clean stop. */
static void heartbeat(struct daemon *d, double now, __u32 flags)
{
	__u32 zero = 0;

	d->hb.last_tick_mono_ms = (__u64)(now * 1000);
	d->hb.ticks = d->ticks;
	d->hb.flags = flags;
	if (bpf_map_update_elem(d->ld.maps.daemon_state, &zero, &d->hb, BPF_ANY) && d->ticks % 600 == 0)
		log_warn("writing the heartbeat: %s", strerror(errno));
}

/* How long no daemon ticked before this one started, from the heartbeat it left; -1 when
 * unknown (no heartbeat: pins of an older version). */
static double time_away(struct daemon *d, double now)
{
	struct fs_daemon_state was = { 0 };
	__u32 zero = 0;

	if (!d->ld.adopted)
		return 0;
	if (bpf_map_lookup_elem(d->ld.maps.daemon_state, &zero, &was) || !was.last_tick_mono_ms ||
	    was.last_tick_mono_ms / 1000.0 > now)
		return -1;
	return now - was.last_tick_mono_ms / 1000.0;
}

/* Says once when automatic failback cannot come as the models stand (the primary's P(up)
 * tops out below the failback threshold), and once when it can again. Only models that
 * stepped can change it. */
static void note_failback_capped(struct service_rt *s, const struct model_params *mp)
{
	double ceiling = 0;
	bool capped;

	if (s->det.mode == FS_MODE_FORCED)
		return; /* the operator decides: nothing to say until back to auto */
	capped = det_failback_capped(&s->det, &s->set, mp, &ceiling);
	if (capped && !s->failback_capped)
		log_warn("service %s: no automatic failback for now: backend 0's P(up) can reach at "
			 "most %.6f as its model stands (its recent outage weighs on its learned MTBF), "
			 "below failback_threshold %.6f; it rises as the outage fades from the model, "
			 "or 'failsteer failback %s' moves back now", s->cfg.name, ceiling,
			 s->set.failback_threshold, s->cfg.name);
	else if (!capped && s->failback_capped)
		log_info("service %s: automatic failback possible again", s->cfg.name);
	s->failback_capped = capped;
}

static void tick(struct daemon *d, double now, double dt)
{
	char why[1024];
	int rc;

	probes_poll(d->probes, now, probe_done, d);
	rc = read_fault_counters(d);
	if (rc) {
		log_warn("reading counters: %s", strerror(-rc));
		heartbeat(d, now, 0); /* alive, if blind this tick */
		return;
	}
	for (int i = 0; i < d->n_svcs; i++) {
		struct service_rt *s = &d->svcs[i];
		/* The operator's override, one copy from the mapped service_ctl. */
		const struct fs_service_ctl ctl = d->ctl_map[s->svc_id];
		struct det_obs obs[FS_MAX_BACKENDS] = { 0 };
		bool stepped[FS_MAX_BACKENDS] = { 0 }, any = false;
		int before = s->det.active;
		enum det_event ev;

		if (s->det.mode == FS_MODE_FORCED && ctl.mode != FS_MODE_FORCED)
			log_info("service %s: auto: back to automatic decisions (operator), on backend %d",
				 s->cfg.name, s->det.active);
		s->det.mode = ctl.mode == FS_MODE_FORCED ? FS_MODE_FORCED : FS_MODE_AUTO;
		s->det.forced_idx = (int)ctl.forced_idx;
		for (int b = 0; b < s->cfg.n_backends; b++) {
			struct backend_rt *be = &s->be[b];
			const struct fs_backend_stats *cur = &d->stats[be->id];

			/* Nothing happened to a settled backend: no evidence, its rates stay
			 * zero and its saved model is current. */
			if (be->settled && !be->probe_ok && !be->probe_fail &&
			    !memcmp(cur, &be->prev, sizeof(*cur)))
				continue;
			stepped[b] = any = true;
			obs[b] = det_evidence(&be->prev, cur, be->probe_ok, be->probe_fail);
			be->settled = update_rates(be, cur, dt);
			be->prev = *cur;
			be->probe_ok = be->probe_fail = 0;
		}
		/* Nothing seen and nothing pending (no probes either: the primary is trusted,
		 * and no idle re-check of a backend in doubt is due): the decision step would
		 * change nothing. */
		if (!any && det_at_rest(&s->det, &s->set) && s->det.models[0].p_down <= PROBE_SUSPICION &&
		    !idle_probe_due(d, s, now))
			continue;
		ev = det_tick(&s->det, &s->set, &d->mp, obs, now, why, sizeof(why));
		if (ev != DET_NONE)
			apply_decision(d, s, ev, why, before);
		if (any || ev != DET_NONE)
			note_failback_capped(s, &d->mp);
		update_down_mask(d, s);
		/* 'failsteer failover/failback' writes the services entry too (to steer at once,
		 * daemon or not) from a copy that may miss a change of ours (down mask, routes):
		 * after an operator's command the entry is the daemon's again. */
		if (ctl.changed_ms != s->ctl_changed_ms) {
			s->ctl_changed_ms = ctl.changed_ms;
			write_service(d, s, "entry after an operator's command");
		}
		/* Someone (the CLI) may have written the map while we were not looking. */
		s->st.failovers = s->det.failovers;
		s->st.failbacks = s->det.failbacks;
		s->st.backoff_level = (__u32)s->det.backoff_level;
		s->st.all_down = s->det.all_down;
		s->st.last_failback_ms = s->det.backoff_clock_s < 0 ? 0 : (__u64)(s->det.backoff_clock_s * 1000);
		s->st.up_since_ms = s->det.good_since_s[0] < 0 ? 0 : (__u64)(s->det.good_since_s[0] * 1000);
		d->states[s->svc_id] = s->st;
		/* No evidence, no model step (model_step): only what was stepped is saved. */
		for (int b = 0; b < s->cfg.n_backends; b++)
			if (stepped[b])
				model_save(s, b, &d->mp, &d->models[s->be[b].id]);
		s->probe_due = true;
	}
	schedule_all_probes(d, now);
	persist_models(d);
	d->ticks++;
	heartbeat(d, now, 0);
}

static int sweep_batches_per_tick(const struct cfg *cfg)
{
	double ticks = SWEEP_WALK_S * 1000.0 / cfg->tick_ms;
	int batches = (int)((cfg->flow_table_size / FLOW_SWEEP_BATCH + 1) / (ticks > 1 ? ticks : 1)) + 1;

	return batches > SWEEP_MIN_BATCHES ? batches : SWEEP_MIN_BATCHES;
}

/* One tick's share of the walk of the flow table (flow_sweep_step), which deletes the
 * entries flow_sweepable() gives up (closed a while ago, moved, never answered, idle); a
 * walk starts every SWEEP_INTERVAL_S. What a whole walk left is counted so that flow-table
 * evictions can be told apart from closes. Under load, entries come and go while the table
 * is walked: the entries lost (neither deleted, swept nor left) are counted from those
 * created before the walk began and those deleted by its end, which can only miss some, and
 * the same count the other way round (created by its end, deleted before it began) can only
 * find too many. What was lost before this daemon started (a previous daemon's sweeps,
 * evictions) is taken from its first walk counted the second way, so that the evictions
 * since are a lower bound: never one that did not happen. */
static void sweep_flows(struct daemon *d, double now)
{
	struct fs_maps *m = &d->ld.maps;
	struct fs_global_stats g;
	struct timespec ts;
	__u64 now_ns, idle_ns = (__u64)d->cfg.flow_idle_timeout_s * 1000000000ull, swept, live;
	int rc;

	if (!d->sweep.walking) {
		if (now < d->next_sweep_s)
			return;
		d->next_sweep_s = now + SWEEP_INTERVAL_S;
		if (maparray_read_percpu_sum(m->global_stats, 1, sizeof(g), &g))
			return;
		d->sweep_created = g.flows_created;
		d->sweep_deleted_before = g.flows_deleted;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ns = (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
	rc = flow_sweep_step(&d->sweep, m->flows, now_ns, idle_ns, sweep_batches_per_tick(&d->cfg),
			     now_ns + (__u64)(d->cfg.tick_ms * SWEEP_TICK_SHARE * 1e6));
	if (rc < 0)
		log_warn("sweeping flows: %s", strerror(-rc));
	if (rc != 1 || maparray_read_percpu_sum(m->global_stats, 1, sizeof(g), &g))
		return;
	swept = d->sweep.swept_total;
	live = d->sweep.live;
	__s64 lost = (__s64)d->sweep_created - (__s64)g.flows_deleted - (__s64)swept - (__s64)live;
	if (!d->have_evictions_base) {
		d->evictions_base = (__s64)g.flows_created - (__s64)d->sweep_deleted_before -
				    (__s64)swept - (__s64)live;
		d->have_evictions_base = true;
	}
	if (lost - d->evictions_base > (__s64)d->evictions) {
		log_warn("flow table: %lld entries evicted since start (%llu live of %u): raise flow_table_size",
			 (long long)(lost - d->evictions_base), (unsigned long long)live, d->cfg.flow_table_size);
		d->evictions = (__u64)(lost - d->evictions_base);
	}
	d->flows_live = live;
}

static void publish_metrics(struct daemon *d, __u64 flows_live)
{
	struct metrics_daemon md = {
		.ticks = d->ticks,
		.tick_seconds = d->last_tick_cost_s,
		.flows_live = flows_live,
		.flow_table_size = d->cfg.flow_table_size,
		.evictions = d->evictions,
		.probes_in_flight = (__u64)probes_in_flight(d->probes),
	};

	metrics_update_daemon(d->metrics, &md);
}

/* Re-reads the config. -1: refused before anything changed, the running configuration
 * stays; -2: failed while rebuilding, the daemon must stop. */
static int reload(struct daemon *d)
{
	struct cfg fresh;
	char err[512];
	int rc;

	if (cfg_load(d->cfg.path, &fresh, err, sizeof(err))) {
		log_warn("reload: %s; keeping the running configuration", err);
		return -1;
	}
	if (fresh.flow_table_size != d->cfg.flow_table_size || fresh.max_services != d->cfg.max_services ||
	    fresh.max_backends != d->cfg.max_backends || strcmp(fresh.pin_path, d->cfg.pin_path) ||
	    strcmp(fresh.metrics_listen, d->cfg.metrics_listen) || fresh.tick_ms != d->cfg.tick_ms) {
		log_warn("reload: flow_table_size, max_services, max_backends, pin_path, tick_ms and "
			 "metrics_listen need a restart; keeping the running configuration");
		cfg_free(&fresh);
		return -1;
	}
	/* Attach to interfaces added by the reload; removed ones keep their filters until
	 * 'failsteer detach' (removing them here could break flows steered through them). */
	rc = loader_attach(&d->ld, &fresh, err, sizeof(err));
	if (rc) {
		log_warn("reload: %s; keeping the running configuration (the hooks attached before "
			 "the error, or moved to the other tc_attach kind, stay so)", err);
		cfg_free(&fresh);
		return -1;
	}
	/* Persisted each tick, so the maps hold the current models: rebuild from them. */
	cfg_free(&d->cfg);
	d->cfg = fresh;
	rc = sync_from_maps(d, err, sizeof(err));
	if (rc) {
		/* Half the runtime is rebuilt: going on would leave services undecided. */
		log_warn("reload: %s; stopping (exit 1): the data path keeps steering with the last "
			 "decisions, and a restart adopts the pinned state", err);
		return -2;
	}
	log_info("reloaded %s: %d services", d->cfg.path, d->n_svcs);
	return 0;
}

/* Maps the arrays the daemon reads every tick (backend_pending, service_ctl) into memory.
 * Their sizes (max_backends, max_services) cannot change while it runs. */
static int map_shared(struct daemon *d, char *err, size_t errlen)
{
	int e;

	d->pending = maparray_mmap(d->ld.maps.backend_pending, sizeof(*d->pending), true, &d->pending_len);
	if (d->pending)
		d->ctl_map = maparray_mmap(d->ld.maps.service_ctl, sizeof(*d->ctl_map), false, &d->ctl_map_len);
	if (!d->pending || !d->ctl_map) {
		e = errno;
		snprintf(err, errlen, "mapping %s: %s", d->pending ? FS_MAP_SERVICE_CTL : FS_MAP_BACKEND_PENDING,
			 strerror(e));
		return -e;
	}
	return 0;
}

int daemon_run(const char *cfg_path)
{
	struct daemon d = { 0 };
	struct epoll_event ev, evs[4];
	struct itimerspec its = { 0 };
	struct rlimit nofile;
	sigset_t mask;
	char err[512];
	int epfd = -1, tfd = -1, sfd = -1, code = 1, rc;
	double last;

	if (cfg_load(cfg_path, &d.cfg, err, sizeof(err))) {
		fprintf(stderr, "failsteer: %s\n", err);
		return 2;
	}
	/* Blocked before any thread starts (the metrics server's inherits the mask), so the
	 * signals reach only the signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	model_default_params(&d.mp, d.cfg.tick_ms / 1000.0);
	d.ld.lock_fd = -1;
	/* Whatever can fail goes before any map is touched: a start that cannot attach, serve
	 * its metrics or open its sockets must not rewrite the services a pinned data path
	 * is steering with. Exit 1, not 2: an interface may come later (boot order), an
	 * address or port may be freed, and a restart will find them. */
	if (loader_check_interfaces(&d.cfg, err, sizeof(err))) {
		fprintf(stderr, "failsteer: %s: %s\n", cfg_path, err);
		goto out;
	}
	/* Until the maps are pinned, a scrape gets 503 (the server opens them on demand). */
	d.metrics = metrics_new(d.cfg.metrics_listen, d.cfg.pin_path, d.cfg.tick_ms, err, sizeof(err));
	if (!d.metrics) {
		fprintf(stderr, "failsteer: %s\n", err);
		goto out;
	}
	/* Before anything is created under the pin path. */
	rc = loader_check_filters(&d.ld, &d.cfg, err, sizeof(err));
	if (!rc)
		rc = loader_prepare(&d.ld, &d.cfg, err, sizeof(err));
	if (!rc)
		rc = loader_load(&d.ld, &d.cfg, err, sizeof(err));
	if (!rc)
		rc = map_shared(&d, err, sizeof(err));
	if (!rc) {
		d.retrier = retrier_new(&d.ld.maps, err, sizeof(err));
		d.retry_rb = d.retrier ? ring_buffer__new(d.ld.maps.retry_events, on_retry_event, &d, NULL)
				       : NULL;
		if (d.retrier && !d.retry_rb)
			snprintf(err, sizeof(err), "opening the retry ring buffer: %s", strerror(errno));
		rc = d.retry_rb ? 0 : -1;
	}
	if (!rc) {
		d.away_s = time_away(&d, mono_s());
		if (d.away_s < 0)
			log_info("adopting pinned state with no heartbeat: failback holds under way start again");
		else if (d.away_s > 0)
			log_info("no daemon for %.1f s: what happened meanwhile is not taken as evidence",
				 d.away_s);
		rc = sync_from_maps(&d, err, sizeof(err));
		d.away_s = 0; /* a reload is no time away */
	}
	if (!rc)
		rc = loader_attach(&d.ld, &d.cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "failsteer: %s\n", err);
		/* A pinned map the config does not fit, tcx asked of a kernel without:
		 * restarting cannot fix it. */
		if (d.ld.pin_conflict || d.ld.no_tcx)
			code = 2;
		goto out;
	}
	d.hb.pid = (__u32)getpid();
	d.hb.tick_ms = d.cfg.tick_ms;
	d.hb.started_ms = realtime_ms();
	heartbeat(&d, mono_s(), 0);
	log_info("attached to %d interface(s) (%s), %s pinned state under %s, tick %u ms",
		 d.cfg.n_interfaces, d.ld.tcx ? "tcx links" : "clsact filters",
		 d.ld.adopted ? "adopted" : "created", d.cfg.pin_path, d.cfg.tick_ms);

	/* Probes take a socket each, thousands when a site of many services is down: the soft
	 * limit of open files (often 1024) goes up to the hard one. */
	if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile))
			log_warn("raising the open-file limit: %s", strerror(errno));
	}
	d.probes = probes_new(d.ld.maps.flows);
	if (!d.probes) {
		fprintf(stderr, "failsteer: out of memory\n");
		goto out;
	}
	if (d.cfg.metrics_listen[0])
		log_info("metrics on http://%s/metrics", d.cfg.metrics_listen);

	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || epfd < 0) {
		fprintf(stderr, "failsteer: setting up the event loop: %s\n", strerror(errno));
		goto out;
	}
	its.it_interval.tv_sec = d.cfg.tick_ms / 1000;
	its.it_interval.tv_nsec = (long)(d.cfg.tick_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	ev.events = EPOLLIN;
	/* Signals, ticks, and connect deadlines as they come (not at the next tick). */
	int fds[] = { sfd, tfd, ring_buffer__epoll_fd(d.retry_rb) };

	rc = timerfd_settime(tfd, 0, &its, NULL);
	for (int i = 0; i < 3 && !rc; i++) {
		ev.data.fd = fds[i];
		rc = epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev);
	}
	if (rc) {
		fprintf(stderr, "failsteer: setting up the event loop: %s\n", strerror(errno));
		goto out;
	}

	last = mono_s();
	d.next_sweep_s = last;
	d.next_routes_s = last + ROUTE_REFRESH_S;
	for (;;) {
		int n = epoll_wait(epfd, evs, 4, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("event loop: %s; stopping (exit 1)", strerror(errno));
			goto out;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == ring_buffer__epoll_fd(d.retry_rb)) {
				ring_buffer__consume(d.retry_rb);
				continue;
			}
			if (evs[i].data.fd == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) != sizeof(si))
					continue;
				if (si.ssi_signo == SIGHUP) {
					if (reload(&d) == -2)
						goto out;
					continue;
				}
				log_info("signal %u: stopping; the data path keeps steering with the last "
					 "decisions (run 'failsteer detach' to remove it)", si.ssi_signo);
				heartbeat(&d, mono_s(), FS_DAEMON_F_STOPPED);
				code = 0;
				goto out;
			}
			__u64 expirations;
			if (read(tfd, &expirations, sizeof(expirations)) != sizeof(expirations))
				continue;
			double now = mono_s(), t0 = now;

			tick(&d, now, now - last > 0 ? now - last : d.cfg.tick_ms / 1000.0);
			last = now;
			if (now >= d.next_routes_s) {
				refresh_routes(&d);
				d.next_routes_s = now + ROUTE_REFRESH_S;
			}
			sweep_flows(&d, now);
			d.last_tick_cost_s = mono_s() - t0;
			publish_metrics(&d, d.flows_live);
		}
	}
out:
	if (epfd >= 0)
		close(epfd);
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	if (d.retrier) {
		struct retrier_counts rc = retrier_counts(d.retrier);

		log_info("zero-error retries: %llu SYNs re-sent after a connect timeout, %llu clients "
			 "reset with every backend tried, %llu deadlines already answered, %llu without "
			 "a stored SYN", rc.resent, rc.given_up, rc.stale, rc.no_syn);
	}
	ring_buffer__free(d.retry_rb);
	retrier_free(d.retrier);
	metrics_free(d.metrics);
	probes_free(d.probes);
	if (d.pending)
		munmap(d.pending, d.pending_len);
	if (d.ctl_map)
		munmap((void *)d.ctl_map, d.ctl_map_len);
	loader_close(&d.ld);
	free_runtime(&d);
	cfg_free(&d.cfg);
	return code;
}
