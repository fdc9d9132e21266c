/* Flow-table policy of the daemon; see flows.h. */
#include "flows.h"

#include <errno.h>
#include <time.h>
#include <bpf/bpf.h>

bool flow_sweepable(const struct fs_flow *f, __u64 now_ns, __u64 idle_ns)
{
	/* A clock read on another CPU may be a little ahead of ours. */
	__u64 age = now_ns > f->last_ns ? now_ns - f->last_ns : 0;

	if (age > idle_ns)
		return true;
	if (f->flags & (FS_FL_FIN | FS_FL_RST | FS_FL_PEER_CLOSED))
		return age > FLOW_CLOSE_LINGER_NS;
	if (f->dir == FS_DIR_REV && f->state == FS_ST_MOVED)
		return age > FLOW_MOVED_LINGER_NS;
	/* A REV entry in SYN_SENT is unanswered whatever wrote it (a data path from before
	 * FS_FL_SYN_ONLY, which leaves the flag off: judged as answered otherwise). */
	if ((f->flags & FS_FL_SYN_ONLY) || (f->dir == FS_DIR_REV && f->state == FS_ST_SYN_SENT))
		return age > FLOW_UNANSWERED_LINGER_NS;
	return false;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

int flow_sweep_step(struct flow_sweep *w, int flows_fd, __u64 now_ns, __u64 idle_ns,
		    int max_batches, __u64 stop_ns)
{
	struct fs_flow_key keys[FLOW_SWEEP_BATCH], out;
	struct fs_flow vals[FLOW_SWEEP_BATCH], cur;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	if (!w->walking) {
		w->walking = true;
		w->have_pos = false;
		w->live = 0;
	}
	for (int b = 0; b < max_batches; b++) {
		__u32 count = FLOW_SWEEP_BATCH;
		int rc = bpf_map_lookup_batch(flows_fd, w->have_pos ? &w->pos : NULL, &out, keys,
					      vals, &count, &opts);

		if (rc && errno != ENOENT) {
			rc = -errno;
			w->walking = false;
			return rc;
		}
		for (__u32 i = 0; i < count; i++) {
			if (!flow_sweepable(&vals[i], now_ns, idle_ns)) {
				w->live++;
				continue;
			}
			/* Read again right before deleting: a connection that reused the tuple
			 * since the batch was read has its own entry there now. */
			if (bpf_map_lookup_elem(flows_fd, &keys[i], &cur))
				continue; /* gone meanwhile: closed (counted deleted) or evicted */
			if (cur.last_ns != vals[i].last_ns || cur.syn_ns != vals[i].syn_ns) {
				w->live++;
				continue;
			}
			if (!bpf_map_delete_elem(flows_fd, &keys[i]))
				w->swept_total++;
		}
		if (rc) { /* ENOENT: the end of the table */
			w->walking = false;
			return 1;
		}
		w->pos = out;
		w->have_pos = true;
		if (stop_ns && mono_ns() >= stop_ns)
			break;
	}
	return 0;
}
