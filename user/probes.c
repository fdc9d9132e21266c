/* Active TCP probes; see probes.h. */
#include "probes.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROBES 4096
#define PORT_TRIES 64 /* source ports tried before leaving the choice to the kernel */

struct probe {
	int fd;     /* -1: free slot */
	__u32 tag;
	struct fs_endpoint ep;
	double deadline_s;
};

struct probes {
	int epfd;
	int n;
	int flows_fd;               /* -1: no flow table to keep clear of */
	int next_slot;              /* where to look for a free slot first */
	unsigned port_lo, port_hi;  /* this namespace's ephemeral port range ... */
	__u64 reserved[65536 / 64]; /* ... less its ip_local_reserved_ports ... */
	double port_range_s;        /* ... as read then (again a second later) */
	unsigned seed;
	struct probe slot[MAX_PROBES];
};

static bool port_reserved(const struct probes *p, unsigned port)
{
	return p->reserved[port / 64] >> (port % 64) & 1;
}

/* ip_local_reserved_ports: "8080,9000-9010" (empty when none). */
static void read_reserved_ports(struct probes *p)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_reserved_ports", "re");
	unsigned lo, hi;
	int n;

	memset(p->reserved, 0, sizeof(p->reserved));
	if (!f)
		return;
	while ((n = fscanf(f, "%u-%u", &lo, &hi)) >= 1) {
		if (n == 1)
			hi = lo;
		for (unsigned port = lo; port <= hi && port < 65536; port++)
			p->reserved[port / 64] |= 1ull << (port % 64);
		if (fgetc(f) != ',')
			break;
	}
	fclose(f);
}

/* The ports connect() would pick from, in the caller's network namespace (the kernel's
 * default range if it cannot be read). */
static void read_port_range(struct probes *p, double now_s)
{
	FILE *f;
	unsigned lo, hi;

	if (p->port_range_s && now_s < p->port_range_s + 1)
		return;
	p->port_range_s = now_s;
	p->port_lo = 32768;
	p->port_hi = 60999;
	read_reserved_ports(p);
	f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	if (!f)
		return;
	if (fscanf(f, "%u %u", &lo, &hi) == 2 && lo && lo <= hi && hi <= 65535) {
		p->port_lo = lo;
		p->port_hi = hi;
	}
	fclose(f);
}

struct probes *probes_new(int flows_fd)
{
	struct probes *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->flows_fd = flows_fd;
	p->seed = (unsigned)getpid() ^ (unsigned)time(NULL);
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
	struct fs_endpoint ep = pr->ep;

	/* Close with a reset: a probe must not leave TIME_WAIT sockets behind at this rate. */
	setsockopt(pr->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, pr->fd, NULL);
	close(pr->fd);
	pr->fd = -1;
	p->n--;
	done(ctx, tag, &ep, ok);
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

/* The source address the kernel would use towards 'to' (marked like a probe), from a
 * connected UDP socket: no packet is sent. */
static int source_address(const struct sockaddr_storage *to, socklen_t sl,
			  struct sockaddr_storage *src)
{
	__u32 mark = FS_PROBE_MARK;
	socklen_t len = sizeof(*src);
	int fd, err = 0;

	fd = socket(to->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    connect(fd, (const struct sockaddr *)to, sl) ||
	    getsockname(fd, (struct sockaddr *)src, &len))
		err = -errno;
	close(fd);
	return err;
}

/* True if the data path tracks a steered connection whose replies come from ep to
 * src:port: a probe from there would have its answer taken for that connection's. */
static bool port_in_flows(const struct probes *p, const struct fs_endpoint *ep,
			  const struct sockaddr_storage *src, __u16 port)
{
	struct fs_flow_key key = { .sport = ep->port, .dport = htons(port), .family = ep->family };
	struct fs_flow val;

	memcpy(key.src, ep->addr, sizeof(key.src));
	if (src->ss_family == AF_INET6)
		memcpy(key.dst, &((const struct sockaddr_in6 *)src)->sin6_addr, 16);
	else
		memcpy(key.dst, &((const struct sockaddr_in *)src)->sin_addr, 4);
	return !bpf_map_lookup_elem(p->flows_fd, &key, &val);
}

/* Binds fd to a source port that no local socket holds (bind refuses those), that is not
 * reserved (ip_local_reserved_ports) and that no steered connection uses towards ep. The
 * kernel's own choice at connect() only avoids ports whose whole 4-tuple it knows: a
 * steered connection's is not the one on the wire (it was made to the service address),
 * and one that is closed may still have its entries in the flow table. Leaves the choice
 * to the kernel after PORT_TRIES ports (a range this crowded is the operator's to widen)
 * and on any error: only connect() decides a probe's fate. */
static void bind_source_port(struct probes *p, int fd, const struct sockaddr_storage *to,
			     socklen_t sl, const struct fs_endpoint *ep, double now_s)
{
	struct sockaddr_storage src;
	unsigned n, first;

	if (p->flows_fd < 0)
		return;
	read_port_range(p, now_s);
	n = p->port_hi - p->port_lo + 1;
	if (source_address(to, sl, &src))
		return; /* no route, no descriptor left, a policy refusing the UDP socket */
	first = (unsigned)rand_r(&p->seed) % n;
	for (unsigned i = 0; i < n && i < PORT_TRIES; i++) {
		__u16 port = (__u16)(p->port_lo + (first + i) % n);

		if (port_reserved(p, port) || port_in_flows(p, ep, &src, port))
			continue;
		if (src.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&src)->sin6_port = htons(port);
		else
			((struct sockaddr_in *)&src)->sin_port = htons(port);
		if (!bind(fd, (struct sockaddr *)&src, sl) || errno != EADDRINUSE)
			return;
	}
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

	/* From past the slot taken last: free ones are mostly there, not a scan of all. */
	for (int k = 0; k < MAX_PROBES && !pr; k++) {
		int i = (p->next_slot + k) % MAX_PROBES;

		if (p->slot[i].fd < 0) {
			pr = &p->slot[i];
			p->next_slot = (i + 1) % MAX_PROBES;
		}
	}
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
	bind_source_port(p, fd, &ss, sl, ep, now_s);
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		done(ctx, tag, ep, false);
		return err;
	}
	pr->fd = fd;
	pr->tag = tag;
	pr->ep = *ep;
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

int probes_room(const struct probes *p)
{
	return MAX_PROBES - p->n;
}

int probes_in_flight(const struct probes *p)
{
	return p->n;
}
