/* Active TCP probes: non-blocking connects driven by epoll, marked so they are never steered. */
#ifndef FS_PROBES_H
#define FS_PROBES_H

#include <stdbool.h>
#include <stddef.h>

#include "failsteer/failsteer.h"

struct probes;

/* Result callback: ok is true if the TCP handshake completed before the timeout; ep is
 * where the probe went. */
typedef void (*probe_done_fn)(void *ctx, __u32 tag, const struct fs_endpoint *ep, bool ok);

/* flows_fd: the data path's flow table, whose steered connections' ports probes keep clear
 * of (-1: none). Source ports come from this network namespace's ephemeral range (read
 * again at most once a second). */
struct probes *probes_new(int flows_fd);
void probes_free(struct probes *p);

/* Starts one connect to ep; tag comes back in the callback. Returns 0 or -errno: -EBUSY
 * with every slot taken. A connect the kernel refuses at once (no route) is reported
 * through the callback as a failed probe too; a local failure (no socket) is not: it says
 * nothing of the backend. */
int probes_start(struct probes *p, const struct fs_endpoint *ep, unsigned timeout_ms, __u32 tag,
		 double now_s, probe_done_fn done, void *ctx);
/* Collects finished and expired probes without blocking; calls done for each. */
void probes_poll(struct probes *p, double now_s, probe_done_fn done, void *ctx);
/* Probes in flight (to bound concurrency), and how many more may start. */
int probes_in_flight(const struct probes *p);
int probes_room(const struct probes *p);

#endif
