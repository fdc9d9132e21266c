/* Zero-error failover, userspace half; see retry.h. */
#include "retry.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct retrier {
	struct fs_maps maps;  /* borrowed from the loader */
	int pkt_fd;           /* AF_PACKET: re-sent SYNs enter the egress program */
	int raw4_fd, raw6_fd; /* resets to clients */
	struct retrier_counts counts;
};

static __u32 sum16(const __u8 *p, size_t n, __u32 acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (__u32)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (__u32)p[n - 1] << 8;
	return acc;
}

static __u16 fold(__u32 acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)~acc;
}

void retry_fix_checksums(__u8 *ip, __u32 len, __u32 l4_off, __u8 family)
{
	__u8 *tcp = ip + l4_off;
	__u32 tlen = len - l4_off, acc;
	__u16 c;

	if (family == FS_AF_INET) {
		ip[10] = ip[11] = 0;
		c = fold(sum16(ip, l4_off, 0));
		ip[10] = c >> 8;
		ip[11] = c & 0xff;
		acc = sum16(ip + 12, 8, 0);
	} else {
		acc = sum16(ip + 8, 32, 0);
	}
	acc += IPPROTO_TCP + tlen;
	tcp[16] = tcp[17] = 0;
	c = fold(sum16(tcp, tlen, acc));
	tcp[16] = c >> 8;
	tcp[17] = c & 0xff;
}

struct retrier *retrier_new(const struct fs_maps *maps, char *err, size_t len)
{
	struct retrier *r = calloc(1, sizeof(*r));
	__u32 mark = FS_RETRY_MARK, probe_mark = FS_PROBE_MARK;

	if (!r) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	r->maps = *maps;
	r->pkt_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: send only */
	r->raw4_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	r->raw6_fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (r->pkt_fd < 0 || r->raw4_fd < 0 || r->raw6_fd < 0 ||
	    setsockopt(r->pkt_fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    /* Resets to clients must not be taken for client traffic by the egress program. */
	    setsockopt(r->raw4_fd, SOL_SOCKET, SO_MARK, &probe_mark, sizeof(probe_mark)) ||
	    setsockopt(r->raw6_fd, SOL_SOCKET, SO_MARK, &probe_mark, sizeof(probe_mark))) {
		snprintf(err, len, "opening retry sockets: %s", strerror(errno));
		retrier_free(r);
		return NULL;
	}
	return r;
}

void retrier_free(struct retrier *r)
{
	if (!r)
		return;
	if (r->pkt_fd >= 0)
		close(r->pkt_fd);
	if (r->raw4_fd >= 0)
		close(r->raw4_fd);
	if (r->raw6_fd >= 0)
		close(r->raw6_fd);
	free(r);
}

struct retrier_counts retrier_counts(const struct retrier *r)
{
	return r->counts;
}

bool retrier_still_connecting(struct retrier *r, const struct fs_retry_event *ev, struct fs_flow *f)
{
	const struct fs_flow_key *fwd = &ev->fwd;
	struct fs_flow_key rkey = { 0 };
	struct fs_flow rev;

	/* Same connection (ISN), still on the backend whose deadline passed. */
	if (!bpf_map_lookup_elem(r->maps.flows, fwd, f) && f->dir == FS_DIR_FWD &&
	    f->client_isn == ev->client_isn && f->backend_idx == ev->backend_idx) {
		memcpy(rkey.src, f->nat.addr, 16);
		memcpy(rkey.dst, fwd->src, 16);
		rkey.sport = f->nat.port;
		rkey.dport = fwd->sport;
		rkey.family = fwd->family;
		if (!bpf_map_lookup_elem(r->maps.flows, &rkey, &rev) && rev.state == FS_ST_SYN_SENT)
			return true;
	}
	r->counts.stale++;
	return false;
}

int retrier_resend(struct retrier *r, const struct fs_retry_event *ev, int ifindex)
{
	struct fs_syn syn;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_halen = ETH_ALEN };
	__u8 frame[ETH_HLEN + FS_SYN_MAX] = { 0 };
	__u32 slot = ev->syn_slot - 1, seq;
	__u16 proto;

	if (!ev->syn_slot || bpf_map_lookup_elem(r->maps.syn_store, &slot, &syn) ||
	    syn.len > FS_SYN_MAX || syn.l4_off < 20 || syn.l4_off + 20 > syn.len) {
		r->counts.no_syn++;
		return -ENOENT;
	}
	/* The ring slot may hold a later connection's SYN by now. */
	memcpy(&seq, syn.data + syn.l4_off + 4, 4);
	if (ntohl(seq) != ev->client_isn || memcmp(syn.data + syn.l4_off, &ev->fwd.sport, 2) ||
	    syn.family != ev->fwd.family ||
	    memcmp(syn.data + (syn.family == FS_AF_INET ? 12 : 8), ev->fwd.src,
		   syn.family == FS_AF_INET ? 4 : 16)) {
		r->counts.no_syn++;
		return -ENOENT;
	}
	/* The stored copy may carry a partial checksum (offload): make it whole. */
	retry_fix_checksums(syn.data, syn.len, syn.l4_off, syn.family);
	proto = syn.family == FS_AF_INET6 ? ETH_P_IPV6 : ETH_P_IP;
	frame[12] = proto >> 8;
	frame[13] = proto & 0xff;
	memcpy(frame + ETH_HLEN, syn.data, syn.len);
	sll.sll_protocol = htons(proto);
	sll.sll_ifindex = ifindex;
	/* Enters the egress program of that interface, which moves the flow to the next
	 * backend, rewrites it and routes it (addresses and MACs are its job). */
	if (sendto(r->pkt_fd, frame, ETH_HLEN + syn.len, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -errno;
	r->counts.resent++;
	return 0;
}

/* Every backend was tried and none answered: a reset from the service address ends the
 * client's wait now instead of after its own SYN retries (minutes). */
int retrier_reset_client(struct retrier *r, const struct fs_retry_event *ev)
{
	__u8 pkt[60] = { 0 };
	struct sockaddr_storage ss = { 0 };
	const struct fs_flow_key *k = &ev->fwd;
	__u32 l4 = k->family == FS_AF_INET ? 20 : 40, ack = htonl(ev->client_isn + 1);
	__u8 *tcp = pkt + l4;
	socklen_t sl;
	int fd;

	if (k->family == FS_AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		pkt[0] = 0x45;
		pkt[3] = 40;
		pkt[8] = 64;
		pkt[9] = IPPROTO_TCP;
		memcpy(pkt + 12, k->dst, 4);
		memcpy(pkt + 16, k->src, 4);
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, k->src, 4);
		sl = sizeof(*s4);
		fd = r->raw4_fd;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		pkt[0] = 0x60;
		pkt[5] = 20;
		pkt[6] = IPPROTO_TCP;
		pkt[7] = 64;
		memcpy(pkt + 8, k->dst, 16);
		memcpy(pkt + 24, k->src, 16);
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, k->src, 16);
		sl = sizeof(*s6);
		fd = r->raw6_fd;
	}
	memcpy(tcp, &k->dport, 2);
	memcpy(tcp + 2, &k->sport, 2);
	memcpy(tcp + 8, &ack, 4);
	tcp[12] = 5 << 4;
	tcp[13] = 0x14; /* RST, ACK */
	retry_fix_checksums(pkt, l4 + 20, l4, k->family);
	if (sendto(fd, pkt, l4 + 20, 0, (struct sockaddr *)&ss, sl) < 0)
		return -errno;
	r->counts.given_up++;
	return 0;
}

