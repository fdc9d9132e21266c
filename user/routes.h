/* Route lookups over rtnetlink: which interface the kernel would send a packet to an
 * address through. Host mode needs it: the egress program must redirect a rewritten packet
 * to the backend's interface, and the kernel's FIB helper cannot find it from another one. */
#ifndef FS_ROUTES_H
#define FS_ROUTES_H

#include "failsteer/failsteer.h"

/* Returns the output interface index for dst (> 0), or -errno (no route: -ENETUNREACH). */
int route_oif(const struct fs_endpoint *dst);

#endif
