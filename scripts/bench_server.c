/* Minimal HTTP/1.1 server for the throughput benchmark (scripts/bench.sh): every request
 * gets a small 200 answer naming the site, then the server closes the connection (so the
 * TIME_WAIT state stays on the server's side, as with Connection: close).
 *
 * Usage: bench_server --listen ADDR:PORT [--listen ...] [--site NAME] [--threads N]
 *                     [--pidfile FILE]
 *
 * One epoll loop per thread, each with its own SO_REUSEPORT listening socket per address,
 * so the kernel spreads connections over the threads. SIGTERM/SIGINT end it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTEN 4
#define REQ_MAX 4096

struct conn {
	int fd;
	size_t got;
	char buf[REQ_MAX];
};

static struct sockaddr_storage listen_addr[MAX_LISTEN];
static socklen_t listen_len[MAX_LISTEN];
static int n_listen;
static char response[256];
static size_t response_len;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* "1.2.3.4:80" or "[2001:db8::1]:80" */
static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
			return -1;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = 0;
		port = strtol(end + 2, NULL, 10);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 && port > 0 && port < 65536 ? 0 : -1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	port = strtol(colon + 1, NULL, 10);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 && port > 0 && port < 65536 ? 0 : -1;
}

static int open_listener(int i)
{
	int one = 1, fd = socket(listen_addr[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (listen_addr[i].ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&listen_addr[i], listen_len[i]) || listen(fd, 4096)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* True once buf holds the head and the body its Content-Length announces. */
static bool request_complete(const char *buf, size_t got)
{
	const char *end = memmem(buf, got, "\r\n\r\n", 4), *cl;
	size_t head, body = 0;

	if (!end)
		return false;
	head = (size_t)(end - buf) + 4;
	cl = memmem(buf, head, "Content-Length:", 15);
	if (!cl)
		cl = memmem(buf, head, "content-length:", 15);
	if (cl)
		body = strtoul(cl + 15, NULL, 10);
	return got >= head + body || head + body > REQ_MAX;
}

static void finish(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void *serve(void *arg)
{
	int ep = epoll_create1(0), lfd[MAX_LISTEN];
	struct epoll_event ev, evs[256];

	(void)arg;
	if (ep < 0)
		return (void *)1;
	for (int i = 0; i < n_listen; i++) {
		lfd[i] = open_listener(i);
		if (lfd[i] < 0) {
			perror("bench_server: listen");
			exit(1);
		}
		ev.events = EPOLLIN;
		ev.data.ptr = NULL;
		ev.data.u64 = (uint64_t)i; /* listeners: small integers, connections: pointers */
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
	}
	while (!stopping) {
		int n = epoll_wait(ep, evs, 256, 200);

		for (int k = 0; k < n; k++) {
			if (evs[k].data.u64 < MAX_LISTEN) {
				int li = (int)evs[k].data.u64, fd;

				while ((fd = accept4(lfd[li], NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct conn *c = malloc(sizeof(*c));

					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->got = 0;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			struct conn *c = evs[k].data.ptr;
			ssize_t r = read(c->fd, c->buf + c->got, REQ_MAX - c->got);

			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				finish(ep, c); /* peer closed (a health check) or reset */
				continue;
			}
			c->got += (size_t)r;
			if (request_complete(c->buf, c->got)) {
				/* Small answer: one write on a fresh socket does not block. */
				if (write(c->fd, response, response_len) < 0) {
					/* the client went away: nothing to do */
				}
				finish(ep, c);
			}
		}
	}
	for (int i = 0; i < n_listen; i++)
		close(lfd[i]);
	close(ep);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "site", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' }, { "pidfile", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *site = "primary", *pidfile = NULL;
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t tid[64];
	int c;
	char body[128];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listen == MAX_LISTEN || parse_addr(optarg, &listen_addr[n_listen], &listen_len[n_listen])) {
				fprintf(stderr, "bench_server: bad --listen '%s'\n", optarg);
				return 2;
			}
			n_listen++;
			break;
		case 's': site = optarg; break;
		case 't': threads = strtol(optarg, NULL, 10); break;
		case 'p': pidfile = optarg; break;
		default:
			fprintf(stderr, "usage: bench_server --listen ADDR:PORT [--site NAME] [--threads N] [--pidfile F]\n");
			return 2;
		}
	}
	if (!n_listen || threads < 1 || threads > 64 || strlen(site) > 64) {
		fprintf(stderr, "usage: bench_server --listen ADDR:PORT [--site NAME] [--threads N] [--pidfile F]\n");
		return 2;
	}
	snprintf(body, sizeof(body), "{\"site\": \"%s\"}\n", site);
	response_len = (size_t)snprintf(response, sizeof(response),
					"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					"Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
					strlen(body), body);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* Listen once here so that the pidfile means "accepting" (the threads add theirs). */
	for (int i = 0; i < n_listen; i++) {
		int fd = open_listener(i);

		if (fd < 0) {
			perror("bench_server: listen");
			return 1;
		}
		close(fd);
	}
	for (long i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, serve, NULL);
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	for (long i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	return 0;
}
