/* Load client for the throughput and latency benchmark (scripts/bench.sh): every request on
 * a NEW TCP connection (connect, one HTTP request, the whole answer up to the server's
 * close), from worker threads with one epoll loop each.
 *
 * Usage: bench_client --target ADDR:PORT [--workers W] [--concurrency C] [--duration S]
 *                     [--warmup S] [--rate R] [--timeout S] [--once]
 *   closed loop (default): each worker keeps C connections in flight, so the system runs
 *                          at saturation; prints the completed connections per second
 *   --rate R:              open loop, R new connections per second in all, on a fixed
 *                          schedule; latency is measured from each scheduled start
 *   --once:                one request; exit status 0 if it got a 200 (readiness checks)
 * Only completions inside [warmup, duration) count. Prints one JSON line:
 *   {"ok": N, "failed": N, "conn_per_s": X, "p50_ms": X, "p99_ms": X, "max_ms": X,
 *    "timeouts": N, "errors": N}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define RESP_MAX 1024

static struct sockaddr_storage target;
static socklen_t target_len;
static char request[256];
static size_t request_len;
static double duration = 3, warmup = 0.5, rate, timeout_s = 3, t0;
static int concurrency = 16;

struct conn {
	int fd;
	bool sent;
	double start;   /* scheduled (open loop) or actual (closed loop) start */
	size_t got;
	char buf[RESP_MAX];
	struct conn *next_free;
};

struct worker {
	pthread_t tid;
	int idx, n_workers;
	uint64_t ok, failed, timeouts, errors;
	double *lat;
	size_t n_lat, cap_lat;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_target(const char *spec)
{
	char host[64];
	const char *colon;
	long port;

	memset(&target, 0, sizeof(target));
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&target;

		if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
			return -1;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = 0;
		port = strtol(end + 2, NULL, 10);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		target_len = sizeof(*s6);
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 && port > 0 && port < 65536 ? 0 : -1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&target;

	colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	port = strtol(colon + 1, NULL, 10);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	target_len = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 && port > 0 && port < 65536 ? 0 : -1;
}

static void record(struct worker *w, struct conn *c, bool ok, bool timed_out)
{
	double t = now();

	if (t - t0 < warmup || t - t0 >= duration)
		return;
	if (!ok) {
		w->failed++;
		if (timed_out)
			w->timeouts++;
		else
			w->errors++;
		return;
	}
	w->ok++;
	if (w->n_lat == w->cap_lat) {
		size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
		double *l = realloc(w->lat, cap * sizeof(*l));

		if (!l)
			return;
		w->lat = l;
		w->cap_lat = cap;
	}
	w->lat[w->n_lat++] = (t - c->start) * 1000;
}

/* Starts a connection; returns it, or NULL if the socket could not even be created. */
static struct conn *conn_start(int ep, struct conn *c, double start)
{
	struct epoll_event ev = { .events = EPOLLOUT };

	c->fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return NULL;
	c->sent = false;
	c->got = 0;
	c->start = start;
	if (connect(c->fd, (struct sockaddr *)&target, target_len) && errno != EINPROGRESS) {
		close(c->fd);
		return NULL;
	}
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	return c;
}

static void conn_end(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

/* Handles an event; returns 1 when the connection is over (ok or not), 0 to keep it. */
static int conn_event(int ep, struct worker *w, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (!c->sent) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP)) ||
		    write(c->fd, request, request_len) != (ssize_t)request_len) {
			record(w, c, false, false);
			return 1;
		}
		c->sent = true;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return 0;
	}
	for (;;) {
		ssize_t r = read(c->fd, c->buf + c->got, RESP_MAX - 1 - c->got);

		if (r > 0) {
			c->got += (size_t)r;
			if (c->got < RESP_MAX - 1)
				continue;
			r = 0; /* longer than any answer of ours: judge what we have */
		}
		if (r == 0) {
			c->buf[c->got] = 0;
			record(w, c, c->got > 12 && !strncmp(c->buf, "HTTP/1.1 200", 12), false);
			return 1;
		}
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		record(w, c, false, false);
		return 1;
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	int ep = epoll_create1(0), slots = rate > 0 ? 8192 : concurrency, in_flight = 0;
	struct conn *pool = calloc((size_t)slots, sizeof(*pool)), *free_list = NULL;
	struct epoll_event evs[256];
	double next_start = t0 + (double)w->idx / (rate > 0 ? rate : 1), last_scan = 0;
	uint64_t seq = 0;

	if (ep < 0 || !pool) {
		fprintf(stderr, "bench_client: out of memory\n");
		exit(1);
	}
	for (int i = slots - 1; i >= 0; i--) {
		pool[i].fd = -1;
		pool[i].next_free = free_list;
		free_list = &pool[i];
	}
	for (;;) {
		double t = now();

		if (t - t0 >= duration)
			break;
		/* Start what is due: keep C in flight, or follow the schedule. */
		while (free_list && (rate > 0 ? next_start <= t : in_flight < concurrency)) {
			struct conn *c = free_list;

			free_list = c->next_free;
			if (conn_start(ep, c, rate > 0 ? next_start : t)) {
				in_flight++;
			} else {
				record(w, c, false, false);
				c->next_free = free_list;
				free_list = c;
				if (rate <= 0)
					break; /* out of sockets or ports: retry after some events */
			}
			if (rate > 0)
				next_start = t0 + ((double)++seq * w->n_workers + w->idx) / rate;
		}
		int wait_ms = 100;

		if (rate > 0) {
			double d = (next_start - now()) * 1000;

			wait_ms = d <= 0 ? 0 : d < 1 ? 1 : (int)d;
			if (wait_ms > 100)
				wait_ms = 100;
		}
		int n = epoll_wait(ep, evs, 256, wait_ms);

		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;

			if (conn_event(ep, w, c, evs[k].events)) {
				conn_end(ep, c);
				c->next_free = free_list;
				free_list = c;
				in_flight--;
			}
		}
		t = now();
		if (t - last_scan > 0.05) {
			last_scan = t;
			for (int i = 0; i < slots; i++)
				if (pool[i].fd >= 0 && t - pool[i].start > timeout_s) {
					record(w, &pool[i], false, true);
					conn_end(ep, &pool[i]);
					pool[i].next_free = free_list;
					free_list = &pool[i];
					in_flight--;
				}
		}
	}
	for (int i = 0; i < slots; i++)
		if (pool[i].fd >= 0)
			conn_end(ep, &pool[i]);
	free(pool);
	close(ep);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	return v[i < n ? i : n - 1];
}

static int once(void)
{
	struct worker w = { 0 };
	int ep = epoll_create1(0);
	struct conn c = { .fd = -1 };
	struct epoll_event ev;
	double end;

	duration = 1e9;
	warmup = 0;
	t0 = now();
	end = t0 + timeout_s;
	if (ep < 0 || !conn_start(ep, &c, now()))
		return 1;
	while (now() < end) {
		if (epoll_wait(ep, &ev, 1, 100) == 1 && conn_event(ep, &w, &c, ev.events))
			break;
	}
	conn_end(ep, &c);
	close(ep);
	free(w.lat);
	return w.ok == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 'T' },  { "workers", required_argument, NULL, 'w' },
		{ "concurrency", required_argument, NULL, 'c' }, { "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'W' },  { "rate", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' }, { "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker w[MAX_WORKERS] = { 0 };
	int n_workers = 1, c;
	bool do_once = false;
	const char *spec = NULL;
	struct rlimit rl;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'T': spec = optarg; break;
		case 'w': n_workers = atoi(optarg); break;
		case 'c': concurrency = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'W': warmup = atof(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 't': timeout_s = atof(optarg); break;
		case 'o': do_once = true; break;
		default: spec = NULL; optind = argc; break;
		}
	}
	if (!spec || parse_target(spec) || n_workers < 1 || n_workers > MAX_WORKERS ||
	    concurrency < 1 || concurrency > 4096 || duration <= warmup || warmup < 0 ||
	    timeout_s <= 0 || rate < 0) {
		fprintf(stderr, "usage: bench_client --target ADDR:PORT [--workers W] [--concurrency C]\n"
				"       [--duration S] [--warmup S] [--rate R] [--timeout S] [--once]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	request_len = (size_t)snprintf(request, sizeof(request),
				       "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
	if (do_once)
		return once();

	t0 = now();
	for (int i = 0; i < n_workers; i++) {
		w[i].idx = i;
		w[i].n_workers = n_workers;
		pthread_create(&w[i].tid, NULL, work, &w[i]);
	}
	uint64_t ok = 0, failed = 0, timeouts = 0, errors = 0;
	size_t n_lat = 0;
	double *lat;

	for (int i = 0; i < n_workers; i++) {
		pthread_join(w[i].tid, NULL);
		ok += w[i].ok;
		failed += w[i].failed;
		timeouts += w[i].timeouts;
		errors += w[i].errors;
		n_lat += w[i].n_lat;
	}
	lat = malloc((n_lat ? n_lat : 1) * sizeof(*lat));
	if (!lat)
		return 1;
	n_lat = 0;
	for (int i = 0; i < n_workers; i++) {
		memcpy(lat + n_lat, w[i].lat, w[i].n_lat * sizeof(*lat));
		n_lat += w[i].n_lat;
		free(w[i].lat);
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_d);
	char p50[32] = "null", p99[32] = "null", max[32] = "null";

	if (n_lat) {
		snprintf(p50, sizeof(p50), "%.3f", pct(lat, n_lat, 0.5));
		snprintf(p99, sizeof(p99), "%.3f", pct(lat, n_lat, 0.99));
		snprintf(max, sizeof(max), "%.3f", lat[n_lat - 1]);
	}
	printf("{\"ok\": %llu, \"failed\": %llu, \"conn_per_s\": %.1f, \"p50_ms\": %s, "
	       "\"p99_ms\": %s, \"max_ms\": %s, \"timeouts\": %llu, \"errors\": %llu}\n",
	       (unsigned long long)ok, (unsigned long long)failed, ok / (duration - warmup), p50, p99,
	       max, (unsigned long long)timeouts, (unsigned long long)errors);
	free(lat);
	return 0;
}
