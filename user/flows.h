/* Flow-table policy of the daemon: when an entry the data path left may be swept. */
#ifndef FS_FLOWS_H
#define FS_FLOWS_H

#include <stdbool.h>

#include "failsteer/failsteer.h"

/* A connection that did not close cleanly (a reset, one FIN, a lost last ACK): each of its
 * two entries goes this long after its own last packet. */
#define FLOW_CLOSE_LINGER_NS (30ull * 1000000000ull)
/* The entry a zero-error move leaves for the backend the connection left, to drop that
 * backend's late answers: longer than a server retransmits its SYN-ACK (63 s with Linux's
 * default tcp_synack_retries of 5). */
#define FLOW_MOVED_LINGER_NS (120ull * 1000000000ull)

/* True if entry f, last used at f->last_ns, is to be swept at now_ns (both CLOCK_MONOTONIC)
 * when idle entries are swept after idle_ns. */
bool flow_sweepable(const struct fs_flow *f, __u64 now_ns, __u64 idle_ns);

#endif
