/* Zero-error failover, userspace half: when a retrying flow's connect deadline passes (a
 * blackholed backend), re-send the client's stored SYN through the data path, which moves
 * it to the next backend; when no backend is left, fail the client at once with a reset. */
#ifndef FS_RETRY_H
#define FS_RETRY_H

#include <stdbool.h>

#include "failsteer/failsteer.h"
#include "loader.h"

struct retrier;

/* Opens the packet and raw sockets. NULL with err filled on failure. */
struct retrier *retrier_new(const struct fs_maps *maps, char *err, size_t len);
void retrier_free(struct retrier *r);

/* Is the flow of ev still waiting for its first answer? Fills its FWD entry (the backends
 * it tried) if so. Counts stale events. */
bool retrier_still_connecting(struct retrier *r, const struct fs_retry_event *ev, struct fs_flow *fwd);
/* Re-sends the stored SYN into the egress program of interface ifindex. */
int retrier_resend(struct retrier *r, const struct fs_retry_event *ev, int ifindex);
/* Every backend was tried: a reset from the service address ends the client's wait. */
int retrier_reset_client(struct retrier *r, const struct fs_retry_event *ev);

/* Counters for logs and status: SYNs re-sent, clients failed, events that found nothing. */
struct retrier_counts {
	unsigned long long resent, given_up, stale;
	unsigned long long no_syn; /* no usable stored SYN (not kept, or its ring slot reused) */
};
struct retrier_counts retrier_counts(const struct retrier *r);

/* Full checksums of an IP packet holding a TCP header (no payload): exported for tests. */
void retry_fix_checksums(__u8 *ip, __u32 len, __u32 l4_off, __u8 family);

#endif
