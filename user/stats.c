/* Reading the data path's per-CPU counters as totals. */
#include "stats.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Per-CPU map values as u64 words: sums nr_words words of every CPU into out. */
static int sum_percpu(int map_fd, __u32 key, __u64 *out, size_t nr_words)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	int err = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, nr_words * sizeof(__u64));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &key, vals)) {
		err = -errno;
		goto out;
	}
	memset(out, 0, nr_words * sizeof(__u64));
	for (int c = 0; c < ncpu; c++)
		for (size_t w = 0; w < nr_words; w++)
			out[w] += vals[(size_t)c * nr_words + w];
out:
	free(vals);
	return err;
}

int stats_read_backend(int map_fd, __u32 id, struct fs_backend_stats *out)
{
	_Static_assert(sizeof(*out) % 8 == 0, "u64 words");
	return sum_percpu(map_fd, id, (__u64 *)out, sizeof(*out) / 8);
}

int stats_read_traffic(int map_fd, __u32 id, struct fs_backend_traffic *out)
{
	_Static_assert(sizeof(*out) % 8 == 0, "u64 words");
	return sum_percpu(map_fd, id, (__u64 *)out, sizeof(*out) / 8);
}

int stats_clear(int map_fd, __u32 id, size_t value_size)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	void *zeros;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	zeros = calloc((size_t)ncpu, value_size);
	if (!zeros)
		return -ENOMEM;
	if (bpf_map_update_elem(map_fd, &id, zeros, BPF_ANY))
		err = -errno;
	free(zeros);
	return err;
}

int stats_read_global(int map_fd, struct fs_global_stats *out)
{
	_Static_assert(sizeof(*out) % 8 == 0, "u64 words");
	return sum_percpu(map_fd, 0, (__u64 *)out, sizeof(*out) / 8);
}

double stats_latency_quantile(const __u64 hist[FS_LAT_BUCKETS], double q)
{
	__u64 total = 0, seen = 0;

	for (int i = 0; i < FS_LAT_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	for (int i = 0; i < FS_LAT_BUCKETS; i++) {
		double lo = i ? (double)(1ull << i) : 0, hi = (double)(1ull << (i + 1));

		if (hist[i] && (double)(seen + hist[i]) >= q * (double)total) {
			double frac = (q * (double)total - (double)seen) / (double)hist[i];

			return lo + (hi - lo) * (frac < 0 ? 0 : frac);
		}
		seen += hist[i];
	}
	return (double)(1ull << FS_LAT_BUCKETS);
}
