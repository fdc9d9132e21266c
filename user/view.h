/* A read of everything the pinned maps say about the services, for status and metrics. */
#ifndef FS_VIEW_H
#define FS_VIEW_H

#include "failsteer/failsteer.h"
#include "loader.h"

struct view_backend {
	__u32 id;
	struct fs_endpoint ep;
	struct fs_backend_stats stats;  /* totals since the maps were created */
	struct fs_backend_traffic traffic;
	struct fs_backend_model model;  /* the daemon's model, rates included */
};

struct view_service {
	struct fs_endpoint address;
	struct fs_service svc;          /* active backend, backends, ids */
	struct fs_service_state state;  /* name, failovers, failbacks, back-off */
	struct fs_service_ctl ctl;      /* auto or forced */
	struct view_backend *be;        /* svc.n_backends of them */
};

struct view {
	int n;
	struct view_service *svcs;      /* sorted by name */
	struct view_backend *backends;  /* storage behind svcs[].be */
	struct fs_global_stats global;
	struct fs_daemon_state daemon;  /* its heartbeat */
};

/* What the heartbeat says of the daemon. */
enum view_daemon {
	VIEW_DAEMON_UNKNOWN,  /* no heartbeat: none ran, or an older version */
	VIEW_DAEMON_TICKING,  /* it ticked within 3 periods (at least 1 s) */
	VIEW_DAEMON_STOPPED,  /* it stopped on a signal */
	VIEW_DAEMON_SILENT,   /* it stopped ticking: killed, crashed or hung */
};

/* Reads every service. Returns 0 or -errno. */
int view_read(const struct fs_maps *m, struct view *v);
void view_free(struct view *v);
/* The daemon's state, and how long ago it last ticked (age_s, may be NULL). */
enum view_daemon view_daemon(const struct view *v, double *age_s);
/* The highest P(up) a backend can reach as its saved model stands (model_up_ceiling), -1
 * if no daemon saved one. */
double view_up_ceiling(const struct view *v, const struct view_backend *be);
/* det_failback_capped from the saved models: automatic failback cannot come for now. */
bool view_failback_capped(const struct view *v, const struct view_service *s, double *ceiling);
/* The service called name, or NULL. */
const struct view_service *view_find(const struct view *v, const char *name);

#endif
