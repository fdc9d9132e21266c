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
/* The tcx links, one per interface and direction: link_tc_ingress_IFINDEX (bpffs allows no
 * dots, which interface names may hold). */
#define LINK_PIN_PREFIX "link_tc_"

/* tcx (Linux 6.6 and later): attach types and link type, newer than libbpf 1.1's headers. */
#define TCX_INGRESS 46
#define TCX_EGRESS 47
#define LINK_TYPE_TCX 11
/* Programs one tcx hook is asked for at most (ours is one; others share the hook). */
#define TCX_QUERY_MAX 64

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
	char path[CFG_PATH_MAX + 600]; /* pin_path may be a directory beside ours, name and all */
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

/* The ids of the programs attached to ifindex's tcx hook (egress or ingress), the first max
 * of them; 0 where the kernel has no tcx. */
static __u32 tcx_prog_ids(int ifindex, bool egress, __u32 *ids, __u32 max)
{
	LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .prog_cnt = max);

	/* ENOSPC: more than max, the first max given and prog_cnt set to them all. */
	if (bpf_prog_query_opts(ifindex, egress ? TCX_EGRESS : TCX_INGRESS, &q) && errno != ENOSPC)
		return 0;
	return q.prog_cnt < max ? q.prog_cnt : max;
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
	__u32 ids[TCX_QUERY_MAX + 1];

	for (int i = 0; i < cfg->n_interfaces; i++) {
		int ifindex = (int)if_nametoindex(cfg->interfaces[i]);

		for (int p = 0; ifindex && p < 2; p++) {
			LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
				    .attach_point = p ? BPF_TC_EGRESS : BPF_TC_INGRESS);
			LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE, .priority = FS_TC_PRIORITY);
			/* The tcx hook's programs, then the clsact filter's (none: no clsact yet). */
			__u32 n = tcx_prog_ids(ifindex, p, ids, TCX_QUERY_MAX);

			if (!bpf_tc_query(&hook, &opts))
				ids[n++] = opts.prog_id;
			for (__u32 k = 0; k < n; k++) {
				if (ids[k] == ours[0] || ids[k] == ours[1] || ids[k] == ours[2] ||
				    ids[k] == ours[3] || !pinned_beside(cfg->pin_path, ids[k], other, sizeof(other)))
					continue;
				snprintf(err, len, "interface %s %s: the failsteer data path pinned under %s "
					 "steers through it (another pin_path; stopped or not, its programs "
					 "stay attached): 'failsteer detach -p %s' first, or leave the interface "
					 "to it", cfg->interfaces[i], p ? "egress" : "ingress", other, other);
				return -EEXIST;
			}
		}
	}
	return 0;
}

/* The pin of the tcx link on ifindex's egress or ingress hook. */
static void link_pin(char *buf, size_t n, const char *pin_path, int ifindex, bool egress)
{
	snprintf(buf, n, "%s/" LINK_PIN_PREFIX "%s_%d", pin_path, egress ? "egress" : "ingress", ifindex);
}

struct tcx_link {
	__u32 prog_id, ifindex, attach_type;
};

/* The tcx link fd refers to: 1 if attached, 0 if detached (its device went), -1 if fd is no
 * tcx link or cannot be read. */
static int tcx_link_of(int fd, struct tcx_link *out)
{
	struct bpf_link_info info = { 0 };
	__u32 info_len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &info_len) || info.type != LINK_TYPE_TCX)
		return -1;
	/* tcx's part of the info, {ifindex, attach_type}, is laid out as netns's. */
	out->prog_id = info.prog_id;
	out->ifindex = info.netns.netns_ino;
	out->attach_type = info.netns.attach_type;
	return out->ifindex != 0;
}

/* Is fd a tcx link attached to ifindex's hook of this attach type (its info into li)? */
static bool tcx_link_on(int fd, int ifindex, __u32 type, struct tcx_link *li)
{
	return tcx_link_of(fd, li) == 1 && li->ifindex == (__u32)ifindex && li->attach_type == type;
}

/* Calls fn(path, fd, ctx) for every link pin under pin_path (fd: the pinned link, -1 if it
 * cannot be opened; closed after). */
static void for_each_link_pin(const char *pin_path, void (*fn)(const char *path, int fd, void *ctx),
			      void *ctx)
{
	char path[CFG_PATH_MAX + 300];
	struct dirent *e;
	DIR *dir = opendir(pin_path);
	int fd;

	while (dir && (e = readdir(dir))) {
		if (strncmp(e->d_name, LINK_PIN_PREFIX, strlen(LINK_PIN_PREFIX)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_path, e->d_name);
		fd = bpf_obj_get(path);
		fn(path, fd, ctx);
		if (fd >= 0)
			close(fd);
	}
	if (dir)
		closedir(dir);
}

/* Is program prog_id attached to ifindex's hook in this network namespace? */
static bool tcx_has_prog(int ifindex, bool egress, __u32 prog_id)
{
	__u32 ids[TCX_QUERY_MAX], n = tcx_prog_ids(ifindex, egress, ids, TCX_QUERY_MAX);

	for (__u32 i = 0; i < n; i++)
		if (ids[i] == prog_id)
			return true;
	return false;
}

/* Does this kernel have tcx? (A query of lo's hook, which is refused without.) */
static bool tcx_supported(void)
{
	LIBBPF_OPTS(bpf_prog_query_opts, q);

	return !bpf_prog_query_opts(1, TCX_INGRESS, &q) || errno == ENOSPC;
}

/* Attaches prog_fd to ifindex's hook as a tcx link pinned under pin_path, or moves the
 * link pinned there by a daemon before this one over to it (atomically: every packet meets
 * one program or the other). */
static int tcx_attach(const char *pin_path, int ifindex, bool egress, int prog_fd)
{
	__u32 type = egress ? TCX_EGRESS : TCX_INGRESS, prog_id = prog_id_of(prog_fd);
	char path[CFG_PATH_MAX + 64];
	struct tcx_link li;
	int fd, rc;

	link_pin(path, sizeof(path), pin_path, ifindex, egress);
	fd = bpf_obj_get(path);
	/* The pinned link must be this hook's in this network namespace (the pins are shared
	 * by all: a daemon moved to another one finds its predecessor's link there). */
	if (tcx_link_on(fd, ifindex, type, &li) && tcx_has_prog(ifindex, egress, li.prog_id)) {
		rc = li.prog_id == prog_id ? 0 : bpf_link_update(fd, prog_fd, NULL);
		close(fd);
		return rc < 0 ? -errno : 0;
	}
	if (fd >= 0) {
		close(fd);
		unlink(path); /* its device went, with the link, or it is another namespace's */
	}
	fd = bpf_link_create(prog_fd, ifindex, (enum bpf_attach_type)type, NULL);
	if (fd < 0)
		return -errno;
	rc = bpf_obj_pin(fd, path) ? -errno : 0;
	close(fd); /* unpinned, that detaches it */
	return rc;
}

/* Detaches the tcx link pinned for ifindex's hook, if any, and removes its pin. */
static void tcx_remove_pinned(const char *pin_path, int ifindex, bool egress)
{
	char path[CFG_PATH_MAX + 64];
	int fd;

	link_pin(path, sizeof(path), pin_path, ifindex, egress);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	bpf_link_detach(fd); /* at once, whoever else holds the link */
	close(fd);
	unlink(path);
}

static void unlink_if_detached(const char *path, int fd, void *ctx)
{
	struct tcx_link li;

	(void)ctx;
	if (tcx_link_of(fd, &li) == 0)
		unlink(path);
}

/* Removes the pins of tcx links that went with their devices. */
static void prune_link_pins(const char *pin_path)
{
	for_each_link_pin(pin_path, unlink_if_detached, NULL);
}

/* Is the program with this id one of ours? (Same handle/priority could be someone else's.)
 * 1 if it is one of the n known ones (pinned, loaded), which needs no privilege to tell, or runs under
 * our name; 0 if not; -errno if it cannot be opened by id to look (that takes
 * CAP_SYS_ADMIN). */
static int is_failsteer_prog(__u32 id, const __u32 *known, int n)
{
	struct bpf_prog_info info = { 0 };
	__u32 info_len = sizeof(info);
	int fd, ours = 0;

	for (int i = 0; i < n; i++)
		if (id && id == known[i])
			return 1;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* ENOENT: gone meanwhile */
	if (!bpf_obj_get_info_by_fd(fd, &info, &info_len))
		ours = !strncmp(info.name, "fs_tc_", 6);
	close(fd);
	return ours;
}

/* Removes the clsact filter at failsteer's handle and priority from ifindex's hook, if any:
 * what a clsact attach would replace (loader_check_filters has refused another pin path's
 * there; ours from before, or one pinned nowhere, would otherwise run after the tcx link). */
static int clsact_remove(int ifindex, bool egress)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE, .priority = FS_TC_PRIORITY);

	if (bpf_tc_query(&hook, &opts))
		return -ENOENT;
	opts.prog_id = 0;
	opts.prog_fd = 0;
	opts.flags = 0;
	return bpf_tc_detach(&hook, &opts);
}

static int clsact_attach(int ifindex, bool egress, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE, .priority = FS_TC_PRIORITY,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	/* The clsact qdisc may exist already (ours from before, or another tool's). */
	int rc = bpf_tc_hook_create(&hook);

	if (rc && rc != -EEXIST)
		return rc;
	return bpf_tc_attach(&hook, &opts);
}

int loader_attach(struct loader *l, const struct cfg *cfg, char *err, size_t len)
{
	struct bpf_program *progs[2] = { l->skel->progs.fs_tc_ingress, l->skel->progs.fs_tc_egress };
	int rc = loader_check_interfaces(cfg, err, len); /* all or none */

	if (!rc)
		rc = loader_check_filters(l, cfg, err, len);
	if (rc)
		return rc;
	l->tcx = cfg->tc_attach != CFG_TC_CLSACT && tcx_supported();
	l->no_tcx = cfg->tc_attach == CFG_TC_TCX && !l->tcx;
	if (l->no_tcx) {
		snprintf(err, len, "tc_attach = tcx: this kernel has no tcx (Linux 6.6 or later); "
			 "tc_attach = auto or clsact attach clsact filters");
		return -EOPNOTSUPP;
	}
	for (int i = 0; i < cfg->n_interfaces; i++) {
		int ifindex = (int)if_nametoindex(cfg->interfaces[i]);

		if (!ifindex) {
			snprintf(err, len, "interface %s: %s", cfg->interfaces[i], strerror(errno));
			return -ENODEV;
		}
		/* The new hook first, then the other kind goes (a change of tc_attach, an
		 * older daemon's filter): no packet passes unsteered meanwhile. */
		for (int e = 0; e < 2; e++) {
			int fd = bpf_program__fd(progs[e]);

			rc = l->tcx ? tcx_attach(cfg->pin_path, ifindex, e, fd) : clsact_attach(ifindex, e, fd);
			if (rc) {
				snprintf(err, len, "attaching to %s %s (%s): %s", cfg->interfaces[i],
					 e ? "egress" : "ingress", l->tcx ? "tcx" : "clsact", strerror(-rc));
				return rc;
			}
			if (l->tcx)
				clsact_remove(ifindex, e);
			else
				tcx_remove_pinned(cfg->pin_path, ifindex, e);
		}
	}
	prune_link_pins(cfg->pin_path);
	rc = pin_prog(cfg->pin_path, PROG_PIN_INGRESS, progs[0], err, len);
	if (!rc)
		rc = pin_prog(cfg->pin_path, PROG_PIN_EGRESS, progs[1], err, len);
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
				 "--force' removes every failsteer program on the TC hooks of this network namespace)",
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
			 "('detach --force' removes every failsteer program on the TC hooks of this network "
			 "namespace)",
			 pin_path);
		close(*lock_fd);
		*lock_fd = -1;
		return -ENOENT;
	}
	return 0;
}

/* Detaches the tcx link of program prog_id on ifindex's hook: the one pinned under pin_path
 * for it, else found among all links (that takes CAP_SYS_ADMIN; a program attached to a hook
 * here is attached in this network namespace, by its own daemon). */
static int tcx_detach_prog(const char *pin_path, __u32 prog_id, int ifindex, bool egress)
{
	__u32 id = 0, type = egress ? TCX_EGRESS : TCX_INGRESS;
	char path[CFG_PATH_MAX + 64];
	struct tcx_link li;
	int fd, rc = -ENOENT;

	link_pin(path, sizeof(path), pin_path, ifindex, egress);
	fd = bpf_obj_get(path);
	if (tcx_link_on(fd, ifindex, type, &li) && li.prog_id == prog_id) {
		rc = bpf_link_detach(fd) ? -errno : 0;
		close(fd);
		return rc;
	}
	if (fd >= 0)
		close(fd);
	while (!bpf_link_get_next_id(id, &id)) {
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue; /* gone meanwhile */
		if (tcx_link_on(fd, ifindex, type, &li) && li.prog_id == prog_id)
			rc = bpf_link_detach(fd) ? -errno : 0;
		close(fd);
	}
	return errno == ENOENT ? rc : -errno; /* ENOENT: the end of the links */
}

/* Programs a pin directory names: pinned, or run by its pinned links. */
#define KNOWN_MAX (2 + 2 * 64)
struct known_progs {
	__u32 ids[KNOWN_MAX];
	int n;
};

static void add_link_prog(const char *path, int fd, void *ctx)
{
	struct known_progs *k = ctx;
	struct tcx_link li;

	(void)path;
	if (k->n < KNOWN_MAX && tcx_link_of(fd, &li) >= 0)
		k->ids[k->n++] = li.prog_id;
}

static void unlink_pin(const char *path, int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	unlink(path);
}

/* Removes the programs attached (tcx links, clsact filters) and the pins; pin_path is
 * locked (or absent). */
static int detach_locked(const char *pin_path, char *err, size_t len)
{
	struct if_nameindex *ifs = if_nameindex(), *it;
	struct known_progs known = { { pinned_prog_id(pin_path, PROG_PIN_INGRESS),
				       pinned_prog_id(pin_path, PROG_PIN_EGRESS) }, 2 };
	char path[CFG_PATH_MAX + 300];
	__u32 ids[TCX_QUERY_MAX + 1];
	int removed = 0, rc;
	bool pinned;

	if (!ifs) {
		snprintf(err, len, "listing interfaces: %s", strerror(errno));
		return -errno;
	}
	for_each_link_pin(pin_path, add_link_prog, &known);
	pinned = known.ids[0] || known.ids[1] || known.n > 2;
	/* Two passes: if any program attached cannot be told apart, nothing is removed, the
	 * pins least of all (without them, only its id would lead to the program). */
	for (int pass = 0; pass < 2; pass++) {
		for (it = ifs; it->if_index; it++) {
			for (int p = 0; p < 2; p++) {
				LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)it->if_index,
					    .attach_point = p ? BPF_TC_EGRESS : BPF_TC_INGRESS);
				LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FS_TC_HANDLE,
					    .priority = FS_TC_PRIORITY);
				/* The tcx hook's programs, then the clsact filter's (last). */
				__u32 n = tcx_prog_ids((int)it->if_index, p, ids, TCX_QUERY_MAX), clsact = n;

				if (!bpf_tc_query(&hook, &opts))
					ids[n++] = opts.prog_id;
				for (__u32 k = 0; k < n; k++) {
					rc = is_failsteer_prog(ids[k], known.ids, known.n);
					/* With our programs pinned, a tcx program that is none of them is
					 * another tool's; only the filter at our handle, or anything when
					 * there are no pins to go by (--force), must be told apart. */
					if (rc < 0 && k < clsact && pinned)
						rc = 0;
					if (rc < 0) {
						snprintf(err, len, "cannot tell whether the program on %s %s (id %u) "
							 "is failsteer's: opening a program by id needs CAP_SYS_ADMIN, "
							 "and it is not the one pinned under %s; nothing removed",
							 it->if_name, p ? "egress" : "ingress", ids[k], pin_path);
						if_freenameindex(ifs);
						return rc;
					}
					if (!rc || !pass)
						continue;
					rc = k < clsact ? tcx_detach_prog(pin_path, ids[k], (int)it->if_index, p)
							: clsact_remove((int)it->if_index, p);
					if (rc && rc != -ENOENT) {
						snprintf(err, len, "detaching from %s: %s", it->if_name, strerror(-rc));
						if_freenameindex(ifs);
						return rc;
					}
					removed++;
				}
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
	/* Links of interfaces gone from the namespace (or from another one) go with their pins. */
	for_each_link_pin(pin_path, unlink_pin, NULL);
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
