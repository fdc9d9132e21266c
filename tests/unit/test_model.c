/* Model math against hand-computed values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "model.h"

static struct model_params simple_params(void)
{
	struct model_params p;

	model_default_params(&p, 0.1);
	p.prior_mtbf_s = 10;   /* p_ud = 0.01 */
	p.prior_mttr_s = 1;    /* p_du = 0.1 */
	p.prior_weight = 100;
	p.forget = 0.5;
	p.fail_down = 0.5;
	p.fail_up_prior = 0.1;
	p.fail_up_max = 0.1;
	p.fail_up_weight = 1e9; /* fail_up stays 0.1 */
	p.max_evidence = 50;
	return p;
}

static void test_prior_transitions_and_derived(void **state)
{
	struct model_params p = simple_params();
	struct model m;
	double P[2][2];

	(void)state;
	model_init(&m);
	model_transitions(&m, &p, P);
	assert_true(fabs(P[0][1] - 0.01) < 1e-12);
	assert_true(fabs(P[0][0] - 0.99) < 1e-12);
	assert_true(fabs(P[1][0] - 0.1) < 1e-12);
	/* MTBF = tick / p_ud = 10 s, MTTR = tick / p_du = 1 s, A = 0.1 / 0.11. */
	assert_true(fabs(model_mtbf_s(&m, &p) - 10) < 1e-9);
	assert_true(fabs(model_mttr_s(&m, &p) - 1) < 1e-9);
	assert_true(fabs(model_availability(&m, &p) - 0.1 / 0.11) < 1e-12);
}

static void test_forward_filter_one_step(void **state)
{
	struct model_params p = simple_params();
	struct model m;

	(void)state;
	model_init(&m);
	m.p_down = 0.2;
	/* 2 attempts, both failed. Prior pi = (0.8, 0.2).
	 * predicted down = 0.8*0.01 + 0.2*0.9 = 0.188, up = 0.812
	 * L_up = 0.1^2 = 0.01, L_down = 0.5^2 = 0.25
	 * posterior down = 0.188*0.25 / (0.188*0.25 + 0.812*0.01) = 0.047 / 0.05512 */
	model_step(&m, &p, 2, 2);
	assert_true(fabs(m.p_down - 0.047 / 0.05512) < 1e-9);
	/* Expected transition counts = two-slice posterior: xi[0][1] = 0.8*0.01*0.25 / Z. */
	double z = 0.8 * 0.99 * 0.01 + 0.8 * 0.01 * 0.25 + 0.2 * 0.1 * 0.01 + 0.2 * 0.9 * 0.25;
	assert_true(fabs(m.counts[0][1] - 0.8 * 0.01 * 0.25 / z) < 1e-9);
	assert_true(fabs(m.counts[1][1] - 0.2 * 0.9 * 0.25 / z) < 1e-9);
	assert_int_equal(m.steps, 1);
}

static void test_smoothing_with_forgetting(void **state)
{
	struct model_params p = simple_params();
	struct model m;
	double P[2][2];

	(void)state;
	model_init(&m);
	m.counts[0][0] = 100;
	m.counts[0][1] = 10;
	/* P_01 = (10 + 100*0.01) / (110 + 100) */
	model_transitions(&m, &p, P);
	assert_true(fabs(P[0][1] - 11.0 / 210.0) < 1e-12);
	/* One step of clean success: counts halve (forget 0.5) then gain xi. */
	model_step(&m, &p, 10, 0);
	assert_true(m.counts[0][1] < 5.01 && m.counts[0][1] > 5.0);
	assert_true(m.counts[0][0] > 50.9 && m.counts[0][0] < 51.0001);
}

static void test_silence_is_no_evidence(void **state)
{
	struct model_params p = simple_params();
	struct model m;

	(void)state;
	model_init(&m);
	m.p_down = 0.7;
	m.counts[1][1] = 3;
	model_step(&m, &p, 0, 0);
	assert_true(m.p_down == 0.7);
	assert_true(m.counts[1][1] == 3);
	assert_int_equal(m.steps, 0);
}

static void test_frequent_failures_raise_p_ud(void **state)
{
	struct model_params p;
	struct model calm, flaky;
	double Pc[2][2], Pf[2][2];

	(void)state;
	model_default_params(&p, 0.1);
	model_init(&calm);
	model_init(&flaky);
	for (int i = 0; i < 2000; i++) {
		model_step(&calm, &p, 20, 0);
		model_step(&flaky, &p, 20, (i % 200) < 20 ? 20 : 0); /* down 10% of the time */
	}
	model_transitions(&calm, &p, Pc);
	model_transitions(&flaky, &p, Pf);
	assert_true(Pf[0][1] > 3 * Pc[0][1]);
	assert_true(model_mtbf_s(&flaky, &p) < model_mtbf_s(&calm, &p));
	assert_true(model_availability(&flaky, &p) < model_availability(&calm, &p));
	/* Learned fail_up stays low for a backend that never fails while up. */
	assert_true(model_fail_up(&calm, &p) < 0.01);
}

/* The ceiling is the fixed point of the forward step with one success: a backend standing
 * there stays there. An outage in the history lowers it: after one, well below 0.9999. */
static void test_up_ceiling(void **state)
{
	struct model_params p = simple_params(), dp;
	struct model m, clean, hit;
	double c;

	(void)state;
	model_init(&m);
	c = model_up_ceiling(&m, &p);
	assert_true(c > 0.5 && c < 1);
	m.p_down = 1 - c;
	model_step(&m, &p, 1, 0); /* fail_up stays 0.1 with these params */
	assert_true(fabs(m.p_down - (1 - c)) < 1e-12);
	/* From either side a success moves P(up) towards the ceiling as the model stood
	 * before the step, never past it (the step learns: the next ceiling differs). */
	for (int start = 0; start < 2; start++) {
		model_init(&m);
		m.p_down = start ? 0.999 : 1e-9;
		for (int i = 0; i < 60; i++) {
			double before = 1 - m.p_down;

			c = model_up_ceiling(&m, &p);
			model_step(&m, &p, 1, 0);
			assert_true(1 - m.p_down >= fmin(before, c) - 1e-12);
			assert_true(1 - m.p_down <= fmax(before, c) + 1e-12);
		}
	}

	model_default_params(&dp, 0.1);
	model_init(&clean);
	for (int i = 0; i < 3000; i++)
		model_step(&clean, &dp, 20, 0);
	hit = clean;
	for (int i = 0; i < 20; i++)
		model_step(&hit, &dp, 20, 20);
	for (int i = 0; i < 100; i++)
		model_step(&hit, &dp, 1, 0);
	assert_true(model_up_ceiling(&clean, &dp) > 0.9999);
	assert_true(model_up_ceiling(&hit, &dp) < 0.9999);
	assert_true(model_up_ceiling(&hit, &dp) > 0.999);
	assert_true(1 - hit.p_down <= model_up_ceiling(&hit, &dp) + 1e-9);
}

/* The same history of steps, one taken every tick (traffic) and one every 0.5 s (probes
 * only): the same transitions per step, so MTBF and MTTR five times longer in seconds,
 * availability the same. A long silence counts as one bounded gap. */
static void test_mtbf_in_seconds_of_steps(void **state)
{
	struct model_params p;
	struct model every_tick, every_5;

	(void)state;
	model_default_params(&p, 0.1);
	model_init(&every_tick);
	model_init(&every_5);
	for (int i = 0; i < 3000; i++) {
		double fail = (i % 300) < 30 ? 5 : 0;

		model_step(&every_tick, &p, 5, fail);
		model_note_step_time(&every_tick, 0.1 * i);
		model_step(&every_5, &p, 5, fail);
		model_note_step_time(&every_5, 0.5 * i);
	}
	assert_true(fabs(every_tick.step_s - 0.1) < 1e-9);
	assert_true(fabs(every_5.step_s - 0.5) < 1e-9);
	assert_true(fabs(model_mtbf_s(&every_5, &p) / model_mtbf_s(&every_tick, &p) - 5) < 1e-6);
	assert_true(fabs(model_mttr_s(&every_5, &p) / model_mttr_s(&every_tick, &p) - 5) < 1e-6);
	assert_true(fabs(model_availability(&every_5, &p) - model_availability(&every_tick, &p)) < 1e-12);
	model_step(&every_5, &p, 5, 0);
	model_note_step_time(&every_5, 0.5 * 3000 + 86400);
	assert_true(every_5.step_s < 0.5 + 3600 * 0.001 + 1e-9);

	/* A model restored with many steps but no mean yet (saved by an older version): the
	 * first gaps make a running mean, not one sample worth a thousand. */
	struct model restored;

	model_init(&restored);
	restored.steps = 100000;
	model_note_step_time(&restored, 0);
	model_note_step_time(&restored, 3600);
	for (int i = 1; i < 1000; i++)
		model_note_step_time(&restored, 3600 + 0.5 * i);
	assert_true(restored.step_s < 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prior_transitions_and_derived),
		cmocka_unit_test(test_mtbf_in_seconds_of_steps),
		cmocka_unit_test(test_forward_filter_one_step),
		cmocka_unit_test(test_smoothing_with_forgetting),
		cmocka_unit_test(test_silence_is_no_evidence),
		cmocka_unit_test(test_frequent_failures_raise_p_ud),
		cmocka_unit_test(test_up_ceiling),
	};
	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
