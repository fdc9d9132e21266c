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
			      "metrics_listen = 127.0.0.1:9999\n\n"
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
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 1.1.1.1:1 1.1.1.2:1 1.1.1.3:1 1.1.1.4:1 1.1.1.5:1 1.1.1.6:1 1.1.1.7:1 1.1.1.8:1 1.1.1.9:1\n", 5, "at most 8" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = [2001:db8::1]:80\n", 3, "not the address family" },
		{ GOOD_GLOBAL "[servic a]\n", 3, "unknown section [servic a]" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nzero_error_retry = maybe\n", 6, "zero_error_retry: 'maybe'" },
		{ GOOD_GLOBAL "tick_ms = 0\n", 3, "tick_ms: '0'" },
		{ GOOD_GLOBAL "pin_path = relative\n", 3, "pin_path: 'relative'" },
		{ "[global]\ntick_ms = 100\n[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n", 1, "no interface" },
		{ GOOD_GLOBAL, 0, "no [service NAME] section" },
		{ GOOD_GLOBAL "this is not ini\n", 3, "syntax error" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n[global]\ninterfaces = eth9\n", 6, "duplicate section [global]" },
		{ "interfaces = eth0\n[global]\ninterfaces = eth1\n", 3, "'interfaces' given twice" },
		{ "[global]\ninterfaces = eth0 eth1 eth0\n", 2, "'eth0' is listed twice" },
		{ GOOD_GLOBAL "metrics_listen = localhost\n", 3, "metrics_listen" },
		{ GOOD_GLOBAL "flow_table_size = 1\n", 3, "flow_table_size" },
		{ GOOD_GLOBAL "[service a b]\n", 3, "a name is 1.." },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\nprobe_interval_ms = often\n", 6, "probe_interval_ms: 'often'" },
		{ GOOD_GLOBAL "[service a]\naddress = 198.18.0.1:80\nbackends = 198.18.0.2:80\n  198.18.0.3:80\n", 6, "'backends' given twice" },
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
	assert_int_equal(cfg_load("/tmp", &cfg, err, sizeof(err)), -1); /* opens, does not read */
	assert_non_null(strstr(err, "/tmp: cannot read: Is a directory"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example_and_defaults),
		cmocka_unit_test(test_errors_name_line_and_problem),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
