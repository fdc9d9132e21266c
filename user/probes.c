/* Active TCP probes; see probes.h. */
#include "probes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PROBES 4096

struct probe {
	int fd;     /* -1: free slot */
	__u32 tag;
	double deadline_s;
};

struct probes {
	int epfd;
	int n;
	struct probe slot[MAX_PROBES];
};

struct probes *probes_new(void)
{
	struct probes *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		free(p);
		return NULL;
	}
	for (int i = 0; i < MAX_PROBES; i++)
		p->slot[i].fd = -1;
	return p;
}

static void finish(struct probes *p, struct probe *pr, bool ok, probe_done_fn done, void *ctx)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	__u32 tag = pr->tag;

	/* Close with a reset: a probe must not leave TIME_WAIT sockets behind at this rate. */
	setsockopt(pr->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, pr->fd, NULL);
	close(pr->fd);
	pr->fd = -1;
	p->n--;
	done(ctx, tag, ok);
}

void probes_free(struct probes *p)
{
	if (!p)
		return;
	for (int i = 0; i < MAX_PROBES; i++)
		if (p->slot[i].fd >= 0)
			close(p->slot[i].fd);
	close(p->epfd);
	free(p);
}

int probes_start(struct probes *p, const struct fs_endpoint *ep, unsigned timeout_ms, __u32 tag,
		 double now_s, probe_done_fn done, void *ctx)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	__u32 mark = FS_PROBE_MARK;
	struct epoll_event ev = { .events = EPOLLOUT };
	struct probe *pr = NULL;
	int fd, err;

	for (int i = 0; i < MAX_PROBES && !pr; i++)
		if (p->slot[i].fd < 0)
			pr = &p->slot[i];
	if (!pr)
		return -EBUSY;
	if (ep->family == FS_AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ep->addr, 16);
		s6->sin6_port = ep->port;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ep->addr, 4);
		s4->sin_port = ep->port;
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Marked so the egress program lets it through to the backend itself. */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		err = -errno;
		close(fd);
		return err;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		done(ctx, tag, false);
		return err;
	}
	pr->fd = fd;
	pr->tag = tag;
	pr->deadline_s = now_s + timeout_ms / 1000.0;
	ev.data.ptr = pr;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		err = -errno;
		close(fd);
		pr->fd = -1;
		return err;
	}
	p->n++;
	return 0;
}

void probes_poll(struct probes *p, double now_s, probe_done_fn done, void *ctx)
{
	struct epoll_event evs[64];
	int n;

	while ((n = epoll_wait(p->epfd, evs, 64, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			struct probe *pr = evs[i].data.ptr;
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
				soerr = errno;
			finish(p, pr, soerr == 0, done, ctx);
		}
		if (n < 64)
			break;
	}
	for (int i = 0; i < MAX_PROBES && p->n; i++)
		if (p->slot[i].fd >= 0 && now_s >= p->slot[i].deadline_s)
			finish(p, &p->slot[i], false, done, ctx);
}

int probes_in_flight(const struct probes *p)
{
	return p->n;
}
