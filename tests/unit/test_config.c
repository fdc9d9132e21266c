/* Config parser: every valid form and every error, with the line number. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static int write_file(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/fs-cfg-test-%d.ini", getpid());
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	return 0;
}

static int load(const char *text, struct cfg *cfg, char *err)
{
	assert_int_equal(write_file(text), 0);
	return cfg_load(path, cfg, err, 512);
}

#define GOOD_GLOBAL "[global]\ninterfaces = veth0 veth1 ; comment\n"

static void test_full_example_and_defaults(void **state)
{
	struct cfg cfg;
	char err[512] = "";
	char buf[64];

	(void)state;
	assert_int_equal(load(GOOD_GLOBAL
			      "tick_ms = 50\nflow_table_size = 1024\npin_path = /sys/fs/bpf/x\n"
			      "metrics_listen = 127.0.0.1:9999\ntc_attach = clsact\n\n"
			      "[service classifier]\naddress = 198.18.2.10:8080\n"
			      "backends = 198.18.2.10:8080 198.18.3.10:8080\nconnect_timeout_ms = 250\n"
			      "failover_threshold = 0.95\nfailback_threshold = 0.999\n"
			      "failback_hold_ms = 1000\nprobe_interval_ms = 200\nzero_error_retry = off\n"
			      "[service v6]\naddress = [2001:db8::10]:443\n"
			      "backends = [2001:db8::10]:443,[2001:db8:3::10]:8443\n",
			      &cfg, err), 0);
	assert_int_equal(cfg.n_interfaces, 2);
	assert_string_equal(cfg.interfaces[1], "veth1");
	assert_int_equal(cfg.tick_ms, 50);
	assert_int_equal(cfg.flow_table_size, 1024);
	assert_string_equal(cfg.pin_path, "/sys/fs/bpf/x");
	assert_int_equal(cfg.tc_attach, CFG_TC_CLSACT);
	assert_int_equal(cfg.n_services, 2);
	const struct cfg_service *s = cfg_find_service(&cfg, "classifier");
	assert_non_null(s);
	assert_int_equal(s->n_backends, 2);
	assert_string_equal(cfg_format_endpoint(&s->backends[1], buf, sizeof(buf)), "198.18.3.10:8080");
	assert_int_equal(s->connect_timeout_ms, 250);
	assert_true(s->failover_threshold == 0.95);
	assert_true(s->failback_threshold == 0.999);
	assert_int_equal(s->failback_hold_ms, 1000);
	assert_int_equal(s->probe_interval_ms, 200);
	assert_false(s->zero_error_retry);
	s = cfg_find_service(&cfg, "v6");
	assert_int_equal(s->address.family, FS_AF_INET6);
	assert_int_equal(ntohs(s->backends[1].port), 8443);
	assert_string_equal(cfg_format_endpoint(&s->backends[1], buf, sizeof(buf)), "[2001:db8:3::10]:8443");
	/* Defaults. */
	assert_int_equal(s->connect_timeout_ms, 300);
	assert_true(s->failover_threshold == 0.99);
	assert_int_equal(s->failback_hold_ms, 3000);
	assert_int_equal(s->probe_interval_ms, 500);
	assert_true(s->zero_error_retry);
	cfg_free(&cfg);

	assert_int_equal(load("[global]\ninterfaces = eth0\n[service a]\naddress=198.18.0.1:80\nbackends=198.18.0.2:80\n",
			      &cfg, err), 0);
	assert_int_equal(cfg.tick_ms, 100);
	assert_int_equal(cfg.flow_table_size, 262144);
	assert_string_equal(cfg.pin_path, "/sys/fs/bpf/failsteer");
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:9469");
	assert_int_equal(cfg.tc_attach, CFG_TC_AUTO);
	cfg_free(&cfg);
}

struct bad_case {
	const char *text;
	int line;
	const char *msg;
};

static void test_errors_name_line_and_problem(void **state)
{
	static const struct bad_case cases[] = {
		{ GOOD_GLOBAL "bogus = 1\n", 3, "unknown key 'bogus' in [global]" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\ncolour = red\n", 6, "unknown key 'colour'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.300:80\n", 4, "address: '198.18.0.300:80' is not" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1\n", 4, "is not IPv4:PORT" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:0\n", 4, "is not IPv4:PORT" },
		{ GOOD_GLOBAL "[service a]\naddress = [2001:db8::1:80\n", 4, "is not IPv4:PORT" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80 x:1\n", 5, "backends: 'x:1'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[service a]\n", 6, "duplicate service 'a'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[service b]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n", 6, "address already used by service 'a'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\n", 3, "[service a]: no backends" },
		{ GOOD_GLOBAL "[service a]\nbackends = 198.18.0.2:80\n", 3, "[service a]: no address" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailover_threshold = 1.5\n", 6, "failover_threshold: '1.5' is not a probability" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailback_threshold = abc\n", 6, "failback_threshold: 'abc'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nconnect_timeout_ms = -5\n", 6, "connect_timeout_ms: '-5'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.1.1:1 198.18.1.2:1 198.18.1.3:1 198.18.1.4:1 198.18.1.5:1 198.18.1.6:1 198.18.1.7:1 198.18.1.8:1 198.18.1.9:1\n", 5, "at most 8" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = [2001:db8::1]:80\n", 5, "backend 0 ([2001:db8::1]:80) is not of the service address's family" },
		{ GOOD_GLOBAL "[servic a]\n", 3, "unknown section [servic a]" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nzero_error_retry = maybe\n", 6, "zero_error_retry: 'maybe'" },
		{ GOOD_GLOBAL "tick_ms = 0\n", 3, "tick_ms: '0'" },
		{ GOOD_GLOBAL "pin_path = relative\n", 3, "pin_path: 'relative'" },
		{ GOOD_GLOBAL "pin_path = /\n", 3, "pin_path: '/' is not a directory of its own" },
		{ GOOD_GLOBAL "pin_path = /sys/fs/bpf//\n", 3, "pin_path: '/sys/fs/bpf//' is not a directory of its own" },
		{ GOOD_GLOBAL "pin_path = /sys/fs/bpf/../x\n", 3, "pin_path: '/sys/fs/bpf/../x' has . or .. components" },
		{ GOOD_GLOBAL "pin_path = /sys/fs/bpf/x/.\n", 3, "pin_path: '/sys/fs/bpf/x/.' has . or .. components" },
		{ "[global]\ntick_ms = 100\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n", 1, "no interface" },
		{ GOOD_GLOBAL, 0, "no [service NAME] section" },
		{ GOOD_GLOBAL "this is not ini\n", 3, "syntax error" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[global]\ninterfaces = eth9\n", 6, "duplicate section [global]" },
		{ "interfaces = eth0\n[global]\ninterfaces = eth1\n", 3, "'interfaces' given twice" },
		{ "[global]\ninterfaces = eth0 eth1 eth0\n", 2, "'eth0' is listed twice" },
		{ "[global]\ninterfaces = eth0 veth/1\n", 2, "'veth/1' is not an interface name" },
		{ "[global]\ninterfaces = eth0:1\n", 2, "'eth0:1' is not an interface name" },
		{ "[global]\ninterfaces = ..\n", 2, "'..' is not an interface name" },
		{ "[global]\ninterfaces = eth0,;x\n", 2, "';x' is not an interface name" },
		{ GOOD_GLOBAL "metrics_listen = localhost\n", 3, "metrics_listen" },
		{ GOOD_GLOBAL "flow_table_size = 1\n", 3, "flow_table_size" },
		{ GOOD_GLOBAL "[service a b]\n", 3, "a name is 1.." },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nprobe_interval_ms = often\n", 6, "probe_interval_ms: 'often'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n  tick_ms = 5\n", 6, "an indented line goes on with the list" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\n  198.18.0.9:80\n", 5, "'address' continued on an indented line" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n\tbackends = 198.18.0.3:80\n", 6, "an indented line" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.1.1:1 198.18.1.2:1 198.18.1.3:1 198.18.1.4:1\n  198.18.1.5:1 198.18.1.6:1 198.18.1.7:1 198.18.1.8:1\n  198.18.1.9:1\n", 7, "at most 8" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n  198.18.0.2:80\n", 6, "'198.18.0.2:80' listed twice" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[service b\naddress = 198.18.0.5:80\nbackends = 198.18.0.6:80\n", 6, "syntax error" },
		{ GOOD_GLOBAL "tick_ms 50\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailback_hold_ms = 5s\n", 3, "syntax error" },
		{ "interfaces = eth0\ntick_ms = 50\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[global]\ntick_ms = 200\n", 7, "'tick_ms' given twice" },
		{ GOOD_GLOBAL "[service a] probe_interval_ms = 0\n", 3, "text after the section header" },
		{ GOOD_GLOBAL "[service a]\n  [service b]\naddress = 198.18.0.1:80\n", 4, "an indented line" },
		{ GOOD_GLOBAL "[service a]\n  [2001:db8::2]:80\naddress = [2001:db8::1]:80\nbackends = [2001:db8::2]:80\n", 4, "no list above it" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends =\n", 3, "[service a]: no backends" },
		{ "[global]\ninterfaces =\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n", 1, "no interface to attach to" },
		{ "\xef\xbb\xbf[global]\ninterfaces = eth0\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[global]\n", 6, "duplicate section [global]" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1: +080\n", 4, "is not IPv4:PORT" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:-18446744073709551535\n", 5, "is not IPv4:PORT" },
		{ GOOD_GLOBAL "metrics_listen = 127.0.0.1:-18446744073709542147\n", 3, "metrics_listen" },
		{ GOOD_GLOBAL "[service a\x1b[31mred]\n", 3, "printable ASCII" },
		{ GOOD_GLOBAL "[service caf\xc3\xa9]\n", 3, "printable ASCII" },
		{ GOOD_GLOBAL "[service ;x]\n", 3, "not starting with ';' or '#'" },
		{ GOOD_GLOBAL "pin_path = /sys/fs/bpf/x # the pins\n", 3, "pin_path: '/sys/fs/bpf/x # the pins' has blanks" },
		{ GOOD_GLOBAL "[service a]\naddress = [::ffff:198.18.0.1]:80\n", 4, "IPv4-mapped" },
		{ GOOD_GLOBAL "[service a]\naddress = 0.0.0.0:80\n", 4, "the unspecified address" },
		{ GOOD_GLOBAL "[service a]\naddress = [::]:80\n", 4, "the unspecified address" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80 224.0.0.1:80\n", 5, "'224.0.0.1:80' is a multicast address" },
		{ GOOD_GLOBAL "[service a]\naddress = [2001:db8::1]:80\nbackends = [ff02::1]:80\n", 5, "multicast" },
		{ GOOD_GLOBAL "[service a]\naddress = 255.255.255.255:1\n", 4, "the broadcast address" },
		{ GOOD_GLOBAL "[service a]\naddress = 0.1.2.3:80\n", 4, "'0.1.2.3:80' is in 0.0.0.0/8" },
		{ GOOD_GLOBAL "[service a]\naddress = [2001:db8::1]:80\nbackends = [2001:db8::2]:80 [fe80::2]:80\n", 5, "'[fe80::2]:80' is a link-local address" },
		{ GOOD_GLOBAL "metrics_listen =\n", 3, "metrics_listen: '' is not ADDR:PORT or 'off'" },
		{ GOOD_GLOBAL "tc_attach = xdp\n", 3, "tc_attach: 'xdp' is not auto, tcx or clsact" },
		{ GOOD_GLOBAL "tc_attach =\n", 3, "tc_attach: '' is not auto, tcx or clsact" },
		{ GOOD_GLOBAL "metrics_listen = 224.0.0.1:80\n", 3, "metrics_listen: '224.0.0.1:80' is a multicast address" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailover_threshold = 0.9999999999\n", 6, "failover_threshold: '0.9999999999' is not a probability in (0.5, 0.999999999]" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailback_threshold = 0.9991\n", 6, "failback_threshold: '0.9991' is not a probability in (0.5, 0.999] (a primary heard only by its probes" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailback_threshold = 0.999999999\n", 6, "failback_threshold: '0.999999999'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailover_threshold = 0x1.ep-1\n", 6, "failover_threshold: '0x1.ep-1'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nfailover_threshold = nan\n", 6, "failover_threshold: 'nan'" },
		{ GOOD_GLOBAL "max_services = 1\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[service b]\naddress = 198.18.0.3:80\nbackends = 198.18.0.2:80\n", 3, "2 services but max_services = 1" },
		{ "max_backends = 2\n" GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80 198.18.0.4:80\n[service b]\naddress = 198.18.0.3:80\nbackends = 198.18.0.2:80\n", 1, "3 backends in all but max_backends = 2" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\naddress = 198.18.0.9:80\n", 5, "'address' given twice" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = [2001:db8:1234:5678:9abc:def0:1234:1]:8080 [2001:db8:1234:5678:9abc:def0:1234:2]:8080 [2001:db8:1234:5678:9abc:def0:1234:3]:8080 [2001:db8:1234:5678:9abc:def0:1234:4]:8080 [2001:db8:1234:5678:9abc:def0:1234:5]:8080\n", 5, "line too long" },
	};
	struct cfg cfg;
	char err[512], want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		assert_int_equal(load(cases[i].text, &cfg, err), -1);
		print_message("  %s\n", err);
		assert_non_null(strstr(err, cases[i].msg));
		assert_int_equal(strncmp(err, path, strlen(path)), 0);
		if (cases[i].line) {
			snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
			assert_int_equal(strncmp(err, want, strlen(want)), 0);
		}
	}
	assert_int_equal(cfg_load("/nonexistent/failsteer.ini", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/failsteer.ini: cannot read"));
	{
		char long_path[CFG_PATH_MAX + 8];

		memset(long_path, 'a', sizeof(long_path) - 1);
		long_path[0] = '/';
		long_path[sizeof(long_path) - 1] = 0;
		assert_int_equal(cfg_load(long_path, &cfg, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "path longer than"));
	}
	assert_int_equal(cfg_load("/tmp", &cfg, err, sizeof(err)), -1); /* opens, does not read */
	assert_non_null(strstr(err, "/tmp: cannot read: Is a directory"));
	unlink(path);
}

/* A list longer than inih's 200-byte line goes on over indented lines; `failsteer check`
 * prints it that way, so what it prints loads back. */
static void test_lists_go_on_indented_lines(void **state)
{
	struct cfg cfg, again;
	char err[512] = "", line[256], printed[80], buf[64];
	FILE *f;

	(void)state;
	assert_int_equal(load("\xef\xbb\xbf[global]\ninterfaces = veth0 veth1\n  veth2 ; the third\n\tveth3\n"
			      "[service v6]\naddress = [2001:db8:1234:5678::10]:8080\n"
			      "backends = [2001:db8:1234:5678::1]:8080 [2001:db8:1234:5678::2]:8080\n"
			      "  [2001:db8:1234:5678::3]:8080 [2001:db8:1234:5678::4]:8080\n"
			      "  ; a comment between does not end the list\n"
			      "  [2001:db8:1234:5678::5]:8080, [2001:db8:1234:5678::6]:8080\n"
			      "  [2001:db8:1234:5678::7]:8080\n\t[2001:db8:1234:5678::8]:8080\n"
			      "connect_timeout_ms = 250\n",
			      &cfg, err), 0);
	assert_int_equal(cfg.n_interfaces, 4);
	assert_string_equal(cfg.interfaces[2], "veth2");
	assert_string_equal(cfg.interfaces[3], "veth3");
	assert_int_equal(cfg.n_services, 1);
	assert_int_equal(cfg.services[0].n_backends, 8);
	assert_string_equal(cfg_format_endpoint(&cfg.services[0].backends[0], buf, sizeof(buf)),
			    "[2001:db8:1234:5678::1]:8080");
	assert_string_equal(cfg_format_endpoint(&cfg.services[0].backends[7], buf, sizeof(buf)),
			    "[2001:db8:1234:5678::8]:8080");
	assert_int_equal(cfg.services[0].connect_timeout_ms, 250);

	snprintf(printed, sizeof(printed), "/tmp/fs-cfg-test-%d-lists.ini", getpid());
	f = fopen(printed, "w");
	assert_non_null(f);
	cfg_print(&cfg, f);
	fclose(f);
	f = fopen(printed, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		assert_true(strlen(line) < 198);
	fclose(f);
	assert_int_equal(cfg_load(printed, &again, err, sizeof(err)), 0);
	assert_int_equal(again.services[0].n_backends, 8);
	assert_memory_equal(again.services[0].backends, cfg.services[0].backends,
			    sizeof(cfg.services[0].backends));
	cfg_free(&again);
	cfg_free(&cfg);
	/* The list may start on the line after its key. */
	assert_int_equal(load(GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends =\n"
			      "  198.18.0.2:80\n  198.18.0.3:80\n", &cfg, err), 0);
	assert_int_equal(cfg.services[0].n_backends, 2);
	cfg_free(&cfg);
	unlink(printed);
	unlink(path);
}

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Damages text in place (at most len bytes, NUL-terminated): characters replaced by ones
 * that mean something in the format or in a value, inserted, deleted, lines repeated. */
static void damage(char *text, size_t cap, uint32_t *rs)
{
	static const char chars[] = " \t\n[]=;#:.,-+e0123456789x\"{}/";
	int n = 1 + (int)(next_rand(rs) % 3);

	for (int i = 0; i < n; i++) {
		size_t len = strlen(text), at = len ? next_rand(rs) % len : 0;
		char c = chars[next_rand(rs) % (sizeof(chars) - 1)];

		switch (next_rand(rs) % 5) {
		case 0:
		case 1: if (len) text[at] = c; break;
		case 2:
			if (len + 2 < cap) {
				memmove(text + at + 1, text + at, len - at + 1);
				text[at] = c;
			}
			break;
		case 3: if (len) memmove(text + at, text + at + 1, len - at); break;
		default: {
			/* Repeat the line that holds 'at'. */
			size_t b = at, e = at;

			while (b && text[b - 1] != '\n')
				b--;
			while (text[e] && text[e] != '\n')
				e++;
			if (e < len && len + (e - b + 1) + 1 <= cap) {
				memmove(text + e + 1 + (e - b + 1), text + e + 1, len - e);
				memcpy(text + e + 1, text + b, e - b);
				text[e + 1 + (e - b)] = '\n';
			}
			break;
		}
		}
	}
}

static bool endpoint_ok(const struct fs_endpoint *ep)
{
	return (ep->family == FS_AF_INET || ep->family == FS_AF_INET6) && ep->port != 0;
}

/* What cfg_load promises of a config it accepts. */
static void check_valid(const struct cfg *c)
{
	int total = 0;

	assert_in_range(c->n_interfaces, 1, CFG_MAX_IFACES);
	for (int i = 0; i < c->n_interfaces; i++)
		assert_true(c->interfaces[i][0] && c->interfaces[i][0] != ';' && strcmp(c->interfaces[i], ".") &&
			    strcmp(c->interfaces[i], "..") && !strpbrk(c->interfaces[i], "/: \t"));
	assert_in_range(c->tick_ms, 10, 10000);
	assert_in_range(c->flow_table_size, 64, 1u << 26);
	assert_in_range(c->flow_idle_timeout_s, 1, 604800);
	assert_true(c->pin_path[0] == '/' && c->pin_path[strspn(c->pin_path, "/")] && !strstr(c->pin_path, "/../"));
	assert_in_range(c->n_services, 1, (int)c->max_services);
	for (int i = 0; i < c->n_services; i++) {
		const struct cfg_service *s = &c->services[i];

		assert_true(s->name[0] && !strpbrk(s->name, " \t\"{}"));
		assert_true(endpoint_ok(&s->address));
		assert_in_range(s->n_backends, 1, FS_MAX_BACKENDS);
		for (int b = 0; b < s->n_backends; b++) {
			assert_true(endpoint_ok(&s->backends[b]));
			assert_int_equal(s->backends[b].family, s->address.family);
			for (int o = 0; o < b; o++)
				assert_memory_not_equal(&s->backends[o], &s->backends[b], sizeof(s->backends[b]));
		}
		for (int o = 0; o < i; o++) {
			assert_string_not_equal(c->services[o].name, s->name);
			assert_memory_not_equal(&c->services[o].address, &s->address, sizeof(s->address));
		}
		assert_in_range(s->connect_timeout_ms, 10, 60000);
		assert_true(s->failover_threshold > 0.5 && s->failover_threshold < 1);
		assert_true(s->failback_threshold > 0.5 && s->failback_threshold <= 0.999);
		assert_in_range(s->failback_hold_ms, 0, 3600000);
		assert_true(s->probe_interval_ms == 0 ||
			    (s->probe_interval_ms >= 10 && s->probe_interval_ms <= 600000));
		total += s->n_backends;
	}
	assert_true(total <= (int)c->max_backends);
}

static void assert_same_config(const struct cfg *a, const struct cfg *b)
{
	assert_int_equal(a->n_interfaces, b->n_interfaces);
	assert_memory_equal(a->interfaces, b->interfaces, sizeof(a->interfaces));
	assert_int_equal(a->tick_ms, b->tick_ms);
	assert_int_equal(a->flow_table_size, b->flow_table_size);
	assert_int_equal(a->flow_idle_timeout_s, b->flow_idle_timeout_s);
	assert_int_equal(a->max_services, b->max_services);
	assert_int_equal(a->max_backends, b->max_backends);
	assert_string_equal(a->pin_path, b->pin_path);
	assert_string_equal(a->metrics_listen, b->metrics_listen);
	assert_int_equal(a->n_services, b->n_services);
	for (int i = 0; i < a->n_services; i++) {
		const struct cfg_service *s = &a->services[i], *t = &b->services[i];

		assert_string_equal(s->name, t->name);
		assert_memory_equal(&s->address, &t->address, sizeof(s->address));
		assert_int_equal(s->n_backends, t->n_backends);
		assert_memory_equal(s->backends, t->backends, sizeof(s->backends));
		assert_int_equal(s->connect_timeout_ms, t->connect_timeout_ms);
		assert_true(s->failover_threshold == t->failover_threshold);
		assert_true(s->failback_threshold == t->failback_threshold);
		assert_int_equal(s->failback_hold_ms, t->failback_hold_ms);
		assert_int_equal(s->probe_interval_ms, t->probe_interval_ms);
		assert_int_equal(s->zero_error_retry, t->zero_error_retry);
	}
}

/* Damaged configs: cfg_load either names the file and line of a problem or returns a config
 * that keeps every promise of a valid one, and what `failsteer check` prints of an accepted
 * config loads back to the very same settings. */
static void test_damaged_configs(void **state)
{
	static const char *const seeds[] = {
		GOOD_GLOBAL "tick_ms = 50\nflow_table_size = 1024\nflow_idle_timeout_s = 600\n"
		"pin_path = /sys/fs/bpf/x\nmetrics_listen = 127.0.0.1:9999\nmax_services = 4\n"
		"max_backends = 9\n\n[service classifier]\naddress = 198.18.2.10:8080\n"
		"backends = 198.18.2.10:8080 198.18.3.10:8080\nconnect_timeout_ms = 250\n"
		"failover_threshold = 0.95\nfailback_threshold = 0.999\nfailback_hold_ms = 1000\n"
		"probe_interval_ms = 200\nzero_error_retry = off\n",
		GOOD_GLOBAL "metrics_listen = [::1]:9469\n[service v6]\naddress = [2001:db8::10]:443\n"
		"backends = [2001:db8::10]:443,[2001:db8:3::10]:8443\n"
		"[service b]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80 198.18.0.3:81\n"
		"failover_threshold = 0.99999999\nfailback_threshold = 0.5000000001\n",
	};
	enum { ROUNDS = 6000 };
	char text[2048], err[512], printed_path[80];
	int accepted = 0, rejected = 0;
	uint32_t rs = getenv("FS_FUZZ_SEED") ? (uint32_t)strtoul(getenv("FS_FUZZ_SEED"), NULL, 0) : 20261127;

	(void)state;
	snprintf(printed_path, sizeof(printed_path), "/tmp/fs-cfg-test-%d-printed.ini", getpid());
	for (int round = 0; round < ROUNDS; round++) {
		struct cfg c, again;

		snprintf(text, sizeof(text), "%s", seeds[round % 2]);
		damage(text, sizeof(text), &rs);
		err[0] = 0;
		if (load(text, &c, err)) {
			/* "path:line: problem" or "path: problem", one line */
			assert_int_equal(strncmp(err, path, strlen(path)), 0);
			assert_true(err[strlen(path)] == ':' && strlen(err) > strlen(path) + 2);
			assert_null(strchr(err, '\n'));
			rejected++;
			continue;
		}
		accepted++;
		check_valid(&c);
		FILE *f = fopen(printed_path, "w");

		assert_non_null(f);
		cfg_print(&c, f);
		fclose(f);
		if (cfg_load(printed_path, &again, err, sizeof(err))) {
			print_message("  round %d: the printed config does not load: %s\n--- from\n%s\n",
				      round, err, text);
			fail();
		}
		assert_same_config(&c, &again);
		cfg_free(&again);
		cfg_free(&c);
	}
	print_message("  %d damaged configs: %d rejected with file and line, %d accepted (valid, and "
		      "printed settings load back the same)\n", ROUNDS, rejected, accepted);
	assert_true(accepted > ROUNDS / 20 && rejected > ROUNDS / 20);
	unlink(printed_path);
	unlink(path);
}

/* The commands on the pinned state read only pin_path: whatever else is wrong in the
 * file, they find the state; a wrong pin_path itself is an error with its line. */
static void test_pin_path_alone(void **state)
{
	char pin[CFG_PATH_MAX], err[512];
	struct cfg cfg;

	(void)state;
	assert_int_equal(write_file("[global]\ninterfaces = veth0\nbogus = 1\nthis is no ini line\n"
				    "pin_path = /sys/fs/bpf/edited ; being edited\n"
				    "[service a]\npin_path = /elsewhere\naddress = nonsense\n"),
			 0);
	assert_int_not_equal(cfg_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg_read_pin_path(path, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "/sys/fs/bpf/edited");
	/* Keys before the [global] header are global too. */
	assert_int_equal(write_file("pin_path = /sys/fs/bpf/early\n[global]\n"), 0);
	assert_int_equal(cfg_read_pin_path(path, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "/sys/fs/bpf/early");
	assert_int_equal(write_file("[global]\ninterfaces = veth0\n"), 0);
	assert_int_equal(cfg_read_pin_path(path, pin, sizeof(pin), err, sizeof(err)), 0);
	assert_string_equal(pin, "/sys/fs/bpf/failsteer");
	assert_int_equal(write_file("[global]\n\npin_path = relative/dir\n"), 0);
	assert_int_equal(cfg_read_pin_path(path, pin, sizeof(pin), err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: pin_path is not an absolute path"));
	unlink(path);
	assert_int_equal(cfg_read_pin_path(path, pin, sizeof(pin), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example_and_defaults),
		cmocka_unit_test(test_errors_name_line_and_problem),
		cmocka_unit_test(test_damaged_configs),
		cmocka_unit_test(test_lists_go_on_indented_lines),
		cmocka_unit_test(test_pin_path_alone),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
