/* Reading the data path's per-CPU counters as totals. */
#ifndef FS_STATS_H
#define FS_STATS_H

#include <stddef.h>

#include "failsteer/failsteer.h"

/* Sum of every CPU's slot of backend id in backend_stats. Returns 0 or -errno. */
int stats_read_backend(int map_fd, __u32 id, struct fs_backend_stats *out);
/* The same for backend_traffic. */
int stats_read_traffic(int map_fd, __u32 id, struct fs_backend_traffic *out);

/* Zeroes every CPU's slot of element id of a per-CPU array map whose values are
 * value_size bytes (a multiple of 8). Returns 0 or -errno. */
int stats_clear(int map_fd, __u32 id, size_t value_size);

/* cur - prev of a counter that only grows; 0 if a read saw it otherwise (a backend id
 * cleared and reused, a restart that took prev from another read). */
static inline double stats_grew(__u64 cur, __u64 prev)
{
	return cur > prev ? (double)(cur - prev) : 0;
}

/* Sum of every CPU's slot of global_stats. Returns 0 or -errno. */
int stats_read_global(int map_fd, struct fs_global_stats *out);

/* Latency (microseconds) below which a fraction q of the histogram's samples fall,
 * interpolated in the log2 bucket; 0 without samples. */
double stats_latency_quantile(const __u64 hist[FS_LAT_BUCKETS], double q);

#endif
