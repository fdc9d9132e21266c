/* Bulk array-map access (user/maparray.c) against real kernel maps: reads and writes across
 * chunk boundaries, per-CPU sums, write-back of only the changed elements, and mapping an
 * mmapable array into memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maparray.h"

#define N 2500 /* more than two of maparray's chunks */

struct val {
	__u64 a, b;
};

static int fd = -1;
static struct val in[N], shadow[N], out[N];

static int setup(void **state)
{
	(void)state;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fs_test_ma", sizeof(__u32), sizeof(struct val), N,
			    NULL);
	return fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	close(fd);
	return 0;
}

static void test_write_read_roundtrip(void **state)
{
	(void)state;
	for (__u32 i = 0; i < N; i++)
		in[i] = (struct val){ i, (__u64)i * 7 };
	assert_int_equal(maparray_write(fd, N, sizeof(struct val), in), 0);
	memset(out, 0xff, sizeof(out));
	assert_int_equal(maparray_read(fd, N, sizeof(struct val), out), 0);
	assert_memory_equal(out, in, sizeof(in));
}

static void test_write_changed_writes_only_changes(void **state)
{
	struct val v;
	__u32 k;

	(void)state;
	for (__u32 i = 0; i < N; i++)
		in[i] = (struct val){ i, 1 };
	assert_int_equal(maparray_write(fd, N, sizeof(struct val), in), 0);
	memcpy(shadow, in, sizeof(in));
	assert_int_equal(maparray_write_changed(fd, N, sizeof(struct val), in, shadow), 0);

	/* Changes on both sides of the chunk boundaries are written, and only those. */
	in[0].b = 100;
	in[1023].b = 101;
	in[1024].b = 102;
	in[N - 1].b = 103;
	assert_int_equal(maparray_write_changed(fd, N, sizeof(struct val), in, shadow), 4);
	assert_memory_equal(shadow, in, sizeof(in));
	assert_int_equal(maparray_read(fd, N, sizeof(struct val), out), 0);
	assert_memory_equal(out, in, sizeof(in));

	/* An element changed behind the shadow's back is not rewritten: the shadow is what
	 * the map was last given, and nothing else writes these maps. */
	k = 5;
	v = (struct val){ 9, 9 };
	assert_int_equal(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
	assert_int_equal(maparray_write_changed(fd, N, sizeof(struct val), in, shadow), 0);
	assert_int_equal(bpf_map_lookup_elem(fd, &k, &v), 0);
	assert_int_equal(v.a, 9);

	/* Every element changed: all written, in chunks. */
	for (__u32 i = 0; i < N; i++)
		in[i].a += 1000;
	assert_int_equal(maparray_write_changed(fd, N, sizeof(struct val), in, shadow), N);
	assert_int_equal(maparray_read(fd, N, sizeof(struct val), out), 0);
	assert_memory_equal(out, in, sizeof(in));
}

static void test_percpu_sum(void **state)
{
	int ncpu = libbpf_num_possible_cpus(), pfd;
	struct val *per, sum[3];

	(void)state;
	assert_true(ncpu > 0);
	pfd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fs_test_pc", sizeof(__u32),
			     sizeof(struct val), 3, NULL);
	assert_true(pfd >= 0);
	per = calloc((size_t)ncpu, sizeof(*per));
	assert_non_null(per);
	for (__u32 k = 0; k < 3; k++) {
		for (int c = 0; c < ncpu; c++)
			per[c] = (struct val){ k + 1, (__u64)c };
		assert_int_equal(bpf_map_update_elem(pfd, &k, per, BPF_ANY), 0);
	}
	assert_int_equal(maparray_read_percpu_sum(pfd, 3, sizeof(struct val), sum), 0);
	for (__u32 k = 0; k < 3; k++) {
		assert_int_equal(sum[k].a, (__u64)(k + 1) * (__u64)ncpu);
		assert_int_equal(sum[k].b, (__u64)ncpu * (__u64)(ncpu - 1) / 2);
	}
	free(per);
	close(pfd);
}

static void test_mmap_shares_elements(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
	struct val v, *mem;
	size_t len = 0;
	__u32 k = N - 1;
	int mfd;

	(void)state;
	mfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fs_test_mm", sizeof(__u32), sizeof(struct val), N,
			     &opts);
	assert_true(mfd >= 0);
	mem = maparray_mmap(mfd, sizeof(struct val), true, &len);
	assert_non_null(mem);
	assert_true(len >= N * sizeof(struct val) && len % (size_t)sysconf(_SC_PAGESIZE) == 0);
	/* What the kernel side writes is seen in memory, and the other way round. */
	v = (struct val){ 41, 42 };
	assert_int_equal(bpf_map_update_elem(mfd, &k, &v, BPF_ANY), 0);
	assert_int_equal(mem[N - 1].a, 41);
	assert_int_equal(mem[N - 1].b, 42);
	mem[3].b = 7;
	k = 3;
	assert_int_equal(bpf_map_lookup_elem(mfd, &k, &v), 0);
	assert_int_equal(v.b, 7);
	munmap(mem, len);
	/* Read-only: the kernel side's writes show. */
	mem = maparray_mmap(mfd, sizeof(struct val), false, &len);
	assert_non_null(mem);
	assert_int_equal(mem[3].b, 7);
	v.b = 8;
	assert_int_equal(bpf_map_update_elem(mfd, &k, &v, BPF_ANY), 0);
	assert_int_equal(mem[3].b, 8);
	munmap(mem, len);
	close(mfd);

	/* Not mmapable, or another value size: refused, not mapped wrong. */
	assert_null(maparray_mmap(fd, sizeof(struct val), true, &len));
	assert_int_equal(errno, EINVAL);
	mfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fs_test_mm", sizeof(__u32), sizeof(struct val), N,
			     &opts);
	assert_true(mfd >= 0);
	assert_null(maparray_mmap(mfd, sizeof(__u64), false, &len));
	assert_int_equal(errno, EINVAL);
	close(mfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read_roundtrip),
		cmocka_unit_test(test_write_changed_writes_only_changes),
		cmocka_unit_test(test_percpu_sum),
		cmocka_unit_test(test_mmap_shares_elements),
	};

	if (geteuid() != 0) {
		printf("SKIP: test_maparray needs root (CAP_BPF)\n");
		return 77;
	}
	return cmocka_run_group_tests_name("maparray", tests, setup, teardown);
}
