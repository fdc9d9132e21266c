/* Array maps read and written in bulk (one syscall per chunk, not per element). */
#ifndef FS_MAPARRAY_H
#define FS_MAPARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Reads elements [0, n) of an array map into out (n * value_size bytes). 0 or -errno. */
int maparray_read(int fd, __u32 n, size_t value_size, void *out);
/* Writes elements [0, n) from in. 0 or -errno. */
int maparray_write(int fd, __u32 n, size_t value_size, const void *in);
/* Writes the elements of in [0, n) that differ from shadow (what the map was last given),
 * then copies them into shadow. Returns how many were written, or -errno. */
int maparray_write_changed(int fd, __u32 n, size_t value_size, const void *in, void *shadow);
/* Per-CPU array: reads [0, n) and sums every CPU's u64 words into out. 0 or -errno. */
int maparray_read_percpu_sum(int fd, __u32 n, size_t value_size, void *out);
/* Maps an array map created with BPF_F_MMAPABLE into memory, shared with the kernel:
 * element i at i * value_size (value_size a multiple of 8), writable or read-only. Reads
 * (and writes) through it need no system call. Returns the mapping and its length in *len,
 * or NULL with errno set (EINVAL for a map that is not an mmapable array of value_size). */
void *maparray_mmap(int fd, size_t value_size, bool writable, size_t *len);

#endif
