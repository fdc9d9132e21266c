/* Flow-table policy of the daemon; see flows.h. */
#include "flows.h"

bool flow_sweepable(const struct fs_flow *f, __u64 now_ns, __u64 idle_ns)
{
	/* A clock read on another CPU may be a little ahead of ours. */
	__u64 age = now_ns > f->last_ns ? now_ns - f->last_ns : 0;

	if (age > idle_ns)
		return true;
	if (f->flags & (FS_FL_FIN | FS_FL_RST | FS_FL_PEER_CLOSED))
		return age > FLOW_CLOSE_LINGER_NS;
	if (f->dir == FS_DIR_REV && f->state == FS_ST_MOVED)
		return age > FLOW_MOVED_LINGER_NS;
	return false;
}
