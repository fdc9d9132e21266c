/* Loader: open, size, load (adopting pinned maps), attach to TC, pin; and detach. */
#ifndef FS_LOADER_H
#define FS_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct failsteer_bpf;

/* File descriptors of the pinned maps, as the CLI and the daemon use them. */
struct fs_maps {
	int services, flows, backend_stats, backend_traffic, backend_pending, global_stats;
	int service_ctl, service_state, backend_model;
	int syn_store, retry_events, deadlines, deadline_ctl, daemon_state;
};

struct loader {
	struct failsteer_bpf *skel;
	struct fs_maps maps;
	bool adopted;     /* the maps already existed: flows and state carried over */
	int lock_fd;      /* flock on the pin directory: one daemon per pin_path */
	bool pin_conflict; /* loading failed on a pinned map of another size or layout */
	bool tcx;         /* the last attach made tcx links (else clsact filters) */
	bool no_tcx;      /* tc_attach = tcx on a kernel without tcx */
};

/* Mounts bpffs if the pin path is not on one, creates the directory, and takes the lock. */
int loader_prepare(struct loader *l, const struct cfg *cfg, char *err, size_t len);
/* Opens the skeleton, sizes the maps from cfg, reuses pinned maps, loads and pins. A
 * pinned map cfg does not fit (a setting changed, another version) sets pin_conflict. */
int loader_load(struct loader *l, const struct cfg *cfg, char *err, size_t len);
/* 0 if every configured interface exists; else -ENODEV with err naming the first missing. */
int loader_check_interfaces(const struct cfg *cfg, char *err, size_t len);
/* 0 if no configured interface has a failsteer program attached (tcx link or clsact filter)
 * that another pin directory beside pin_path pins (another failsteer data path steering
 * there, which attaching would silently replace or shadow); else -EEXIST, naming it. */
int loader_check_filters(const struct loader *l, const struct cfg *cfg, char *err, size_t len);
/* Attaches ingress and egress programs to every configured interface (none unless all
 * exist, and none if loader_check_filters refuses) as cfg->tc_attach says: tcx links pinned
 * under pin_path, or clsact filters. The programs of an earlier daemon of this pin path are
 * replaced atomically (link update, filter replace); the other kind's hook, if one is left,
 * goes once the new one is in place. Pins the programs. */
int loader_attach(struct loader *l, const struct cfg *cfg, char *err, size_t len);
/* Starts (or takes over) the timer that sweeps connect deadlines, by running the setup
 * program once. Returns 0 or -errno. */
int loader_start_deadline_timer(int setup_prog_fd);
/* Closes file descriptors; pins, links and filters stay, so the data path keeps running. */
void loader_close(struct loader *l);

/* Removes failsteer's programs (tcx links, clsact filters) from every interface of this
 * network namespace and the pins under pin_path. Refuses (nothing removed) a pin_path a
 * daemon holds, one that is not a bpffs directory, and a missing one unless force. Returns
 * the number of hooks cleared, or -errno. */
int loader_detach(const char *pin_path, bool force, char *err, size_t len);

/* Marks every map fd as not open (-1). */
void maps_init(struct fs_maps *m);
/* Opens the pinned maps under pin_path (CLI); daemon_state may be missing (-1). */
int maps_open_pinned(const char *pin_path, struct fs_maps *m, char *err, size_t len);
void maps_close(struct fs_maps *m);

#endif
