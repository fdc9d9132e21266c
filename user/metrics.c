/* Prometheus metrics; see metrics.h. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "stats.h"

struct metrics {
	struct MHD_Daemon *httpd;
	struct fs_maps maps;
	char pin_path[CFG_PATH_MAX];
	pthread_mutex_t lock;          /* guards md; the tick only ever try-locks it */
	struct metrics_daemon md;
	bool have_md;
	__u64 last_tick_ns;            /* atomic: when the daemon last published, 0 = never */
	unsigned tick_ms;              /* the detector period */
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

unsigned metrics_health(__u64 now_ns, __u64 last_tick_ns, unsigned tick_ms, char *msg, size_t len)
{
	__u64 stale_ms = 10ull * tick_ms > 3000 ? 10ull * tick_ms : 3000, age_ms;

	if (!last_tick_ns) {
		snprintf(msg, len, "failsteer: the detector has not ticked yet\n");
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	age_ms = now_ns > last_tick_ns ? (now_ns - last_tick_ns) / 1000000 : 0;
	if (age_ms > stale_ms) {
		snprintf(msg, len, "failsteer: the detector last ticked %llu ms ago (stalled: more than %llu)\n",
			 (unsigned long long)age_ms, (unsigned long long)stale_ms);
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	snprintf(msg, len, "ok: the detector ticked %llu ms ago\n", (unsigned long long)age_ms);
	return MHD_HTTP_OK;
}

static const char *const state_names[2] = { "up", "down" };

static void labels(char *buf, size_t len, const char *svc, const struct fs_endpoint *ep, int site)
{
	char addr[64];

	snprintf(buf, len, "service=\"%s\",backend=\"%s\",site=\"%d\"", svc,
		 cfg_format_endpoint(ep, addr, sizeof(addr)), site);
}

#define HEAD(out, name, type, help) fprintf(out, "# HELP " name " " help "\n# TYPE " name " " type "\n")

static void backend_counter(FILE *out, const struct view *v, const char *name, const char *help,
			    size_t offset)
{
	char l[256];

	fprintf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < v->n; i++)
		for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
			const struct view_backend *be = &v->svcs[i].be[b];

			labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
			fprintf(out, "%s{%s} %llu\n", name, l,
				(unsigned long long)*(const __u64 *)((const char *)&be->stats + offset));
		}
}

static void backend_gauge_ppb(FILE *out, const struct view *v, const char *name, const char *help,
			      size_t offset)
{
	char l[256];

	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (int i = 0; i < v->n; i++)
		for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
			const struct view_backend *be = &v->svcs[i].be[b];

			labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
			fprintf(out, "%s{%s} %.9f\n", name, l,
				*(const __u32 *)((const char *)&be->model + offset) / (double)FS_PPB);
		}
}

#define STAT(f) offsetof(struct fs_backend_stats, f)
#define MODEL(f) offsetof(struct fs_backend_model, f)

void metrics_render(const struct view *v, const struct metrics_daemon *md, FILE *out)
{
	char l[256];

	backend_counter(out, v, "failsteer_backend_connect_attempts_total",
			"Connections steered to the backend (first SYN, or moved to it unanswered).", STAT(attempts));
	backend_counter(out, v, "failsteer_backend_syn_retransmits_total",
			"Client SYN retransmissions of connections steered to the backend.", STAT(syn_retrans));
	backend_counter(out, v, "failsteer_backend_established_total",
			"Connections the backend answered with a SYN-ACK.", STAT(established));
	backend_counter(out, v, "failsteer_backend_resets_total",
			"Acceptable TCP resets from the backend on tracked connections.", STAT(resets));
	backend_counter(out, v, "failsteer_backend_connect_refused_total",
			"Resets that answered a SYN (connection refused).", STAT(resets_connect));
	backend_counter(out, v, "failsteer_backend_connect_timeouts_total",
			"Connections without SYN-ACK within the connect timeout.", STAT(timeouts));
	backend_counter(out, v, "failsteer_backend_icmp_errors_total",
			"ICMP/ICMPv6 unreachables quoting a connecting flow.", STAT(icmp_errors));
	backend_counter(out, v, "failsteer_backend_retried_total",
			"Unanswered connections moved from this backend to the next.", STAT(retried));

	/* One family at a time: the exposition format wants each family's samples together. */
	for (int fam = 0; fam < 2; fam++) {
		const char *name = fam ? "failsteer_backend_bytes_total" : "failsteer_backend_packets_total";

		fprintf(out, "# HELP %s %s steered to (to) or answered by (from) the backend.\n# TYPE %s counter\n",
			name, fam ? "Bytes" : "Packets", name);
		for (int i = 0; i < v->n; i++)
			for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
				const struct view_backend *be = &v->svcs[i].be[b];

				labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
				fprintf(out, "%s{%s,direction=\"to\"} %llu\n", name, l,
					(unsigned long long)(fam ? be->traffic.bytes_to : be->traffic.pkts_to));
				fprintf(out, "%s{%s,direction=\"from\"} %llu\n", name, l,
					(unsigned long long)(fam ? be->traffic.bytes_from : be->traffic.pkts_from));
			}
	}

	HEAD(out, "failsteer_backend_connect_latency_seconds", "histogram", "Time from SYN to SYN-ACK.");
	for (int i = 0; i < v->n; i++)
		for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
			const struct view_backend *be = &v->svcs[i].be[b];
			unsigned long long cum = 0;

			labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
			/* Bucket i holds [2^i, 2^(i+1)) microseconds; bucket 0 also below 1. */
			for (int k = 0; k < 24; k++) {
				cum += be->traffic.latency_hist[k];
				fprintf(out, "failsteer_backend_connect_latency_seconds_bucket{%s,le=\"%.6f\"} %llu\n",
					l, (double)(1ull << (k + 1)) / 1e6, cum);
			}
			for (int k = 24; k < FS_LAT_BUCKETS; k++)
				cum += be->traffic.latency_hist[k];
			fprintf(out, "failsteer_backend_connect_latency_seconds_bucket{%s,le=\"+Inf\"} %llu\n", l, cum);
			fprintf(out, "failsteer_backend_connect_latency_seconds_sum{%s} %.6f\n", l,
				be->traffic.latency_sum_us / 1e6);
			fprintf(out, "failsteer_backend_connect_latency_seconds_count{%s} %llu\n", l, cum);
		}

	backend_gauge_ppb(out, v, "failsteer_backend_down_probability",
			  "The Markov model's posterior probability that the backend is down.", MODEL(p_down_ppb));
	backend_gauge_ppb(out, v, "failsteer_backend_availability_ratio",
			  "Steady-state availability from the learned transition probabilities.", MODEL(availability_ppb));
	backend_gauge_ppb(out, v, "failsteer_backend_up_failure_ratio",
			  "Learned failure ratio of connection attempts while the backend is up.", MODEL(fail_up_ppb));
	HEAD(out, "failsteer_backend_transition_probability", "gauge",
	     "Learned P(state at the next model step = to | state now = from); a step is a tick with evidence.");
	for (int i = 0; i < v->n; i++)
		for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
			const struct view_backend *be = &v->svcs[i].be[b];

			labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
			for (int f = 0; f < 2; f++)
				for (int t = 0; t < 2; t++)
					fprintf(out, "failsteer_backend_transition_probability{%s,from=\"%s\",to=\"%s\"} %.9f\n",
						l, state_names[f], state_names[t],
						be->model.trans_ppb[f][t] / (double)FS_PPB);
		}
	for (int fam = 0; fam < 2; fam++) {
		const char *name = fam ? "failsteer_backend_mttr_seconds" : "failsteer_backend_mtbf_seconds";

		fprintf(out, "# HELP %s Mean time %s derived from the model.\n# TYPE %s gauge\n", name,
			fam ? "to repair" : "between failures", name);
		for (int i = 0; i < v->n; i++)
			for (int b = 0; b < v->svcs[i].svc.n_backends; b++) {
				const struct view_backend *be = &v->svcs[i].be[b];

				labels(l, sizeof(l), v->svcs[i].state.name, &be->ep, b);
				fprintf(out, "%s{%s} %.3f\n", name, l,
					(fam ? be->model.mttr_ms : be->model.mtbf_ms) / 1e3);
			}
	}

	static const struct {
		const char *name, *type, *help;
	} svc_fams[] = {
		{ "failsteer_service_active_backend", "gauge", "Index (site) of the backend new connections go to; 0 is the primary." },
		{ "failsteer_service_forced", "gauge", "1 while an operator forces the active backend." },
		{ "failsteer_service_all_backends_down", "gauge", "1 while every backend looks down (node network suspected)." },
		{ "failsteer_service_failback_backoff_level", "gauge", "Failback hold is failback_hold_ms times 2 to this power (hold 0: 1 s times 2 to this power minus 1)." },
		{ "failsteer_service_failovers_total", "counter", "Moves to a lower-priority backend." },
		{ "failsteer_service_failbacks_total", "counter", "Moves to a higher-priority backend." },
		{ "failsteer_service_failback_capped", "gauge", "1 while no automatic failback can come: no backend before the active one can reach failback_threshold as its model stands." },
	};
	for (size_t fam = 0; fam < sizeof(svc_fams) / sizeof(svc_fams[0]); fam++) {
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", svc_fams[fam].name, svc_fams[fam].help,
			svc_fams[fam].name, svc_fams[fam].type);
		for (int i = 0; i < v->n; i++) {
			const struct view_service *s = &v->svcs[i];
			const unsigned vals[] = { s->svc.active, s->ctl.mode == FS_MODE_FORCED, s->state.all_down,
						  s->state.backoff_level, s->state.failovers, s->state.failbacks,
						  view_failback_capped(v, s, NULL) };

			fprintf(out, "%s{service=\"%s\"} %u\n", svc_fams[fam].name, s->state.name, vals[fam]);
		}
	}

	HEAD(out, "failsteer_flows_created_total", "counter", "Flow-table entries created (two per connection).");
	fprintf(out, "failsteer_flows_created_total %llu\n", (unsigned long long)v->global.flows_created);
	HEAD(out, "failsteer_flow_misses_total", "counter", "Non-SYN packets to a service with no flow entry (older or evicted connections).");
	fprintf(out, "failsteer_flow_misses_total %llu\n", (unsigned long long)v->global.flow_misses);
	HEAD(out, "failsteer_rst_rejected_total", "counter", "Resets from a backend outside the acceptable window (not counted as failures).");
	fprintf(out, "failsteer_rst_rejected_total %llu\n", (unsigned long long)v->global.rst_rejected);
	HEAD(out, "failsteer_icmp_unmatched_total", "counter", "ICMP errors quoting TCP that matched no connecting flow.");
	fprintf(out, "failsteer_icmp_unmatched_total %llu\n", (unsigned long long)v->global.icmp_unmatched);
	HEAD(out, "failsteer_route_failures_total", "counter", "Host mode: rewritten packets with no route to the backend.");
	fprintf(out, "failsteer_route_failures_total %llu\n", (unsigned long long)v->global.fib_failures);
	HEAD(out, "failsteer_retry_failures_total", "counter", "Zero-error retries that could not be sent.");
	fprintf(out, "failsteer_retry_failures_total %llu\n", (unsigned long long)v->global.retry_failures);
	HEAD(out, "failsteer_deadline_overflows_total", "counter", "Connect deadlines lost to a full deadline ring.");
	fprintf(out, "failsteer_deadline_overflows_total %llu\n", (unsigned long long)v->global.deadline_overflows);
	if (md) {
		HEAD(out, "failsteer_flow_table_entries", "gauge", "Flow-table entries counted by the last complete sweep.");
		fprintf(out, "failsteer_flow_table_entries %llu\n", (unsigned long long)md->flows_live);
		HEAD(out, "failsteer_flow_table_size", "gauge", "Flow-table capacity (flow_table_size).");
		fprintf(out, "failsteer_flow_table_size %llu\n", (unsigned long long)md->flow_table_size);
		HEAD(out, "failsteer_flow_table_evictions_total", "counter", "Flow-table entries lost to LRU eviction since the daemon started.");
		fprintf(out, "failsteer_flow_table_evictions_total %llu\n", (unsigned long long)md->evictions);
		HEAD(out, "failsteer_daemon_ticks_total", "counter", "Detector ticks run.");
		fprintf(out, "failsteer_daemon_ticks_total %llu\n", (unsigned long long)md->ticks);
		HEAD(out, "failsteer_daemon_tick_duration_seconds", "gauge", "Wall-clock duration of the last detector tick (route refresh and the flow sweep's share included when due).");
		fprintf(out, "failsteer_daemon_tick_duration_seconds %.6f\n", md->tick_seconds);
		HEAD(out, "failsteer_daemon_probes_in_flight", "gauge", "Active TCP probes waiting for an answer.");
		fprintf(out, "failsteer_daemon_probes_in_flight %llu\n", (unsigned long long)md->probes_in_flight);
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct metrics *m = cls;
	struct metrics_daemon md;
	struct MHD_Response *resp;
	struct view v;
	char *text = NULL, err[256];
	size_t len = 0;
	bool have_md;
	unsigned code = MHD_HTTP_OK;
	FILE *out;
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return MHD_NO;
	out = open_memstream(&text, &len);
	if (!out)
		return MHD_NO;
	if (!strcmp(url, "/healthz")) {
		code = metrics_health(mono_ns(), __atomic_load_n(&m->last_tick_ns, __ATOMIC_ACQUIRE),
				      m->tick_ms, err, sizeof(err));
		fputs(err, out);
	} else if (strcmp(url, "/metrics")) {
		code = MHD_HTTP_NOT_FOUND;
		fputs("failsteer: see /metrics (and /healthz)\n", out);
	} else if ((m->maps.services < 0 && maps_open_pinned(m->pin_path, &m->maps, err, sizeof(err))) ||
		   view_read(&m->maps, &v)) {
		code = MHD_HTTP_SERVICE_UNAVAILABLE;
		fputs("failsteer: cannot read the pinned maps\n", out);
	} else {
		pthread_mutex_lock(&m->lock);
		md = m->md;
		have_md = m->have_md;
		pthread_mutex_unlock(&m->lock);
		metrics_render(&v, have_md ? &md : NULL, out);
		view_free(&v);
	}
	fclose(out);
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

struct metrics *metrics_new(const char *listen, const char *pin_path, unsigned tick_ms, char *err,
			    size_t len)
{
	struct metrics *m = calloc(1, sizeof(*m));
	struct sockaddr_storage ss = { 0 };
	struct fs_endpoint ep;
	/* poll(), not select(): the daemon's probes may push descriptors past FD_SETSIZE. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;

	if (!m) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	snprintf(m->pin_path, sizeof(m->pin_path), "%s", pin_path);
	m->tick_ms = tick_ms;
	maps_init(&m->maps);
	if (!listen[0])
		return m;
	if (cfg_parse_endpoint(listen, &ep)) {
		snprintf(err, len, "metrics_listen %s: not ADDR:PORT", listen);
		free(m);
		return NULL;
	}
	if (ep.family == FS_AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ep.addr, 16);
		s6->sin6_port = ep.port;
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ep.addr, 4);
		s4->sin_port = ep.port;
	}
	/* One polling thread, few connections (and fewer per client address), short
	 * timeouts: a hostile scraper can only slow other scrapers down, never the daemon. */
	m->httpd = MHD_start_daemon(flags, ntohs(ep.port), NULL, NULL, handle, m,
				    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				    MHD_OPTION_CONNECTION_TIMEOUT, 5u,
				    MHD_OPTION_CONNECTION_LIMIT, 16u,
				    MHD_OPTION_PER_IP_CONNECTION_LIMIT, 4u,
				    MHD_OPTION_END);
	if (!m->httpd) {
		snprintf(err, len, "metrics_listen %s: cannot listen (%s)", listen,
			 errno ? strerror(errno) : "address in use?");
		free(m);
		return NULL;
	}
	return m;
}

void metrics_update_daemon(struct metrics *m, const struct metrics_daemon *md)
{
	__atomic_store_n(&m->last_tick_ns, mono_ns(), __ATOMIC_RELEASE);
	/* Never wait for a scrape in progress: skip this update instead. */
	if (pthread_mutex_trylock(&m->lock))
		return;
	m->md = *md;
	m->have_md = true;
	pthread_mutex_unlock(&m->lock);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	if (m->httpd)
		MHD_stop_daemon(m->httpd);
	maps_close(&m->maps);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
