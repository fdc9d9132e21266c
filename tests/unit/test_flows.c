/* When the daemon sweeps a flow entry: idle ones, connections that did not close cleanly,
 * and the entries zero-error moves leave behind, each after its own time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "flows.h"

#define S 1000000000ull
#define NOW (100000 * S)
#define IDLE (3600 * S)

static struct fs_flow entry(__u8 dir, __u8 state, __u8 flags, __u64 age_ns)
{
	struct fs_flow f = { .dir = dir, .state = state, .flags = flags, .last_ns = NOW - age_ns };

	return f;
}

static void test_live_connection_stays_until_idle(void **state)
{
	struct fs_flow fwd = entry(FS_DIR_FWD, 0, 0, 0), rev = entry(FS_DIR_REV, FS_ST_ESTABLISHED, 0, 0);

	(void)state;
	for (__u64 age = 0; age <= IDLE; age += 600 * S) {
		fwd.last_ns = rev.last_ns = NOW - age;
		assert_false(flow_sweepable(&fwd, NOW, IDLE));
		assert_false(flow_sweepable(&rev, NOW, IDLE));
	}
	fwd.last_ns = rev.last_ns = NOW - IDLE - 1;
	assert_true(flow_sweepable(&fwd, NOW, IDLE));
	assert_true(flow_sweepable(&rev, NOW, IDLE));
}

/* An attempt never answered (REV still in SYN_SENT, both flagged until the client
 * acknowledges its backend; a spoofed SYN a live backend answered: REV established but
 * still flagged), timed out or not, goes 130 s after its last packet, past the client's SYN
 * retries; once answered the connection is an ordinary one. An entry without the flag
 * (answered, or written by an older data path) waits for the idle timeout, but a REV one in
 * SYN_SENT is unanswered whatever wrote it. */
static void test_unanswered_attempt_goes_after_130s(void **state)
{
	const __u8 rev_flags[] = { 0, FS_FL_RETRY, FS_FL_TIMED_OUT, FS_FL_TIMED_OUT | FS_FL_RETRY,
				   FS_FL_SYN_ONLY, FS_FL_SYN_ONLY | FS_FL_TIMED_OUT };
	const __u8 rev_state[] = { FS_ST_SYN_SENT, FS_ST_SYN_SENT, FS_ST_SYN_SENT, FS_ST_SYN_SENT,
				   FS_ST_SYN_SENT, FS_ST_ESTABLISHED };

	(void)state;
	for (unsigned i = 0; i < sizeof(rev_flags); i++) {
		struct fs_flow fwd = entry(FS_DIR_FWD, 0, FS_FL_SYN_ONLY | (rev_flags[i] & FS_FL_RETRY), 130 * S);
		struct fs_flow rev = entry(FS_DIR_REV, rev_state[i], rev_flags[i], 130 * S);

		assert_false(flow_sweepable(&fwd, NOW, IDLE));
		assert_false(flow_sweepable(&rev, NOW, IDLE));
		fwd.last_ns = rev.last_ns = NOW - 130 * S - 1;
		assert_true(flow_sweepable(&fwd, NOW, IDLE));
		assert_true(flow_sweepable(&rev, NOW, IDLE));
		/* The short idle timeout still comes first. */
		fwd.last_ns = rev.last_ns = NOW - 61 * S;
		assert_true(flow_sweepable(&fwd, NOW, 60 * S));
		assert_true(flow_sweepable(&rev, NOW, 60 * S));
	}
	for (__u64 age = 131 * S; age < IDLE; age += 600 * S) {
		struct fs_flow fwd = entry(FS_DIR_FWD, 0, FS_FL_RETRY, age);
		struct fs_flow rev = entry(FS_DIR_REV, FS_ST_ESTABLISHED, FS_FL_TIMED_OUT, age);

		assert_false(flow_sweepable(&fwd, NOW, IDLE));
		assert_false(flow_sweepable(&rev, NOW, IDLE));
	}
}

static void test_unclean_close_lingers_30s(void **state)
{
	const __u8 flags[] = { FS_FL_RST, FS_FL_FIN, FS_FL_FIN | FS_FL_PEER_FIN, FS_FL_PEER_CLOSED };

	(void)state;
	for (unsigned i = 0; i < sizeof(flags); i++) {
		struct fs_flow fwd = entry(FS_DIR_FWD, 0, flags[i], 30 * S);
		struct fs_flow rev = entry(FS_DIR_REV, FS_ST_ESTABLISHED, flags[i], 30 * S);

		assert_false(flow_sweepable(&fwd, NOW, IDLE));
		assert_false(flow_sweepable(&rev, NOW, IDLE));
		fwd.last_ns = rev.last_ns = NOW - 30 * S - 1;
		assert_true(flow_sweepable(&fwd, NOW, IDLE));
		assert_true(flow_sweepable(&rev, NOW, IDLE));
	}
}

static void test_moved_entry_outlives_synack_retries(void **state)
{
	struct fs_flow moved = entry(FS_DIR_REV, FS_ST_MOVED, FS_FL_RETRY, 63 * S);

	(void)state;
	assert_false(flow_sweepable(&moved, NOW, IDLE));
	moved.last_ns = NOW - 120 * S;
	assert_false(flow_sweepable(&moved, NOW, IDLE));
	moved.last_ns = NOW - 120 * S - 1;
	assert_true(flow_sweepable(&moved, NOW, IDLE));
}

static void test_short_idle_timeout_wins(void **state)
{
	struct fs_flow rst = entry(FS_DIR_REV, FS_ST_ESTABLISHED, FS_FL_RST, 2 * S);
	struct fs_flow moved = entry(FS_DIR_REV, FS_ST_MOVED, 0, 2 * S);

	(void)state;
	assert_true(flow_sweepable(&rst, NOW, 1 * S));
	assert_true(flow_sweepable(&moved, NOW, 1 * S));
	assert_false(flow_sweepable(&rst, NOW, 3 * S));
}

static void test_clock_ahead_is_age_zero(void **state)
{
	/* last_ns written on another CPU a little after the daemon read its clock. */
	struct fs_flow f = entry(FS_DIR_FWD, 0, FS_FL_RST, 0);

	(void)state;
	f.last_ns = NOW + 5 * S;
	assert_false(flow_sweepable(&f, NOW, IDLE));
	assert_false(flow_sweepable(&f, NOW, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_connection_stays_until_idle),
		cmocka_unit_test(test_unclean_close_lingers_30s),
		cmocka_unit_test(test_unanswered_attempt_goes_after_130s),
		cmocka_unit_test(test_moved_entry_outlives_synack_retries),
		cmocka_unit_test(test_short_idle_timeout_wins),
		cmocka_unit_test(test_clock_ahead_is_age_zero),
	};
	return cmocka_run_group_tests_name("flows", tests, NULL, NULL);
}
