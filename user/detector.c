/* Detector: observations -> models -> decisions; see detector.h. */
#include "detector.h"

#include <stdio.h>

#include "stats.h"

#define FLAP_WINDOW_MIN_S 10.0

void det_service_init(struct det_service *s, int n_backends, int active)
{
	s->n_backends = n_backends;
	for (int i = 0; i < FS_MAX_BACKENDS; i++) {
		model_init(&s->models[i]);
		s->good_since_s[i] = -1;
		s->last_ok_s[i] = -1;
		s->last_fail_s[i] = -1;
	}
	s->down_since_s = -1;
	s->failover_s = -1;
	s->active = active >= 0 && active < n_backends ? active : 0;
	s->mode = FS_MODE_AUTO;
	s->forced_idx = 0;
	s->backoff_level = 0;
	s->last_failback_s = -1;
	s->backoff_clock_s = -1;
	s->all_down = false;
	s->failovers = s->failbacks = 0;
}

void det_model_from_record(const struct fs_backend_model *in, struct model *m)
{
	model_init(m);
	m->p_down = (double)in->p_down_ppb / FS_PPB;
	if (m->p_down <= 0)
		m->p_down = 1e-12;
	if (m->p_down >= 1)
		m->p_down = 1 - 1e-12;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			m->counts[i][j] = (double)in->counts_milli[i][j] / 1000;
	m->up_attempts = (double)in->up_attempts_milli / 1000;
	m->up_failures = (double)in->up_failures_milli / 1000;
	m->steps = in->evidence_ticks;
	m->step_s = in->step_ms / 1000.0;
	m->step_n = m->step_s > 0 ? 1000 : 0; /* a saved mean is worth its memory */
}

bool det_in_doubt(const struct model *m, const struct model_params *mp)
{
	double P[2][2];

	if (m->p_down <= DET_DOUBT_P_DOWN)
		return false;
	model_transitions(m, mp, P);
	return m->p_down > 2 * P[MODEL_UP][MODEL_DOWN];
}

double det_hold_s(const struct det_service *s, const struct det_settings *set)
{
	/* With no hold configured, a flapping primary still gets a growing one. */
	if (!(set->failback_hold_s > 0))
		return s->backoff_level ? DET_BACKOFF_BASE_S * (double)(1u << (s->backoff_level - 1)) : 0;
	return set->failback_hold_s * (double)(1u << s->backoff_level);
}

const char *det_event_name(enum det_event e)
{
	switch (e) {
	case DET_FAILOVER: return "failover";
	case DET_FAILBACK: return "failback";
	case DET_FORCED: return "forced";
	case DET_ALL_DOWN: return "all-down";
	default: return "none";
	}
}

struct det_obs det_evidence(const struct fs_backend_stats *prev, const struct fs_backend_stats *cur,
			    double probes_ok, double probes_failed)
{
	double refused = stats_grew(cur->resets_connect, prev->resets_connect);
	double est_resets = stats_grew(cur->resets, prev->resets) - refused;

	return (struct det_obs){
		.successes = stats_grew(cur->established, prev->established) + probes_ok,
		.failures = refused + DET_RESET_ESTABLISHED_WEIGHT * (est_resets > 0 ? est_resets : 0) +
			    stats_grew(cur->timeouts, prev->timeouts) +
			    stats_grew(cur->icmp_errors, prev->icmp_errors) + probes_failed,
	};
}

static int evidence(char *buf, size_t len, const struct det_service *s, const struct det_obs *obs)
{
	int n = 0;

	for (int i = 0; i < s->n_backends && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, " b%d{P(down)=%.6f ok=%.0f fail=%.0f}", i,
			      s->models[i].p_down, obs[i].successes, obs[i].failures);
	return n;
}

static enum det_event switch_to(struct det_service *s, int to, enum det_event ev,
				const struct det_settings *set, const struct det_obs *obs, char *why,
				size_t whylen)
{
	int from = s->active, n;

	s->active = to;
	/* Counted by direction, whoever decided: lower priority is a failover. */
	if (to > from)
		s->failovers++;
	else if (to < from)
		s->failbacks++;
	n = snprintf(why, whylen, "%s: backend %d -> %d (threshold failover=%.4f failback=%.4f hold=%.1fs backoff=%d)",
		     det_event_name(ev), from, to, set->failover_threshold, set->failback_threshold,
		     det_hold_s(s, set), s->backoff_level);
	if (n > 0 && (size_t)n < whylen)
		evidence(why + n, whylen - (size_t)n, s, obs);
	return ev;
}

bool det_at_rest(const struct det_service *s, const struct det_settings *set)
{
	if (s->mode != FS_MODE_AUTO || s->active != 0 || s->backoff_level || s->all_down ||
	    s->down_since_s >= 0 || s->models[0].p_down >= set->failover_threshold)
		return false;
	/* det_tick starts or stops a hold when P(up) crossed the threshold: none may be due. */
	for (int i = 0; i < s->n_backends; i++)
		if ((1 - s->models[i].p_down >= set->failback_threshold) != (s->good_since_s[i] >= 0))
			return false;
	return true;
}

bool det_failback_capped(const struct det_service *s, const struct det_settings *set,
			 const struct model_params *mp, double *ceiling)
{
	if (s->mode != FS_MODE_AUTO || s->active <= 0 || s->active >= s->n_backends)
		return false;
	for (int j = 0; j < s->active; j++) {
		double c;

		if (1 - s->models[j].p_down >= set->failback_threshold)
			return false; /* a hold is under way or done: failback is up to it */
		c = model_up_ceiling(&s->models[j], mp);
		if (c >= set->failback_threshold)
			return false;
		if (j == 0 && ceiling)
			*ceiling = c;
	}
	return true;
}

enum det_event det_tick(struct det_service *s, const struct det_settings *set,
			const struct model_params *mp, const struct det_obs *obs, double now_s,
			char *why, size_t whylen)
{
	double hold;

	why[0] = 0;
	for (int i = 0; i < s->n_backends; i++) {
		struct model *m = &s->models[i];

		model_step(m, mp, obs[i].successes + obs[i].failures, obs[i].failures);
		if (obs[i].successes + obs[i].failures > 0)
			model_note_step_time(m, now_s);
		if (obs[i].successes > 0)
			s->last_ok_s[i] = now_s;
		if (obs[i].failures > 0)
			s->last_fail_s[i] = now_s;
		if (1 - m->p_down >= set->failback_threshold) {
			if (s->good_since_s[i] < 0)
				s->good_since_s[i] = now_s;
		} else {
			s->good_since_s[i] = -1;
		}
	}

	if (s->mode == FS_MODE_FORCED) {
		/* The operator decides: no outage under way is tracked meanwhile. */
		s->down_since_s = -1;
		s->all_down = false;
		if (s->forced_idx >= 0 && s->forced_idx < s->n_backends && s->forced_idx != s->active)
			return switch_to(s, s->forced_idx, DET_FORCED, set, obs, why, whylen);
		return DET_NONE;
	}

	hold = det_hold_s(s, set);
	if (s->models[s->active].p_down >= set->failover_threshold) {
		int target = -1, unseen = -1;

		if (s->down_since_s < 0)
			s->down_since_s = now_s;
		/* The first acceptable backend that recently answered; one nothing was heard
		 * from (backups carry no traffic and, once trusted, are not probed while all is
		 * well) only after the probes sent since the active one looked down had time to
		 * speak. One whose only word since then is failures is not unseen: the node's own
		 * network may be what fails, and moving would not help. */
		for (int j = 0; j < s->n_backends && target < 0; j++) {
			if (j == s->active || s->models[j].p_down >= DET_ACCEPTABLE_P_DOWN)
				continue;
			if (s->last_ok_s[j] >= 0 && now_s - s->last_ok_s[j] <= DET_FRESH_S)
				target = j;
			else if (unseen < 0 && s->last_fail_s[j] < s->down_since_s)
				unseen = j;
		}
		if (target < 0 && unseen >= 0) {
			if (now_s - s->down_since_s < (set->blind_s > DET_BLIND_S ? set->blind_s : DET_BLIND_S))
				return DET_NONE;
			target = unseen;
		}
		if (target >= 0) {
			/* Failing soon after a failback: make the next failback wait longer. */
			if (s->active < target && s->last_failback_s >= 0 &&
			    now_s - s->last_failback_s < (FLAP_WINDOW_MIN_S > 4 * hold ? FLAP_WINDOW_MIN_S : 4 * hold) &&
			    s->backoff_level < DET_MAX_BACKOFF)
				s->backoff_level++;
			s->all_down = false;
			s->down_since_s = -1;
			s->failover_s = now_s;
			return switch_to(s, target, DET_FAILOVER, set, obs, why, whylen);
		}
		if (!s->all_down) {
			int n = snprintf(why, whylen, "all-down: backend %d looks down and no backend is acceptable; "
				    "suspecting this node's own network, keeping backend %d",
				    s->active, s->active);
			if (n > 0 && (size_t)n < whylen)
				evidence(why + n, whylen - (size_t)n, s, obs);
			s->all_down = true;
			return DET_ALL_DOWN;
		}
		return DET_NONE;
	}
	s->all_down = false;
	s->down_since_s = -1;

	/* Back to a higher-priority backend that has been up for the hold and has answered
	 * since the failover: one that was merely never heard from (a backup passed over
	 * for one that answered first) has earned nothing yet. */
	for (int j = 0; j < s->active; j++) {
		if (s->good_since_s[j] >= 0 && now_s - s->good_since_s[j] >= hold &&
		    s->last_ok_s[j] >= 0 && s->last_ok_s[j] >= s->failover_s) {
			s->last_failback_s = s->backoff_clock_s = now_s;
			return switch_to(s, j, DET_FAILBACK, set, obs, why, whylen);
		}
	}
	/* A long quiet stretch after a failback earns back one level of back-off, and each
	 * such stretch after that another (the flap window still runs from the failback). */
	if (s->active == 0 && s->backoff_level > 0 && s->backoff_clock_s >= 0 &&
	    now_s - s->backoff_clock_s >= 10 * hold) {
		s->backoff_level--;
		s->backoff_clock_s = now_s;
	}
	return DET_NONE;
}
