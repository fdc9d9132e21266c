/* Flow-table policy of the daemon: when an entry the data path left may be swept, and the
 * walk of the table that sweeps them. */
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
/* A connection attempt never answered (a blackholed or refused SYN, a spoofed one even if
 * a backend answered it: FS_FL_SYN_ONLY): each entry goes this long after its own last
 * packet (for the FWD one the SYN that created or moved it: retransmissions of that SYN do
 * not refresh it), longer than a client retransmits its SYN (127 s with Linux's default
 * tcp_syn_retries of 6), instead of after the idle timeout, so that a dead backend's failed
 * attempts and spoofed SYNs do not crowd live connections out of the table. */
#define FLOW_UNANSWERED_LINGER_NS (130ull * 1000000000ull)

/* True if entry f, last used at f->last_ns, is to be swept at now_ns (both CLOCK_MONOTONIC)
 * when idle entries are swept after idle_ns. */
bool flow_sweepable(const struct fs_flow *f, __u64 now_ns, __u64 idle_ns);

/* Entries one batch of a walk reads. */
#define FLOW_SWEEP_BATCH 1024

/* A walk of the flow table that deletes the entries flow_sweepable() gives up, done a few
 * batches at a time so that a large table never holds up a detector tick. Zero it to start. */
struct flow_sweep {
	bool walking;             /* a walk is under way; pos is where it goes on */
	bool have_pos;
	struct fs_flow_key pos;   /* the kernel's batch position (a bucket) */
	__u64 live;               /* entries left in place by this walk so far */
	__u64 swept_total;        /* entries deleted, every walk of this struct */
};

/* Goes on with the walk of flows_fd (a new one if none is under way) for at most
 * max_batches batches, and no batch more once CLOCK_MONOTONIC passes stop_ns (0: no such
 * limit; one batch at least), deleting sweepable entries that are still as read. Returns 1
 * when the walk reached the end of the table (live then holds its total until the next
 * walk begins), 0 if more remains, or -errno (the walk is abandoned). */
int flow_sweep_step(struct flow_sweep *w, int flows_fd, __u64 now_ns, __u64 idle_ns,
		    int max_batches, __u64 stop_ns);

#endif
