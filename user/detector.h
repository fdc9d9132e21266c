/* Detector: per-tick observations of each backend -> Markov models -> failover/failback
 * decisions with hysteresis and flap back-off. No BPF here: testable without root. */
#ifndef FS_DETECTOR_H
#define FS_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "failsteer/failsteer.h"
#include "model.h"

#define DET_MAX_BACKOFF 6 /* failback hold grows up to 64x */
#define DET_FRESH_S 30.0  /* a success this recent says a backend is up */
#define DET_BLIND_S 1.0   /* how long a failover waits for such evidence about a backup, at least */
#define DET_BACKOFF_BASE_S 1.0 /* the back-off's base when failback_hold_ms is 0 */
#define DET_ACCEPTABLE_P_DOWN 0.5 /* a backend to move to must be more likely up than down */

/* Per-service settings, from the config. */
struct det_settings {
	double failover_threshold; /* P(active down) that triggers failover */
	double failback_threshold; /* P(up) a higher-priority backend must hold ... */
	double failback_hold_s;    /* ... for this long (times 2^backoff_level) */
	double blind_s;            /* how long a failover waits for word from a backup nothing
				    * was heard from: a probe's round and timeout (0: DET_BLIND_S) */
};

/* What one tick saw of one backend. */
struct det_obs {
	double successes; /* connections established, probes answered */
	double failures;  /* resets, connect timeouts, ICMP errors, probes failed */
};

/* The evidence between two reads of a backend's fault counters, plus probe results:
 * established connections and answered probes are successes; refused connects, connect
 * timeouts, ICMP unreachables and failed probes failures, resets of established connections
 * weakly so (DET_RESET_ESTABLISHED_WEIGHT each: servers that close with a reset, SO_LINGER
 * 0, would otherwise look half dead). A read can land between the two increments of one
 * refused connect (resets, then resets_connect): no term ever goes below zero. */
#define DET_RESET_ESTABLISHED_WEIGHT 0.1
struct det_obs det_evidence(const struct fs_backend_stats *prev, const struct fs_backend_stats *cur,
			    double probes_ok, double probes_failed);

enum det_event {
	DET_NONE,
	DET_FAILOVER,   /* active looked down: moved to a lower-priority backend */
	DET_FAILBACK,   /* a higher-priority backend was up for the hold: moved back */
	DET_FORCED,     /* the operator's choice was applied */
	DET_ALL_DOWN,   /* active looked down but no backend was acceptable: kept */
};

struct det_service {
	int n_backends;
	struct model models[FS_MAX_BACKENDS];
	double good_since_s[FS_MAX_BACKENDS]; /* since when P(up) >= failback threshold, or <0 */
	double last_ok_s[FS_MAX_BACKENDS];    /* last tick with a success, or <0 */
	double last_fail_s[FS_MAX_BACKENDS];  /* last tick with a failure, or <0 */
	double down_since_s;    /* since when the active backend looks down, or <0 */
	double failover_s;      /* the last failover, <0: none since the daemon started */
	int active;
	int mode;               /* FS_MODE_AUTO / FS_MODE_FORCED */
	int forced_idx;
	int backoff_level;
	double last_failback_s; /* the last failback (a failover soon after is a flap), <0: never */
	double backoff_clock_s; /* since when the back-off level holds: the last failback or the
				 * last lowering of the level, <0: never */
	bool all_down;
	unsigned failovers, failbacks;
};

void det_service_init(struct det_service *s, int n_backends, int active);

/* A backend's model from its saved record (backend_model map), within the model's bounds
 * whatever the record holds (another version, damage). */
void det_model_from_record(const struct fs_backend_model *in, struct model *m);

/* One tick at time now_s: feeds obs[0..n_backends) to the models and decides. Returns the
 * event; if it is not DET_NONE, why holds one log line with the evidence. */
enum det_event det_tick(struct det_service *s, const struct det_settings *set,
			const struct model_params *mp, const struct det_obs *obs, double now_s,
			char *why, size_t whylen);

/* After a failover: can no backend before the active one reach the failback threshold as
 * its model stands (model_up_ceiling)? Then automatic failback waits until the outage
 * fades from the models, which may take hours, and the daemon says so. The primary's
 * ceiling goes into *ceiling. False if failback can come, or the service is not failed
 * over, or forced. */
bool det_failback_capped(const struct det_service *s, const struct det_settings *set,
			 const struct model_params *mp, double *ceiling);

/* True when a tick without evidence cannot change s, however late it comes: automatic, on
 * the primary and trusting it, no back-off to earn back, no failback hold to start or stop.
 * The daemon skips such a service on a tick where none of its backends saw anything. */
bool det_at_rest(const struct det_service *s, const struct det_settings *set);

/* Above this P(down) a backend is not trusted: the active one makes its service suspect,
 * another one is in doubt (det_in_doubt). Either gets probed. */
#define DET_DOUBT_P_DOWN 0.01
/* A backend whose P(down) is above DET_DOUBT_P_DOWN and above twice its learned per-tick
 * up->down rate: probes can still argue it lower (one answer a round holds a backend that
 * often fails near that rate: no reason to keep probing it). */
bool det_in_doubt(const struct model *m, const struct model_params *mp);

/* Current failback hold in seconds, back-off included. */
double det_hold_s(const struct det_service *s, const struct det_settings *set);

const char *det_event_name(enum det_event e);

#endif
