/* Prometheus metrics: text exposition rendered from the pinned maps, served over HTTP by
 * libmicrohttpd in its own thread, so a slow scraper never touches the detector tick; and
 * /healthz, which fails when the detector has stopped ticking. */
#ifndef FS_METRICS_H
#define FS_METRICS_H

#include <stdio.h>

#include "failsteer/failsteer.h"
#include "view.h"

/* What only the daemon knows; published once per tick. */
struct metrics_daemon {
	__u64 ticks;
	double tick_seconds;    /* cost of the last tick */
	__u64 flows_live;       /* flow entries at the last sweep */
	__u64 flow_table_size;
	__u64 evictions;        /* flow entries lost to LRU eviction since the daemon started */
	__u64 probes_in_flight;
};

struct metrics;

/* Starts the HTTP server on listen ("ADDR:PORT"; "" = no server, updates are kept only);
 * tick_ms, the detector period (fixed while the daemon runs), tells /healthz when the
 * detector is late. Returns NULL with err filled on failure. */
struct metrics *metrics_new(const char *listen, const char *pin_path, unsigned tick_ms, char *err,
			    size_t len);
void metrics_update_daemon(struct metrics *m, const struct metrics_daemon *md);
void metrics_free(struct metrics *m);

/* What /healthz answers at now_ns (CLOCK_MONOTONIC) when the detector last ticked at
 * last_tick_ns (0: not yet) with period tick_ms: 200 while that is at most
 * max(3 s, 10 periods) ago, else 503; msg says which. */
unsigned metrics_health(__u64 now_ns, __u64 last_tick_ns, unsigned tick_ms, char *msg, size_t len);

/* Writes the exposition of v (and md, if given) to out. */
void metrics_render(const struct view *v, const struct metrics_daemon *md, FILE *out);

#endif
