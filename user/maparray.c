/* Array maps read and written in bulk; see maparray.h. */
#include "maparray.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK 1024u

/* One batch call over [start, start+cnt); falls back to single lookups where the kernel
 * has no batch support for the map type. */
static int read_chunk(int fd, __u32 start, __u32 cnt, size_t stride, void *out, __u32 *keys)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 in = start - 1, outb, count = cnt;
	int rc;

	/* The batch resumes after the key given as in_batch (generic_map_lookup_batch). */
	rc = bpf_map_lookup_batch(fd, start ? &in : NULL, &outb, keys, out, &count, &opts);
	if (!rc || (errno == ENOENT && count == cnt)) {
		/* Array batches return keys in order from 'start'. */
		return count == cnt ? 0 : -EIO;
	}
	if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP && errno != ENOENT)
		return -errno;
	for (__u32 i = 0; i < cnt; i++) {
		__u32 k = start + i;

		if (bpf_map_lookup_elem(fd, &k, (char *)out + i * stride))
			return -errno;
	}
	return 0;
}

int maparray_read(int fd, __u32 n, size_t value_size, void *out)
{
	__u32 keys[CHUNK];

	for (__u32 s = 0; s < n; s += CHUNK) {
		__u32 cnt = n - s < CHUNK ? n - s : CHUNK;
		int rc = read_chunk(fd, s, cnt, value_size, (char *)out + (size_t)s * value_size, keys);

		if (rc)
			return rc;
	}
	return 0;
}

int maparray_write(int fd, __u32 n, size_t value_size, const void *in)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 keys[CHUNK];

	for (__u32 s = 0; s < n; s += CHUNK) {
		__u32 cnt = n - s < CHUNK ? n - s : CHUNK, count = cnt;
		const char *vals = (const char *)in + (size_t)s * value_size;

		for (__u32 i = 0; i < cnt; i++)
			keys[i] = s + i;
		if (!bpf_map_update_batch(fd, keys, vals, &count, &opts))
			continue;
		for (__u32 i = 0; i < cnt; i++)
			if (bpf_map_update_elem(fd, &keys[i], vals + i * value_size, BPF_ANY))
				return -errno;
	}
	return 0;
}

/* Writes cnt gathered elements: one batch call, or one call each where batches fail. */
static int write_gathered(int fd, __u32 *keys, const char *vals, __u32 cnt, size_t value_size)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = cnt;

	if (!cnt || !bpf_map_update_batch(fd, keys, vals, &count, &opts))
		return 0;
	for (__u32 i = 0; i < cnt; i++)
		if (bpf_map_update_elem(fd, &keys[i], vals + i * value_size, BPF_ANY))
			return -errno;
	return 0;
}

int maparray_write_changed(int fd, __u32 n, size_t value_size, const void *in, void *shadow)
{
	__u32 keys[CHUNK], cnt = 0;
	int written = 0, rc = 0;
	char *vals = malloc(value_size * CHUNK);

	if (!vals)
		return -ENOMEM;
	for (__u32 i = 0; i < n && !rc; i++) {
		const char *v = (const char *)in + (size_t)i * value_size;
		char *sh = (char *)shadow + (size_t)i * value_size;

		if (!memcmp(v, sh, value_size))
			continue;
		keys[cnt] = i;
		memcpy(vals + (size_t)cnt * value_size, v, value_size);
		memcpy(sh, v, value_size);
		written++;
		if (++cnt == CHUNK) {
			rc = write_gathered(fd, keys, vals, cnt, value_size);
			cnt = 0;
		}
	}
	if (!rc)
		rc = write_gathered(fd, keys, vals, cnt, value_size);
	free(vals);
	return rc ? rc : written;
}

int maparray_read_percpu_sum(int fd, __u32 n, size_t value_size, void *out)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t words = value_size / 8, stride = (value_size + 7) / 8 * 8 * (size_t)(ncpu > 0 ? ncpu : 1);
	__u32 keys[CHUNK];
	char *buf;
	int rc = 0;

	if (ncpu <= 0 || value_size % 8)
		return -EINVAL;
	buf = malloc(stride * CHUNK);
	if (!buf)
		return -ENOMEM;
	for (__u32 s = 0; s < n && !rc; s += CHUNK) {
		__u32 cnt = n - s < CHUNK ? n - s : CHUNK;

		rc = read_chunk(fd, s, cnt, stride, buf, keys);
		for (__u32 i = 0; i < cnt && !rc; i++) {
			__u64 *sum = (__u64 *)((char *)out + (size_t)(s + i) * value_size);
			const __u64 *v = (const __u64 *)(buf + i * stride);

			memset(sum, 0, value_size);
			for (int c = 0; c < ncpu; c++)
				for (size_t w = 0; w < words; w++)
					sum[w] += v[(size_t)c * words + w];
		}
	}
	free(buf);
	return rc;
}

void *maparray_mmap(int fd, size_t value_size, bool writable, size_t *len)
{
	struct bpf_map_info info = { 0 };
	__u32 info_len = sizeof(info);
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (bpf_obj_get_info_by_fd(fd, &info, &info_len))
		return NULL;
	if (info.type != BPF_MAP_TYPE_ARRAY || !(info.map_flags & BPF_F_MMAPABLE) ||
	    info.value_size != value_size || value_size % 8 || page <= 0) {
		errno = EINVAL;
		return NULL;
	}
	*len = ((size_t)info.max_entries * value_size + (size_t)page - 1) / (size_t)page * (size_t)page;
	p = mmap(NULL, *len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}
