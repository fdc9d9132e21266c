/* Metrics: /healthz's verdict on the detector's last tick, and the exposition of a
 * hand-built view (histogram bounds exact, cumulative, ending in +Inf). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "metrics.h"

#define MS 1000000ull

static void test_health_follows_the_last_tick(void **state)
{
	char msg[160];
	const __u64 t = 1000000 * MS;

	(void)state;
	assert_int_equal(metrics_health(t, 0, 100, msg, sizeof(msg)), MHD_HTTP_SERVICE_UNAVAILABLE);
	assert_non_null(strstr(msg, "not ticked"));
	assert_int_equal(metrics_health(t, t - 150 * MS, 100, msg, sizeof(msg)), MHD_HTTP_OK);
	/* At least 3 s of grace, whatever the period... */
	assert_int_equal(metrics_health(t, t - 2900 * MS, 100, msg, sizeof(msg)), MHD_HTTP_OK);
	assert_int_equal(metrics_health(t, t - 3100 * MS, 100, msg, sizeof(msg)), MHD_HTTP_SERVICE_UNAVAILABLE);
	assert_non_null(strstr(msg, "3100 ms ago"));
	/* ... and 10 periods of a slow detector. */
	assert_int_equal(metrics_health(t, t - 9000 * MS, 1000, msg, sizeof(msg)), MHD_HTTP_OK);
	assert_int_equal(metrics_health(t, t - 11000 * MS, 1000, msg, sizeof(msg)), MHD_HTTP_SERVICE_UNAVAILABLE);
	/* A tick stamped after "now" (another thread's clock read) is fresh, not an underflow. */
	assert_int_equal(metrics_health(t, t + 5 * MS, 100, msg, sizeof(msg)), MHD_HTTP_OK);
}

static void test_latency_histogram_exposition(void **state)
{
	struct view_backend be = { .id = 0 };
	struct view_service svc = { .be = &be };
	struct view v = { .n = 1, .svcs = &svc };
	char *text = NULL, *line, *save;
	size_t len = 0;
	unsigned long long prev = 0, val;
	int buckets = 0, inf = 0;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	assert_non_null(out);
	snprintf(svc.state.name, sizeof(svc.state.name), "web");
	svc.svc.n_backends = 1;
	be.traffic.latency_hist[0] = 3;  /* below 2 us */
	be.traffic.latency_hist[20] = 2; /* [2^20, 2^21) us: about 1-2 s */
	be.traffic.latency_hist[FS_LAT_BUCKETS - 1] = 1;
	metrics_render(&v, NULL, out);
	fclose(out);
	/* 2^21 us is 2.097152 s, exactly: a rounded bound would put the bucket elsewhere. */
	assert_non_null(strstr(text, "le=\"2.097152\"} 5\n"));
	assert_non_null(strstr(text, "le=\"0.000002\"} 3\n"));
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		static const char prefix[] = "failsteer_backend_connect_latency_seconds_bucket{";

		if (strncmp(line, prefix, sizeof(prefix) - 1))
			continue;
		val = strtoull(strrchr(line, ' ') + 1, NULL, 10);
		assert_true(val >= prev); /* cumulative */
		prev = val;
		buckets++;
		inf += strstr(line, "le=\"+Inf\"") != NULL;
	}
	assert_int_equal(inf, 1);
	assert_int_equal(prev, 6);
	assert_true(buckets > 10);
	free(text);
}

static char *render(const struct view *v, bool json)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	if (json)
		cli_print_json(v, NULL, out);
	else
		metrics_render(v, NULL, out);
	fclose(out);
	return text;
}

/* A service failed over whose primary's saved model has learned an outage: its P(up)
 * ceiling (about 0.995 here) is below a failback threshold of 0.999, not below 0.99. The
 * metric, status --json and the table say so from the saved records alone. */
static void test_failback_capped_from_saved_models(void **state)
{
	struct view_backend be[2] = { { .id = 0 }, { .id = 1 } };
	struct view_service svc = { .be = be };
	struct view v = { .n = 1, .svcs = &svc };
	char *text;

	(void)state;
	snprintf(svc.state.name, sizeof(svc.state.name), "web");
	svc.svc.n_backends = 2;
	svc.svc.active = 1;
	v.daemon.tick_ms = 100;
	be[0].model.p_down_ppb = 500000000;
	be[0].model.counts_milli[0][0] = 100000;
	be[0].model.counts_milli[0][1] = 5000;
	be[0].model.counts_milli[1][1] = 20000;
	be[0].model.up_attempts_milli = 1000000;
	for (int b = 0; b < 2; b++)
		be[b].model.good_threshold_ppb = 999000000;
	text = render(&v, false);
	assert_non_null(strstr(text, "failsteer_service_failback_capped{service=\"web\"} 1\n"));
	free(text);
	text = render(&v, true);
	assert_non_null(strstr(text, "\"failback_capped\":true"));
	assert_non_null(strstr(text, "\"p_up_ceiling\":0.99"));
	free(text);

	be[0].model.good_threshold_ppb = 990000000;
	text = render(&v, false);
	assert_non_null(strstr(text, "failsteer_service_failback_capped{service=\"web\"} 0\n"));
	free(text);
	/* Forced: the operator decides, nothing to say. */
	be[0].model.good_threshold_ppb = 999000000;
	svc.ctl.mode = FS_MODE_FORCED;
	text = render(&v, true);
	assert_non_null(strstr(text, "\"failback_capped\":false"));
	free(text);
	/* No daemon ever saved a model: no ceiling to give. */
	v.daemon.tick_ms = 0;
	text = render(&v, true);
	assert_non_null(strstr(text, "\"p_up_ceiling\":null"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_follows_the_last_tick),
		cmocka_unit_test(test_failback_capped_from_saved_models),
		cmocka_unit_test(test_latency_histogram_exposition),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
