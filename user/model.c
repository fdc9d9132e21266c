/* The Markov fault model of one backend; see model.h. */
#include "model.h"

#include <math.h>

#define P_FLOOR 1e-12

void model_default_params(struct model_params *p, double tick_s)
{
	p->tick_s = tick_s;
	p->forget = 0.9999;       /* about 10,000 evidence steps of memory */
	p->prior_mtbf_s = 3600;   /* a site fails about once an hour ... */
	p->prior_mttr_s = 30;     /* ... and is back within half a minute */
	p->prior_weight = 1000;
	p->fail_down = 0.5;       /* a down site may still answer some attempts (brownout) */
	p->fail_up_prior = 0.01;
	p->fail_up_max = 0.1;
	p->fail_up_weight = 200;
	p->max_evidence = 50;
}

void model_init(struct model *m)
{
	m->p_down = P_FLOOR;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			m->counts[i][j] = 0;
	m->up_attempts = m->up_failures = 0;
	m->steps = 0;
	m->step_s = 0;
	m->stepped_at_s = -1;
	m->step_n = 0;
}

#define STEP_GAP_MAX_S 3600.0
#define STEP_AVG_WEIGHT 0.001 /* the mean's memory, about that of the counts (forget) */

void model_note_step_time(struct model *m, double now_s)
{
	if (m->stepped_at_s >= 0 && now_s > m->stepped_at_s) {
		double gap = now_s - m->stepped_at_s, w;

		if (gap > STEP_GAP_MAX_S)
			gap = STEP_GAP_MAX_S;
		/* A running mean at first, then a moving one. */
		if (m->step_n < 1 / STEP_AVG_WEIGHT)
			m->step_n++;
		w = 1.0 / m->step_n;
		m->step_s += (gap - m->step_s) * w;
	}
	m->stepped_at_s = now_s;
}

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

void model_transitions(const struct model *m, const struct model_params *p, double P[2][2])
{
	double p_ud = clamp(p->tick_s / p->prior_mtbf_s, P_FLOOR, 0.5);
	double p_du = clamp(p->tick_s / p->prior_mttr_s, P_FLOOR, 0.5);
	double prior[2][2] = {
		{ p->prior_weight * (1 - p_ud), p->prior_weight * p_ud },
		{ p->prior_weight * p_du, p->prior_weight * (1 - p_du) },
	};

	for (int i = 0; i < 2; i++) {
		double row = m->counts[i][0] + prior[i][0] + m->counts[i][1] + prior[i][1];

		for (int j = 0; j < 2; j++)
			P[i][j] = (m->counts[i][j] + prior[i][j]) / row;
	}
}

double model_fail_up(const struct model *m, const struct model_params *p)
{
	double f = (m->up_failures + p->fail_up_prior * p->fail_up_weight) /
		   (m->up_attempts + p->fail_up_weight);

	return clamp(f, 1e-4, p->fail_up_max);
}

void model_step(struct model *m, const struct model_params *p, double attempts, double failures)
{
	double P[2][2], loglik[2], fail[2], xi[2][2], z = 0, scale, pi[2];

	if (!(attempts > 0))
		return;
	failures = clamp(failures, 0, attempts);
	/* Failures of one tick are correlated (one cause, many connections): beyond
	 * max_evidence attempts a tick counts as max_evidence, keeping the failure ratio. */
	scale = attempts > p->max_evidence ? p->max_evidence / attempts : 1;
	attempts *= scale;
	failures *= scale;

	model_transitions(m, p, P);
	fail[MODEL_UP] = model_fail_up(m, p);
	fail[MODEL_DOWN] = p->fail_down;
	for (int j = 0; j < 2; j++)
		loglik[j] = failures * log(fail[j]) + (attempts - failures) * log1p(-fail[j]);
	/* Subtract the larger log-likelihood so the exponentials cannot underflow together. */
	double top = loglik[0] > loglik[1] ? loglik[0] : loglik[1];
	pi[MODEL_UP] = 1 - m->p_down;
	pi[MODEL_DOWN] = m->p_down;
	/* Two-slice posterior P(S_t-1 = i, S_t = j | obs): the forward step and the
	 * expected transition counts the model learns from. */
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			xi[i][j] = pi[i] * P[i][j] * exp(loglik[j] - top);
			z += xi[i][j];
		}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			xi[i][j] /= z;
			m->counts[i][j] = m->counts[i][j] * p->forget + xi[i][j];
		}
	m->p_down = clamp(xi[0][1] + xi[1][1], P_FLOOR, 1 - P_FLOOR);

	double w_up = 1 - m->p_down, keep = pow(p->forget, attempts);
	m->up_attempts = m->up_attempts * keep + w_up * attempts;
	m->up_failures = m->up_failures * keep + w_up * failures;
	m->steps++;
}

double model_up_ceiling(const struct model *m, const struct model_params *p)
{
	double P[2][2], ok_up, ok_down, d = 0.5;

	model_transitions(m, p, P);
	ok_up = 1 - model_fail_up(m, p);
	ok_down = 1 - p->fail_down;
	/* The forward step with one success, repeated: it contracts by about ok_down/ok_up
	 * (at most 0.5/0.9) per step, so from an even start 64 steps settle it to 1e-16. The
	 * limit does not depend on where the backend stands now. */
	for (int i = 0; i < 64; i++) {
		double down = (d * P[MODEL_DOWN][MODEL_DOWN] + (1 - d) * P[MODEL_UP][MODEL_DOWN]) * ok_down;
		double up = (d * P[MODEL_DOWN][MODEL_UP] + (1 - d) * P[MODEL_UP][MODEL_UP]) * ok_up;

		d = clamp(down / (down + up), P_FLOOR, 1 - P_FLOOR);
	}
	return 1 - d;
}

double model_mtbf_s(const struct model *m, const struct model_params *p)
{
	double P[2][2];

	model_transitions(m, p, P);
	return (m->step_s > 0 ? m->step_s : p->tick_s) / P[MODEL_UP][MODEL_DOWN];
}

double model_mttr_s(const struct model *m, const struct model_params *p)
{
	double P[2][2];

	model_transitions(m, p, P);
	return (m->step_s > 0 ? m->step_s : p->tick_s) / P[MODEL_DOWN][MODEL_UP];
}

double model_availability(const struct model *m, const struct model_params *p)
{
	double P[2][2];

	model_transitions(m, p, P);
	/* Stationary distribution of a two-state chain: pi_up = p_du / (p_ud + p_du). */
	return P[MODEL_DOWN][MODEL_UP] / (P[MODEL_UP][MODEL_DOWN] + P[MODEL_DOWN][MODEL_UP]);
}
