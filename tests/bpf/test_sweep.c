/* The daemon's walk of the flow table (user/flows.c, flow_sweep_step) against a real LRU
 * hash map as the loader creates it: a walk in small steps goes on where the last one
 * stopped, deletes exactly the sweepable entries, counts the rest, and starts over when
 * done; an error abandons the walk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <bpf/bpf.h>

#include "flows.h"

/* Room to spare: each CPU the test runs on takes LRU nodes into a list of its own. */
#define TABLE 65536
#define N 5000                     /* almost five batches */
#define NOW_NS (10000ull * 1000000000ull)
#define IDLE_NS (600ull * 1000000000ull)
#define S_NS 1000000000ull

static int fd = -1;

static struct fs_flow_key key_of(int i)
{
	struct fs_flow_key k = { .family = FS_AF_INET };

	k.src[0] = htonl(0xc6120000u | (i & 0xffff)); /* 198.18.x.y */
	k.dst[0] = htonl(0xc6120209u);
	k.sport = htons((uint16_t)(1024 + i));
	k.dport = htons(8080);
	return k;
}

/* Entry i: one in five closed 31 s ago, one in seven idle for longer than IDLE_NS, one in
 * eleven a moved-away tombstone older than its linger, one in thirteen an attempt never
 * answered, older than its linger; the rest in use. */
static struct fs_flow flow_of(int i, bool *sweepable)
{
	struct fs_flow f = { .dir = FS_DIR_FWD, .syn_ns = NOW_NS - 40 * S_NS };

	*sweepable = true;
	if (i % 5 == 0) {
		f.flags = FS_FL_FIN;
		f.last_ns = NOW_NS - 31 * S_NS;
	} else if (i % 7 == 0) {
		f.last_ns = NOW_NS - IDLE_NS - S_NS;
	} else if (i % 11 == 0) {
		f.dir = FS_DIR_REV;
		f.state = FS_ST_MOVED;
		f.last_ns = NOW_NS - 121 * S_NS;
	} else if (i % 13 == 0) {
		/* A connection attempt never answered, each way. */
		f.dir = i % 2 ? FS_DIR_REV : FS_DIR_FWD;
		f.state = i % 2 ? FS_ST_SYN_SENT : 0;
		f.flags = i % 2 ? FS_FL_TIMED_OUT : FS_FL_SYN_ONLY;
		f.last_ns = NOW_NS - 131 * S_NS;
	} else {
		*sweepable = false;
		f.flags = i % 2 ? FS_FL_FIN : 0; /* closing, but not long enough ago */
		f.last_ns = NOW_NS - (__u64)(i % 29) * S_NS;
		if (i % 3 == 0) { /* still waiting for an answer */
			f.dir = FS_DIR_REV;
			f.state = FS_ST_SYN_SENT;
			f.flags = FS_FL_TIMED_OUT;
		}
	}
	return f;
}

static int count_entries(void)
{
	struct fs_flow_key k, next;
	int n = 0;

	for (int rc = bpf_map_get_next_key(fd, NULL, &next); !rc;
	     rc = bpf_map_get_next_key(fd, &k, &next)) {
		k = next;
		n++;
	}
	return n;
}

static int fill(void)
{
	int n = 0;

	for (int i = 0; i < N; i++) {
		struct fs_flow_key k = key_of(i);
		bool sweepable;
		struct fs_flow f = flow_of(i, &sweepable);

		assert_int_equal(bpf_map_update_elem(fd, &k, &f, BPF_NOEXIST), 0);
		n += sweepable;
	}
	assert_int_equal(count_entries(), N); /* nothing evicted */
	return n;
}

static int setup(void **state)
{
	(void)state;
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "fs_test_sweep", sizeof(struct fs_flow_key),
			    sizeof(struct fs_flow), TABLE, NULL);
	return fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	close(fd);
	return 0;
}

/* Walks the whole table in steps of (max_batches, stop_ns) that must each read one batch:
 * never more entries seen than batches allow, and the walk done in as many steps. */
static void walk_one_batch_a_step(struct flow_sweep *w, int max_batches, __u64 stop_ns)
{
	int steps = 0, rc;

	do {
		rc = flow_sweep_step(w, fd, NOW_NS, IDLE_NS, max_batches, stop_ns);
		assert_true(rc == 0 || rc == 1);
		assert_true(w->live + w->swept_total <= (__u64)(steps + 1) * FLOW_SWEEP_BATCH);
		steps++;
	} while (rc == 0 && steps < 100);
	assert_int_equal(rc, 1);
	assert_true(steps >= N / FLOW_SWEEP_BATCH);
}

static void test_walk_in_steps(void **state)
{
	struct flow_sweep w = { 0 };
	int sweepable = fill();

	(void)state;
	walk_one_batch_a_step(&w, 1, 0);
	assert_false(w.walking);
	assert_int_equal(w.swept_total, sweepable);
	assert_int_equal(w.live, N - sweepable);
	assert_int_equal(count_entries(), N - sweepable);
	for (int i = 0; i < N; i++) {
		struct fs_flow_key k = key_of(i);
		struct fs_flow got;
		bool gone;

		flow_of(i, &gone);
		assert_int_equal(bpf_map_lookup_elem(fd, &k, &got) != 0, gone);
	}

	/* The next walk starts from the beginning, in one step, and finds nothing to do. */
	assert_int_equal(flow_sweep_step(&w, fd, NOW_NS, IDLE_NS, 100, 0), 1);
	assert_int_equal(w.swept_total, sweepable);
	assert_int_equal(w.live, N - sweepable);
}

/* A step stops after the batch during which its time ran out, however many batches it
 * may take: a large table never holds up the detector's tick. */
static void test_step_stops_in_time(void **state)
{
	struct flow_sweep w = { 0 };
	struct timespec ts;

	(void)state;
	fill();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Up to 100 batches a step, but stop_ns has passed already: one. */
	walk_one_batch_a_step(&w, 100, (__u64)ts.tv_sec * 1000000000ull + 1);
	assert_int_equal(count_entries(), (int)w.live);
}

static void test_error_abandons_walk(void **state)
{
	struct flow_sweep w = { 0 };

	(void)state;
	fill();
	assert_int_equal(flow_sweep_step(&w, fd, NOW_NS, IDLE_NS, 1, 0), 0);
	assert_true(w.walking);
	assert_int_equal(flow_sweep_step(&w, -1, NOW_NS, IDLE_NS, 1, 0), -EBADF);
	assert_false(w.walking);
	/* The next walk starts afresh and completes. */
	assert_int_equal(flow_sweep_step(&w, fd, NOW_NS, IDLE_NS, 100, 0), 1);
	assert_int_equal(count_entries(), (int)w.live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_walk_in_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_step_stops_in_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_abandons_walk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
