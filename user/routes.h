/* Route lookups over rtnetlink: which interface the kernel would send a packet to an
 * address through. Host mode needs it: the egress program must redirect a rewritten packet
 * to the backend's interface, and the kernel's FIB helper cannot find it from another one. */
#ifndef FS_ROUTES_H
#define FS_ROUTES_H

#include "failsteer/failsteer.h"

/* Returns the output interface index for dst (> 0), or -errno (no route: -ENETUNREACH). */
int route_oif(const struct fs_endpoint *dst);

/* A batch of lookups (every backend, at a refresh): one socket, and each address asked
 * once however many backends share it. Make a new one per batch: it never forgets. */
struct route_batch;
struct route_batch *route_batch_new(void);
/* route_oif(dst), answered from the batch when dst's address was asked before. */
int route_batch_oif(struct route_batch *b, const struct fs_endpoint *dst);
void route_batch_free(struct route_batch *b);

#endif
