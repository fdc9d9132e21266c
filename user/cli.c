/* The operator commands that work on the pinned state; see cli.h. */
#include "cli.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "loader.h"
#include "stats.h"

static double ppb(__u32 v)
{
	return v / (double)FS_PPB;
}

static double rate(const struct view_backend *be, enum fs_rate r)
{
	return be->model.rate_milli[r] / 1000.0;
}

static const char *const daemon_words[] = {
	[VIEW_DAEMON_UNKNOWN] = "unknown", [VIEW_DAEMON_TICKING] = "ticking",
	[VIEW_DAEMON_STOPPED] = "stopped", [VIEW_DAEMON_SILENT] = "silent",
};

static void print_daemon(const struct view *v, FILE *out)
{
	double age;
	enum view_daemon st = view_daemon(v, &age);
	unsigned pid = v->daemon.pid;

	switch (st) {
	case VIEW_DAEMON_TICKING:
		fprintf(out, "daemon pid %u  ticking every %u ms, last tick %.1f s ago\n", pid,
			v->daemon.tick_ms, age);
		break;
	case VIEW_DAEMON_STOPPED:
		fprintf(out, "daemon pid %u  STOPPED %.0f s ago: nothing decides; the data path steers "
			     "with the last decisions\n", pid, age);
		break;
	case VIEW_DAEMON_SILENT:
		fprintf(out, "daemon pid %u  SILENT for %.0f s (killed, crashed or hung): nothing decides; "
			     "the data path steers with the last decisions\n", pid, age);
		break;
	default:
		fprintf(out, "daemon unknown (no heartbeat)\n");
	}
}

void cli_print_table(const struct view *v, const char *name, FILE *out)
{
	char addr[64], baddr[64];
	double ceiling = 0;

	print_daemon(v, out);
	for (int i = 0; i < v->n; i++) {
		const struct view_service *s = &v->svcs[i];

		if (name && strcmp(name, s->state.name))
			continue;
		fprintf(out, "service %s  %s  active %u (%s)  %s  failovers %u  failbacks %u  backoff %u%s\n",
			s->state.name, cfg_format_endpoint(&s->address, addr, sizeof(addr)), s->svc.active,
			s->svc.active < s->svc.n_backends
				? cfg_format_endpoint(&s->be[s->svc.active].ep, baddr, sizeof(baddr)) : "?",
			s->ctl.mode == FS_MODE_FORCED ? "FORCED" : "auto", s->state.failovers,
			s->state.failbacks, s->state.backoff_level,
			s->state.all_down ? "  ALL BACKENDS LOOK DOWN" : "");
		if (view_failback_capped(v, s, &ceiling))
			fprintf(out, "   no automatic failback for now: backend 0's P(up) can reach at most %.6f "
				     "as its model stands, below failback_threshold %.6f ('failsteer failback %s' "
				     "moves back now)\n", ceiling, ppb(s->be[0].model.good_threshold_ppb), s->state.name);
		fprintf(out, "   # %-22s %9s %8s %8s %8s %8s %8s %8s %8s %8s %10s %10s %10s %10s %9s\n",
			"backend", "P(down)", "att/s", "est/s", "rst/s", "tmo/s", "icmp/s", "probe/s",
			"p50 ms", "p99 ms", "P(up>dn)", "P(dn>up)", "MTBF s", "MTTR s", "avail");
		for (int b = 0; b < s->svc.n_backends; b++) {
			const struct view_backend *be = &s->be[b];

			fprintf(out, "  %c%d %-22s %9.6f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.2f %8.2f %10.2e %10.2e %10.0f %10.1f %9.6f\n",
				b == s->svc.active ? '*' : ' ', b, cfg_format_endpoint(&be->ep, addr, sizeof(addr)),
				ppb(be->model.p_down_ppb), rate(be, FS_RATE_ATTEMPTS), rate(be, FS_RATE_ESTABLISHED),
				rate(be, FS_RATE_RESETS), rate(be, FS_RATE_TIMEOUTS), rate(be, FS_RATE_ICMP),
				rate(be, FS_RATE_PROBE_OK) + rate(be, FS_RATE_PROBE_FAIL),
				stats_latency_quantile(be->traffic.latency_hist, 0.5) / 1000,
				stats_latency_quantile(be->traffic.latency_hist, 0.99) / 1000,
				ppb(be->model.trans_ppb[0][1]), ppb(be->model.trans_ppb[1][0]),
				be->model.mtbf_ms / 1e3, be->model.mttr_ms / 1e3, ppb(be->model.availability_ppb));
		}
	}
	fprintf(out, "flows created %llu, misses %llu, rejected resets %llu\n",
		(unsigned long long)v->global.flows_created, (unsigned long long)v->global.flow_misses,
		(unsigned long long)v->global.rst_rejected);
}

void cli_print_json(const struct view *v, const char *name, FILE *out)
{
	static const char *const rate_names[FS_RATE_NR] = {
		"attempts", "established", "resets", "timeouts", "icmp_errors", "probes_ok",
		"probes_failed", "retried",
	};
	char addr[64];
	bool first = true;
	double age;
	enum view_daemon st = view_daemon(v, &age);

	fprintf(out, "{\"daemon\":{\"state\":\"%s\",\"pid\":%u,\"tick_ms\":%u,\"last_tick_age_s\":%.3f,"
		     "\"started_ms\":%llu,\"ticks\":%llu},\"services\":[",
		daemon_words[st], v->daemon.pid, v->daemon.tick_ms, st == VIEW_DAEMON_UNKNOWN ? 0 : age,
		(unsigned long long)v->daemon.started_ms, (unsigned long long)v->daemon.ticks);
	for (int i = 0; i < v->n; i++) {
		const struct view_service *s = &v->svcs[i];

		if (name && strcmp(name, s->state.name))
			continue;
		/* Names and addresses need no escaping: the config admits no quotes or backslashes. */
		fprintf(out, "%s{\"name\":\"%s\",\"address\":\"%s\",\"active\":%u,\"mode\":\"%s\","
			     "\"failovers\":%u,\"failbacks\":%u,\"backoff_level\":%u,\"all_down\":%s,"
			     "\"failback_capped\":%s,\"backends\":[",
			first ? "" : ",", s->state.name, cfg_format_endpoint(&s->address, addr, sizeof(addr)),
			s->svc.active, s->ctl.mode == FS_MODE_FORCED ? "forced" : "auto", s->state.failovers,
			s->state.failbacks, s->state.backoff_level, s->state.all_down ? "true" : "false",
			view_failback_capped(v, s, NULL) ? "true" : "false");
		first = false;
		for (int b = 0; b < s->svc.n_backends; b++) {
			const struct view_backend *be = &s->be[b];
			const struct fs_backend_stats *st = &be->stats;
			double c = view_up_ceiling(v, be);
			char ceiling[32] = "null"; /* no model saved */

			if (c >= 0)
				snprintf(ceiling, sizeof(ceiling), "%.9f", c);

			fprintf(out, "%s{\"index\":%d,\"address\":\"%s\",\"p_down\":%.9f,"
				     "\"transitions\":{\"up_up\":%.9f,\"up_down\":%.9f,\"down_up\":%.9f,\"down_down\":%.9f},"
				     "\"mtbf_s\":%.3f,\"mttr_s\":%.3f,\"availability\":%.9f,\"fail_up\":%.9f,"
				     "\"p_up_ceiling\":%s,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,\"rates\":{",
				b ? "," : "", b, cfg_format_endpoint(&be->ep, addr, sizeof(addr)),
				ppb(be->model.p_down_ppb), ppb(be->model.trans_ppb[0][0]),
				ppb(be->model.trans_ppb[0][1]), ppb(be->model.trans_ppb[1][0]),
				ppb(be->model.trans_ppb[1][1]), be->model.mtbf_ms / 1e3, be->model.mttr_ms / 1e3,
				ppb(be->model.availability_ppb), ppb(be->model.fail_up_ppb), ceiling,
				stats_latency_quantile(be->traffic.latency_hist, 0.5) / 1000,
				stats_latency_quantile(be->traffic.latency_hist, 0.99) / 1000);
			for (int r = 0; r < FS_RATE_NR; r++)
				fprintf(out, "%s\"%s\":%.3f", r ? "," : "", rate_names[r], rate(be, r));
			fprintf(out, "},\"totals\":{\"attempts\":%llu,\"syn_retransmits\":%llu,\"established\":%llu,"
				     "\"resets\":%llu,\"connect_refused\":%llu,\"timeouts\":%llu,\"icmp_errors\":%llu,"
				     "\"retried\":%llu,\"packets_to\":%llu,\"packets_from\":%llu}}",
				(unsigned long long)st->attempts, (unsigned long long)st->syn_retrans,
				(unsigned long long)st->established, (unsigned long long)st->resets,
				(unsigned long long)st->resets_connect, (unsigned long long)st->timeouts,
				(unsigned long long)st->icmp_errors, (unsigned long long)st->retried,
				(unsigned long long)be->traffic.pkts_to, (unsigned long long)be->traffic.pkts_from);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "],\"flows_created\":%llu,\"flow_misses\":%llu,\"rst_rejected\":%llu}\n",
		(unsigned long long)v->global.flows_created, (unsigned long long)v->global.flow_misses,
		(unsigned long long)v->global.rst_rejected);
}

static int open_view(const char *pin_path, struct fs_maps *m, struct view *v)
{
	char err[512];
	int rc;

	rc = maps_open_pinned(pin_path, m, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "failsteer: %s\n", err);
		return EXIT_RUNTIME;
	}
	rc = view_read(m, v);
	if (rc) {
		fprintf(stderr, "failsteer: reading %s: %s\n", pin_path, strerror(-rc));
		maps_close(m);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

int cli_status(const char *pin_path, const char *name, bool json, bool watch)
{
	struct fs_maps m;
	struct view v;
	int rc;

	do {
		rc = open_view(pin_path, &m, &v);
		if (rc)
			return rc;
		if (name && !view_find(&v, name)) {
			fprintf(stderr, "failsteer: no service '%s' under %s\n", name, pin_path);
			view_free(&v);
			maps_close(&m);
			return EXIT_USAGE;
		}
		if (watch && !json)
			printf("\033[H\033[2J");
		if (json)
			cli_print_json(&v, name, stdout);
		else
			cli_print_table(&v, name, stdout);
		fflush(stdout);
		view_free(&v);
		maps_close(&m);
		if (watch)
			sleep(1);
	} while (watch);
	return EXIT_OK;
}

/* Writes the operator's choice where both the data path and the daemon see it at once. */
static int set_mode(const char *pin_path, const char *name, __u32 mode, const char *backend)
{
	struct fs_service_ctl ctl = { .mode = mode };
	const struct view_service *s;
	struct fs_service svc;
	struct fs_maps m;
	struct view v;
	struct timespec ts;
	int rc, idx = -1;

	rc = open_view(pin_path, &m, &v);
	if (rc)
		return rc;
	s = view_find(&v, name);
	if (!s) {
		fprintf(stderr, "failsteer: no service '%s' under %s\n", name, pin_path);
		rc = EXIT_USAGE;
		goto out;
	}
	if (mode == FS_MODE_FORCED) {
		struct fs_endpoint ep;
		char *end;

		if (!backend && s->svc.n_backends < 2) {
			fprintf(stderr, "failsteer: service '%s' has a single backend: nothing to fail over to\n",
				name);
			rc = EXIT_USAGE;
			goto out;
		} else if (!backend) {
			/* The first backup the model does not believe down, else the first. */
			idx = 1;
			for (int b = s->svc.n_backends - 1; b >= 1; b--)
				if (s->be[b].model.p_down_ppb < FS_PPB / 2)
					idx = b;
		} else if (!cfg_parse_endpoint(backend, &ep)) {
			for (int b = 0; b < s->svc.n_backends; b++)
				if (!memcmp(&s->be[b].ep, &ep, sizeof(ep)))
					idx = b;
		} else {
			long x = strtol(backend, &end, 10);

			if (!*end && end != backend && x >= 0 && x < s->svc.n_backends)
				idx = (int)x;
		}
		if (idx < 0) {
			fprintf(stderr, "failsteer: service '%s' has no backend '%s' (give an index 0..%d or an address)\n",
				name, backend, s->svc.n_backends - 1);
			rc = EXIT_USAGE;
			goto out;
		}
		ctl.forced_idx = (__u32)idx;
	}
	/* Steer new connections right away, even with no daemon running. This copy of the
	 * entry may miss a change the daemon makes meanwhile (a down mask, a route): the
	 * operator's command goes to service_ctl after it, and a daemon that sees the command
	 * writes the whole entry again from its own state. */
	if (idx >= 0 && !bpf_map_lookup_elem(m.services, &s->address, &svc)) {
		svc.active = (__u8)idx;
		if (bpf_map_update_elem(m.services, &s->address, &svc, BPF_EXIST)) {
			fprintf(stderr, "failsteer: writing %s/%s: %s\n", pin_path, FS_MAP_SERVICES, strerror(errno));
			rc = EXIT_RUNTIME;
			goto out;
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ctl.changed_ms = (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
	if (bpf_map_update_elem(m.service_ctl, &s->svc.svc_id, &ctl, BPF_ANY)) {
		fprintf(stderr, "failsteer: writing %s/%s: %s\n", pin_path, FS_MAP_SERVICE_CTL, strerror(errno));
		rc = EXIT_RUNTIME;
		goto out;
	}
	if (mode == FS_MODE_FORCED)
		printf("service %s: forced to backend %d; 'failsteer auto %s' returns to automatic decisions\n",
		       name, idx, name);
	else
		printf("service %s: automatic decisions\n", name);
out:
	view_free(&v);
	maps_close(&m);
	return rc;
}

int cli_failover(const char *pin_path, const char *name, const char *backend)
{
	return set_mode(pin_path, name, FS_MODE_FORCED, backend);
}

int cli_failback(const char *pin_path, const char *name)
{
	return set_mode(pin_path, name, FS_MODE_FORCED, "0");
}

int cli_auto(const char *pin_path, const char *name)
{
	return set_mode(pin_path, name, FS_MODE_AUTO, NULL);
}

int cli_detach(const char *pin_path, bool force)
{
	char err[512];
	int n = loader_detach(pin_path, force, err, sizeof(err));

	if (n < 0) {
		fprintf(stderr, "failsteer: %s\n", err);
		return EXIT_RUNTIME;
	}
	printf("removed %d failsteer program(s) from the TC hooks of this network namespace (tcx links, "
	       "clsact filters) and the pins under %s\n", n, pin_path);
	return EXIT_OK;
}
