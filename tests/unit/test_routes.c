/* Route lookups (user/routes.c) against the machine's own routing table: read-only
 * rtnetlink queries about loopback addresses, no packet sent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
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

/* Loopback must be up with IPv4 and IPv6 for these tests (not so in a bare network
 * namespace, or with IPv6 disabled): skipped otherwise. */
static int lo_routes(void **state)
{
	struct fs_endpoint v4 = ep("127.0.0.1", 80), v6 = ep("::1", 80);
	int lo = (int)if_nametoindex("lo");

	(void)state;
	if (lo <= 0 || route_oif(&v4) != lo || route_oif(&v6) != lo) {
		printf("SKIP: loopback has no IPv4 and IPv6 routes here\n");
		return -1;
	}
	return 0;
}

static void test_loopback_routes_through_lo(void **state)
{
	struct fs_endpoint v4 = ep("127.0.0.1", 80), v6 = ep("::1", 80);
	int lo = (int)if_nametoindex("lo");

	if (lo_routes(state))
		skip();
	assert_int_equal(route_oif(&v4), lo);
	assert_int_equal(route_oif(&v6), lo);
	/* A route lookup error of the kernel's is not an answer; no route is one. */
	assert_false(route_answer(-EPROTO));
	assert_false(route_answer(-EAGAIN));
	assert_true(route_answer(-ENETUNREACH));
	assert_true(route_answer(lo));
}

/* A batch answers as single lookups do, for every port of an address, on one socket. */
static void test_batch_answers_as_single_lookups(void **state)
{
	struct route_batch *b = route_batch_new();
	int lo = (int)if_nametoindex("lo"), before = open_fds(), during;

	if (lo_routes(state))
		skip();
	assert_non_null(b);
	for (int i = 0; i < 2000; i++) {
		struct fs_endpoint e = ep(i % 2 ? "::1" : "127.0.0.1", (__u16)(1000 + i));

		assert_int_equal(route_batch_oif(b, &e), lo);
	}
	assert_int_equal(route_batch_lookups(b), 2);
	/* Other addresses, each asked once; the same answers as single lookups. */
	for (int i = 2; i < 200; i++) {
		char a[32];
		struct fs_endpoint e;

		snprintf(a, sizeof(a), "127.0.%d.%d", i / 250, i % 250 + 1);
		e = ep(a, 80);
		assert_int_equal(route_batch_oif(b, &e), route_oif(&e));
	}
	assert_int_equal(route_batch_lookups(b), 2 + 198);
	/* Sites' addresses differ only in the middle: alternating between two must not evict
	 * each other from the memo (a weak hash put all of 198.18.0.0/16 in one slot). */
	for (int i = 0; i < 1000; i++) {
		struct fs_endpoint e = ep(i % 2 ? "198.18.3.10" : "198.18.2.10", 8080);

		route_batch_oif(b, &e);
	}
	assert_int_equal(route_batch_lookups(b), 2 + 198 + 2);
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
