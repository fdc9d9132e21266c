/* Route lookups over rtnetlink; see routes.h. */
#include "routes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BATCH_SLOTS 1024 /* remembered addresses per batch (direct-mapped) */

struct route_batch {
	int fd;
	__u32 seq;
	struct {
		bool used;
		__u8 family;
		__u32 addr[4];
		int oif;
	} slot[BATCH_SLOTS];
};

static int open_socket(void)
{
	struct timeval tv = { .tv_sec = 1 };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

bool route_answer(int oif)
{
	return oif > 0 || oif == -ENETUNREACH || oif == -EHOSTUNREACH;
}

/* One RTM_GETROUTE on fd, numbered seq: on a reused socket, a late answer to an earlier
 * request that timed out is skipped, not taken for this one's. */
static int lookup(int fd, __u32 seq, const struct fs_endpoint *dst)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rt;
		char attrs[64];
	} req = { 0 };
	char buf[4096];
	struct rtattr *rta;
	int len, alen = dst->family == FS_AF_INET6 ? 16 : 4, oif = -ENETUNREACH;
	bool answered = false;

	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = seq;
	req.rt.rtm_family = dst->family == FS_AF_INET6 ? AF_INET6 : AF_INET;
	req.rt.rtm_dst_len = (unsigned char)(alen * 8);
	rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	rta->rta_type = RTA_DST;
	rta->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(rta), dst->addr, (size_t)alen);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0)
		return -errno;
	do {
		if ((len = (int)recv(fd, buf, sizeof(buf), 0)) < 0)
			return -errno;
	} while (NLMSG_OK((struct nlmsghdr *)buf, (unsigned)len) && ((struct nlmsghdr *)buf)->nlmsg_seq != seq);
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)len); nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_seq != seq)
			continue;
		answered = true;
		if (nh->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(nh);

			return e->error ? e->error : -ENETUNREACH;
		}
		if (nh->nlmsg_type != RTM_NEWROUTE)
			continue;
		struct rtmsg *rt = NLMSG_DATA(nh);
		int rlen = (int)RTM_PAYLOAD(nh);

		for (rta = RTM_RTA(rt); RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen))
			if (rta->rta_type == RTA_OIF)
				memcpy(&oif, RTA_DATA(rta), sizeof(oif));
	}
	return answered ? oif : -EPROTO;
}

int route_oif(const struct fs_endpoint *dst)
{
	int fd = open_socket(), oif;

	if (fd < 0)
		return fd;
	oif = lookup(fd, 1, dst);
	close(fd);
	return oif;
}

unsigned route_batch_lookups(const struct route_batch *b)
{
	return b->seq;
}

struct route_batch *route_batch_new(void)
{
	struct route_batch *b = calloc(1, sizeof(*b));

	if (b)
		b->fd = -1;
	return b;
}

/* Slot of an address: every bit of it counts (sites' addresses differ in the middle). */
static __u32 slot_of(const struct fs_endpoint *dst)
{
	__u32 h = dst->family;

	for (int i = 0; i < 4; i++) {
		h ^= dst->addr[i];
		h *= 0x85ebca6bu;
		h ^= h >> 13;
	}
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h % BATCH_SLOTS;
}

int route_batch_oif(struct route_batch *b, const struct fs_endpoint *dst)
{
	__u32 h = slot_of(dst);
	int oif;

	if (b->slot[h].used && b->slot[h].family == dst->family &&
	    !memcmp(b->slot[h].addr, dst->addr, sizeof(dst->addr)))
		return b->slot[h].oif;
	if (b->fd < 0 && (b->fd = open_socket()) < 0) {
		oif = b->fd;
		b->fd = -1;
		return oif;
	}
	oif = lookup(b->fd, ++b->seq, dst);
	if (!route_answer(oif))
		return oif; /* no answer about the route: ask again next time */
	b->slot[h].used = true;
	b->slot[h].family = dst->family;
	memcpy(b->slot[h].addr, dst->addr, sizeof(dst->addr));
	b->slot[h].oif = oif;
	return oif;
}

void route_batch_free(struct route_batch *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}
