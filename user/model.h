/* The Markov fault model of one backend: hidden states up/down, transition probabilities
 * learned online from the filtered history, forward filter for P(down). Pure functions. */
#ifndef FS_MODEL_H
#define FS_MODEL_H

#include <stdbool.h>

enum { MODEL_UP = 0, MODEL_DOWN = 1 };

struct model_params {
	double tick_s;        /* seconds per step, to turn P into MTBF/MTTR */
	double forget;        /* per-step decay of the transition counts (memory 1/(1-forget)) */
	double prior_mtbf_s;  /* prior belief before any history */
	double prior_mttr_s;
	double prior_weight;  /* steps of pseudo-history per row backing the prior */
	double fail_down;     /* failure probability of an attempt while down */
	double fail_up_prior; /* failure probability while up before learning ... */
	double fail_up_max;   /* ... and its ceiling, kept well below fail_down */
	double fail_up_weight;/* attempts of pseudo-history behind fail_up_prior */
	double max_evidence;  /* attempts per step beyond which evidence is scaled down */
};

struct model {
	double p_down;        /* filtered posterior P(S_t = down | observations) */
	double counts[2][2];  /* forgotten expected transition counts */
	double up_attempts;   /* forgotten attempts and failures weighted by P(up) */
	double up_failures;
	unsigned long steps;  /* steps with evidence */
	double step_s;        /* mean seconds between steps (0: unknown, tick_s assumed) ... */
	double stepped_at_s;  /* ... from when the last one was taken (<0: none yet) */
	unsigned step_n;      /* gaps that mean is made of (capped: then a moving mean) */
};

/* Defaults for a detector ticking every tick_s seconds. */
void model_default_params(struct model_params *p, double tick_s);
void model_init(struct model *m);

/* One tick: 'attempts' outcomes observed, 'failures' of them failed. No attempts is no
 * evidence: the model does not move at all (silence never causes a failover). */
void model_step(struct model *m, const struct model_params *p, double attempts, double failures);

/* Notes that a step was taken at now_s: steps come only with evidence, every tick under
 * traffic but only every few seconds from probes, and the MTBF/MTTR they imply are in
 * steps. Bounded gaps (a long silence is not one long step). */
void model_note_step_time(struct model *m, double now_s);

/* Transition matrix P[i][j] = P(S_t+1 = j | S_t = i) per step: smoothed, forgotten counts. */
void model_transitions(const struct model *m, const struct model_params *p, double P[2][2]);
/* Learned failure probability of an attempt while up. */
double model_fail_up(const struct model *m, const struct model_params *p);
/* The highest P(up) the backend can reach as the model stands: where the forward filter
 * settles if every step from now on brings one success (a probe answered, all a backend
 * that carries no traffic gets). The learned hazard P_ud keeps it below 1: after an outage,
 * about 1 - 1/(up steps remembered). A failback threshold above it is not reached until
 * the outage fades from the counts (forget). */
double model_up_ceiling(const struct model *m, const struct model_params *p);
/* Derived from P: mean up time, mean down time, steady-state P(up). */
double model_mtbf_s(const struct model *m, const struct model_params *p);
double model_mttr_s(const struct model *m, const struct model_params *p);
double model_availability(const struct model *m, const struct model_params *p);

#endif
