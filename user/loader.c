/* Loader: open, size, load (adopting pinned maps), attach to TC, pin; and detach. */
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "failsteer.skel.h"

#define PROG_PIN_INGRESS "prog_tc_ingress"
#define PROG_PIN_EGRESS "prog_tc_egress"

static const char *const map_names[] = {
	FS_MAP_SERVICES, FS_MAP_FLOWS, FS_MAP_BACKEND_STATS, FS_MAP_BACKEND_TRAFFIC,
	FS_MAP_BACKEND_PENDING, FS_MAP_GLOBAL_STATS,
	FS_MAP_SERVICE_CTL, FS_MAP_SERVICE_STATE, FS_MAP_BACKEND_MODEL, FS_MAP_SYN_STORE,
	FS_MAP_RETRY_EVENTS, FS_MAP_DEADLINES, FS_MAP_DEADLINE_CTL, FS_MAP_DAEMON_STATE,
};

static int *map_fd_slot(struct fs_maps *m, int i)
{
	int *slots[] = { &m->services, &m->flows, &m->backend_stats, &m->backend_traffic,
			 &m->backend_pending, &m->global_stats,
			 &m->service_ctl, &m->service_state, &m->backend_model, &m->syn_store,
			 &m->retry_events, &m->deadlines, &m->deadline_ctl, &m->daemon_state };
	return slots[i];
}

#define N_MAPS ((int)(sizeof(map_names) / sizeof(map_names[0])))

static int mkdir_p(const char *path)
{
	char buf[CFG_PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

/* Is path the root of a mounted filesystem (the bpffs itself, not a directory on it)? */
static bool is_mount_root(const char *path)
{
	char parent[CFG_PATH_MAX + 4];
	struct stat st, pst;

	snprintf(parent, sizeof(parent), "%s/..", path);
	return !stat(path, &st) && !stat(parent, &pst) && (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino);
}

int loader_prepare(struct loader *l, const struct cfg *cfg, char *err, size_t len)
{
	char parent[CFG_PATH_MAX];
	char *slash;
	int err_no;

	memset(l, 0, sizeof(*l));
	l->lock_fd = -1;
	maps_init(&l->maps);
	snprintf(parent, sizeof(parent), "%s", cfg->pin_path);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	/* A fresh machine may have no bpffs: mount the standard one, as systemd would. */
	if (!on_bpffs(parent) && !strncmp(cfg->pin_path, "/sys/fs/bpf/", 12) &&
	    !on_bpffs("/sys/fs/bpf")) {
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
			snprintf(err, len, "mounting bpffs on /sys/fs/bpf: %s", strerror(errno));
			return -errno;
		}
	}
	err_no = mkdir_p(cfg->pin_path);
	if (err_no) {
		snprintf(err, len, "creating pin path %s: %s", cfg->pin_path, strerror(-err_no));
		return err_no;
	}
	if (!on_bpffs(cfg->pin_path)) {
		snprintf(err, len, "pin path %s is not on a bpf filesystem", cfg->pin_path);
		return -EINVAL;
	}
	if (is_mount_root(cfg->pin_path)) {
		snprintf(err, len, "pin path %s is the root of a bpf filesystem mount: use a directory of "
			 "its own under it (e.g. %s/failsteer)", cfg->pin_path, cfg->pin_path);
		return -EINVAL;
	}
	l->lock_fd = open(cfg->pin_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->lock_fd < 0 || flock(l->lock_fd, LOCK_EX | LOCK_NB)) {
		err_no = errno;
		snprintf(err, len, "%s: %s", cfg->pin_path,
			 err_no == EWOULDBLOCK ? "another failsteer daemon is running with this pin_path"
					       : strerror(err_no));
		return -err_no;
	}
	return 0;
}

/* A pinned map is reused only if it is the same shape; say which setting differs. */
static int check_pinned(const char *pin, struct bpf_map *map, bool *conflict, char *err, size_t len)
{
	char path[CFG_PATH_MAX + 64];
	struct bpf_map_info info = { 0 };
	__u32 info_len = sizeof(info);
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", pin, bpf_map__name(map));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0; /* not pinned yet */
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len)) {
		rc = -errno;
		snprintf(err, len, "%s: %s", path, strerror(errno));
	} else if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
		   info.value_size != bpf_map__value_size(map) || info.map_flags != bpf_map__map_flags(map)) {
		rc = -EINVAL;
		*conflict = true;
		snprintf(err, len, "pinned map %s has another layout (older failsteer?): "
			 "run 'failsteer detach' first (drops tracked flows)", path);
	} else if (info.max_entries != bpf_map__max_entries(map)) {
		rc = -EINVAL;
		*conflict = true;
		snprintf(err, len, "pinned map %s has %u entries but the config asks for %u: "
			 "restore the old size or run 'failsteer detach' first (drops tracked flows)",
			 path, info.max_entries, bpf_map__max_entries(map));
	}
	close(fd);
	return rc;
}

int loader_load(struct loader *l, const struct cfg *cfg, char *err, size_t len)
{
	char path[CFG_PATH_MAX + 64];
	struct bpf_map *map;
	int rc;

	l->skel = failsteer_bpf__open();
	if (!l->skel) {
		snprintf(err, len, "opening BPF object: %s", strerror(errno));
		return -errno;
	}
	bpf_map__set_max_entries(l->skel->maps.flows, cfg->flow_table_size);
	bpf_map__set_max_entries(l->skel->maps.services, cfg->max_services);
	bpf_map__set_max_entries(l->skel->maps.service_ctl, cfg->max_services);
	bpf_map__set_max_entries(l->skel->maps.service_state, cfg->max_services);
	bpf_map__set_max_entries(l->skel->maps.backend_stats, cfg->max_backends);
	bpf_map__set_max_entries(l->skel->maps.backend_traffic, cfg->max_backends);
	bpf_map__set_max_entries(l->skel->maps.backend_pending, cfg->max_backends);
	bpf_map__set_max_entries(l->skel->maps.backend_model, cfg->max_backends);
	/* A SYN is needed only until answered; a slot of the ring is reused after a quarter
	 * of the flow table's worth of newer connections. */
	l->skel->rodata->syn_slots = cfg->flow_table_size / 4 > 1024 ? cfg->flow_table_size / 4 : 1024;
	bpf_map__set_max_entries(l->skel->maps.syn_store, l->skel->rodata->syn_slots);
	/* Deadlines wait in the ring only while connecting: a sixteenth of the table. */
	l->skel->rodata->deadline_slots = cfg->flow_table_size / 16 > 1024 ? cfg->flow_table_size / 16 : 1024;
	bpf_map__set_max_entries(l->skel->maps.deadlines, l->skel->rodata->deadline_slots);

	l->adopted = false;
	bpf_object__for_each_map(map, l->skel->obj) {
		if (bpf_map__is_internal(map) || !strcmp(bpf_map__name(map), "syn_scratch") ||
		    !strcmp(bpf_map__name(map), "flow_scratch"))
			continue; /* per-CPU scratch: nothing to keep */
		rc = check_pinned(cfg->pin_path, map, &l->pin_conflict, err, len);
		if (rc)
			return rc;
		snprintf(path, sizeof(path), "%s/%s", cfg->pin_path, bpf_map__name(map));
		if (!access(path, F_OK))
			l->adopted = true;
		rc = bpf_map__set_pin_path(map, path);
		if (rc) {
			snprintf(err, len, "pin path %s: %s", path, strerror(-rc));
			return rc;
		}
	}
	rc = failsteer_bpf__load(l->skel);
	if (rc) {
		snprintf(err, len, "loading BPF programs: %s (run with -v for the verifier log)",
			 strerror(-rc));
		return rc;
	}
	for (int i = 0; i < N_MAPS; i++) {
		map = bpf_object__find_map_by_name(l->skel->obj, map_names[i]);
		*map_fd_slot(&l->maps, i) = map ? bpf_map__fd(map) : -1;
	}
	rc = loader_start_deadline_timer(bpf_program__fd(l->skel->progs.fs_deadline_setup));
	if (rc) {
		snprintf(err, len, "starting the connect-deadline timer: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

int loader_start_deadline_timer(int setup_prog_fd)
{
	unsigned char frame[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame),
		    .repeat = 1);

	/* test_run gives the program process context, where the timer can be allocated. */
	if (bpf_prog_test_run_opts(setup_prog_fd, &opts))
		return -errno;
	return opts.retval ? -EINVAL : 0;
}

static int pin_prog(const char *pin, const char *name, struct bpf_program *prog, char *err,
		    size_t len)
{
	char path[CFG_PATH_MAX + 64];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", pin, name);
	unlink(path); /* the previous daemon's program: the new one replaces it */
	rc = bpf_program__pin(prog, path);
	if (rc)
		snprintf(err, len, "pinning %s: %s", path, strerror(-rc));
	return rc;
}

int loader_check_interfaces(const struct cfg *cfg, char *err, size_t len)
{
	for (int i = 0; i < cfg->n_interfaces; i++)
		if (!if_nametoindex(cfg->interfaces[i])) {
			snprintf(err, len, "interface %s: %s", cfg->interfaces[i], strerror(errno));
			return -ENODEV;
		}
	return 0;
}

/* The id of the program fd refers to, 0 if it cannot be told. */
static __u32 prog_id_of(int fd)
{
	struct bpf_prog_info info = { 0 };
	__u32 info_len = sizeof(info);

	return fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &info_len) ? 0 : info.id;
}

/* The id of the program pinned at pin_path/name, 0 if there is none. */
static __u32 pinned_prog_id(const char *pin_path, const char *name)
{
	char path[CFG_PATH_MAX + 300];
	__u32 id;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_path, name);
	fd = bpf_obj_get(path);
	id = prog_id_of(fd);
	if (fd >= 0)
		close(fd);
	return id;
}

/* Another pin directory beside pin_path (in its parent) that pins program id, into other;
 * false if there is none. */
static bool pinned_beside(const char *pin_path, __u32 id, char *other, size_t len)
{
	char parent[CFG_PATH_MAX], path[CFG_PATH_MAX + 300];
	const char *base = strrchr(pin_path, '/');
	struct dirent *e;
	bool found = false;
	DIR *dir;

	if (!base)
		return false;
	snprintf(parent, sizeof(parent), "%.*s", (int)(base - pin_path), pin_path);
	base++;
	dir = opendir(parent[0] ? parent : "/");
	if (!dir)
		return false;
	while (!found && (e = readdir(dir))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, base))
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		found = pinned_prog_id(path, PROG_PIN_INGRESS) == id ||
			pinned_prog_id(path, PROG_PIN_EGRESS) == id;
		if (found)
			snprintf(other, len, "%s", path);
	}
	closedir(dir);
	return found;
}

int loader_check_filters(const struct loader *l, const struct cfg *cfg, char *err, size_t len)
{
	/* Ours: the programs pinned here (a daemon before this one) and this one's, once
	 * loaded (a reload attaching to more interfaces). Another program is replaced as
	 * before (an older one of ours, left on an interface dropped from the config, or one
	 * whose pins are gone) unless another pin directory beside ours pins it. */
	const __u32 ours[4] = {
		pinned_prog_id(cfg->pin_path, PROG_PIN_INGRESS),
		pinned_prog_id(cfg->pin_path, PROG_PIN_EGRESS),
		l->skel ? prog_id_of(bpf_program__fd(l->skel->progs.fs_tc_ingress)) : 0,
		l->skel ? prog_id_of(bpf_program__fd(l->skel->progs.fs_tc_egress)) : 0,
	};
	char other[CFG_PATH_MAX + 300];

	for (int i = 0; i < cfg->n_interfaces; i++) {
		int ifindex = (int)if_nametoindex(cfg->interfaces[i]);

		for (int p = 0; ifindex && p < 2; p++) {
			LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
				    .attach_point = p ? BPF_TC_EGRESS : BPF_TC_INGRESS);
			LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE, .priority = FS_TC_PRIORITY);

			if (bpf_tc_query(&hook, &opts))
				continue; /* none there (or no clsact yet) */
			if (opts.prog_id == ours[0] || opts.prog_id == ours[1] || opts.prog_id == ours[2] ||
			    opts.prog_id == ours[3] || !pinned_beside(cfg->pin_path, opts.prog_id, other,
								      sizeof(other)))
				continue;
			snprintf(err, len, "interface %s %s: the failsteer data path pinned under %s "
				 "steers through it (another pin_path; stopped or not, its filters stay): "
				 "'failsteer detach -p %s' first, or leave the interface to it",
				 cfg->interfaces[i], p ? "egress" : "ingress", other, other);
			return -EEXIST;
		}
	}
	return 0;
}

int loader_attach(struct loader *l, const struct cfg *cfg, char *err, size_t len)
{
	const struct {
		enum bpf_tc_attach_point point;
		struct bpf_program *prog;
	} hooks[] = {
		{ BPF_TC_INGRESS, l->skel->progs.fs_tc_ingress },
		{ BPF_TC_EGRESS, l->skel->progs.fs_tc_egress },
	};
	int rc = loader_check_interfaces(cfg, err, len); /* all or none */

	if (!rc)
		rc = loader_check_filters(l, cfg, err, len);
	if (rc)
		return rc;
	for (int i = 0; i < cfg->n_interfaces; i++) {
		int ifindex = (int)if_nametoindex(cfg->interfaces[i]);

		if (!ifindex) {
			snprintf(err, len, "interface %s: %s", cfg->interfaces[i], strerror(errno));
			return -ENODEV;
		}
		for (size_t h = 0; h < sizeof(hooks) / sizeof(hooks[0]); h++) {
			LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = hooks[h].point);
			LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE, .priority = FS_TC_PRIORITY,
				    .prog_fd = bpf_program__fd(hooks[h].prog), .flags = BPF_TC_F_REPLACE);

			/* The clsact qdisc may exist already (ours from before, or another tool's). */
			rc = bpf_tc_hook_create(&hook);
			if (rc && rc != -EEXIST) {
				snprintf(err, len, "creating clsact on %s: %s", cfg->interfaces[i], strerror(-rc));
				return rc;
			}
			rc = bpf_tc_attach(&hook, &opts);
			if (rc) {
				snprintf(err, len, "attaching to %s %s: %s", cfg->interfaces[i],
					 hooks[h].point == BPF_TC_INGRESS ? "ingress" : "egress", strerror(-rc));
				return rc;
			}
		}
	}
	rc = pin_prog(cfg->pin_path, PROG_PIN_INGRESS, l->skel->progs.fs_tc_ingress, err, len);
	if (!rc)
		rc = pin_prog(cfg->pin_path, PROG_PIN_EGRESS, l->skel->progs.fs_tc_egress, err, len);
	return rc;
}

void loader_close(struct loader *l)
{
	if (l->skel)
		failsteer_bpf__destroy(l->skel); /* closes its fds; pins and filters stay */
	l->skel = NULL;
	maps_init(&l->maps);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	l->lock_fd = -1;
}

/* Is the program with this id one of ours? (Same handle/priority could be someone else's.)
 * 1 if it is one of the pinned programs, which needs no privilege to tell, or runs under
 * our name; 0 if not; -errno if it cannot be opened by id to look (that takes
 * CAP_SYS_ADMIN). */
static int is_failsteer_prog(__u32 id, const __u32 pinned[2])
{
	struct bpf_prog_info info = { 0 };
	__u32 info_len = sizeof(info);
	int fd, ours = 0;

	if (id == pinned[0] || id == pinned[1])
		return 1;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* ENOENT: gone meanwhile */
	if (!bpf_obj_get_info_by_fd(fd, &info, &info_len))
		ours = !strncmp(info.name, "fs_tc_", 6);
	close(fd);
	return ours;
}

/* Does pin_path hold any of failsteer's pins (programs or maps)? */
static bool has_pins(const char *pin_path)
{
	char path[CFG_PATH_MAX + 64];
	int fd;

	if (pinned_prog_id(pin_path, PROG_PIN_INGRESS) || pinned_prog_id(pin_path, PROG_PIN_EGRESS))
		return true;
	for (int i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_path, map_names[i]);
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			close(fd);
			return true;
		}
	}
	return false;
}

/* Takes pin_path's lock for detach (lock_fd, or -1 if there is no pin_path and force
 * allows that); refuses anything but an idle failsteer pin directory. */
static int detach_lock(const char *pin_path, bool force, int *lock_fd, char *err, size_t len)
{
	struct stat st;
	int err_no;

	*lock_fd = -1;
	if (stat(pin_path, &st)) {
		err_no = errno;
		if (err_no == ENOENT && force)
			return 0;
		if (err_no == ENOENT)
			snprintf(err, len, "no pins under %s (the daemon's pin_path?); nothing removed ('detach "
				 "--force' removes every failsteer TC filter in this network namespace)",
				 pin_path);
		else
			snprintf(err, len, "%s: %s; nothing removed", pin_path, strerror(err_no));
		return -err_no;
	}
	/* Only names inside a bpffs directory are unlinked: never files elsewhere. */
	if (!S_ISDIR(st.st_mode) || !on_bpffs(pin_path)) {
		snprintf(err, len, "%s is not a directory on a bpf filesystem, so not failsteer's pins; "
			 "nothing removed", pin_path);
		return -ENOTDIR;
	}
	if (is_mount_root(pin_path)) {
		snprintf(err, len, "%s is the root of a bpf filesystem mount, not a failsteer pin "
			 "directory; nothing removed", pin_path);
		return -EISDIR;
	}
	*lock_fd = open(pin_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB)) {
		err_no = errno;
		snprintf(err, len, "%s: %s; nothing removed", pin_path,
			 err_no == EWOULDBLOCK ? "a failsteer daemon is running with this pin_path, stop it first"
					       : strerror(err_no));
		if (*lock_fd >= 0)
			close(*lock_fd);
		*lock_fd = -1;
		return -err_no;
	}
	/* Without pins of ours here, the filters found by name could be anyone's (another
	 * pin path's): only with --force. */
	if (!force && !has_pins(pin_path)) {
		snprintf(err, len, "no failsteer pins under %s (the daemon's pin_path?); nothing removed "
			 "('detach --force' removes every failsteer TC filter in this network namespace)",
			 pin_path);
		close(*lock_fd);
		*lock_fd = -1;
		return -ENOENT;
	}
	return 0;
}

/* Removes the filters and the pins; pin_path is locked (or absent). */
static int detach_locked(const char *pin_path, char *err, size_t len)
{
	struct if_nameindex *ifs = if_nameindex(), *it;
	const __u32 pinned[2] = { pinned_prog_id(pin_path, PROG_PIN_INGRESS),
				  pinned_prog_id(pin_path, PROG_PIN_EGRESS) };
	char path[CFG_PATH_MAX + 64];
	int removed = 0, rc;

	if (!ifs) {
		snprintf(err, len, "listing interfaces: %s", strerror(errno));
		return -errno;
	}
	/* Two passes: if any filter cannot be told apart, nothing is removed, the pins least
	 * of all (without them, only its id would lead to the program). */
	for (int pass = 0; pass < 2; pass++) {
		for (it = ifs; it->if_index; it++) {
			for (int p = 0; p < 2; p++) {
				LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)it->if_index,
					    .attach_point = p ? BPF_TC_EGRESS : BPF_TC_INGRESS);
				LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE,
					    .priority = FS_TC_PRIORITY);

				if (bpf_tc_query(&hook, &opts))
					continue;
				rc = is_failsteer_prog(opts.prog_id, pinned);
				if (rc < 0) {
					snprintf(err, len, "cannot tell whether the TC filter on %s %s (program id %u) "
						 "is failsteer's: opening a program by id needs CAP_SYS_ADMIN, and it "
						 "is not the one pinned under %s; nothing removed",
						 it->if_name, p ? "egress" : "ingress", opts.prog_id, pin_path);
					if_freenameindex(ifs);
					return rc;
				}
				if (!rc || !pass)
					continue;
				opts.prog_id = 0;
				opts.prog_fd = 0;
				opts.flags = 0;
				rc = bpf_tc_detach(&hook, &opts);
				if (rc && rc != -ENOENT) {
					snprintf(err, len, "detaching from %s: %s", it->if_name, strerror(-rc));
					if_freenameindex(ifs);
					return rc;
				}
				removed++;
			}
		}
	}
	if_freenameindex(ifs);
	for (int i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_path, map_names[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/%s", pin_path, PROG_PIN_INGRESS);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", pin_path, PROG_PIN_EGRESS);
	unlink(path);
	if (rmdir(pin_path) && errno != ENOENT) {
		snprintf(err, len, "removing %s: %s", pin_path, strerror(errno));
		return -errno;
	}
	return removed;
}

int loader_detach(const char *pin_path, bool force, char *err, size_t len)
{
	int rc, lock_fd;

	rc = detach_lock(pin_path, force, &lock_fd, err, len);
	if (rc)
		return rc;
	rc = detach_locked(pin_path, err, len);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

void maps_init(struct fs_maps *m)
{
	for (int i = 0; i < N_MAPS; i++)
		*map_fd_slot(m, i) = -1;
}

int maps_open_pinned(const char *pin_path, struct fs_maps *m, char *err, size_t len)
{
	char path[CFG_PATH_MAX + 64];

	maps_init(m);
	for (int i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_path, map_names[i]);
		*map_fd_slot(m, i) = bpf_obj_get(path);
		if (*map_fd_slot(m, i) < 0) {
			int e = errno;

			/* Pinned by an older daemon (an upgrade under way): no heartbeat to show. */
			if (e == ENOENT && !strcmp(map_names[i], FS_MAP_DAEMON_STATE))
				continue;

			snprintf(err, len, "%s: %s%s", path, strerror(e),
				 e == ENOENT ? " (is failsteer running? see --pin-path)" : "");
			maps_close(m);
			return -e;
		}
	}
	return 0;
}

void maps_close(struct fs_maps *m)
{
	for (int i = 0; i < N_MAPS; i++) {
		int *fd = map_fd_slot(m, i);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}
