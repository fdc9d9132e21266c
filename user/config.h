/* The failsteer configuration file: INI parsed with libinih, validated, with defaults. */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "failsteer/failsteer.h"

#define CFG_MAX_IFACES 16
#define CFG_NAME_MAX FS_SERVICE_NAME_MAX
#define CFG_PATH_MAX 256

struct cfg_service {
	char name[CFG_NAME_MAX];
	int line;                        /* of the [service NAME] header */
	int backends_line;               /* of its backends key */
	struct fs_endpoint address;      /* what clients connect to */
	int n_backends;
	struct fs_endpoint backends[FS_MAX_BACKENDS]; /* priority order, primary first */
	unsigned connect_timeout_ms;
	double failover_threshold;       /* P(active down) that triggers failover */
	double failback_threshold;       /* P(primary up) needed for failback ... */
	unsigned failback_hold_ms;       /* ... held this long */
	unsigned probe_interval_ms;      /* active TCP probes of each backend, 0 = off */
	bool zero_error_retry;           /* re-send unanswered SYNs to the next backend */
	bool has_address;
};

/* How the programs attach to the interfaces' TC hooks. */
enum cfg_tc_attach {
	CFG_TC_AUTO,   /* tcx links where the kernel has them (Linux 6.6+), else clsact filters */
	CFG_TC_TCX,    /* tcx links only: an error on an older kernel */
	CFG_TC_CLSACT, /* cls_bpf filters on a clsact qdisc */
};

struct cfg {
	char path[CFG_PATH_MAX];
	char interfaces[CFG_MAX_IFACES][IF_NAMESIZE];
	int n_interfaces;
	unsigned tick_ms;
	unsigned flow_table_size;
	unsigned flow_idle_timeout_s;    /* idle established flows are swept after this */
	unsigned max_services;           /* sizes of the pinned maps: changing them needs detach */
	unsigned max_backends;
	char pin_path[CFG_PATH_MAX];
	char metrics_listen[64];         /* "" = metrics off */
	enum cfg_tc_attach tc_attach;
	int n_services;
	struct cfg_service *services;
};

/* Loads and validates path. On error returns -1 with "file:line: problem" in err. */
int cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);
/* Only the pin_path of a config (the default if it sets none), whatever else the file
 * holds: the commands that work on the pinned state still run while the config is being
 * edited. Returns -1 with the problem in err if the file is unreadable or pin_path wrong. */
int cfg_read_pin_path(const char *path, char *out, size_t len, char *err, size_t errlen);

/* The config file's word for a tc_attach setting. */
const char *cfg_tc_attach_name(enum cfg_tc_attach a);

/* Parses "198.18.2.10:8080" or "[2001:db8::10]:8080". Returns 0 or -1. */
int cfg_parse_endpoint(const char *text, struct fs_endpoint *ep);
/* Formats an endpoint the same way into buf (at least 64 bytes); returns buf. */
char *cfg_format_endpoint(const struct fs_endpoint *ep, char *buf, size_t len);
/* Writes the effective settings, defaults included, in the config file's own syntax. */
void cfg_print(const struct cfg *cfg, FILE *out);

const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name);

#endif
