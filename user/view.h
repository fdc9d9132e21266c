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
};

/* Reads every service. Returns 0 or -errno. */
int view_read(const struct fs_maps *m, struct view *v);
void view_free(struct view *v);
/* The service called name, or NULL. */
const struct view_service *view_find(const struct view *v, const char *name);

#endif
