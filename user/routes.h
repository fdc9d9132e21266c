/* Route lookups over rtnetlink: which interface the kernel would send a packet to an
 * address through. Host mode needs it: the egress program must redirect a rewritten packet
 * to the backend's interface, and the kernel's FIB helper cannot find it from another one. */
#ifndef FS_ROUTES_H
#define FS_ROUTES_H

#include "failsteer/failsteer.h"

#include <stdbool.h>

/* Returns the output interface index for dst (> 0), or -errno (no route: -ENETUNREACH or
 * -EHOSTUNREACH; anything else: the question went unanswered). */
int route_oif(const struct fs_endpoint *dst);
/* True when oif, from route_oif(), is an answer about the route (an interface or none). */
bool route_answer(int oif);

/* A batch of lookups (every backend, at a refresh): one socket, and each address asked
 * once however many backends share it (as long as it keeps its slot in a memo of 1024).
 * Make a new one per batch: it never forgets. */
struct route_batch;
struct route_batch *route_batch_new(void);
/* route_oif(dst), answered from the batch when dst's address was asked before. */
int route_batch_oif(struct route_batch *b, const struct fs_endpoint *dst);
/* How many questions the batch sent to the kernel. */
unsigned route_batch_lookups(const struct route_batch *b);
void route_batch_free(struct route_batch *b);

#endif
