/* Decision logic fed synthetic observation sequences. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "detector.h"

#define TICK 0.1

struct sim {
	struct det_service s;
	struct det_settings set;
	struct model_params mp;
	double now;
	int switches;
	char why[1024];
};

static void sim_init(struct sim *x, int n)
{
	memset(x, 0, sizeof(*x));
	det_service_init(&x->s, n, 0);
	x->set = (struct det_settings){ .failover_threshold = 0.99, .failback_threshold = 0.99,
					.failback_hold_s = 3.0 };
	model_default_params(&x->mp, TICK);
}

/* One tick where backend i got ok[i] successes and bad[i] failures. */
static enum det_event sim_tick(struct sim *x, const double *ok, const double *bad)
{
	struct det_obs obs[FS_MAX_BACKENDS] = { 0 };
	enum det_event e;

	for (int i = 0; i < x->s.n_backends; i++) {
		obs[i].successes = ok[i];
		obs[i].failures = bad[i];
	}
	x->now += TICK;
	e = det_tick(&x->s, &x->set, &x->mp, obs, x->now, x->why, sizeof(x->why));
	if (e == DET_FAILOVER || e == DET_FAILBACK || e == DET_FORCED)
		x->switches++;
	return e;
}

/* Traffic to the primary; backups_ok: every backup answers a probe each tick, else they
 * say nothing (as in the daemon while all is well: no traffic, no probes). */
static void warm_up_with(struct sim *x, int ticks, bool backups_ok)
{
	double ok[FS_MAX_BACKENDS] = { 20 }, bad[FS_MAX_BACKENDS] = { 0 };

	for (int i = 1; i < FS_MAX_BACKENDS; i++)
		ok[i] = backups_ok ? 1 : 0;
	for (int t = 0; t < ticks; t++)
		sim_tick(x, ok, bad);
}

static void warm_up(struct sim *x, int ticks)
{
	warm_up_with(x, ticks, true);
}

static void test_clean_failure_fails_over_within_2_ticks(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	warm_up(&x, 600);
	assert_int_equal(x.s.active, 0);
	enum det_event e1 = sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 });
	enum det_event e2 = e1 == DET_NONE ? sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 }) : e1;
	assert_int_equal(e2, DET_FAILOVER);
	assert_int_equal(x.s.active, 1);
	assert_non_null(strstr(x.why, "failover: backend 0 -> 1"));
	assert_non_null(strstr(x.why, "P(down)="));
}

static void test_background_resets_never_fail_over(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	srand(42);
	/* 1% of 20 attempts per tick fail, independently, for 100,000 ticks. */
	for (int t = 0; t < 100000; t++) {
		double bad = 0;

		for (int a = 0; a < 20; a++)
			bad += rand() % 100 == 0;
		sim_tick(&x, (double[]){ 20 - bad, 0 }, (double[]){ bad, 0 });
		assert_int_equal(x.s.active, 0);
	}
	assert_int_equal(x.switches, 0);
}

static void test_silence_never_fails_over(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	warm_up(&x, 100);
	for (int t = 0; t < 100000; t++)
		assert_int_equal(sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 0, 0 }), DET_NONE);
	assert_int_equal(x.s.active, 0);
	/* Silence after a failover does not cause a failback either. (The backup, silent all
	 * along, answers the probes sent once the primary looks down.) */
	sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 });
	sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 });
	assert_int_equal(x.s.active, 1);
	for (int t = 0; t < 1000; t++)
		sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 0, 0 });
	assert_int_equal(x.s.active, 1);
}

static void test_failback_only_after_hold(void **state)
{
	struct sim x;
	double up_at = -1, failback_at = -1;

	(void)state;
	sim_init(&x, 2);
	warm_up(&x, 100);
	for (int t = 0; t < 20; t++) /* primary down, probed every 5 ticks */
		sim_tick(&x, (double[]){ 0, 20 }, (double[]){ t % 5 == 0, 0 });
	assert_int_equal(x.s.active, 1);
	for (int t = 0; t < 2000 && failback_at < 0; t++) {
		/* Primary repaired: one probe success every 2 ticks, backup takes traffic. */
		enum det_event e = sim_tick(&x, (double[]){ t % 2 == 0, 20 }, (double[]){ 0, 0 });
		if (up_at < 0 && 1 - x.s.models[0].p_down >= 0.99)
			up_at = x.now;
		if (e == DET_FAILBACK)
			failback_at = x.now;
	}
	assert_true(up_at > 0);
	assert_true(failback_at > 0);
	assert_true(failback_at - up_at >= 3.0 - 1e-9);
	assert_true(failback_at - up_at <= 3.0 + 2 * TICK);
	assert_int_equal(x.s.active, 0);
}

/* A primary with little history before its outage: the one transition to down it saw
 * weighs on its learned hazard, so probe answers alone cannot lift its P(up) above the
 * ceiling (model_up_ceiling). With a failback threshold above that the detector says so
 * (det_failback_capped) and does not fail back; with one below it fails back. */
static void repaired_after_short_history(struct sim *x, double threshold, int ticks, int *capped_ticks)
{
	sim_init(x, 2);
	x->set.failback_threshold = threshold;
	warm_up(x, 100);
	for (int t = 0; t < 20; t++) /* fails under traffic, then only probes speak for it */
		sim_tick(x, (double[]){ 0, t < 3 ? 1 : 20 }, (double[]){ t < 3 ? 20 : t % 5 == 0, 0 });
	assert_int_equal(x->s.active, 1);
	*capped_ticks = 0;
	for (int t = 0; t < ticks && x->s.active == 1; t++) {
		double ceiling = -1;

		sim_tick(x, (double[]){ t % 5 == 0, 20 }, (double[]){ 0, 0 });
		if (det_failback_capped(&x->s, &x->set, &x->mp, &ceiling)) {
			(*capped_ticks)++;
			assert_true(ceiling > 0.5 && ceiling < threshold);
			assert_true(1 - x->s.models[0].p_down <= ceiling + 1e-9);
		}
	}
}

static void test_failback_capped_says_so(void **state)
{
	struct sim x;
	int capped;

	(void)state;
	repaired_after_short_history(&x, 0.9999, 3000, &capped); /* 5 minutes */
	assert_int_equal(x.s.active, 1);
	assert_int_equal(capped, 3000);
	repaired_after_short_history(&x, 0.99, 3000, &capped);
	assert_int_equal(x.s.active, 0);
	assert_int_equal(capped, 0);
	/* Forced, or not failed over: nothing to say. */
	repaired_after_short_history(&x, 0.9999, 10, &capped);
	x.s.mode = FS_MODE_FORCED;
	assert_false(det_failback_capped(&x.s, &x.set, &x.mp, NULL));
	x.s.mode = FS_MODE_AUTO;
	x.s.active = 0;
	assert_false(det_failback_capped(&x.s, &x.set, &x.mp, NULL));
}

static void test_flapping_primary_backs_off(void **state)
{
	struct sim x;
	double holds[8];
	int n_holds = 0;

	(void)state;
	sim_init(&x, 2);
	x.set.failback_hold_s = 1.0;
	warm_up(&x, 100);
	/* Primary down 3 s, up 6 s, for 90 s; probes every tick while not active. */
	for (int t = 0; t < 900; t++) {
		bool up = t % 90 >= 30;
		double ok0 = up ? (x.s.active == 0 ? 20 : 1) : 0, bad0 = up ? 0 : (x.s.active == 0 ? 20 : 1);
		enum det_event e = sim_tick(&x, (double[]){ ok0, x.s.active == 1 ? 20 : 1 }, (double[]){ bad0, 0 });
		if (e != DET_NONE && getenv("DET_TRACE")) print_message("t=%.1f %s\n", x.now, x.why);
		if (e == DET_FAILBACK && n_holds < 8)
			holds[n_holds++] = det_hold_s(&x.s, &x.set);
	}
	/* Without back-off it would switch twice per 9 s period (20 times). */
	assert_true(x.switches <= 8);
	assert_true(x.switches >= 2);
	assert_true(x.s.backoff_level >= 2);
	for (int i = 1; i < n_holds; i++)
		assert_true(holds[i] > holds[i - 1]);
}

/* Ticks with the primary up or down: traffic to the active backend, a probe a tick to the
 * other. */
static void sim_primary(struct sim *x, int ticks, bool up)
{
	for (int t = 0; t < ticks; t++) {
		double act0 = x->s.active == 0 ? 20 : 1;

		sim_tick(x, (double[]){ up ? act0 : 0, x->s.active == 1 ? 20 : 1 }, (double[]){ up ? 0 : act0, 0 });
	}
}

/* Back-off earned by a flap is earned back after a long quiet stretch; a failure soon after
 * that (but long after the last failback) is a new fault, not a flap. */
static void test_backoff_lowering_is_not_a_flap(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	x.set.failback_hold_s = 1.0;
	warm_up(&x, 100);
	sim_primary(&x, 10, false);
	assert_int_equal(x.s.active, 1);
	sim_primary(&x, 30, true);  /* failback after the 1 s hold */
	assert_int_equal(x.s.active, 0);
	sim_primary(&x, 10, false); /* a flap: the next hold doubles */
	assert_int_equal(x.s.active, 1);
	assert_int_equal(x.s.backoff_level, 1);
	sim_primary(&x, 40, true);  /* failback after 2 s */
	assert_int_equal(x.s.active, 0);
	/* 10 holds (20 s) of quiet on the primary earn the level back. */
	for (int t = 0; t < 300 && x.s.backoff_level; t++)
		sim_primary(&x, 1, true);
	assert_int_equal(x.s.backoff_level, 0);
	sim_primary(&x, 10, true);  /* a second later, a new fault */
	sim_primary(&x, 10, false);
	assert_int_equal(x.s.active, 1);
	assert_int_equal(x.s.backoff_level, 0);
	assert_true(det_hold_s(&x.s, &x.set) == 1.0);
}

/* In doubt: P(down) above 0.01 and above twice the learned up->down rate. */
static void test_in_doubt_against_learned_failure_rate(void **state)
{
	struct model_params mp;
	struct model m;
	double P[2][2];

	(void)state;
	model_default_params(&mp, TICK);
	model_init(&m);
	m.p_down = 0.009;
	assert_false(det_in_doubt(&m, &mp));
	m.p_down = 0.02; /* the prior's up->down rate: 3e-5 per tick (MTBF 1 h) */
	assert_true(det_in_doubt(&m, &mp));
	/* A backend that went down in 5% of its ticks up: P(down) 0.02 is what answered
	 * probes hold it at, no longer doubt; 0.2 still is. */
	m.counts[MODEL_UP][MODEL_UP] = 9500;
	m.counts[MODEL_UP][MODEL_DOWN] = 500;
	model_transitions(&m, &mp, P);
	assert_true(P[MODEL_UP][MODEL_DOWN] > 0.02);
	assert_false(det_in_doubt(&m, &mp));
	m.p_down = 0.2;
	assert_true(det_in_doubt(&m, &mp));
}

static void test_manual_override_wins_until_auto(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 3);
	warm_up(&x, 100);
	x.s.mode = FS_MODE_FORCED;
	x.s.forced_idx = 2;
	assert_int_equal(sim_tick(&x, (double[]){ 20, 1, 1 }, (double[]){ 0, 0, 0 }), DET_FORCED);
	assert_int_equal(x.s.active, 2);
	/* Healthy primary, long past any hold: still forced. */
	for (int t = 0; t < 500; t++)
		sim_tick(&x, (double[]){ 1, 1, 20 }, (double[]){ 0, 0, 0 });
	assert_int_equal(x.s.active, 2);
	/* Even a dead forced backend stays while forced. */
	for (int t = 0; t < 20; t++)
		sim_tick(&x, (double[]){ 1, 1, 0 }, (double[]){ 0, 0, 20 });
	assert_int_equal(x.s.active, 2);
	x.s.mode = FS_MODE_AUTO;
	/* Back to automatic: the forced backend looks down, the primary is fine. */
	assert_int_equal(sim_tick(&x, (double[]){ 1, 1, 0 }, (double[]){ 0, 0, 20 }), DET_FAILOVER);
	assert_int_equal(x.s.active, 0);
}

static void test_all_down_keeps_choice(void **state)
{
	struct sim x;
	int alarms = 0;
	char said[sizeof(x.why)] = "";

	(void)state;
	sim_init(&x, 2);
	warm_up(&x, 100);
	for (int t = 0; t < 100; t++)
		if (sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, 20 }) == DET_ALL_DOWN) {
			alarms++;
			memcpy(said, x.why, sizeof(said));
		}
	assert_int_equal(x.s.active, 0);
	assert_int_equal(x.switches, 0);
	assert_int_equal(alarms, 1); /* said loudly, once per episode */
	assert_true(x.s.all_down);
	assert_non_null(strstr(said, "all-down: backend 0 looks down"));
}

static void test_failover_skips_down_backup(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 3);
	warm_up(&x, 100);
	/* Backup 1 is dead (probes fail), backup 2 fine; then the primary dies. */
	for (int t = 0; t < 10; t++)
		sim_tick(&x, (double[]){ 20, 0, 1 }, (double[]){ 0, 1, 0 });
	for (int t = 0; t < 3; t++)
		sim_tick(&x, (double[]){ 0, 0, 1 }, (double[]){ 20, 1, 0 });
	assert_int_equal(x.s.active, 2);
}

/* A backup nothing was heard from is not failed over to at once: the probes sent when the
 * primary started to look down get their chance first (here: answered on the next tick). */
static void test_failover_waits_for_word_from_the_backup(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	warm_up_with(&x, 600, false);
	assert_int_equal(sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, 0 }), DET_NONE);
	assert_int_equal(x.s.active, 0);
	assert_int_equal(sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 }), DET_FAILOVER);
	assert_int_equal(x.s.active, 1);
}

/* The primary fails and the backup says nothing: failover after blind_s seconds. */
static void expect_blind_failover_after(double blind_s, double set_blind_s)
{
	struct sim x;
	int t;

	sim_init(&x, 2);
	x.set.blind_s = set_blind_s;
	warm_up_with(&x, 600, false);
	for (t = 0; t < 100 && x.s.active == 0; t++)
		sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, 0 });
	assert_int_equal(x.s.active, 1);
	assert_true(t * TICK >= blind_s - 1e-9);
	assert_true(t * TICK <= blind_s + 2 * TICK);
}

/* With no word at all (probes off, or unanswered yet not failed), it goes after
 * DET_BLIND_S anyway: staying on a primary that is down helps nobody. A probe's round and
 * timeout longer than that: waited for (the probe could not have failed before). */
static void test_failover_blind_after_a_while(void **state)
{
	(void)state;
	expect_blind_failover_after(DET_BLIND_S, 0);
	expect_blind_failover_after(DET_BLIND_S, DET_BLIND_S / 2);
	expect_blind_failover_after(2.5, 2.5);
}

/* The first backup is silent, the second answers its probe: the second, at once, not the
 * silent one after the wait. The one passed over has earned nothing: no move back to it
 * while it stays silent (it may be dead too), at once when it answers. */
static void test_failover_prefers_a_backup_that_answered(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 3);
	warm_up_with(&x, 600, false);
	sim_tick(&x, (double[]){ 0, 0, 0 }, (double[]){ 20, 0, 0 });
	assert_int_equal(sim_tick(&x, (double[]){ 0, 0, 1 }, (double[]){ 20, 0, 0 }), DET_FAILOVER);
	assert_int_equal(x.s.active, 2);
	for (int t = 0; t < 100; t++)
		assert_int_equal(sim_tick(&x, (double[]){ 0, 0, 20 }, (double[]){ 1, 0, 0 }), DET_NONE);
	assert_int_equal(x.s.active, 2);
	assert_int_equal(x.s.backoff_level, 0);
	assert_int_equal(sim_tick(&x, (double[]){ 0, 1, 20 }, (double[]){ 1, 0, 0 }), DET_FAILBACK);
	assert_int_equal(x.s.active, 1);
}

/* This node's own network fails: the primary's traffic and every probe of the backup fail.
 * A backup whose only word since is failures is not unseen: kept, and said so. */
static void test_no_failover_to_a_backup_that_only_failed(void **state)
{
	struct sim x;
	int alarms = 0;

	(void)state;
	sim_init(&x, 2);
	warm_up_with(&x, 600, false);
	for (int t = 0; t < 100; t++)
		alarms += sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, t % 5 == 0 }) == DET_ALL_DOWN;
	assert_int_equal(x.s.active, 0);
	assert_int_equal(x.switches, 0);
	assert_int_equal(alarms, 1);
}

/* failback_hold_ms 0: failback at once, but a primary that flaps still earns a growing
 * hold (0 times 2^level would be none). */
static void test_zero_hold_still_backs_off(void **state)
{
	struct sim x;
	int t;

	(void)state;
	sim_init(&x, 2);
	x.set.failback_hold_s = 0;
	warm_up(&x, 600);
	for (t = 0; t < 20 && x.s.active == 0; t++)
		sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 });
	assert_int_equal(x.s.active, 1);
	for (t = 0; t < 100 && x.s.active == 1; t++)
		sim_tick(&x, (double[]){ 1, 20 }, (double[]){ 0, 0 });
	assert_int_equal(x.s.active, 0);
	assert_true(x.now - x.s.good_since_s[0] < 1e-9); /* no hold: once believed up */
	for (t = 0; t < 20 && x.s.active == 0; t++)
		sim_tick(&x, (double[]){ 0, 1 }, (double[]){ 20, 0 });
	assert_int_equal(x.s.active, 1);
	assert_int_equal(x.s.backoff_level, 1);
	assert_true(det_hold_s(&x.s, &x.set) >= DET_BACKOFF_BASE_S);
	for (t = 0; t < 100 && x.s.active == 1; t++)
		sim_tick(&x, (double[]){ 1, 20 }, (double[]){ 0, 0 });
	assert_int_equal(x.s.active, 0);
	assert_true(x.now - x.s.good_since_s[0] >= DET_BACKOFF_BASE_S - 1e-9);
}

/* An outage seen before the operator forced a backend is not carried through forced mode:
 * back in auto much later, a silent backup is still waited for. */
static void test_forced_mode_forgets_the_outage(void **state)
{
	struct sim x;

	(void)state;
	sim_init(&x, 2);
	warm_up_with(&x, 600, false);
	assert_int_equal(sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, 0 }), DET_NONE);
	x.s.mode = FS_MODE_FORCED;
	x.s.forced_idx = 0;
	for (int t = 0; t < 100; t++)
		sim_tick(&x, (double[]){ 20, 0 }, (double[]){ 0, 0 });
	x.s.mode = FS_MODE_AUTO;
	for (int t = 0; t < 5; t++)
		assert_int_equal(sim_tick(&x, (double[]){ 0, 0 }, (double[]){ 20, 0 }), DET_NONE);
	assert_int_equal(x.s.active, 0);
}

/* det_at_rest's promise, checked after every tick of random histories (faults, repairs,
 * silences, operator overrides): a service at rest is left byte-identical by a tick without
 * evidence, even a late one; and the common idle state is at rest. */
static void test_at_rest_means_nothing_to_do(void **state)
{
	unsigned seed = 12345, rest = 0, checked = 0;
	struct sim x;

	(void)state;
	for (int run = 0; run < 40; run++) {
		int n = 2 + run % 3;

		sim_init(&x, n);
		for (int t = 0; t < 600; t++) {
			double ok[FS_MAX_BACKENDS] = { 0 }, bad[FS_MAX_BACKENDS] = { 0 };
			struct det_obs none[FS_MAX_BACKENDS] = { 0 };
			struct det_service before, after;
			int phase = (t / 60 + run) % 5; /* fine, primary failing, silent, all failing, fine */

			seed = seed * 1103515245u + 12345u;
			for (int i = 0; i < n; i++) {
				bool failing = (phase == 1 && i == 0) || phase == 3;

				if (phase == 2 || (seed >> (16 + i)) % 3 == 0)
					continue;
				ok[i] = failing ? 0 : 5;
				bad[i] = failing ? 5 : 0;
			}
			if (run % 7 == 0 && t == 300)
				x.s.mode = FS_MODE_FORCED, x.s.forced_idx = n - 1;
			if (run % 7 == 0 && t == 400)
				x.s.mode = FS_MODE_AUTO;
			sim_tick(&x, ok, bad);
			memcpy(&before, &x.s, sizeof(before));
			memcpy(&after, &x.s, sizeof(after));
			if (!det_at_rest(&before, &x.set))
				continue;
			rest++;
			for (double late = TICK; late < 1e5; late *= 10) {
				checked++;
				assert_int_equal(det_tick(&after, &x.set, &x.mp, none, x.now + late, x.why,
							  sizeof(x.why)), DET_NONE);
				assert_memory_equal(&after, &before, sizeof(before));
			}
		}
	}
	assert_true(rest > 1000);
	assert_true(checked > 5000);

	/* Fresh and healthy: at rest. On a backup, or holding a failback: not. */
	sim_init(&x, 2);
	warm_up_with(&x, 20, false);
	assert_true(det_at_rest(&x.s, &x.set));
	x.s.active = 1;
	assert_false(det_at_rest(&x.s, &x.set));
	x.s.active = 0;
	x.s.good_since_s[1] = -1; /* P(up) of the backup is above the threshold: a hold would start */
	assert_false(det_at_rest(&x.s, &x.set));
}

/* Evidence from counter reads: each kind of event where it belongs, and a read taken
 * between the two increments of one refused connect (resets before resets_connect) never
 * turns into a wrapped-around count of failures that would fail a healthy backend over. */
static void test_evidence_from_counters(void **state)
{
	struct fs_backend_stats a = { .attempts = 100, .established = 90, .resets = 7, .resets_connect = 5,
				      .timeouts = 2, .icmp_errors = 1 };
	struct fs_backend_stats b = a, mid, c;
	struct det_obs o;

	(void)state;
	b.established += 10;
	b.resets_connect += 3;
	b.resets += 3 + 20; /* three refused connects, twenty resets of established ones */
	b.timeouts += 4;
	b.icmp_errors += 1;
	o = det_evidence(&a, &b, 2, 1);
	assert_true(o.successes == 10 + 2);
	assert_true(o.failures == 3 + DET_RESET_ESTABLISHED_WEIGHT * 20 + 4 + 1 + 1);

	/* One refused connect, read half-counted, then whole. */
	mid = b;
	mid.resets++;
	c = mid;
	c.resets_connect++;
	o = det_evidence(&b, &mid, 0, 0);
	assert_true(o.failures >= 0 && o.failures <= 1);
	o = det_evidence(&mid, &c, 0, 0);
	assert_true(o.failures >= 0 && o.failures <= 1);
	/* Counters cleared under the reader (a backend id given a fresh start): nothing. */
	o = det_evidence(&b, &(struct fs_backend_stats){ 0 }, 0, 0);
	assert_true(o.successes == 0 && o.failures == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_failure_fails_over_within_2_ticks),
		cmocka_unit_test(test_background_resets_never_fail_over),
		cmocka_unit_test(test_silence_never_fails_over),
		cmocka_unit_test(test_failback_only_after_hold),
		cmocka_unit_test(test_failback_capped_says_so),
		cmocka_unit_test(test_flapping_primary_backs_off),
		cmocka_unit_test(test_backoff_lowering_is_not_a_flap),
		cmocka_unit_test(test_in_doubt_against_learned_failure_rate),
		cmocka_unit_test(test_manual_override_wins_until_auto),
		cmocka_unit_test(test_all_down_keeps_choice),
		cmocka_unit_test(test_failover_skips_down_backup),
		cmocka_unit_test(test_failover_waits_for_word_from_the_backup),
		cmocka_unit_test(test_failover_blind_after_a_while),
		cmocka_unit_test(test_failover_prefers_a_backup_that_answered),
		cmocka_unit_test(test_no_failover_to_a_backup_that_only_failed),
		cmocka_unit_test(test_zero_hold_still_backs_off),
		cmocka_unit_test(test_forced_mode_forgets_the_outage),
		cmocka_unit_test(test_at_rest_means_nothing_to_do),
		cmocka_unit_test(test_evidence_from_counters),
	};
	return cmocka_run_group_tests_name("detector", tests, NULL, NULL);
}
