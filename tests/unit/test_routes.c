/* Route lookups (user/routes.c) against the machine's own routing table: read-only
 * rtnetlink queries about loopback addresses, no packet sent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "routes.h"

static struct fs_endpoint ep(const char *addr, __u16 port)
{
	struct fs_endpoint e = { 0 };

	if (strchr(addr, ':')) {
		e.family = FS_AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, e.addr), 1);
	} else {
		e.family = FS_AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, e.addr), 1);
	}
	e.port = htons(port);
	return e;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_loopback_routes_through_lo(void **state)
{
	struct fs_endpoint v4 = ep("127.0.0.1", 80), v6 = ep("::1", 80);
	int lo = (int)if_nametoindex("lo");

	(void)state;
	assert_true(lo > 0);
	assert_int_equal(route_oif(&v4), lo);
	assert_int_equal(route_oif(&v6), lo);
}

/* A batch answers as single lookups do, for every port of an address, on one socket. */
static void test_batch_answers_as_single_lookups(void **state)
{
	struct route_batch *b = route_batch_new();
	int lo = (int)if_nametoindex("lo"), before = open_fds(), during;

	(void)state;
	assert_non_null(b);
	for (int i = 0; i < 2000; i++) {
		struct fs_endpoint e = ep(i % 2 ? "::1" : "127.0.0.1", (__u16)(1000 + i));

		assert_int_equal(route_batch_oif(b, &e), lo);
	}
	/* 127.0.0.2..: other addresses, other slots, same answer. */
	for (int i = 2; i < 200; i++) {
		char a[32];
		struct fs_endpoint e;

		snprintf(a, sizeof(a), "127.0.%d.%d", i / 250, i % 250 + 1);
		e = ep(a, 80);
		assert_int_equal(route_batch_oif(b, &e), route_oif(&e));
	}
	during = open_fds();
	assert_int_equal(during, before + 1);
	route_batch_free(b);
	assert_int_equal(open_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_routes_through_lo),
		cmocka_unit_test(test_batch_answers_as_single_lookups),
	};

	return cmocka_run_group_tests_name("routes", tests, NULL, NULL);
}
