/* The failsteer configuration file: INI parsed with libinih, validated, with defaults. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_TICK_MS 100
#define DEF_CONNECT_TIMEOUT_MS 300
#define DEF_FAILOVER_THRESHOLD 0.99
#define DEF_FAILBACK_THRESHOLD 0.99
#define DEF_FAILBACK_HOLD_MS 3000
#define DEF_PROBE_INTERVAL_MS 500
#define DEF_IDLE_TIMEOUT_S 3600
#define DEF_PIN_PATH "/sys/fs/bpf/failsteer"
#define PROB_MAX_TEXT "0.999999999" /* the highest threshold: see parse_probability */
#define PROB_MAX 0.999999999
/* The highest failback threshold. After a failover the primary carries no traffic and only
 * its probes speak for it, one answer per step, which the learned hazard P_ud offsets: after
 * an outage the model's P(up) settles near 1 - 1/(up steps it remembers) (model_up_ceiling),
 * at most about 0.9999 with its memory of 10,000 steps. A threshold that high would hold
 * failback for hours; 0.999 is reached within seconds of a repair at the default tick
 * (after an outage early in the history, once about 45 probe rounds have passed). */
#define FAILBACK_MAX_TEXT "0.999"
#define FAILBACK_MAX 0.999
#define DEF_METRICS_LISTEN "127.0.0.1:9469"

/* Parser state: libinih gives no line numbers to the handler, so the reader counts them. */
struct parse_ctx {
	struct cfg *cfg;
	FILE *file;
	int line;
	char err[256];
	int err_line;
	struct cfg_service *cur; /* section being filled, NULL in [global] */
	bool in_global;          /* keys before any section belong to [global] */
	bool had_global;         /* a [global] header was seen */
	bool indented;           /* the line being parsed starts with blanks (a continuation) */
	int global_line;         /* its line, 0 if none */
	int max_services_line;   /* where max_services and max_backends were set, 0 if not */
	int max_backends_line;
	char last_key[32];       /* key of the previous key line, which a continuation extends */
	char seen[16][32];       /* keys of the current service section, to refuse repeats */
	int n_seen;
	char seen_global[16][32]; /* keys of [global], before and after its header */
	int n_seen_global;
};

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && !strcmp(s + n - t, tail);
}

/* Is path the directory dir, trailing slashes aside? */
static bool same_dir(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && !path[n + strspn(path + n, "/")];
}

/* What is wrong with a pin_path value, NULL if nothing. */
static const char *pin_path_problem(const char *value)
{
	if (value[0] != '/' || strlen(value) >= CFG_PATH_MAX - 32)
		return "is not an absolute path";
	/* inih ends a value at " ;" only: a "# note" would become part of the path. */
	if (strpbrk(value, " \t#;"))
		return "has blanks or comment characters";
	/* A directory of its own: detach removes it, and the CLI finds the pins by it. */
	if (strstr(value, "/./") || strstr(value, "/../") || ends_with(value, "/.") || ends_with(value, "/.."))
		return "has . or .. components";
	if (strspn(value, "/") == strlen(value) || same_dir(value, "/sys/fs/bpf"))
		return "is not a directory of its own (e.g. /sys/fs/bpf/failsteer)";
	return NULL;
}

/* The kernel's rules for a device name (dev_valid_name), and no leading comment character:
 * `failsteer check` prints the list space-separated, where " ;" would start a comment. */
static bool valid_ifname(const char *name)
{
	if (!name[0] || strlen(name) >= IF_NAMESIZE || !strcmp(name, ".") || !strcmp(name, "..") ||
	    name[0] == ';' || name[0] == '#')
		return false;
	return !strpbrk(name, "/: \t\n\v\f\r");
}

static int fail(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (ctx->err[0]) /* keep the first error */
		return 0;
	ctx->err_line = ctx->line;
	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
	return 0;
}

int cfg_parse_endpoint(const char *text, struct fs_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	char *end;
	unsigned long port;
	size_t hlen;

	memset(ep, 0, sizeof(*ep));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return -1;
		hlen = (size_t)(close - text - 1);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, text + 1, hlen);
		host[hlen] = 0;
		if (inet_pton(AF_INET6, host, ep->addr) != 1)
			return -1;
		ep->family = FS_AF_INET6;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, text, hlen);
		host[hlen] = 0;
		if (inet_pton(AF_INET, host, ep->addr) != 1)
			return -1;
		ep->family = FS_AF_INET;
	}
	/* Digits only: strtoul would take blanks, a sign and wrap negative numbers. */
	if (strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port == 0 || port > 65535)
		return -1;
	ep->port = htons((uint16_t)port);
	return 0;
}

char *cfg_format_endpoint(const struct fs_endpoint *ep, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (ep->family == FS_AF_INET6) {
		inet_ntop(AF_INET6, ep->addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(ep->port));
	} else {
		inet_ntop(AF_INET, ep->addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(ep->port));
	}
	return buf;
}

static bool parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || x < min || x > max)
		return false;
	*out = (unsigned)x;
	return true;
}

static bool parse_probability(const char *v, double max, double *out)
{
	char *end;
	double x;

	/* Plain decimals: strtod would also take hex floats, exponents, "nan". */
	if (strspn(v, "0123456789.") != strlen(v))
		return false;
	errno = 0;
	x = strtod(v, &end);
	/* The model keeps its probabilities 1e-12 away from 0 and 1: a threshold near that
	 * bound would be reached late or never, one above it never. Nine nines at most. */
	if (errno || end == v || *end || !(x > 0.5) || !(x <= max))
		return false;
	*out = x;
	return true;
}

/* Where clients connect and backends listen must be one host: not the unspecified, the
 * broadcast or a multicast address, and not an IPv4-mapped IPv6 one (dual-stack sockets
 * send those as IPv4, so its steering would never match); nor one that names no host
 * without more (0.0.0.0/8, "this network"; an IPv6 link-local address, whose link the
 * config cannot say, so it could be neither routed nor probed). NULL if usable. */
static const char *endpoint_unusable(const struct fs_endpoint *ep)
{
	static const __u8 zero[16], mapped[12] = { [10] = 0xff, [11] = 0xff };
	const __u8 *a = (const __u8 *)ep->addr;

	if (ep->family == FS_AF_INET) {
		if (!ep->addr[0])
			return "the unspecified address";
		if (!a[0])
			return "in 0.0.0.0/8 (this network: no host's address)";
		if (a[0] >= 224 && a[0] < 240)
			return "a multicast address";
		return ep->addr[0] == 0xffffffff ? "the broadcast address" : NULL;
	}
	if (!memcmp(a, zero, 16))
		return "the unspecified address";
	if (a[0] == 0xff)
		return "a multicast address";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "a link-local address (no zone can be given: use a global or ULA address)";
	return memcmp(a, mapped, 12) ? NULL : "an IPv4-mapped address (write it as IPv4)";
}

/* Lists (interfaces, backends) may go on over indented lines: the first line sets the
 * list, each continuation appends to it. */
static int global_key(struct parse_ctx *ctx, const char *name, const char *value, bool cont)
{
	struct cfg *cfg = ctx->cfg;

	if (!strcmp(name, "interfaces")) {
		char buf[512], *save, *tok;

		if (strlen(value) >= sizeof(buf))
			return fail(ctx, "interfaces: list too long");
		strcpy(buf, value);
		if (!cont)
			cfg->n_interfaces = 0;
		for (tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
			if (cfg->n_interfaces == CFG_MAX_IFACES)
				return fail(ctx, "interfaces: at most %d", CFG_MAX_IFACES);
			if (!valid_ifname(tok))
				return fail(ctx, "interfaces: '%s' is not an interface name", tok);
			for (int i = 0; i < cfg->n_interfaces; i++)
				if (!strcmp(cfg->interfaces[i], tok))
					return fail(ctx, "interfaces: '%s' is listed twice", tok);
			strcpy(cfg->interfaces[cfg->n_interfaces++], tok);
		}
	} else if (!strcmp(name, "tick_ms")) {
		if (!parse_uint(value, 10, 10000, &cfg->tick_ms))
			return fail(ctx, "tick_ms: '%s' is not a number of milliseconds in 10..10000", value);
	} else if (!strcmp(name, "flow_table_size")) {
		if (!parse_uint(value, 64, 1u << 26, &cfg->flow_table_size))
			return fail(ctx, "flow_table_size: '%s' is not in 64..%u", value, 1u << 26);
	} else if (!strcmp(name, "flow_idle_timeout_s")) {
		if (!parse_uint(value, 1, 7 * 86400, &cfg->flow_idle_timeout_s))
			return fail(ctx, "flow_idle_timeout_s: '%s' is not in 1..604800", value);
	} else if (!strcmp(name, "max_services")) {
		if (!parse_uint(value, 1, 1u << 20, &cfg->max_services))
			return fail(ctx, "max_services: '%s' is not in 1..%u", value, 1u << 20);
		ctx->max_services_line = ctx->line;
	} else if (!strcmp(name, "max_backends")) {
		if (!parse_uint(value, 1, 1u << 22, &cfg->max_backends))
			return fail(ctx, "max_backends: '%s' is not in 1..%u", value, 1u << 22);
		ctx->max_backends_line = ctx->line;
	} else if (!strcmp(name, "pin_path")) {
		const char *problem = pin_path_problem(value);

		if (problem)
			return fail(ctx, "pin_path: '%s' %s", value, problem);
		strcpy(cfg->pin_path, value);
	} else if (!strcmp(name, "metrics_listen")) {
		struct fs_endpoint ep;

		/* Empty is a mistake, not "off": /healthz (a liveness probe's) goes with it. */
		if (strlen(value) >= sizeof(cfg->metrics_listen) ||
		    (strcmp(value, "off") && cfg_parse_endpoint(value, &ep)))
			return fail(ctx, "metrics_listen: '%s' is not ADDR:PORT or 'off'", value);
		if (strcmp(value, "off")) {
			const char *why = endpoint_unusable(&ep);

			/* Unlike a service's, the unspecified address listens on every address. */
			if (why && (ep.addr[0] | ep.addr[1] | ep.addr[2] | ep.addr[3]))
				return fail(ctx, "metrics_listen: '%s' is %s", value, why);
		}
		strcpy(cfg->metrics_listen, strcmp(value, "off") ? value : "");
	} else if (!strcmp(name, "tc_attach")) {
		enum cfg_tc_attach a;

		for (a = CFG_TC_AUTO; a <= CFG_TC_CLSACT; a++)
			if (!strcmp(value, cfg_tc_attach_name(a)))
				break;
		if (a > CFG_TC_CLSACT)
			return fail(ctx, "tc_attach: '%s' is not auto, tcx or clsact", value);
		cfg->tc_attach = a;
	} else {
		return fail(ctx, "unknown key '%s' in [global]", name);
	}
	return 1;
}

static int service_key(struct parse_ctx *ctx, const char *name, const char *value, bool cont)
{
	struct cfg_service *s = ctx->cur;
	const char *why;

	if (!strcmp(name, "address")) {
		if (cfg_parse_endpoint(value, &s->address))
			return fail(ctx, "address: '%s' is not IPv4:PORT or [IPv6]:PORT", value);
		why = endpoint_unusable(&s->address);
		if (why)
			return fail(ctx, "address: '%s' is %s", value, why);
		s->has_address = true;
	} else if (!strcmp(name, "backends")) {
		char buf[1024], *save, *tok;

		if (strlen(value) >= sizeof(buf))
			return fail(ctx, "backends: list too long");
		strcpy(buf, value);
		if (!cont) {
			s->n_backends = 0;
			s->backends_line = ctx->line;
		}
		for (tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
			struct fs_endpoint ep;

			if (s->n_backends == FS_MAX_BACKENDS)
				return fail(ctx, "backends: at most %d per service", FS_MAX_BACKENDS);
			if (cfg_parse_endpoint(tok, &ep))
				return fail(ctx, "backends: '%s' is not IPv4:PORT or [IPv6]:PORT", tok);
			why = endpoint_unusable(&ep);
			if (why)
				return fail(ctx, "backends: '%s' is %s", tok, why);
			for (int i = 0; i < s->n_backends; i++)
				if (!memcmp(&s->backends[i], &ep, sizeof(ep)))
					return fail(ctx, "backends: '%s' listed twice", tok);
			s->backends[s->n_backends++] = ep;
		}
	} else if (!strcmp(name, "connect_timeout_ms")) {
		if (!parse_uint(value, 10, 60000, &s->connect_timeout_ms))
			return fail(ctx, "connect_timeout_ms: '%s' is not in 10..60000", value);
	} else if (!strcmp(name, "failover_threshold")) {
		if (!parse_probability(value, PROB_MAX, &s->failover_threshold))
			return fail(ctx, "failover_threshold: '%s' is not a probability in (0.5, " PROB_MAX_TEXT "]", value);
	} else if (!strcmp(name, "failback_threshold")) {
		if (!parse_probability(value, FAILBACK_MAX, &s->failback_threshold))
			return fail(ctx, "failback_threshold: '%s' is not a probability in (0.5, " FAILBACK_MAX_TEXT "] "
				    "(a primary heard only by its probes after an outage gets no surer than "
				    "about 0.9999: a higher threshold would hold failback for hours)", value);
	} else if (!strcmp(name, "failback_hold_ms")) {
		if (!parse_uint(value, 0, 3600000, &s->failback_hold_ms))
			return fail(ctx, "failback_hold_ms: '%s' is not in 0..3600000", value);
	} else if (!strcmp(name, "probe_interval_ms")) {
		if (!parse_uint(value, 0, 600000, &s->probe_interval_ms) ||
		    (s->probe_interval_ms && s->probe_interval_ms < 10))
			return fail(ctx, "probe_interval_ms: '%s' is not 0 (off) or 10..600000", value);
	} else if (!strcmp(name, "zero_error_retry")) {
		if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true"))
			s->zero_error_retry = true;
		else if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "false"))
			s->zero_error_retry = false;
		else
			return fail(ctx, "zero_error_retry: '%s' is not on or off", value);
	} else {
		return fail(ctx, "unknown key '%s' in [service %s]", name, s->name);
	}
	return 1;
}

static int begin_section(struct parse_ctx *ctx, const char *section)
{
	struct cfg *cfg = ctx->cfg;
	struct cfg_service *s, *grown;
	const char *name;

	ctx->cur = NULL;
	ctx->n_seen = 0;
	ctx->last_key[0] = 0;
	ctx->in_global = false;
	if (!strcmp(section, "global")) {
		if (ctx->had_global)
			return fail(ctx, "duplicate section [global]");
		ctx->had_global = ctx->in_global = true;
		ctx->global_line = ctx->line;
		return 1;
	}
	if (strncmp(section, "service ", 8))
		return fail(ctx, "unknown section [%s] (expected [global] or [service NAME])", section);
	name = section + 8;
	while (*name == ' ')
		name++;
	/* Printable ASCII only: names go unescaped into JSON, log lines and metric labels. */
	/* Nor a leading ';' or '#': after the blank it would start a comment for inih. */
	bool name_ok = *name && strlen(name) < CFG_NAME_MAX && *name != ';' && *name != '#';

	for (const char *c = name; *c && name_ok; c++)
		name_ok = *c >= 0x21 && *c <= 0x7e && !strchr("\"\\{}=,", *c);
	if (!name_ok)
		return fail(ctx, "[service %s]: a name is 1..%d printable ASCII characters "
				 "without spaces, double quotes, backslashes, braces, '=' or ',', "
				 "not starting with ';' or '#'",
			    name, CFG_NAME_MAX - 1);
	if (cfg_find_service(cfg, name))
		return fail(ctx, "duplicate service '%s'", name);
	grown = realloc(cfg->services, (size_t)(cfg->n_services + 1) * sizeof(*grown));
	if (!grown)
		return fail(ctx, "out of memory");
	cfg->services = grown;
	s = &cfg->services[cfg->n_services++];
	memset(s, 0, sizeof(*s));
	strcpy(s->name, name);
	s->line = ctx->line;
	s->connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
	s->failover_threshold = DEF_FAILOVER_THRESHOLD;
	s->failback_threshold = DEF_FAILBACK_THRESHOLD;
	s->failback_hold_ms = DEF_FAILBACK_HOLD_MS;
	s->probe_interval_ms = DEF_PROBE_INTERVAL_MS;
	s->zero_error_retry = true;
	ctx->cur = s;
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	char(*seen)[32] = ctx->in_global ? ctx->seen_global : ctx->seen;
	int *n_seen = ctx->in_global ? &ctx->n_seen_global : &ctx->n_seen;
	bool cont;

	(void)section; /* sections are tracked by read_line, which also sees empty ones */
	if (ctx->err[0])
		return 0;
	/* inih hands an indented line over as more of the key above it. Only lists go on;
	 * a repeated key would silently replace the value (a backend list losing its
	 * primary), so it is refused, in [global] also across keys before its header. */
	cont = ctx->indented && !strcmp(ctx->last_key, name);
	if (cont && strcmp(name, "interfaces") && strcmp(name, "backends"))
		return fail(ctx, "'%s' continued on an indented line (only interfaces and backends "
				 "are lists that may go on)", name);
	for (int i = 0; !cont && i < *n_seen; i++)
		if (!strcmp(seen[i], name))
			return fail(ctx, "'%s' given twice in this section", name);
	if (!cont && *n_seen < 16 && strlen(name) < sizeof(seen[0]))
		strcpy(seen[(*n_seen)++], name);
	if (strlen(name) < sizeof(ctx->last_key)) /* longer ones are unknown keys */
		strcpy(ctx->last_key, name);
	if (cont) {
		/* inih leaves a continuation's inline comment in: cut it as on a key line. */
		char buf[1024];
		size_t n;

		if (strlen(value) >= sizeof(buf))
			return fail(ctx, "%s: list too long", name);
		strcpy(buf, value);
		for (n = 1; buf[n] && !(buf[n] == ';' && (buf[n - 1] == ' ' || buf[n - 1] == '\t')); n++)
			;
		buf[n] = 0;
		return ctx->in_global ? global_key(ctx, name, buf, true) : service_key(ctx, name, buf, true);
	}
	return ctx->in_global ? global_key(ctx, name, value, false) : service_key(ctx, name, value, false);
}

/* Line reader for inih: counts lines and starts sections itself, so that errors carry
 * line numbers and a section without keys is still seen (inih skips those). */
static char *read_line(char *buf, int size, void *stream)
{
	struct parse_ctx *ctx = stream;
	char *r = fgets(buf, size, ctx->file), *p = buf, *close, *rest;

	if (!r)
		return NULL;
	ctx->line++;
	if (!strchr(buf, '\n') && !feof(ctx->file))
		fail(ctx, "line too long (at most %d characters; continue a list on indented lines)",
		     size - 2);
	if (ctx->line == 1 && !strncmp(p, "\xef\xbb\xbf", 3))
		p += 3; /* a UTF-8 byte order mark, which inih skips as well */
	ctx->indented = *p == ' ' || *p == '\t';
	p += strspn(p, " \t");
	if (ctx->err[0] || !*p || strchr(";#\r\n", *p))
		return r;
	if (ctx->indented) {
		/* inih takes any indented line after a key as more of that key's value; with
		 * none above it in the section, it would take it for something else. */
		if (!ctx->last_key[0]) {
			fail(ctx, "an indented line with no list above it to go on with");
			return r;
		}
		close = strchr(p, ']');
		if ((*p == '[' && close && close[1] != ':') || strchr(p, '='))
			fail(ctx, "an indented line goes on with the list above it; '[section]' and "
				  "'key = value' lines start at the beginning of the line");
		return r;
	}
	if (*p == '[') {
		close = strchr(p, ']');
		if (!close)
			return r; /* inih reports it */
		rest = close + 1 + strspn(close + 1, " \t\r\n");
		if (*rest && !strchr(";#", *rest)) {
			fail(ctx, "text after the section header");
			return r;
		}
		*close = 0;
		begin_section(ctx, p + 1);
		*close = ']';
	}
	return r;
}

const struct cfg_service *cfg_find_service(const struct cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, name))
			return &cfg->services[i];
	return NULL;
}

const char *cfg_tc_attach_name(enum cfg_tc_attach a)
{
	return a == CFG_TC_TCX ? "tcx" : a == CFG_TC_CLSACT ? "clsact" : "auto";
}

static void set_defaults(struct cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tick_ms = DEF_TICK_MS;
	cfg->flow_table_size = FS_DEFAULT_FLOW_TABLE_SIZE;
	cfg->flow_idle_timeout_s = DEF_IDLE_TIMEOUT_S;
	cfg->max_services = FS_DEFAULT_MAX_SERVICES;
	cfg->max_backends = FS_DEFAULT_MAX_BACKENDS;
	strcpy(cfg->pin_path, DEF_PIN_PATH);
	strcpy(cfg->metrics_listen, DEF_METRICS_LISTEN);
}

/* Checks that need the whole file: reported at the service's header line. */
static int validate(struct parse_ctx *ctx)
{
	struct cfg *cfg = ctx->cfg;
	int total_backends = 0;

	ctx->line = ctx->global_line;
	if (!cfg->n_interfaces)
		return fail(ctx, "[global] interfaces: no interface to attach to (required)");
	ctx->line = 0;
	if (!cfg->n_services)
		return fail(ctx, "no [service NAME] section");
	for (int i = 0; i < cfg->n_services; i++) {
		struct cfg_service *s = &cfg->services[i];

		ctx->line = s->line;
		if (!s->has_address)
			return fail(ctx, "[service %s]: no address", s->name);
		if (!s->n_backends)
			return fail(ctx, "[service %s]: no backends", s->name);
		for (int b = 0; b < s->n_backends; b++) {
			char buf[64];

			ctx->line = s->backends_line;
			if (s->backends[b].family != s->address.family)
				return fail(ctx, "[service %s]: backend %d (%s) is not of the service "
						 "address's family", s->name, b,
					    cfg_format_endpoint(&s->backends[b], buf, sizeof(buf)));
		}
		ctx->line = s->line;
		for (int j = 0; j < i; j++)
			if (!memcmp(&cfg->services[j].address, &s->address, sizeof(s->address)))
				return fail(ctx, "[service %s]: address already used by service '%s'", s->name,
					    cfg->services[j].name);
		total_backends += s->n_backends;
	}
	/* At the limit's line, or at the service that went past the default one. */
	if ((unsigned)cfg->n_services > cfg->max_services) {
		ctx->line = ctx->max_services_line ? ctx->max_services_line
						   : cfg->services[cfg->max_services].line;
		return fail(ctx, "%d services but max_services = %u", cfg->n_services, cfg->max_services);
	}
	ctx->line = ctx->max_backends_line;
	for (int i = 0, n = 0; i < cfg->n_services && !ctx->line; i++)
		if ((unsigned)(n += cfg->services[i].n_backends) > cfg->max_backends)
			ctx->line = cfg->services[i].line;
	if ((unsigned)total_backends > cfg->max_backends)
		return fail(ctx, "%d backends in all but max_backends = %u", total_backends,
			    cfg->max_backends);
	return 1;
}

int cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen)
{
	struct parse_ctx ctx = { .cfg = cfg };
	int rc;

	set_defaults(cfg);
	/* Kept for reloads: a cut path would name another file. */
	if (strlen(path) >= sizeof(cfg->path)) {
		snprintf(err, errlen, "%.64s...: path longer than %zu characters", path, sizeof(cfg->path) - 1);
		return -1;
	}
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	ctx.file = fopen(path, "r");
	if (!ctx.file) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	ctx.in_global = true; /* keys before any section belong to [global] */
	rc = ini_parse_stream(read_line, &ctx, handler, &ctx);
	if (ferror(ctx.file)) { /* a directory opens, but does not read */
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		fclose(ctx.file);
		return -1;
	}
	fclose(ctx.file);
	/* inih reads on after a syntax error: report it if no earlier line had a problem. */
	if (rc > 0 && (!ctx.err[0] || rc < ctx.err_line)) {
		ctx.err[0] = 0;
		ctx.line = rc;
		fail(&ctx, "syntax error (expected 'key = value' or '[section]')");
	}
	if (!ctx.err[0])
		validate(&ctx);
	if (ctx.err[0]) {
		if (ctx.err_line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, ctx.err_line, ctx.err);
		else /* about the whole file, no line in particular */
			snprintf(err, errlen, "%s: %s", path, ctx.err);
		cfg_free(cfg);
		return -1;
	}
	return 0;
}

struct pin_ctx {
	FILE *file;
	int line;     /* lines read so far: the handler's line */
	int bad_line; /* of a pin_path that is wrong, 0 if none */
	const char *problem;
	char *out;
	size_t len;
};

static char *pin_read_line(char *buf, int size, void *stream)
{
	struct pin_ctx *pc = stream;
	char *r = fgets(buf, size, pc->file);

	pc->line += r != NULL;
	return r;
}

static int pin_handler(void *user, const char *section, const char *name, const char *value)
{
	struct pin_ctx *pc = user;

	if ((section[0] && strcmp(section, "global")) || strcmp(name, "pin_path") || pc->bad_line)
		return 1;
	pc->problem = pin_path_problem(value);
	if (pc->problem)
		pc->bad_line = pc->line;
	else
		snprintf(pc->out, pc->len, "%s", value);
	return 1;
}

int cfg_read_pin_path(const char *path, char *out, size_t len, char *err, size_t errlen)
{
	struct pin_ctx pc = { .out = out, .len = len };

	snprintf(out, len, "%s", DEF_PIN_PATH);
	pc.file = fopen(path, "r");
	if (!pc.file) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	/* Syntax errors elsewhere do not matter here: inih reads on past them. */
	ini_parse_stream(pin_read_line, &pc, pin_handler, &pc);
	if (ferror(pc.file)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		fclose(pc.file);
		return -1;
	}
	fclose(pc.file);
	if (pc.bad_line) {
		snprintf(err, errlen, "%s:%d: pin_path %s", path, pc.bad_line, pc.problem);
		snprintf(out, len, "%s", DEF_PIN_PATH);
		return -1;
	}
	return 0;
}

void cfg_free(struct cfg *cfg)
{
	free(cfg->services);
	cfg->services = NULL;
	cfg->n_services = 0;
}

/* The shortest decimal that reads back as v: %g's six digits would print 0.99999999 as 1. */
static const char *format_exact(double v, char *buf, size_t len)
{
	for (int prec = 6; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return buf;
	}
	snprintf(buf, len, "%.17g", v);
	return buf;
}

/* One item of a list key, going on on an indented line where the line would grow too
 * long to load back (inih reads 200 bytes a line). Returns the new column. */
static int print_list_item(FILE *out, const char *item, int col)
{
	int len = (int)strlen(item);

	if (col + 1 + len > 120) {
		fprintf(out, "\n\t%s", item);
		return 8 + len;
	}
	fprintf(out, " %s", item);
	return col + 1 + len;
}

void cfg_print(const struct cfg *cfg, FILE *out)
{
	char buf[64];

	fprintf(out, "[global]\ninterfaces =");
	for (int i = 0, col = 12; i < cfg->n_interfaces; i++)
		col = print_list_item(out, cfg->interfaces[i], col);
	fprintf(out, "\ntick_ms = %u\nflow_table_size = %u\nflow_idle_timeout_s = %u\n"
		     "max_services = %u\nmax_backends = %u\npin_path = %s\nmetrics_listen = %s\n"
		     "tc_attach = %s\n",
		cfg->tick_ms, cfg->flow_table_size, cfg->flow_idle_timeout_s, cfg->max_services,
		cfg->max_backends, cfg->pin_path, cfg->metrics_listen[0] ? cfg->metrics_listen : "off",
		cfg_tc_attach_name(cfg->tc_attach));
	for (int i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *s = &cfg->services[i];

		fprintf(out, "\n[service %s]\naddress = %s\nbackends =", s->name,
			cfg_format_endpoint(&s->address, buf, sizeof(buf)));
		for (int b = 0, col = 10; b < s->n_backends; b++)
			col = print_list_item(out, cfg_format_endpoint(&s->backends[b], buf, sizeof(buf)), col);
		fprintf(out, "\nconnect_timeout_ms = %u\nfailover_threshold = %s\n",
			s->connect_timeout_ms, format_exact(s->failover_threshold, buf, sizeof(buf)));
		fprintf(out, "failback_threshold = %s\nfailback_hold_ms = %u\nprobe_interval_ms = %u\n"
			     "zero_error_retry = %s\n",
			format_exact(s->failback_threshold, buf, sizeof(buf)), s->failback_hold_ms,
			s->probe_interval_ms, s->zero_error_retry ? "on" : "off");
	}
}
