/* A read of everything the pinned maps say about the services; see view.h. */
#include "view.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detector.h"
#include "stats.h"

static int by_name(const void *a, const void *b)
{
	const struct view_service *x = a, *y = b;

	return strcmp(x->state.name, y->state.name);
}

int view_read(const struct fs_maps *m, struct view *v)
{
	enum { CHUNK = 256 };
	struct fs_endpoint *keys = calloc(CHUNK, sizeof(*keys)), in, out;
	struct fs_service *vals = calloc(CHUNK, sizeof(*vals)); /* 60 KiB: not on a stack */
	int cap = 0, nb = 0, rc = 0;
	bool first = true;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	memset(v, 0, sizeof(*v));
	if (!keys || !vals) {
		rc = -ENOMEM;
		goto fail;
	}
	/* In batches, bucket by bucket: walking key by key would list a service twice when
	 * the one it stands on is deleted meanwhile (a reload), or skip one when the daemon
	 * rewrites a service, which moves it to the head of its bucket. */
	for (;;) {
		__u32 count = CHUNK;
		int err = bpf_map_lookup_batch(m->services, first ? NULL : &in, &out, keys, vals, &count, &opts);

		if (err && errno != ENOENT) {
			rc = -errno;
			goto fail;
		}
		if (v->n + (int)count > cap) {
			void *grown = realloc(v->svcs, (size_t)(cap = v->n + (int)count + 16) * sizeof(*v->svcs));

			if (!grown) {
				rc = -ENOMEM;
				goto fail;
			}
			v->svcs = grown;
		}
		for (__u32 i = 0; i < count; i++) {
			struct view_service *s = &v->svcs[v->n++];

			memset(s, 0, sizeof(*s));
			s->address = keys[i];
			s->svc = vals[i];
			if (s->svc.n_backends > FS_MAX_BACKENDS)
				s->svc.n_backends = FS_MAX_BACKENDS;
			bpf_map_lookup_elem(m->service_state, &s->svc.svc_id, &s->state);
			bpf_map_lookup_elem(m->service_ctl, &s->svc.svc_id, &s->ctl);
			if (!s->state.name[0])
				strcpy(s->state.name, "?");
			nb += s->svc.n_backends;
		}
		if (err) /* ENOENT: that was the last batch */
			break;
		in = out;
		first = false;
	}
	free(keys);
	free(vals);
	keys = NULL;
	vals = NULL;
	v->backends = calloc((size_t)nb + 1, sizeof(*v->backends));
	if (!v->backends) {
		rc = -ENOMEM;
		goto fail;
	}
	qsort(v->svcs, (size_t)v->n, sizeof(*v->svcs), by_name);
	nb = 0;
	for (int i = 0; i < v->n; i++) {
		struct view_service *s = &v->svcs[i];

		s->be = &v->backends[nb];
		nb += s->svc.n_backends;
		for (int b = 0; b < s->svc.n_backends; b++) {
			struct view_backend *be = &s->be[b];

			be->id = s->svc.backend_ids[b];
			be->ep = s->svc.backends[b];
			stats_read_backend(m->backend_stats, be->id, &be->stats);
			stats_read_traffic(m->backend_traffic, be->id, &be->traffic);
			bpf_map_lookup_elem(m->backend_model, &be->id, &be->model);
		}
	}
	stats_read_global(m->global_stats, &v->global);
	bpf_map_lookup_elem(m->daemon_state, &(__u32){ 0 }, &v->daemon);
	return 0;
fail:
	free(keys);
	free(vals);
	view_free(v);
	return rc;
}

void view_free(struct view *v)
{
	free(v->svcs);
	free(v->backends);
	memset(v, 0, sizeof(*v));
}

enum view_daemon view_daemon(const struct view *v, double *age_s)
{
	const struct fs_daemon_state *hb = &v->daemon;
	struct timespec ts;
	double age, late;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	age = (double)ts.tv_sec + ts.tv_nsec / 1e9 - hb->last_tick_mono_ms / 1000.0;
	if (age_s)
		*age_s = age > 0 ? age : 0;
	if (!hb->pid || !hb->last_tick_mono_ms)
		return VIEW_DAEMON_UNKNOWN;
	if (hb->flags & FS_DAEMON_F_STOPPED)
		return VIEW_DAEMON_STOPPED;
	late = 3 * hb->tick_ms / 1000.0;
	return age <= (late > 1 ? late : 1) ? VIEW_DAEMON_TICKING : VIEW_DAEMON_SILENT;
}

const struct view_service *view_find(const struct view *v, const char *name)
{
	for (int i = 0; i < v->n; i++)
		if (!strcmp(v->svcs[i].state.name, name))
			return &v->svcs[i];
	return NULL;
}

/* The daemon's model parameters (they follow its tick); false if no daemon said. */
static bool view_model_params(const struct view *v, struct model_params *mp)
{
	if (!v->daemon.tick_ms)
		return false;
	model_default_params(mp, v->daemon.tick_ms / 1000.0);
	return true;
}

double view_up_ceiling(const struct view *v, const struct view_backend *be)
{
	struct model_params mp;
	struct model m;

	if (!view_model_params(v, &mp) || !be->model.good_threshold_ppb)
		return -1;
	det_model_from_record(&be->model, &m);
	return model_up_ceiling(&m, &mp);
}

bool view_failback_capped(const struct view *v, const struct view_service *s, double *ceiling)
{
	struct det_settings set = { .failback_threshold = (double)s->be[0].model.good_threshold_ppb / FS_PPB };
	struct model_params mp;
	struct det_service ds;

	/* No daemon saved a model: nothing to say. */
	if (!s->svc.n_backends || !s->be[0].model.good_threshold_ppb || !view_model_params(v, &mp))
		return false;
	det_service_init(&ds, s->svc.n_backends, s->svc.active);
	ds.mode = s->ctl.mode == FS_MODE_FORCED ? FS_MODE_FORCED : FS_MODE_AUTO;
	for (int b = 0; b < s->svc.n_backends; b++)
		det_model_from_record(&s->be[b].model, &ds.models[b]);
	return det_failback_capped(&ds, &set, &mp, ceiling);
}
