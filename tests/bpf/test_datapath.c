/* The real TC programs run through bpf_prog_test_run with crafted IPv4/IPv6 packets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failsteer.skel.h"
#include "failsteer/failsteer.h"
#include "flows.h"
#include "loader.h"
#include "pkt.h"
#include "stats.h"
#include "view.h"

#define VIP4 "198.18.2.10"
#define PRI4 "198.18.2.10" /* the service address is the primary's own address */
#define BAK4 "198.18.3.10"
#define CLI4 "198.18.1.2"
#define VIP6 "2001:db8:2::10"
#define PRI6 "2001:db8:2::10"
#define BAK6 "2001:db8:3::10"
#define CLI6 "2001:db8:1::2"
#define VIP4_VIRT "198.18.9.9" /* a virtual service address owned by nobody */
#define PORT 8080
/* A connect timeout the tests wait out; connections answered in a test are answered well
 * within it, even on a busy machine. */
#define SHORT_TIMEOUT_MS 200
#define BAK_PORT 9090

#define ID_PRI 3 /* backend ids, deliberately not 0/1 */
#define ID_BAK 5
#define ID_PRI6 6
#define ID_BAK6 7
#define FLOW_TABLE_SIZE 1024

struct env {
	struct failsteer_bpf *skel;
	int ingress_fd, egress_fd;
};

static struct env E;
static __u16 svc_flags; /* flags put_service gives new services */
static __u32 run_flags; /* test_run flags of every run (BPF_F_TEST_SKB_CHECKSUM_COMPLETE) */

#define TC_ACT_SHOT 2
/* Passed on (TC_ACT_UNSPEC): to what follows on the hook, then on its way. */
#define TC_PASS (-1)

static void endpoint(struct fs_endpoint *ep, const char *addr, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	ep->family = pkt_addr(addr, (uint8_t *)ep->addr) == 4 ? FS_AF_INET : FS_AF_INET6;
	ep->port = htons(port);
}

static void put_service(const char *vip, const char *pri, const char *bak, __u32 id_pri,
			__u32 id_bak, int active, __u32 timeout_ms)
{
	struct fs_endpoint key;
	struct fs_service svc = { 0 };

	endpoint(&key, vip, PORT);
	svc.n_backends = 2;
	svc.active = (uint8_t)active;
	svc.connect_timeout_ms = timeout_ms;
	svc.flags = svc_flags;
	svc.backend_ids[0] = id_pri;
	svc.backend_ids[1] = id_bak;
	endpoint(&svc.backends[0], pri, PORT);
	endpoint(&svc.backends[1], bak, BAK_PORT);
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_ANY), 0);
}

static void set_active(const char *vip, int active)
{
	struct fs_endpoint key;
	struct fs_service svc;

	endpoint(&key, vip, PORT);
	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), 0), 0);
	svc.active = (uint8_t)active;
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_EXIST), 0);
}

/* Loads the programs (deadline ring of ring_slots, 0: the default size), starts the timer. */
static int load(__u32 ring_slots)
{
	memset(&E, 0, sizeof(E));
	svc_flags = 0;
	run_flags = 0;
	E.skel = failsteer_bpf__open();
	if (!E.skel)
		return -1;
	bpf_map__set_max_entries(E.skel->maps.flows, FLOW_TABLE_SIZE);
	if (ring_slots) {
		E.skel->rodata->deadline_slots = ring_slots;
		bpf_map__set_max_entries(E.skel->maps.deadlines, ring_slots);
	}
	if (failsteer_bpf__load(E.skel) ||
	    loader_start_deadline_timer(bpf_program__fd(E.skel->progs.fs_deadline_setup))) {
		failsteer_bpf__destroy(E.skel);
		return -1;
	}
	E.ingress_fd = bpf_program__fd(E.skel->progs.fs_tc_ingress);
	E.egress_fd = bpf_program__fd(E.skel->progs.fs_tc_egress);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (load(0))
		return -1;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 0);
	put_service(VIP6, PRI6, BAK6, ID_PRI6, ID_BAK6, 0, 0);
	return 0;
}

/* As setup, with a deadline ring of 4 slots and no service. */
static int setup_small_ring(void **state)
{
	(void)state;
	return load(4);
}

static int teardown(void **state)
{
	(void)state;
	failsteer_bpf__destroy(E.skel);
	return 0;
}

/* Runs one frame through prog_fd: 0 and the verdict in *verdict and the output in out, or
 * the error of a frame test_run refuses. */
static int try_run(int prog_fd, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
		   __u32 ingress_ifindex, int *verdict)
{
	struct __sk_buff ctx = { .ingress_ifindex = ingress_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = PKT_MAX, .repeat = 1, .flags = run_flags);

	if (ingress_ifindex) {
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return -errno;
	*out_len = opts.data_size_out;
	*verdict = (int)opts.retval;
	return 0;
}

/* Runs one frame through prog_fd; returns the verdict and fills out/out_len. */
static int run_ctx(int prog_fd, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
		   __u32 ingress_ifindex)
{
	int verdict, err = try_run(prog_fd, in, len, out, out_len, ingress_ifindex, &verdict);

	if (err)
		print_message("  test_run of %zu bytes: %d\n", len, err);
	assert_int_equal(err, 0);
	return verdict;
}

static int run(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
	return run_ctx(E.ingress_fd, in, len, out, out_len, 0);
}

/* Runs spec through the ingress program and asserts the output equals expect (built from
 * scratch, so checksums are verified by byte comparison and by recomputation). */
static void expect_rewrite(const struct pkt_spec *in_spec, const struct pkt_spec *expect_spec)
{
	uint8_t in[PKT_MAX], out[PKT_MAX], want[PKT_MAX];
	size_t len = pkt_tcp(in, in_spec), out_len, want_len = pkt_tcp(want, expect_spec);

	assert_int_equal(run(in, len, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_true(pkt_csums_ok(out, out_len));
	assert_memory_equal(out, want, want_len);
}

static void expect_verdict(const struct pkt_spec *s, int verdict)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t out_len;

	assert_int_equal(run(in, pkt_tcp(in, s), out, &out_len), verdict);
}

static void expect_unchanged_frame(const uint8_t *in, size_t len)
{
	uint8_t out[PKT_MAX];
	size_t out_len;

	int r = run(in, len, out, &out_len);
	assert_int_equal(r, TC_PASS);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, in, len);
}

static void expect_unchanged(const struct pkt_spec *s)
{
	uint8_t in[PKT_MAX];

	expect_unchanged_frame(in, pkt_tcp(in, s));
}

static struct fs_backend_stats backend(__u32 id)
{
	struct fs_backend_stats st;

	assert_int_equal(stats_read_backend(bpf_map__fd(E.skel->maps.backend_stats), id, &st), 0);
	return st;
}

static struct fs_backend_traffic traffic(__u32 id)
{
	struct fs_backend_traffic tr;

	assert_int_equal(stats_read_traffic(bpf_map__fd(E.skel->maps.backend_traffic), id, &tr), 0);
	return tr;
}

static struct fs_global_stats global(void)
{
	struct fs_global_stats g;

	assert_int_equal(stats_read_global(bpf_map__fd(E.skel->maps.global_stats), &g), 0);
	return g;
}

/* Packet specs of one IPv4 or IPv6 connection from client port cport. */
struct conn {
	const char *cli, *vip, *pri, *bak;
	uint16_t cport;
	uint32_t isn, srv_isn;
};

static struct pkt_spec c_syn(const struct conn *c, const char *dst, uint16_t dport)
{
	return (struct pkt_spec){ .src = c->cli, .dst = dst, .sport = c->cport, .dport = dport,
				  .flags = TH_SYN, .seq = c->isn, .mss_option = true };
}

/* c's SYN to the service at vip is steered to backend 'to' (port dport), rewritten. */
static void expect_syn_steered(const struct conn *c, const char *vip, const char *to, uint16_t dport)
{
	struct pkt_spec in = c_syn(c, vip, PORT), want = c_syn(c, to, dport);

	expect_rewrite(&in, &want);
}

static struct pkt_spec c_pkt(const struct conn *c, const char *dst, uint16_t dport, uint8_t flags,
			     uint32_t seq, uint32_t ack)
{
	return (struct pkt_spec){ .src = c->cli, .dst = dst, .sport = c->cport, .dport = dport,
				  .flags = flags, .seq = seq, .ack = ack };
}

/* The client's first data segment (100 bytes). */
static struct pkt_spec c_data(const struct conn *c, const char *dst, uint16_t dport, uint8_t flags)
{
	struct pkt_spec s = c_pkt(c, dst, dport, flags, c->isn + 1, c->srv_isn + 1);

	s.payload_len = 100;
	return s;
}

static struct pkt_spec s_pkt(const struct conn *c, const char *src, uint16_t sport, uint8_t flags,
			     uint32_t seq, uint32_t ack)
{
	return (struct pkt_spec){ .src = src, .dst = c->cli, .sport = sport, .dport = c->cport,
				  .flags = flags, .seq = seq, .ack = ack };
}

static const struct conn conn4 = { CLI4, VIP4, PRI4, BAK4, 40001, 1000, 5000 };
static const struct conn conn6 = { CLI6, VIP6, PRI6, BAK6, 40001, 1000, 5000 };

/* Whole life of a connection across failover and failback, for one address family. */
static void connection_keeps_backend(const struct conn *c, __u32 id_pri, __u32 id_bak)
{
	struct conn c2 = *c;
	struct pkt_spec in, want;

	c2.cport = (uint16_t)(c->cport + 1);
	/* New SYN to the service goes to the active backend (the primary), unchanged bytes. */
	in = c_syn(c, c->vip, PORT);
	want = c_syn(c, c->pri, PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(id_pri).attempts, 1);
	/* SYN-ACK from the primary: reverse rewrite, established, one latency sample. */
	in = s_pkt(c, c->pri, PORT, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(id_pri).established, 1);

	/* Failover: existing flow stays on the primary, a new one goes to the backup. */
	set_active(c->vip, 1);
	in = c_data(c, c->vip, PORT, TH_ACK | TH_PSH);
	want = c_data(c, c->pri, PORT, TH_ACK | TH_PSH);
	expect_rewrite(&in, &want);
	in = c_syn(&c2, c->vip, PORT);
	want = c_syn(&c2, c->bak, BAK_PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(id_bak).attempts, 1);
	/* Backup's SYN-ACK comes back as the service address. */
	in = s_pkt(&c2, c->bak, BAK_PORT, TH_SYN | TH_ACK, c2.srv_isn, c2.isn + 1);
	want = s_pkt(&c2, c->vip, PORT, TH_SYN | TH_ACK, c2.srv_isn, c2.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(id_bak).established, 1);

	/* Failback: the backup's flow stays on the backup. */
	set_active(c->vip, 0);
	in = c_data(&c2, c->vip, PORT, TH_ACK);
	want = c_data(&c2, c->bak, BAK_PORT, TH_ACK);
	expect_rewrite(&in, &want);
	in = s_pkt(&c2, c->bak, BAK_PORT, TH_ACK | TH_PSH, c2.srv_isn + 1, c2.isn + 101);
	in.payload_len = 50;
	want = in;
	want.src = c->vip;
	want.sport = PORT;
	expect_rewrite(&in, &want);

	assert_int_equal(traffic(id_pri).pkts_to, 2);
	assert_int_equal(traffic(id_pri).pkts_from, 1);
	assert_int_equal(traffic(id_bak).pkts_to, 2);
	assert_int_equal(traffic(id_bak).pkts_from, 2);
	struct fs_backend_stats b = backend(id_bak);
	struct fs_backend_traffic tr = traffic(id_bak);
	__u64 samples = 0;
	for (int i = 0; i < FS_LAT_BUCKETS; i++)
		samples += tr.latency_hist[i];
	assert_int_equal(samples, 1);
	assert_int_equal(b.resets + b.timeouts + b.icmp_errors + b.syn_retrans, 0);
}

static void test_ipv4_connection_keeps_backend(void **state)
{
	(void)state;
	connection_keeps_backend(&conn4, ID_PRI, ID_BAK);
}

static void test_ipv6_connection_keeps_backend(void **state)
{
	(void)state;
	connection_keeps_backend(&conn6, ID_PRI6, ID_BAK6);
}

/* A service on a virtual address: both directions rewritten, VLAN / IP options kept. */
static void test_virtual_ip_with_vlan_and_options(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 40100, 77, 99 };
	struct pkt_spec in, want;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	in = c_syn(&c, VIP4_VIRT, PORT);
	in.vlan = true;
	in.ip_options = true;
	want = c_syn(&c, BAK4, BAK_PORT);
	want.vlan = true;
	want.ip_options = true;
	expect_rewrite(&in, &want);
	in = s_pkt(&c, BAK4, BAK_PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	in.vlan = true;
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want.vlan = true;
	expect_rewrite(&in, &want);
	assert_int_equal(backend(11).established, 1);

	/* IPv6 with a destination-options extension header. */
	struct conn c6 = conn6;
	c6.cport = 40101;
	set_active(VIP6, 1);
	in = c_syn(&c6, VIP6, PORT);
	in.ip_options = true;
	want = c_syn(&c6, BAK6, BAK_PORT);
	want.ip_options = true;
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_BAK6).attempts, 1);
}

/* A SYN that got no answer follows the active backend when retransmitted. */
static void test_unanswered_syn_follows_active(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in, want;

	(void)state;
	c.cport = 40200;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	expect_rewrite(&in, &want); /* retransmission, same backend */
	assert_int_equal(backend(ID_PRI).syn_retrans, 1);
	set_active(VIP4, 1);
	want = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &want); /* retransmission after failover: moved */
	assert_int_equal(backend(ID_PRI).syn_retrans, 2);
	assert_int_equal(backend(ID_BAK).attempts, 1);
	/* The primary's late SYN-ACK is not for the client any more: dropped. */
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_verdict(&in, TC_ACT_SHOT);
	in = s_pkt(&c, BAK4, BAK_PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	/* Answered: a later active change no longer moves it. */
	set_active(VIP4, 0);
	in = c_data(&c, VIP4, PORT, TH_ACK);
	want = c_data(&c, BAK4, BAK_PORT, TH_ACK);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_BAK).established, 1);
}

static void test_resets_counted_only_in_window(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in, want;
	struct fs_global_stats g0 = global();

	(void)state;
	/* Connection refused: RST+ACK acking the SYN counts; a wrong ack does not. */
	c.cport = 40300;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 7);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).resets, 0);
	assert_int_equal(global().rst_rejected, g0.rst_rejected + 1);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).resets, 1);
	assert_int_equal(backend(ID_PRI).resets_connect, 1);
	/* The flow is gone: a second copy passes untouched and is not counted. */
	expect_unchanged(&in);
	assert_int_equal(backend(ID_PRI).resets, 1);

	/* Established flow: far-out-of-window RST ignored, in-window RST counted. */
	c.cport = 40301;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &in);
	in = s_pkt(&c, PRI4, PORT, TH_RST, c.srv_isn + 1 + 0x40000000u, 0);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).resets, 1);
	in = s_pkt(&c, PRI4, PORT, TH_RST, c.srv_isn + 1, 0);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).resets, 2);
	assert_int_equal(backend(ID_PRI).resets_connect, 1);
	assert_int_equal(global().rst_rejected, g0.rst_rejected + 2);
}

static void test_icmp_counted_only_for_tracked_syn(void **state)
{
	struct conn c = conn4, c6 = conn6;
	struct pkt_spec in, want, sent;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX];
	size_t flen, ilen;

	(void)state;
	c.cport = 40400;
	in = c_syn(&c, VIP4, PORT);
	sent = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &sent);
	/* Unreachable quoting the SYN as it was sent (to the primary): counted. */
	flen = pkt_tcp(frame, &sent);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, flen);
	expect_unchanged_frame(icmp, ilen);
	assert_int_equal(backend(ID_PRI).icmp_errors, 1);
	/* Same flow, wrong sequence number (blind attacker): not counted. */
	sent.seq += 12345;
	flen = pkt_tcp(frame, &sent);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, flen);
	expect_unchanged_frame(icmp, ilen);
	/* Quoting a flow nobody tracks: not counted. */
	sent = c_syn(&c, PRI4, PORT);
	sent.sport = 999;
	flen = pkt_tcp(frame, &sent);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, flen);
	expect_unchanged_frame(icmp, ilen);
	assert_int_equal(backend(ID_PRI).icmp_errors, 1);

	c6.cport = 40401;
	in = c_syn(&c6, VIP6, PORT);
	want = c_syn(&c6, PRI6, PORT);
	expect_rewrite(&in, &want);
	flen = pkt_tcp(frame, &want);
	ilen = pkt_icmp_unreach(icmp, "2001:db8:2::1", CLI6, frame, flen);
	assert_true(pkt_csums_ok(icmp, ilen));
	expect_unchanged_frame(icmp, ilen);
	assert_int_equal(backend(ID_PRI6).icmp_errors, 1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* backend_pending: the flag the daemon reads to know whose fault counters changed. */
static __u64 take_pending(__u32 id)
{
	int fd = bpf_map__fd(E.skel->maps.backend_pending);
	struct fs_backend_pending a, zero = { 0 };

	assert_int_equal(bpf_map_lookup_elem(fd, &id, &a), 0);
	assert_int_equal(bpf_map_update_elem(fd, &id, &zero, BPF_ANY), 0);
	return a.pending;
}

/* Every kind of evidence flags its backend; plain traffic does not, so that the daemon's
 * tick reads only the counters of backends something happened to. */
static void test_evidence_flags_backend(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX];
	size_t flen, ilen;

	(void)state;
	/* Long enough that no connect timeout flags the backend in the middle. */
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 10000);
	take_pending(ID_PRI);
	take_pending(ID_BAK);
	c.cport = 40450;
	expect_syn_steered(&c, VIP4, PRI4, PORT);
	assert_int_equal(take_pending(ID_PRI), 1); /* attempt */
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &in);
	assert_int_equal(take_pending(ID_PRI), 1); /* established */
	in = c_data(&c, VIP4, PORT, TH_ACK);
	expect_verdict(&in, TC_PASS);
	in = s_pkt(&c, PRI4, PORT, TH_ACK, c.srv_isn + 1, c.isn + 1);
	expect_rewrite(&in, &in);
	assert_int_equal(take_pending(ID_PRI), 0); /* packets are not evidence */
	in = s_pkt(&c, PRI4, PORT, TH_RST, c.srv_isn + 1, 0);
	expect_rewrite(&in, &in);
	assert_int_equal(take_pending(ID_PRI), 1); /* reset */

	c.cport = 40451;
	expect_syn_steered(&c, VIP4, PRI4, PORT);
	take_pending(ID_PRI);
	in = c_syn(&c, PRI4, PORT);
	flen = pkt_tcp(frame, &in);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, flen);
	expect_unchanged_frame(icmp, ilen);
	assert_int_equal(take_pending(ID_PRI), 1); /* ICMP error */

	/* The flag is cleared right after the SYN, well before its 300 ms deadline. */
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 300);
	c.cport = 40452;
	expect_syn_steered(&c, VIP4, PRI4, PORT);
	assert_int_equal(take_pending(ID_PRI), 1);
	assert_int_equal(backend(ID_PRI).timeouts, 0);
	for (int i = 0; i < 200 && backend(ID_PRI).timeouts == 0; i++)
		sleep_ms(10);
	assert_int_equal(backend(ID_PRI).timeouts, 1);
	assert_int_equal(take_pending(ID_PRI), 1); /* connect timeout */
	assert_int_equal(take_pending(ID_BAK), 0);
}

/* Everything that is not service traffic, or cannot be parsed, leaves byte-identical. */
struct passthrough_fixture {
	const char *desc;
	uint8_t frame[PKT_MAX];
	size_t len;
};

static void test_other_traffic_passes_identical(void **state)
{
	static struct passthrough_fixture fx[16];
	struct pkt_spec s;
	size_t n = 0;
	struct fs_global_stats g0 = global();

	(void)state;
#define ADD(d) (fx[n].desc = (d), &fx[n])
	s = (struct pkt_spec){ .src = CLI4, .dst = "198.18.2.11", .sport = 1, .dport = PORT, .flags = TH_SYN };
	ADD("SYN to another address")->len = pkt_tcp(fx[n].frame, &s), n++;
	s.dst = VIP4;
	s.dport = PORT + 1;
	ADD("SYN to another port of the service address")->len = pkt_tcp(fx[n].frame, &s), n++;
	s.dport = PORT;
	s.flags = TH_ACK;
	ADD("ACK of a connection older than failsteer")->len = pkt_tcp(fx[n].frame, &s), n++;
	s.flags = TH_SYN;
	ADD("IPv4 fragment")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 6] = 0x20; /* MF */
	n++;
	ADD("truncated TCP header")->len = pkt_tcp(fx[n].frame, &s) - 10, n++;
	ADD("truncated IPv4 header")->len = 14 + 30, memcpy(fx[n].frame, fx[0].frame, 44), fx[n].frame[14] = 0x4f, n++;
	ADD("IPv4 ihl < 5")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14] = 0x44;
	n++;
	ADD("TCP doff < 5")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 20 + 12] = 0x40;
	n++;
	ADD("IP total length shorter than headers")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 3] = 30;
	n++;
	ADD("UDP to the service address")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 9] = 17;
	n++;
	ADD("ARP")->len = 42, memset(fx[n].frame, 0, 42), fx[n].frame[12] = 0x08, fx[n].frame[13] = 0x06, n++;
	s = (struct pkt_spec){ .src = CLI6, .dst = VIP6, .sport = 1, .dport = PORT, .flags = TH_SYN };
	ADD("IPv6 fragment header")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 6] = 44;
	n++;
	s.ip_options = true;
	ADD("IPv6 extension header cut short")->len = 14 + 40 + 4, pkt_tcp(fx[n].frame, &s), n++;
	s.ip_options = false;
	s.dst = "2001:db8:2::11";
	ADD("IPv6 SYN to another address")->len = pkt_tcp(fx[n].frame, &s), n++;
	ADD("ICMP echo to the service")->len = pkt_tcp(fx[n].frame, &s);
	fx[n].frame[14 + 6] = 58;
	fx[n].frame[14 + 40] = 128;
	n++;
#undef ADD
	for (size_t i = 0; i < n; i++) {
		print_message("  pass-through: %s\n", fx[i].desc);
		expect_unchanged_frame(fx[i].frame, fx[i].len);
	}
	struct fs_global_stats g = global();
	assert_int_equal(g.flows_created, g0.flows_created);
	assert_int_equal(g.flow_misses, g0.flow_misses + 1); /* the pre-existing connection's ACK */
}

/* Host mode: egress steers local traffic only; forwarded packets were handled at ingress. */
static void test_egress_steers_local_only(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in, want;
	uint8_t f_in[PKT_MAX], out[PKT_MAX], f_want[PKT_MAX];
	size_t len, out_len;

	(void)state;
	c.cport = 40500;
	set_active(VIP4, 1);
	in = c_syn(&c, VIP4, PORT);
	len = pkt_tcp(f_in, &in);
	/* Forwarded (has an ingress interface): untouched. */
	assert_int_equal(run_ctx(E.egress_fd, f_in, len, out, &out_len, 1), TC_PASS);
	assert_memory_equal(out, f_in, len);
	assert_int_equal(backend(ID_BAK).attempts, 0);
	/* Local: rewritten to the backup (no route to it here, so not redirected). */
	want = c_syn(&c, BAK4, BAK_PORT);
	pkt_tcp(f_want, &want);
	assert_int_equal(run_ctx(E.egress_fd, f_in, len, out, &out_len, 0), TC_PASS);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, f_want, len);
	assert_int_equal(backend(ID_BAK).attempts, 1);
	assert_int_equal(global().fib_failures, 1);
}
/* An attempt an ICMP error answered is one failure: its connect deadline passes without a
 * timeout counted (a second attempt, unanswered, gets one). */
static void test_icmp_not_counted_twice(void **state)
{
	struct conn c = conn4, c2 = conn4;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX];
	struct pkt_spec sent;
	size_t ilen;

	(void)state;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, SHORT_TIMEOUT_MS);
	c.cport = 40410;
	expect_syn_steered(&c, VIP4, PRI4, PORT);
	sent = c_syn(&c, PRI4, PORT);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
	expect_unchanged_frame(icmp, ilen);
	c2.cport = 40411;
	expect_syn_steered(&c2, VIP4, PRI4, PORT);
	for (int i = 0; i < 100 && backend(ID_PRI).timeouts == 0; i++)
		sleep_ms(10);
	sleep_ms(100);
	assert_int_equal(backend(ID_PRI).icmp_errors, 1);
	assert_int_equal(backend(ID_PRI).timeouts, 1);
	/* The other order: the error after the deadline (a router gives up on a neighbour
	 * after seconds) is no second failure either. */
	sent = c_syn(&c2, PRI4, PORT);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
	expect_unchanged_frame(icmp, ilen);
	assert_int_equal(backend(ID_PRI).icmp_errors, 1);
	assert_int_equal(backend(ID_PRI).attempts, 2);

	/* A retrying service, a SYN that could not be kept for a retry (it carries data):
	 * the error is counted, kept from the client (its next SYN may go elsewhere), and
	 * its deadline is no second failure. */
	struct conn t = { CLI4, VIP4_VIRT, PRI4, BAK4, 40412, 500, 900 };
	struct pkt_spec in;

	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	in = c_syn(&t, VIP4_VIRT, PORT);
	sent = c_syn(&t, PRI4, PORT);
	in.payload_len = sent.payload_len = 100;
	expect_rewrite(&in, &sent);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
	expect_unchanged_frame(icmp, ilen);
	sleep_ms(SHORT_TIMEOUT_MS + 100);
	assert_int_equal(backend(10).icmp_errors, 1);
	assert_int_equal(backend(10).timeouts, 0);
	svc_flags = 0;
	assert_int_equal(backend(ID_PRI).attempts, 2);
}

/* The connect deadline is counted by a timer, once, and only without a SYN-ACK. */
static void test_connect_timeout_counted(void **state)
{
	struct conn c = conn4, c2 = conn4;
	struct pkt_spec in;

	(void)state;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, SHORT_TIMEOUT_MS);
	c.cport = 40600;
	c2.cport = 40601;
	expect_syn_steered(&c, VIP4, PRI4, PORT);
	expect_syn_steered(&c2, VIP4, PRI4, PORT);
	in = s_pkt(&c2, PRI4, PORT, TH_SYN | TH_ACK, c2.srv_isn, c2.isn + 1);
	expect_rewrite(&in, &in);
	for (int i = 0; i < 100 && backend(ID_PRI).timeouts == 0; i++)
		sleep_ms(10);
	sleep_ms(100);
	assert_int_equal(backend(ID_PRI).timeouts, 1);
	assert_int_equal(backend(ID_PRI).established, 1);
}

/* Deadlines of two services with different timeouts: the short one, pushed after the long
 * one, overtakes it in the ring; it is still counted long before the long one falls due, and
 * the long one not early. IPv6 primary of a second service: its own backend counters. */
static void test_connect_timeouts_out_of_order(void **state)
{
	struct conn slow = conn6, fast = conn4;

	(void)state;
	put_service(VIP6, PRI6, BAK6, ID_PRI6, ID_BAK6, 0, 3000);
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 20);
	slow.cport = 40700;
	fast.cport = 40701;
	expect_syn_steered(&slow, VIP6, PRI6, PORT);
	expect_syn_steered(&fast, VIP4, PRI4, PORT);
	for (int i = 0; i < 150 && backend(ID_PRI).timeouts == 0; i++)
		sleep_ms(10);
	assert_int_equal(backend(ID_PRI).timeouts, 1);
	assert_int_equal(backend(ID_PRI6).timeouts, 0);
}

static struct fs_deadline_ctl deadline_ctl(void)
{
	struct fs_deadline_ctl ctl;
	__u32 zero = 0;

	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.deadline_ctl, &zero, sizeof(zero), &ctl,
					      sizeof(ctl), 0), 0);
	return ctl;
}

static void wait_timeouts(__u32 id, __u64 n);

/* Waits up to max_ms for the deadline ring to hold n pending deadlines; true if it did. */
static bool wait_pending(__u64 n, long max_ms)
{
	long end = mono_ms() + max_ms;

	while (deadline_ctl().pending != n && mono_ms() < end)
		sleep_ms(2);
	return deadline_ctl().pending == n;
}

/* A connection from client port cport to the service on the primary's address, answered. */
static void answered_on_primary(uint16_t cport)
{
	struct conn a = conn4;
	struct pkt_spec in;

	a.cport = cport;
	expect_syn_steered(&a, VIP4, PRI4, PORT);
	in = s_pkt(&a, PRI4, PORT, TH_SYN | TH_ACK, a.srv_isn, a.isn + 1);
	expect_rewrite(&in, &in);
}

/* The ring is positional (a slot per connection, in the order they started), so it must
 * hold every connection within the longest connect timeout. Answered ones behind a waiting
 * one (which holds up the in-order walk) are freed by the slice sweep all the same, and an
 * answered one overwritten before it was freed is no lost deadline: only a waiting one
 * overwritten is counted lost. */
static void test_deadline_ring_counts_only_waiting_ones_lost(void **state)
{
	struct conn w = conn4, a = conn4;

	(void)state;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, SHORT_TIMEOUT_MS);
	w.cport = 43300;
	expect_syn_steered(&w, VIP4, PRI4, PORT); /* waits */
	for (int k = 1; k <= 3; k++)              /* answered at once */
		answered_on_primary((uint16_t)(43300 + k));
	/* Well before the waiting one is due, the slice sweep (every slot within 50 ms)
	 * frees the answered ones. */
	assert_true(wait_pending(1, 100));
	assert_int_equal(backend(ID_PRI).timeouts, 0);
	wait_timeouts(ID_PRI, 1);
	/* Four answered, and at once a fifth connection: it takes the slot of an answered one
	 * (freed or not yet): nothing lost. */
	for (int k = 4; k <= 8; k++)
		answered_on_primary((uint16_t)(43300 + k));
	assert_int_equal(global().deadline_overflows, 0);
	/* Five waiting at once in four slots: the first one's deadline is lost, and said so. */
	wait_pending(0, 1000);
	for (int k = 10; k < 15; k++) {
		a.cport = (uint16_t)(43300 + k);
		expect_syn_steered(&a, VIP4, PRI4, PORT);
	}
	assert_int_equal(global().deadline_overflows, 1);
	wait_timeouts(ID_PRI, 5);
}

/* The timer waits only for connections still waiting: the deadline of an answered one is
 * freed long before it is due (else, under a steady stream of answered connections, the
 * timer would fire at every one of their deadlines), one still waiting behind it is kept
 * and counted when due. */
static void test_answered_deadline_freed_early(void **state)
{
	struct conn a = conn4, b = conn4;
	struct pkt_spec in;
	__u64 sweeps;
	long t0;
	int i;

	(void)state;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 400);
	a.cport = 40900;
	b.cport = 40901;
	expect_syn_steered(&a, VIP4, PRI4, PORT);
	expect_syn_steered(&b, VIP4, PRI4, PORT);
	assert_int_equal(deadline_ctl().pending, 2);
	in = s_pkt(&a, PRI4, PORT, TH_SYN | TH_ACK, a.srv_isn, a.isn + 1);
	expect_rewrite(&in, &in);
	/* The timer comes back within FS_DEADLINE_PERIOD_NS: well inside 200 ms. */
	assert_true(wait_pending(1, 200));
	assert_int_equal(backend(ID_PRI).timeouts, 0);
	/* Waiting for b only, not due for a while: the timer does not spin meanwhile. */
	sweeps = deadline_ctl().sweeps;
	t0 = mono_ms();
	sleep_ms(100);
	assert_true(deadline_ctl().sweeps - sweeps <= (__u64)(mono_ms() - t0) / 5 + 5);
	for (i = 0; i < 100 && backend(ID_PRI).timeouts == 0; i++)
		sleep_ms(10);
	assert_int_equal(backend(ID_PRI).timeouts, 1);
	assert_int_equal(backend(ID_PRI).established, 1);
	assert_int_equal(deadline_ctl().pending, 0);
}

/* The slice sweep looks only at the live window of the ring (between the walk's tail and
 * the head), not at the whole ring sized for the flow table: with a default-sized ring
 * (16,384 slots) and a few connections, its cursor stays inside the window, and answered
 * deadlines behind a waiting one are freed all the same, the waiting one counted when due.
 * A sweep of the whole ring would move the cursor ~1,600 slots per 5 ms. */
static void test_deadline_sweep_stays_in_live_window(void **state)
{
	struct conn w = conn4;
	struct fs_deadline_ctl ctl;
	int k;

	(void)state;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 400);
	w.cport = 43400;
	expect_syn_steered(&w, VIP4, PRI4, PORT); /* waits */
	for (k = 1; k <= 6; k++)                  /* answered at once, behind it */
		answered_on_primary((uint16_t)(43400 + k));
	assert_true(wait_pending(1, 150));
	for (k = 0; k < 5; k++) {
		sleep_ms(20);
		ctl = deadline_ctl();
		assert_int_equal(ctl.head, 7);
		assert_true(ctl.tail <= ctl.cursor && ctl.cursor < ctl.head);
	}
	assert_int_equal(backend(ID_PRI).timeouts, 0);
	wait_timeouts(ID_PRI, 1);
	assert_int_equal(backend(ID_PRI).established, 6);
	assert_true(wait_pending(0, 100));
}

/* Entries in the flow table. */
static int count_flows(void)
{
	struct fs_flow_key key, next;
	struct fs_flow val;
	int live = 0, err;

	for (err = bpf_map__get_next_key(E.skel->maps.flows, NULL, &key, sizeof(key)); !err;
	     err = bpf_map__get_next_key(E.skel->maps.flows, &key, &next, sizeof(key)), key = next)
		if (!bpf_map__lookup_elem(E.skel->maps.flows, &key, sizeof(key), &val, sizeof(val), 0))
			live++;
	return live;
}

/* A full flow table evicts the least recently used entries, and that shows. */
static void test_full_flow_table_evicts(void **state)
{
	struct pkt_spec in;
	uint8_t frame[PKT_MAX], out[PKT_MAX];
	size_t len, out_len;
	struct fs_global_stats g0 = global();
	const int conns = FLOW_TABLE_SIZE; /* two entries each: twice the table */
	int live;

	(void)state;
	for (int i = 0; i < conns; i++) {
		struct conn c = conn4;

		c.cport = (uint16_t)(20000 + i);
		in = c_syn(&c, VIP4, PORT);
		len = pkt_tcp(frame, &in);
		assert_int_equal(run(frame, len, out, &out_len), TC_PASS);
	}
	struct fs_global_stats g = global();
	assert_int_equal(g.flows_created - g0.flows_created, 2 * conns);
	live = count_flows();
	assert_true(live <= FLOW_TABLE_SIZE);
	assert_true(live > 0);
	/* The oldest connection was evicted: its ACK passes unsteered and is counted. */
	struct conn old = conn4;
	old.cport = 20000;
	in = c_data(&old, VIP4, PORT, TH_ACK);
	expect_unchanged(&in);
	assert_int_equal(global().flow_misses, g.flow_misses + 1);
}

/* Runs a client packet of c (on the backup, behind VIP4_VIRT) and its rewrite is checked. */
static void client_to_backup(const struct conn *c, uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct pkt_spec in = c_pkt(c, VIP4_VIRT, PORT, flags, seq, ack);
	struct pkt_spec want = c_pkt(c, BAK4, BAK_PORT, flags, seq, ack);

	expect_rewrite(&in, &want);
}

static void backup_to_client(const struct conn *c, uint8_t flags, uint32_t seq, uint32_t ack,
			     uint32_t payload_len)
{
	struct pkt_spec in = s_pkt(c, BAK4, BAK_PORT, flags, seq, ack);
	struct pkt_spec want = s_pkt(c, VIP4_VIRT, PORT, flags, seq, ack);

	in.payload_len = want.payload_len = payload_len;
	expect_rewrite(&in, &want);
}

/* A connection on the backup behind a virtual address, SYN to SYN-ACK: two entries. */
static void open_on_backup(const struct conn *c)
{
	struct pkt_spec in = c_syn(c, VIP4_VIRT, PORT), want = c_syn(c, BAK4, BAK_PORT);

	expect_rewrite(&in, &want);
	backup_to_client(c, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1, 0);
	assert_int_equal(count_flows(), 2);
}

/* A backend that lost its state resets with the sequence the client acknowledged, which
 * lags what it had sent: counted. One far behind is not. */
static void test_reset_behind_sent_data_counts(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42300, 100, 9000 };
	struct fs_global_stats g0;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK, c.isn + 1, c.srv_isn + 1);
	backup_to_client(&c, TH_ACK | TH_PSH, c.srv_isn + 1, c.isn + 1, 400);
	g0 = global();
	backup_to_client(&c, TH_RST, c.srv_isn + 1 - (1u << 20), 0, 0);
	assert_int_equal(backend(11).resets, 0);
	assert_int_equal(global().rst_rejected, g0.rst_rejected + 1);
	backup_to_client(&c, TH_RST, c.srv_isn + 1, 0, 0);
	assert_int_equal(backend(11).resets, 1);
}

/* TCP Fast Open: the SYN carries data, and the SYN-ACK acknowledges it as well (or only
 * the SYN, data refused); a reset refusing such a SYN acknowledges its end. Established and
 * refused as any other connection, never a connect timeout. */
static void test_fast_open_handshakes(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42400, 100, 9000 };
	struct pkt_spec in, want;
	struct fs_global_stats g0 = global();

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	for (int k = 0; k < 3; k++) {
		uint32_t acked = k == 1 ? 1 : 101; /* SYN and data, SYN only, refused */

		c.cport = (uint16_t)(42400 + k);
		in = c_syn(&c, VIP4_VIRT, PORT);
		want = c_syn(&c, PRI4, PORT);
		in.payload_len = want.payload_len = 100;
		expect_rewrite(&in, &want);
		in = s_pkt(&c, PRI4, PORT, k == 2 ? TH_RST | TH_ACK : TH_SYN | TH_ACK, c.srv_isn,
			   c.isn + acked);
		want = s_pkt(&c, VIP4_VIRT, PORT, in.flags, c.srv_isn, c.isn + acked);
		expect_rewrite(&in, &want);
	}
	/* Beyond the SYN's data: no acknowledgement of it. */
	c.cport = 42403;
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	in.payload_len = want.payload_len = 100;
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 102);
	want = s_pkt(&c, VIP4_VIRT, PORT, in.flags, c.srv_isn, c.isn + 102);
	expect_rewrite(&in, &want);
	for (int i = 0; i < 100 && backend(10).timeouts == 0; i++)
		sleep_ms(10);
	sleep_ms(50);
	assert_int_equal(backend(10).established, 2);
	assert_int_equal(backend(10).resets_connect, 1);
	assert_int_equal(backend(10).timeouts, 1); /* the last one only */
	assert_int_equal(global().rst_rejected, g0.rst_rejected);
}

/* ICMP errors about a connection reach its client quoting the packet as the client sent it
 * (to the service), whole or cut short, checksums right: path MTU discovery works across a
 * rewrite, and a refused connect fails at once. Counted only as before. */
/* An error from router to `to` quoting `quoted` comes out addressed to want_to, quoting
 * want_quoted, every checksum right. Bytes after the IP datagram in the frame (a trailer:
 * padding, a kept FCS) are not part of it and stay as they were. */
static void expect_icmp_translated_trailer(const char *router, uint8_t type, uint8_t code,
					   size_t l4_quoted, const char *to, const struct pkt_spec *quoted,
					   const char *want_to, const struct pkt_spec *want_quoted,
					   size_t trailer)
{
	uint8_t frame[PKT_MAX], icmp[PKT_MAX], want[PKT_MAX], out[PKT_MAX];
	size_t ilen, want_len, out_len;

	ilen = pkt_icmp_error(icmp, router, to, type, code, 1400, frame, pkt_tcp(frame, quoted),
			      l4_quoted);
	want_len = pkt_icmp_error(want, router, want_to, type, code, 1400, frame,
				  pkt_tcp(frame, want_quoted), l4_quoted);
	memset(icmp + ilen, 0xab, trailer);
	memset(want + want_len, 0xab, trailer);
	ilen += trailer;
	want_len += trailer;
	assert_int_equal(run(icmp, ilen, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_true(pkt_csums_ok(out, out_len));
	assert_memory_equal(out, want, want_len);
}

static void expect_icmp_translated(const char *router, uint8_t type, uint8_t code, size_t l4_quoted,
				   const char *to, const struct pkt_spec *quoted,
				   const char *want_to, const struct pkt_spec *want_quoted)
{
	expect_icmp_translated_trailer(router, type, code, l4_quoted, to, quoted, want_to, want_quoted, 0);
}

static void expect_icmp_to_client(const struct pkt_spec *sent, const struct pkt_spec *as_sent_by_client,
				  const char *router, uint8_t type, uint8_t code, size_t l4_quoted)
{
	expect_icmp_translated(router, type, code, l4_quoted, as_sent_by_client->src, sent,
			       as_sent_by_client->src, as_sent_by_client);
}

static void test_icmp_errors_reach_the_client(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42500, 100, 9000 }, c6 = conn6;
	struct fs_global_stats g0;
	struct pkt_spec in, sent;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	g0 = global();
	/* Fragmentation needed for a data segment, the whole segment quoted (a host), and
	 * 8 bytes of it (a router); time exceeded. */
	in = c_data(&c, VIP4_VIRT, PORT, TH_ACK | TH_PSH);
	sent = c_data(&c, BAK4, BAK_PORT, TH_ACK | TH_PSH);
	expect_icmp_to_client(&sent, &in, "198.18.3.1", 3, 4, 1000);
	expect_icmp_to_client(&sent, &in, "198.18.3.1", 3, 4, 8);
	expect_icmp_to_client(&sent, &in, "198.18.3.1", 11, 0, 1000);
	/* 8 bytes quoted, then a trailer: no quoted TCP checksum to update there. */
	expect_icmp_translated_trailer("198.18.3.1", 3, 4, 8, in.src, &sent, in.src, &in, 16);
	/* The datagram ends 2 bytes into the quoted TCP header (its ports cut), the frame
	 * going on with the rest of them: not a quote to translate, passed as it is. */
	{
		uint8_t frame[PKT_MAX], icmp[PKT_MAX];
		size_t ilen = pkt_icmp_error(icmp, "198.18.3.1", in.src, 3, 4, 1400, frame,
					     pkt_tcp(frame, &sent), 8);
		unsigned tot = (unsigned)(icmp[16] << 8 | icmp[17]) - 6;

		icmp[16] = (uint8_t)(tot >> 8);
		icmp[17] = (uint8_t)tot;
		expect_unchanged_frame(icmp, ilen);
	}
	assert_int_equal(backend(11).icmp_errors, 0);
	assert_int_equal(global().icmp_unmatched, g0.icmp_unmatched);

	/* IPv6 packet too big, on the backup of the service at the primary's address. */
	c6.cport = 42501;
	in = c_syn(&c6, VIP6, PORT);
	sent = c_syn(&c6, BAK6, BAK_PORT);
	set_active(VIP6, 1);
	expect_rewrite(&in, &sent);
	expect_icmp_to_client(&sent, &in, "2001:db8:3::1", 2, 0, 1000);

	/* A refused connect (no retries): counted once, and the client has it at once. */
	c.cport = 42502;
	in = c_syn(&c, VIP4_VIRT, PORT);
	sent = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &sent);
	expect_icmp_to_client(&sent, &in, "198.18.3.1", 3, 1, 8);
	assert_int_equal(backend(11).icmp_errors, 1);

	/* The primary's own address as the service, on the primary: nothing to translate. */
	c.cport = 42503;
	in = c_syn(&c, VIP4, PORT);
	expect_rewrite(&in, &in);
	expect_icmp_to_client(&in, &in, "198.18.2.1", 3, 4, 1000);

	/* About a backend the connection has left (its SYN moved on): not for the client,
	 * whose connect now waits on another backend. */
	c.cport = 42504;
	set_active(VIP4_VIRT, 0);
	expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
	set_active(VIP4_VIRT, 1);
	expect_syn_steered(&c, VIP4_VIRT, BAK4, BAK_PORT);
	{
		uint8_t frame[PKT_MAX], icmp[PKT_MAX], out[PKT_MAX];
		size_t ilen, out_len;

		sent = c_syn(&c, PRI4, PORT);
		ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
		assert_int_equal(run(icmp, ilen, out, &out_len), TC_ACT_SHOT);
	}
}

/* ICMP errors about a reply, which went to the client as the service (a router on the
 * client's side, or this node forwarding it, found it too big or undeliverable), go to the
 * backend that sent it, quoting the reply as that backend sent it: its path MTU toward the
 * client drops, not the primary's (or nobody's). Not counted against anyone. */
static void expect_icmp_to_backend(const struct pkt_spec *reply,
				   const struct pkt_spec *as_sent_by_backend, const char *router,
				   uint8_t type, uint8_t code, size_t l4_quoted)
{
	expect_icmp_translated(router, type, code, l4_quoted, reply->src, reply,
			       as_sent_by_backend->src, as_sent_by_backend);
}

static void test_icmp_errors_reach_the_backend(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42600, 100, 9000 }, c6 = conn6;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX];
	struct pkt_spec in, reply, sent;
	struct fs_global_stats g0;
	size_t ilen;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	g0 = global();
	/* Fragmentation needed, the whole segment quoted (a host) and 8 bytes of it (a
	 * router); time exceeded; host unreachable (the client is gone: the backend's TCP
	 * judges that, it is no failure of the backend). */
	reply = s_pkt(&c, VIP4_VIRT, PORT, TH_ACK | TH_PSH, c.srv_isn + 1, c.isn + 1);
	sent = s_pkt(&c, BAK4, BAK_PORT, TH_ACK | TH_PSH, c.srv_isn + 1, c.isn + 1);
	reply.payload_len = sent.payload_len = 200;
	expect_icmp_to_backend(&reply, &sent, "198.18.1.254", 3, 4, 1000);
	expect_icmp_to_backend(&reply, &sent, "198.18.1.254", 3, 4, 8);
	expect_icmp_to_backend(&reply, &sent, "198.18.1.254", 11, 0, 1000);
	expect_icmp_to_backend(&reply, &sent, "198.18.1.254", 3, 1, 8);
	assert_int_equal(backend(11).icmp_errors, 0);
	assert_int_equal(global().icmp_unmatched, g0.icmp_unmatched);
	/* Raised by this node (egress): the same, marked so that the egress program it is
	 * redirected to passes it on instead of handling it again. */
	{
		uint8_t want[PKT_MAX], out[PKT_MAX];
		size_t want_len;
		struct __sk_buff ctx_out = { 0 };
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = PKT_MAX,
			    .ctx_out = &ctx_out, .ctx_size_out = sizeof(ctx_out), .repeat = 1,
			    .flags = run_flags);

		opts.data_in = icmp;
		opts.data_size_in = (__u32)pkt_icmp_error(icmp, "198.18.1.1", reply.src, 3, 4, 1400,
							  frame, pkt_tcp(frame, &reply), 1000);
		want_len = pkt_icmp_error(want, "198.18.1.1", sent.src, 3, 4, 1400, frame,
					  pkt_tcp(frame, &sent), 1000);
		assert_int_equal(bpf_prog_test_run_opts(E.egress_fd, &opts), 0);
		assert_int_equal((int)opts.retval, TC_PASS);
		assert_int_equal(opts.data_size_out, want_len);
		assert_memory_equal(out + 12, want + 12, want_len - 12); /* MACs: the route's */
		assert_int_equal(ctx_out.mark, FS_PROBE_MARK);
	}
	/* Addressed to someone else than the service the reply came from: left alone. */
	ilen = pkt_icmp_error(icmp, "198.18.1.254", "198.18.1.1", 3, 4, 1400, frame,
			      pkt_tcp(frame, &reply), 1000);
	expect_unchanged_frame(icmp, ilen);

	/* IPv6 packet too big, on the backup of the service at the primary's address. */
	c6.cport = 42601;
	in = c_syn(&c6, VIP6, PORT);
	sent = c_syn(&c6, BAK6, BAK_PORT);
	set_active(VIP6, 1);
	expect_rewrite(&in, &sent);
	sent = s_pkt(&c6, BAK6, BAK_PORT, TH_SYN | TH_ACK, c6.srv_isn, c6.isn + 1);
	reply = s_pkt(&c6, VIP6, PORT, TH_SYN | TH_ACK, c6.srv_isn, c6.isn + 1);
	expect_rewrite(&sent, &reply);
	reply.flags = sent.flags = TH_ACK;
	reply.seq = sent.seq = c6.srv_isn + 1;
	reply.payload_len = sent.payload_len = 200;
	expect_icmp_to_backend(&reply, &sent, "2001:db8:1::fe", 2, 0, 1000);

	/* On the primary, at the primary's own address: nothing to translate. */
	c.cport = 42602;
	in = c_syn(&c, VIP4, PORT);
	expect_rewrite(&in, &in);
	reply = s_pkt(&c, VIP4, PORT, TH_ACK, c.srv_isn + 1, c.isn + 1);
	reply.payload_len = 200;
	ilen = pkt_icmp_error(icmp, "198.18.1.254", VIP4, 3, 4, 1400, frame,
			      pkt_tcp(frame, &reply), 1000);
	expect_unchanged_frame(icmp, ilen);
}

/* Makes the 8-byte extension header of an IPv6 frame built with ip_options (destination
 * options) a routing header with segments_left left. */
static void make_routing_header(uint8_t *f, uint8_t left)
{
	f[14 + 6] = 43;   /* next header: routing */
	f[54 + 2] = 4;    /* routing type: segment routing */
	f[54 + 3] = left; /* segments left */
}

/* With segments left, the IPv6 destination is a waypoint, not the service the client
 * connected to (nor what its TCP checksum covers): passed as it is. The last segment
 * reached (none left): steered like any packet with extension headers. */
static void test_ipv6_routing_header(void **state)
{
	struct conn c = conn6;
	struct pkt_spec in = c_syn(&c, VIP6, PORT), want;
	uint8_t f[PKT_MAX], w[PKT_MAX], out[PKT_MAX];
	size_t len, out_len;

	(void)state;
	set_active(VIP6, 1);
	in.ip_options = true;
	c.cport = 42600;
	in.sport = c.cport;
	len = pkt_tcp(f, &in);
	make_routing_header(f, 1);
	expect_unchanged_frame(f, len);
	assert_int_equal(backend(ID_BAK6).attempts, 0);

	make_routing_header(f, 0);
	want = in;
	want.dst = BAK6;
	want.dport = BAK_PORT;
	pkt_tcp(w, &want);
	make_routing_header(w, 0);
	assert_int_equal(run(f, len, out, &out_len), TC_PASS);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, w, len);
	assert_int_equal(backend(ID_BAK6).attempts, 1);
}

/* IPv4 options: a source route (loose or strict) makes the destination a waypoint, not
 * the service: passed as it is, as are options that cannot be walked. Any other option
 * (record route, timestamps, padding) is steered with the header kept as it is. */
static void test_ipv4_source_route_passes(void **state)
{
	static const uint8_t lsrr[8] = { 131, 7, 4, 198, 18, 9, 9, 0 },
			     ssrr[8] = { 1, 137, 7, 4, 198, 18, 9, 9 },
			     bad_len[4] = { 7, 1, 0, 0 },                   /* length below 2 */
			     past_end[4] = { 1, 68, 12, 5 },                /* longer than the header */
			     rr[8] = { 7, 7, 4, 0, 0, 0, 0, 0 },     /* record route */
			     ts_pad[12] = { 1, 1, 68, 8, 5, 0, 0, 0, 0, 0, 0, 131 }, /* after the end */
			     no_len[4] = { 1, 1, 1, 68 };          /* a type, its length cut off */
	static uint8_t nops[40]; /* the longest header: the walk's every step */
	const struct { const uint8_t *opt; uint8_t len; bool steered; } cases[] = {
		{ lsrr, 8, false }, { ssrr, 8, false }, { bad_len, 4, false }, { past_end, 4, false },
		{ no_len, 4, false }, { rr, 8, true }, { ts_pad, 12, true }, { nops, 40, true },
	};
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42800, 100, 9000 };
	struct pkt_spec in, want;

	(void)state;
	memset(nops, 1, sizeof(nops));
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		c.cport = (uint16_t)(42800 + k);
		in = c_syn(&c, VIP4_VIRT, PORT);
		in.ip_opt = cases[k].opt;
		in.ip_opt_len = cases[k].len;
		if (!cases[k].steered) {
			expect_unchanged(&in);
			continue;
		}
		want = c_syn(&c, BAK4, BAK_PORT);
		want.ip_opt = cases[k].opt;
		want.ip_opt_len = cases[k].len;
		expect_rewrite(&in, &want);
	}
	assert_int_equal(backend(11).attempts, 3);
	assert_int_equal(count_flows(), 6);
}

/* A reload that lists the same backend at another index while a SYN waits: the client's
 * retransmission follows the service's choice, which is the backend the flow is on. Its
 * answer must reach the client (the entry is not the tombstone of a backend left). */
static void test_move_to_the_same_backend_after_reload(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42700, 100, 9000 };
	struct fs_endpoint key, ep;
	struct fs_service svc;
	struct pkt_spec in, want;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, 0);
	expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
	endpoint(&key, VIP4_VIRT, PORT);
	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), 0), 0);
	ep = svc.backends[0];
	svc.backends[0] = svc.backends[1];
	svc.backends[1] = ep;
	svc.backend_ids[0] = 11;
	svc.backend_ids[1] = 10;
	svc.active = 1;
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_EXIST), 0);
	expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).established, 1);
}

/* A connection whose two FINs were both acknowledged leaves the table with its last ACK,
 * which is still steered; nothing short of that (a FIN one way, a partial ACK, a reset)
 * removes it. Server closes first, then a simultaneous close, then a reset. */
static void test_clean_close_frees_entries(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42000, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn;
	struct fs_global_stats g0;
	struct pkt_spec late, ack;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_PSH, i + 1, s + 1); /* no payload: seq stays */
	backup_to_client(&c, TH_ACK | TH_PSH | TH_FIN, s + 1, i + 1, 50); /* FIN ends at s+52 */
	client_to_backup(&c, TH_ACK, i + 1, s + 51);                  /* partial ACK */
	client_to_backup(&c, TH_ACK, i + 1, s + 52);                  /* ACKs the FIN */
	assert_int_equal(count_flows(), 2);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1, s + 52);         /* FIN ends at i+2 */
	backup_to_client(&c, TH_ACK, s + 52, i + 1, 0);               /* not the FIN's ACK */
	assert_int_equal(count_flows(), 2);
	g0 = global();
	backup_to_client(&c, TH_ACK, s + 52, i + 2, 0);               /* the last ACK: steered */
	assert_int_equal(count_flows(), 0);
	assert_int_equal(global().flows_deleted - g0.flows_deleted, 2);
	/* A FIN retransmitted after that passes unsteered, counted as a miss. */
	late = c_pkt(&c, VIP4_VIRT, PORT, TH_ACK | TH_FIN, i + 1, s + 52);
	expect_unchanged(&late);
	assert_int_equal(global().flow_misses, g0.flow_misses + 1);

	/* Simultaneous close: both FINs cross, each side ACKs the other's. */
	c.cport = 42001;
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1, s + 1);          /* ends at i+2 */
	backup_to_client(&c, TH_ACK | TH_FIN, s + 1, i + 1, 0);       /* ends at s+2 */
	client_to_backup(&c, TH_ACK, i + 2, s + 2);
	assert_int_equal(count_flows(), 2); /* the client's FIN is not acknowledged yet */
	backup_to_client(&c, TH_ACK, s + 2, i + 2, 0);
	assert_int_equal(count_flows(), 0);

	/* A reset does not free them (it may be spoofed): they linger until swept. */
	c.cport = 42002;
	open_on_backup(&c);
	ack = c_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, i + 1, s + 1);
	expect_verdict(&ack, TC_PASS);
	backup_to_client(&c, TH_RST, s + 1, 0, 0);
	assert_int_equal(count_flows(), 2);
}

/* Every entry in the table of direction dir (FS_DIR_*, 0: any) goes by the daemon's sweep
 * linger_ns after its own last packet, not before (flags as the data path left them, the
 * daemon's own rule); or, if linger_ns is 0, none goes before the idle timeout. There are
 * that many entries of dir. */
static void expect_swept_after(int entries, __u8 dir, __u64 linger_ns)
{
	const __u64 idle = 3600ull * 1000000000ull, s = 1000000000ull;
	struct fs_flow_key key, next;
	struct fs_flow val;
	int n = 0, err;

	for (err = bpf_map__get_next_key(E.skel->maps.flows, NULL, &key, sizeof(key)); !err;
	     err = bpf_map__get_next_key(E.skel->maps.flows, &key, &next, sizeof(key)), key = next) {
		if (bpf_map__lookup_elem(E.skel->maps.flows, &key, sizeof(key), &val, sizeof(val), 0) ||
		    (dir && val.dir != dir))
			continue;
		n++;
		if (!linger_ns)
			assert_false(flow_sweepable(&val, val.last_ns + idle - s, idle));
		else if (flow_sweepable(&val, val.last_ns + linger_ns + s, idle))
			assert_false(flow_sweepable(&val, val.last_ns + linger_ns - s, idle));
		else
			fail_msg("a %s entry (flags 0x%x) would stay until the idle timeout",
				 val.dir == FS_DIR_FWD ? "FWD" : "REV", val.flags);
	}
	assert_int_equal(n, entries);
}

/* The same for a connection that closed (closing) or lives on. */
static void expect_swept_after_close_linger(int entries, bool closing)
{
	expect_swept_after(entries, 0, closing ? FLOW_CLOSE_LINGER_NS : 0);
}

static void clear_flows(void)
{
	struct fs_flow_key key;

	while (!bpf_map__get_next_key(E.skel->maps.flows, NULL, &key, sizeof(key)))
		assert_int_equal(bpf_map__delete_elem(E.skel->maps.flows, &key, sizeof(key), 0), 0);
}

/* A connection that ends without a clean close (a reset either way, a FIN one way only)
 * leaves both its entries to the sweep after the close linger, the one of the way that
 * saw nothing as well. */
static void test_unclean_close_swept_both_ways(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42100, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn;
	struct pkt_spec rst;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_PSH, i + 1, s + 1);
	/* A blind reset in the client's name (far from its next sequence, i+1 after that
	 * empty segment): passed on, marks nothing; the connection lives on. */
	rst = c_pkt(&c, VIP4_VIRT, PORT, TH_RST, i + 1 + 3000000, 0);
	expect_verdict(&rst, TC_PASS);
	expect_swept_after_close_linger(2, false);
	rst = c_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, i + 1, s + 1); /* the client resets */
	expect_verdict(&rst, TC_PASS);
	expect_swept_after_close_linger(2, true);

	clear_flows();
	c.cport = 42101; /* the backend resets, in its window */
	open_on_backup(&c);
	backup_to_client(&c, TH_RST, s + 1, 0, 0);
	expect_swept_after_close_linger(2, true);

	clear_flows();
	c.cport = 42102; /* the client closes its way; the backend acknowledges and falls silent */
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1, s + 1);
	backup_to_client(&c, TH_ACK, s + 1, i + 2, 0);
	expect_swept_after_close_linger(2, true);
}

/* A connection attempt never answered leaves its entries to the sweep FLOW_UNANSWERED_LINGER_NS
 * after their last packets (timed out or not: a blackholed or refused SYN, a spoofed one),
 * not to the idle timeout. Both become an ordinary connection's only when the client, in its
 * window, acknowledges what the backend sent: not with an ACK before the SYN-ACK (a spoofer
 * knows its own sequence numbers), nor one acknowledging something else. */
static void test_unanswered_attempt_swept(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42150, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn;
	struct pkt_spec in;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, SHORT_TIMEOUT_MS);
	in = c_syn(&c, VIP4_VIRT, PORT);
	expect_verdict(&in, TC_PASS);
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);
	wait_timeouts(11, 1);
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);
	expect_verdict(&in, TC_PASS); /* the client retransmits: the same attempt */
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);
	/* The ACK of a handshake this node never saw (a spoofer's next step). */
	client_to_backup(&c, TH_ACK, i + 1, s + 1);
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);

	/* Answered late: the client's blind ACK, or one acknowledging what the backend did
	 * not send, changes nothing (a live backend answering a spoofed SYN leaves both
	 * entries unanswered); its real one ends it. */
	backup_to_client(&c, TH_SYN | TH_ACK, s, i + 1, 0);
	client_to_backup(&c, TH_ACK, i + 1 + 100000000, s + 1);
	client_to_backup(&c, TH_ACK, i + 1, s + 1 + 100000);
	client_to_backup(&c, TH_ACK, i + 1, s + 1 - 100000);
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);
	client_to_backup(&c, TH_ACK, i + 1, s + 1);
	expect_swept_after_close_linger(2, false);
}

/* Clears mask from the flags of every entry of direction dir (another data path's doing). */
static void clear_flag_bits(__u8 dir, __u8 mask)
{
	struct fs_flow_key key, next;
	struct fs_flow val;
	int err;

	for (err = bpf_map__get_next_key(E.skel->maps.flows, NULL, &key, sizeof(key)); !err;
	     err = bpf_map__get_next_key(E.skel->maps.flows, &key, &next, sizeof(key)), key = next) {
		if (bpf_map__lookup_elem(E.skel->maps.flows, &key, sizeof(key), &val, sizeof(val), 0) ||
		    val.dir != dir)
			continue;
		val.flags &= (__u8)~mask;
		assert_int_equal(bpf_map__update_elem(E.skel->maps.flows, &key, sizeof(key), &val,
						      sizeof(val), BPF_EXIST), 0);
	}
}

/* The unanswered mark left by an older data path, which cleared the FWD entry's alone: the
 * REV one goes with the backend's next segment in its window (not while the FWD entry still
 * has it). A SYN-ACK that carries data is acknowledged past it. */
static void test_unanswered_mark_leftovers(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42160, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn;
	struct pkt_spec in, want;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	backup_to_client(&c, TH_ACK | TH_PSH, s + 1, i + 1, 100);
	expect_swept_after(2, 0, FLOW_UNANSWERED_LINGER_NS);
	clear_flag_bits(FS_DIR_FWD, FS_FL_SYN_ONLY);
	backup_to_client(&c, TH_ACK | TH_PSH, s + 101, i + 1, 100);
	expect_swept_after_close_linger(2, false);

	clear_flows();
	c.cport = 42161;
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &want);
	backup_to_client(&c, TH_SYN | TH_ACK, s, i + 1, 10);
	client_to_backup(&c, TH_ACK, i + 1, s + 11);
	expect_swept_after_close_linger(2, false);
}

/* Sum of the entries' last packet times. */
static __u64 flows_last_ns(void)
{
	struct fs_flow_key key, next;
	struct fs_flow val;
	__u64 sum = 0;
	int err;

	for (err = bpf_map__get_next_key(E.skel->maps.flows, NULL, &key, sizeof(key)); !err;
	     err = bpf_map__get_next_key(E.skel->maps.flows, &key, &next, sizeof(key)), key = next)
		if (!bpf_map__lookup_elem(E.skel->maps.flows, &key, sizeof(key), &val, sizeof(val), 0))
			sum += val.last_ns;
	return sum;
}

/* Segments far (beyond 16 MiB) from a way's next sequence (blind, spoofed) are steered
 * but change no state: a FIN either way does not doom the entries to the close-linger
 * sweep, data does not move the tracked sequence (a genuine reset near it is still taken
 * either way), and none of them keeps the entries from the idle sweep. */
static void test_blind_segments_change_nothing(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42200, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn, far = 100000000;
	struct pkt_spec in, want;
	__u64 last;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK, i + 1, s + 1);
	last = flows_last_ns();
	usleep(20000); /* the coarse clock moves on */
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1 + far, s + 1);
	backup_to_client(&c, TH_ACK | TH_FIN, s + 1 + far, i + 1, 0);
	in = c_pkt(&c, VIP4_VIRT, PORT, TH_ACK | TH_PSH, i + 1 + far, s + 1);
	want = c_pkt(&c, BAK4, BAK_PORT, TH_ACK | TH_PSH, i + 1 + far, s + 1);
	in.payload_len = want.payload_len = 100;
	expect_rewrite(&in, &want);
	backup_to_client(&c, TH_ACK | TH_PSH, s + 1 + far, i + 1, 100);
	assert_true(flows_last_ns() == last);
	expect_swept_after_close_linger(2, false);
	/* The real ends of the connection still count: the backend's reset at its next
	 * sequence is one reset, the client's at its next one closes the entries. */
	backup_to_client(&c, TH_RST, s + 1, 0, 0);
	assert_int_equal(backend(11).resets, 1);
	client_to_backup(&c, TH_RST | TH_ACK, i + 1, s + 1);
	expect_swept_after_close_linger(2, true);

	/* A blind FIN, then the real close: the entries go with its last ACK. */
	clear_flows();
	c.cport = 42201;
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1 + far, s + 1);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1, s + 1); /* the real FIN: ends at i+2 */
	backup_to_client(&c, TH_ACK | TH_FIN, s + 1, i + 2, 0);
	client_to_backup(&c, TH_ACK, i + 2, s + 2);
	assert_int_equal(count_flows(), 0);

	/* Data after a small loss before this node moves the sequence on: a FIN at its end
	 * still closes cleanly. After a larger one the sequence catches up only with the
	 * segments that follow (seq_advance): a FIN right there leaves the entries to the
	 * sweep. */
	for (int k = 0; k < 2; k++) {
		__u32 gap = k ? 200000 : 60000;

		clear_flows();
		c.cport = (uint16_t)(42202 + k);
		open_on_backup(&c);
		in = c_pkt(&c, VIP4_VIRT, PORT, TH_ACK | TH_PSH | TH_FIN, i + 1 + gap, s + 1);
		want = c_pkt(&c, BAK4, BAK_PORT, TH_ACK | TH_PSH | TH_FIN, i + 1 + gap, s + 1);
		in.payload_len = want.payload_len = 100;
		expect_rewrite(&in, &want); /* FIN ends at i + gap + 102 */
		backup_to_client(&c, TH_ACK | TH_FIN, s + 1, i + gap + 102, 0);
		client_to_backup(&c, TH_ACK, i + gap + 102, s + 2);
		assert_int_equal(count_flows(), k ? 2 : 0);
	}
}

/* Blind segments cannot walk the tracked sequence to a value of their sender's choosing:
 * 260 one-byte segments 16 MiB apart (one lands in the window, and each after it would
 * have moved it on), then a reset at the end of the last: not counted. A genuine stream
 * after a loss of 1 MiB before this node catches up within a few dozen segments, and the
 * backend's reset at its real next sequence counts. */
static void test_blind_segments_cannot_walk_the_sequence(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42900, 100, 9000 };
	__u32 seq = 0, step = (16u << 20) - 2, next;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, 0);
	open_on_backup(&c);
	for (int k = 0; k < 260; k++, seq += step)
		backup_to_client(&c, TH_ACK | TH_PSH, seq, 0, 1);
	backup_to_client(&c, TH_RST, seq - step + 1, 0, 0);
	assert_int_equal(backend(11).resets, 0);

	clear_flows();
	c.cport = 42901;
	open_on_backup(&c);
	next = c.srv_isn + 1 + (1u << 20);
	for (int k = 0; k < 40; k++, next += 400)
		backup_to_client(&c, TH_ACK | TH_PSH, next, c.isn + 1, 400);
	backup_to_client(&c, TH_RST, next, 0, 0);
	assert_int_equal(backend(11).resets, 1);
}

/* A SYN of c (sequence seq) on the ports of a live connection goes to the connection's
 * backend (to, port) unchanged otherwise; waits past the connect timeout a deadline it had
 * pushed would have. */
static void expect_syn_kept_on(const struct conn *c, uint32_t seq, const char *to, uint16_t port)
{
	struct pkt_spec in = c_syn(c, VIP4_VIRT, PORT), want = c_syn(c, to, port);

	in.seq = want.seq = seq;
	expect_rewrite(&in, &want);
	sleep_ms(SHORT_TIMEOUT_MS + 100);
}

/* A new connection on the tuple of a finished one (the client reused its port): tracked
 * afresh, its answers reverse-rewritten, its connect deadline armed. */
static void test_port_reuse_new_connection(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 41000, 500, 900 };
	struct pkt_spec in, want;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	/* Same ports, new ISN, while the connection is open both ways (here after a failover,
	 * and it could be anyone's SYN): it goes to the connection's backend and changes
	 * nothing, no attempt, no deadline. */
	set_active(VIP4_VIRT, 1);
	expect_syn_kept_on(&c, 77777, PRI4, PORT);
	assert_int_equal(backend(10).attempts, 1);
	assert_int_equal(backend(11).attempts, 0);
	assert_int_equal(backend(10).timeouts, 0);
	set_active(VIP4_VIRT, 0);
	/* The client answers the backend's challenge ACK with a reset: now the ports are free,
	 * and its SYN again is a new connection. */
	in = c_pkt(&c, VIP4_VIRT, PORT, TH_RST, c.isn + 1, 0);
	expect_verdict(&in, TC_PASS);
	c.isn = 77777;
	c.srv_isn = 88888;
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).attempts, 2);
	for (int i = 0; i < 100 && backend(10).timeouts == 0; i++)
		usleep(10000);
	assert_int_equal(backend(10).timeouts, 1);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).established, 2);
	/* Entries created less those deleted is what the table holds: userspace tells
	 * evictions apart by this, so the old entry replaced here counts as deleted. */
	struct fs_global_stats g = global();
	assert_int_equal(g.flows_created - g.flows_deleted, count_flows());
}

/* A half-closed connection (the client sent its FIN, the backend still sends) is live: a
 * SYN on its ports, whatever its sequence number, neither moves it (after a failover too)
 * nor counts an attempt or a timeout against its backend. Closed both ways, a SYN is a new
 * connection again. */
static void test_syn_on_half_closed_connection(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 43000, 100, 9000 };
	__u32 i = c.isn, s = c.srv_isn;
	struct pkt_spec in, want;

	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 1, SHORT_TIMEOUT_MS);
	open_on_backup(&c);
	client_to_backup(&c, TH_ACK | TH_FIN, i + 1, s + 1);
	backup_to_client(&c, TH_ACK | TH_PSH, s + 1, i + 2, 100);
	set_active(VIP4_VIRT, 0); /* failed back meanwhile */
	expect_syn_kept_on(&c, 0x12345678, BAK4, BAK_PORT);
	assert_int_equal(backend(11).attempts, 1);
	assert_int_equal(backend(11).timeouts, 0);
	assert_int_equal(backend(10).attempts, 0);
	/* Still the backup's: its data reaches the client rewritten, the client's ACKs it. */
	backup_to_client(&c, TH_ACK | TH_PSH, s + 101, i + 2, 100);
	client_to_backup(&c, TH_ACK, i + 2, s + 201);
	/* The backend's FIN too: closed both ways (its last ACK not seen), a SYN is new. */
	backup_to_client(&c, TH_ACK | TH_FIN, s + 201, i + 2, 0);
	c.isn = i + 100000;
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).attempts, 1);
	svc_flags = 0;
}

/* A connection on the ports of an earlier one that was answered is not timed out by the
 * earlier one's deadline. */
static void test_port_reuse_keeps_deadlines_apart(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 41100, 600, 700 };
	struct pkt_spec in, want;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, 1000);
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	usleep(500000);
	in = c_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, c.isn + 1, c.srv_isn + 1); /* closed */
	expect_verdict(&in, TC_PASS);
	c.isn = 66666; /* same ports, a new connection, still handshaking at the old deadline */
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	usleep(650000); /* past the first deadline (1 s) plus a sweep pass, before the second */
	assert_int_equal(backend(10).timeouts, 0);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	usleep(500000);
	assert_int_equal(backend(10).timeouts, 0);
	assert_int_equal(backend(10).established, 2);
}

/* Zero-error failover: with the retry flag, a reset answering a never-answered SYN becomes
 * that SYN, sent to the next backend; the client never sees the reset. */
static void retry_reset_becomes_syn(const struct conn *c, const char *vip, __u32 id_pri,
				    __u32 id_bak)
{
	struct pkt_spec in, want;
	uint8_t fin[PKT_MAX], out[PKT_MAX], fwant[PKT_MAX];
	size_t len, out_len, want_len;

	in = c_syn(c, vip, PORT);
	want = c_syn(c, c->pri, PORT);
	expect_rewrite(&in, &want);
	/* The primary refuses: RST+ACK acking the SYN. */
	in = s_pkt(c, c->pri, PORT, TH_RST | TH_ACK, 0, c->isn + 1);
	len = pkt_tcp(fin, &in);
	/* Expected: the client's SYN as it came (options and all), to the backup. */
	want = c_syn(c, c->bak, BAK_PORT);
	want_len = pkt_tcp(fwant, &want);
	assert_int_equal(run(fin, len, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_true(pkt_csums_ok(out, out_len));
	assert_memory_equal(out, fwant, want_len);
	assert_int_equal(backend(id_pri).resets_connect, 1);
	assert_int_equal(backend(id_pri).retried, 1);
	assert_int_equal(backend(id_bak).attempts, 1);
	/* The backup answers: the client sees a SYN-ACK from the address it connected to. */
	in = s_pkt(c, c->bak, BAK_PORT, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1);
	want = s_pkt(c, vip, PORT, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(id_bak).established, 1);
}

static void test_retry_reset_becomes_syn_v4(void **state)
{
	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 0);
	retry_reset_becomes_syn(&conn4, VIP4, ID_PRI, ID_BAK);
}

static void test_retry_reset_becomes_syn_v6(void **state)
{
	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP6, PRI6, BAK6, ID_PRI6, ID_BAK6, 0, 0);
	retry_reset_becomes_syn(&conn6, VIP6, ID_PRI6, ID_BAK6);
}

/* The SYN copies live in a ring: once a later connection has reused a flow's slot, that
 * flow can no longer be retried, and its reset reaches the client as it is. */
static void test_retry_syn_slot_reused(void **state)
{
	struct conn a = conn4, b = conn4;
	struct pkt_spec in, want;
	struct fs_deadline_ctl ctl;
	__u32 zero = 0;

	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 0);
	a.cport = 40800;
	b.cport = 40801;
	b.isn = 777000;
	in = c_syn(&a, VIP4, PORT);
	want = c_syn(&a, PRI4, PORT);
	expect_rewrite(&in, &want);
	/* Wind the ring all the way round: b's SYN lands in a's slot. */
	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.deadline_ctl, &zero, sizeof(zero), &ctl,
					      sizeof(ctl), 0), 0);
	ctl.syn_head += E.skel->rodata->syn_slots - 1;
	assert_int_equal(bpf_map__update_elem(E.skel->maps.deadline_ctl, &zero, sizeof(zero), &ctl,
					      sizeof(ctl), BPF_EXIST), 0);
	in = c_syn(&b, VIP4, PORT);
	want = c_syn(&b, PRI4, PORT);
	expect_rewrite(&in, &want);
	__u64 failures = global().retry_failures;
	in = s_pkt(&a, PRI4, PORT, TH_RST | TH_ACK, 0, a.isn + 1);
	expect_rewrite(&in, &in); /* not retried: the client gets the reset */
	assert_int_equal(backend(ID_PRI).retried, 0);
	assert_int_equal(global().retry_failures, failures + 1);
	/* b owns the slot now and is retried as usual. */
	in = s_pkt(&b, PRI4, PORT, TH_RST | TH_ACK, 0, b.isn + 1);
	want = c_syn(&b, BAK4, BAK_PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_PRI).retried, 1);
}

static void test_retry_budget_and_last_error(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in, want;

	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 0);
	c.cport = 40700;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &want); /* retried at the backup */
	/* The client retransmits its SYN while the primary is still the active backend: it
	 * stays with the backup (never sent to two backends, never back to a tried one). */
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_PRI).attempts, 1);
	/* A second reset from the primary is stale: dropped, not passed, not retried again. */
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_verdict(&in, TC_ACT_SHOT);
	assert_int_equal(backend(ID_PRI).retried, 1);
	/* The backup refuses too: every backend tried, the last error reaches the client. */
	in = s_pkt(&c, BAK4, BAK_PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_BAK).retried, 0);
	assert_int_equal(backend(ID_BAK).resets_connect, 1);

	/* An established flow's reset passes as always. */
	c.cport = 40701;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &in);
	in = s_pkt(&c, PRI4, PORT, TH_RST, c.srv_isn + 1, 0);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).retried, 1);

	/* A backup believed down is not tried: the primary's reset passes. */
	struct fs_endpoint key;
	struct fs_service svc;
	endpoint(&key, VIP4, PORT);
	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.services, &key, sizeof(key), &svc, sizeof(svc), 0), 0);
	svc.down_mask = 1u << 1;
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc, sizeof(svc), BPF_EXIST), 0);
	c.cport = 40702;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &in);
	assert_int_equal(backend(ID_PRI).retried, 1);
}

static void retry_icmp_becomes_syn(const struct conn *conn, const char *vip, const char *router,
				   __u32 id_pri, __u32 id_bak)
{
	struct conn c = *conn;
	struct pkt_spec in, sent, want;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX], out[PKT_MAX], fwant[PKT_MAX];
	size_t flen, ilen, out_len, want_len;

	c.cport = 40800;
	in = c_syn(&c, vip, PORT);
	sent = c_syn(&c, c.pri, PORT);
	expect_rewrite(&in, &sent);
	flen = pkt_tcp(frame, &sent);
	ilen = pkt_icmp_unreach(icmp, router, c.cli, frame, flen);
	want = c_syn(&c, c.bak, BAK_PORT);
	want_len = pkt_tcp(fwant, &want);
	assert_int_equal(run(icmp, ilen, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_true(pkt_csums_ok(out, out_len));
	assert_memory_equal(out, fwant, want_len);
	assert_int_equal(backend(id_pri).icmp_errors, 1);
	assert_int_equal(backend(id_pri).retried, 1);
	assert_int_equal(backend(id_bak).attempts, 1);

	/* The backup unreachable too: no backend left, the client gets the error, quoting
	 * its SYN as it sent it (to the service) so that it can match it. */
	ilen = pkt_icmp_unreach(icmp, router, c.cli, fwant, want_len);
	want_len = pkt_icmp_unreach(fwant, router, c.cli, frame, pkt_tcp(frame, &in));
	assert_int_equal(run(icmp, ilen, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_memory_equal(out, fwant, want_len);
	assert_int_equal(backend(id_bak).icmp_errors, 1);
	assert_int_equal(backend(id_bak).retried, 0);
}

static void test_retry_icmp_becomes_syn(void **state)
{
	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, 0);
	retry_icmp_becomes_syn(&conn4, VIP4, "198.18.2.1", ID_PRI, ID_BAK);
}

static void test_retry_icmp6_becomes_syn(void **state)
{
	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP6, PRI6, BAK6, ID_PRI6, ID_BAK6, 0, 0);
	retry_icmp_becomes_syn(&conn6, VIP6, "2001:db8:2::1", ID_PRI6, ID_BAK6);
}

/* Runs frame through the egress program as the daemon's re-send (FS_RETRY_MARK). */
static int run_retry_mark(const uint8_t *frame, size_t len, uint8_t *out)
{
	struct __sk_buff ctx = { .mark = FS_RETRY_MARK };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (__u32)len, .data_out = out,
		    .data_size_out = PKT_MAX, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);

	assert_int_equal(bpf_prog_test_run_opts(E.egress_fd, &opts), 0);
	return (int)opts.retval;
}

static void wait_timeouts(__u32 id, __u64 n)
{
	for (int i = 0; i < 200 && backend(id).timeouts < n; i++)
		sleep_ms(10);
	assert_int_equal(backend(id).timeouts, n);
}

/* The daemon re-sends a timed-out SYN marked FS_RETRY_MARK through egress: it moves on. */
static void test_retry_mark_moves_timed_out_syn(void **state)
{
	struct conn c = conn4;
	struct pkt_spec in, want;
	uint8_t fin[PKT_MAX], out[PKT_MAX], fwant[PKT_MAX];
	size_t len;

	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4, PRI4, BAK4, ID_PRI, ID_BAK, 0, SHORT_TIMEOUT_MS);
	c.cport = 40900;
	in = c_syn(&c, VIP4, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	len = pkt_tcp(fin, &in);
	pkt_tcp(fwant, &(struct pkt_spec){ .src = CLI4, .dst = BAK4, .sport = c.cport, .dport = BAK_PORT,
					   .flags = TH_SYN, .seq = c.isn, .mss_option = true });
	wait_timeouts(ID_PRI, 1);
	assert_int_equal(run_retry_mark(fin, len, out), TC_PASS);
	assert_memory_equal(out, fwant, len);
	assert_int_equal(backend(ID_PRI).retried, 1);
	assert_int_equal(backend(ID_BAK).attempts, 1);
	/* Timed out on the backup too: nothing left to try, so the re-send is dropped (the
	 * daemon fails the client). */
	wait_timeouts(ID_BAK, 1);
	assert_int_equal(run_retry_mark(fin, len, out), TC_ACT_SHOT);
	assert_int_equal(backend(ID_BAK).retried, 0);
}

/* A re-send that comes after the client's own SYN retransmission moved the connection (to
 * the service's new choice) is stale: the connection waits on a backend that had no time
 * yet. It is dropped, and the connection stays where it is: the answer of that backend
 * reaches the client (three backends, so that a third one was there to be wrongly tried). */
static void test_retry_mark_stale_after_move(void **state)
{
	struct conn c = conn4;
	struct fs_endpoint key;
	struct fs_service svc = { .n_backends = 3, .flags = FS_SVC_F_RETRY,
				  .backend_ids = { ID_PRI, ID_BAK, ID_BAK6 } };
	struct pkt_spec in, want;
	uint8_t fin[PKT_MAX], out[PKT_MAX];

	(void)state;
	endpoint(&key, VIP4_VIRT, PORT);
	endpoint(&svc.backends[0], PRI4, PORT);
	endpoint(&svc.backends[1], BAK4, BAK_PORT);
	endpoint(&svc.backends[2], "198.18.4.10", BAK_PORT);
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_ANY), 0);
	c.cport = 40950;
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	/* Failover; the client retransmits: the connection follows to the backup. */
	svc.active = 1;
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_ANY), 0);
	want = c_syn(&c, BAK4, BAK_PORT);
	expect_rewrite(&in, &want);
	/* The daemon's re-send for the primary's deadline, racing with that. */
	assert_int_equal(run_retry_mark(fin, pkt_tcp(fin, &in), out), TC_ACT_SHOT);
	assert_int_equal(backend(ID_BAK6).attempts, 0);
	assert_int_equal(backend(ID_BAK).retried, 0);
	/* The backup answers and the client gets it from the address it called. */
	in = s_pkt(&c, BAK4, BAK_PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c.srv_isn, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(ID_BAK).established, 1);
}

/* Rewrites every service entry in a loop (as the daemon's route refresh and decisions do:
 * each rewrite moves the entry to the head of its hash bucket) until told to stop. */
struct rewriter {
	int fd, n;
	volatile bool stop;
	struct fs_endpoint *keys;
	struct fs_service val;
};

static void *rewrite_services(void *arg)
{
	struct rewriter *r = arg;

	while (!r->stop)
		for (int i = 0; i < r->n && !r->stop; i++)
			bpf_map_update_elem(r->fd, &r->keys[i], &r->val, BPF_EXIST);
	return NULL;
}

static int by_endpoint(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fs_endpoint));
}

/* status and the metrics list every service once, however the daemon rewrites them
 * meanwhile (4,000 services, so many share a hash bucket). */
static void test_view_lists_each_service_once(void **state)
{
	enum { N = 4000, READS = 60 };
	struct rewriter r = { .fd = bpf_map__fd(E.skel->maps.services), .n = N,
			      .val = { .n_backends = 1, .backend_ids = { ID_PRI } } };
	struct fs_maps m;
	pthread_t th;
	char addr[32];

	(void)state;
	maps_init(&m);
	m.services = r.fd;
	m.service_state = bpf_map__fd(E.skel->maps.service_state);
	m.service_ctl = bpf_map__fd(E.skel->maps.service_ctl);
	m.backend_stats = bpf_map__fd(E.skel->maps.backend_stats);
	m.backend_traffic = bpf_map__fd(E.skel->maps.backend_traffic);
	m.backend_model = bpf_map__fd(E.skel->maps.backend_model);
	m.global_stats = bpf_map__fd(E.skel->maps.global_stats);
	r.keys = calloc(N, sizeof(*r.keys));
	assert_non_null(r.keys);
	endpoint(&r.val.backends[0], PRI4, PORT);
	for (int i = 0; i < N; i++) {
		snprintf(addr, sizeof(addr), "198.19.%d.%d", i / 250, 1 + i % 250);
		endpoint(&r.keys[i], addr, 80);
		assert_int_equal(bpf_map_update_elem(r.fd, &r.keys[i], &r.val, BPF_NOEXIST), 0);
	}
	assert_int_equal(pthread_create(&th, NULL, rewrite_services, &r), 0);
	for (int k = 0; k < READS; k++) {
		struct view v;
		struct fs_endpoint *seen;

		assert_int_equal(view_read(&m, &v), 0);
		assert_int_equal(v.n, N + 2); /* and the two of setup() */
		seen = calloc((size_t)v.n, sizeof(*seen));
		assert_non_null(seen);
		for (int i = 0; i < v.n; i++)
			seen[i] = v.svcs[i].address;
		qsort(seen, (size_t)v.n, sizeof(*seen), by_endpoint);
		for (int i = 1; i < v.n; i++)
			assert_memory_not_equal(&seen[i - 1], &seen[i], sizeof(*seen));
		free(seen);
		view_free(&v);
	}
	r.stop = true;
	pthread_join(th, NULL);
	free(r.keys);
}

/* Bytes a steered packet may have changed: the addresses, ports and checksums of its
 * IP and TCP headers, and at egress the Ethernet addresses (after a route lookup). */
static bool may_change(const struct pkt_layout *l, size_t off, bool egress)
{
	if (egress && off < 12)
		return true;
	if (l->fam == 4 && off >= l->l3 + 10 && off < l->l3 + 20)
		return true;
	if (l->fam == 6 && off >= l->l3 + 8 && off < l->l3 + 40)
		return true;
	return (off >= l->l4 && off < l->l4 + 4) || off == l->l4 + 16 || off == l->l4 + 17;
}

/* An ICMP(v6) error whose quote was rewritten back to the service (icmp_to_client): only
 * the ICMP checksum and bytes of the quote changed, the quoted destination is a service
 * address, and the checksums are as right or wrong as they came in. */
static bool icmp_quote_rewritten(const uint8_t *in, const uint8_t *out, size_t len)
{
	static const char *const services[] = { VIP4_VIRT, VIP6 };
	size_t l3 = 14, l4, q3;
	uint16_t et = in[12] << 8 | in[13];
	uint8_t addr[16];
	bool service = false;

	if (et == 0x8100) {
		l3 += 4;
		et = in[16] << 8 | in[17];
	}
	if (et == 0x0800 && in[l3 + 9] == 1)
		l4 = l3 + (size_t)(in[l3] & 0xf) * 4;
	else if (et == 0x86dd && in[l3 + 6] == 58)
		l4 = l3 + 40;
	else
		return false;
	q3 = l4 + 8;
	if (q3 + (et == 0x0800 ? 20 : 40) > len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (in[i] != out[i] && i != l4 + 2 && i != l4 + 3 && i < q3)
			return false;
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		int n = pkt_addr(services[i], addr);

		service |= !memcmp(out + q3 + (et == 0x0800 ? 16 : 24), addr, n == 4 ? 4 : 16);
	}
	return service && pkt_csums_ok(in, len) == pkt_csums_ok(out, len);
}

static uint32_t fuzz_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Damages a copy of a valid frame: flipped bits, header bytes set to values that matter
 * to a parser (versions, lengths, protocols, VLAN and extension-header types), cut short. */
static size_t mutate(uint8_t *b, size_t len, uint32_t *rs)
{
	static const uint8_t values[] = { 0, 1, 4, 5, 6, 0x11, 0x2c, 0x33, 0x3a, 0x3c, 0x40,
					  0x45, 0x4f, 0x50, 0x60, 0x81, 0x86, 0x88, 0xa8, 0xdd, 0xff };
	int n = 1 + (int)(fuzz_rand(rs) % 3);

	for (int i = 0; i < n; i++) {
		size_t at = 12 + fuzz_rand(rs) % (len > 12 + 80 ? 80 : len - 12);

		switch (fuzz_rand(rs) % 4) {
		case 0:
		case 1: b[at] ^= (uint8_t)(1u << (fuzz_rand(rs) % 8)); break;
		case 2: b[at] = values[fuzz_rand(rs) % sizeof(values)]; break;
		default: len = 14 + fuzz_rand(rs) % (len - 13); break;
		}
	}
	return len;
}

/* Handshake of c on the service at vip, steered to 'to': its two entries exist again. */
static void fuzz_open(const struct conn *c, const char *vip, const char *to, bool vlan,
		      bool options)
{
	struct pkt_spec in = c_syn(c, vip, PORT), want = c_syn(c, to, BAK_PORT);

	in.vlan = want.vlan = vlan;
	in.ip_options = want.ip_options = options;
	expect_rewrite(&in, &want);
	in = s_pkt(c, to, BAK_PORT, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1);
	want = s_pkt(c, vip, PORT, TH_SYN | TH_ACK, c->srv_isn, c->isn + 1);
	in.vlan = want.vlan = vlan;
	in.ip_options = want.ip_options = options;
	expect_rewrite(&in, &want);
}

/* Bad input never turns into a corrupted packet: thousands of damaged copies of the packets
 * of steered connections (SYNs, data both ways, FIN, reset, ICMP errors; IPv4 and IPv6;
 * VLAN, IP options, extension headers) go through the ingress and egress programs while the
 * connections live. Whatever the program makes of one, it leaves a packet that is not
 * well-formed TCP byte-identical, changes nothing but addresses, ports and checksums, and
 * never breaks a checksum that was right. */
static void test_damaged_packets_never_corrupted(void **state)
{
	enum { SEEDS_MAX = 32, ROUNDS = 24000 };
	struct conn c4 = conn4, c6 = conn6;
	struct { uint8_t f[PKT_MAX]; size_t len; } seeds[SEEDS_MAX];
	size_t n = 0, changed = 0, rejected = 0, refused = 0;
	uint32_t rs = getenv("FS_FUZZ_SEED") ? (uint32_t)strtoul(getenv("FS_FUZZ_SEED"), NULL, 0) : 20261127;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, ID_PRI, ID_BAK, 1, 0);
	set_active(VIP6, 1);
	c4.cport = c6.cport = 41000;
	for (int v = 0; v < 4; v++) {
		bool vlan = v & 1, opt = v & 2;
		struct conn a = c4, b = c6;

		a.cport = b.cport = (uint16_t)(41000 + v);
		struct pkt_spec sp[] = {
			c_syn(&a, VIP4_VIRT, PORT), c_data(&a, VIP4_VIRT, PORT, TH_ACK | TH_PSH),
			s_pkt(&a, BAK4, BAK_PORT, TH_ACK | TH_PSH, a.srv_isn + 1, a.isn + 101),
			s_pkt(&a, BAK4, BAK_PORT, TH_RST, a.srv_isn + 1, 0),
			c_syn(&b, VIP6, PORT), c_data(&b, VIP6, PORT, TH_ACK | TH_FIN),
			s_pkt(&b, BAK6, BAK_PORT, TH_ACK | TH_PSH, b.srv_isn + 1, b.isn + 101),
		};

		for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++) {
			sp[i].vlan = vlan;
			sp[i].ip_options = opt;
			seeds[n].len = pkt_tcp(seeds[n].f, &sp[i]);
			n++;
		}
	}
	/* ICMP errors quoting a SYN sent to the backup. */
	{
		uint8_t q[PKT_MAX];
		struct pkt_spec syn4 = c_syn(&c4, BAK4, BAK_PORT), syn6 = c_syn(&c6, BAK6, BAK_PORT);

		seeds[n].len = pkt_icmp_unreach(seeds[n].f, "198.18.3.1", CLI4, q, pkt_tcp(q, &syn4));
		n++;
		seeds[n].len = pkt_icmp_unreach(seeds[n].f, "2001:db8:3::1", CLI6, q, pkt_tcp(q, &syn6));
		n++;
	}
	assert_true(n <= SEEDS_MAX);

	for (int round = 0; round < ROUNDS; round++) {
		uint8_t in[PKT_MAX], out[PKT_MAX];
		size_t s = fuzz_rand(&rs) % n, len, out_len;
		bool egress = fuzz_rand(&rs) % 4 == 0;
		struct pkt_layout l;
		int verdict;

		if (round % 512 == 0) {
			/* Damaged FINs and resets close connections; open them again. */
			for (int v = 0; v < 4; v++) {
				struct conn a = c4, b = c6;

				a.cport = b.cport = (uint16_t)(41000 + v);
				fuzz_open(&a, VIP4_VIRT, BAK4, v & 1, v & 2);
				fuzz_open(&b, VIP6, BAK6, v & 1, v & 2);
			}
		}
		memcpy(in, seeds[s].f, seeds[s].len);
		len = mutate(in, seeds[s].len, &rs);
		if (try_run(egress ? E.egress_fd : E.ingress_fd, in, len, out, &out_len, 0, &verdict)) {
			refused++; /* test_run takes no frame shorter than its L3 header says */
			continue;
		}
		if (out_len == len && !memcmp(in, out, len))
			continue;
		changed++;
		if (out_len == len && verdict != TC_ACT_SHOT && icmp_quote_rewritten(in, out, len))
			continue;
		if (verdict == TC_ACT_SHOT) {
			rejected++;
			continue; /* dropped (a late answer for a moved flow): nothing to corrupt */
		}
		if (out_len != len || !pkt_parse_tcp(in, len, &l)) {
			print_message("  round %d: %s %zu-byte frame changed (out %zu bytes), not TCP\n",
				      round, egress ? "egress" : "ingress", len, out_len);
			fail();
		}
		for (size_t i = 0; i < len; i++)
			if (in[i] != out[i] && !may_change(&l, i, egress)) {
				print_message("  round %d: byte %zu changed (l3 %zu l4 %zu)\n", round, i, l.l3, l.l4);
				fail();
			}
		if (pkt_layout_csums_ok(in, len, &l) && !pkt_layout_csums_ok(out, len, &l)) {
			print_message("  round %d: a right checksum went wrong\n", round);
			fail();
		}
	}
	print_message("  %d damaged frames: %zu rewritten (all checked), %zu dropped, %zu refused by test_run\n",
		      ROUNDS, changed - rejected, rejected, refused);
	assert_true(changed > ROUNDS / 20); /* the damage left many packets steerable */
}

/* CHECKSUM_COMPLETE skbs (what NICs that sum whole frames deliver) carry skb->csum, the sum
 * of the packet from the IP header on, which a rewrite must keep true. With this flag
 * test_run gives the skb that sum and checks after the run that it still matches the bytes:
 * a rewrite that leaves it stale fails the run (-EBADMSG). The scenarios below run again
 * that way. */
static void checksum_complete_on(void)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	struct pkt_spec s = c_syn(&conn4, "198.18.7.7", 9);
	size_t out_len;
	int verdict;

	run_flags = BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
	if (try_run(E.ingress_fd, in, pkt_tcp(in, &s), out, &out_len, 0, &verdict) == -EINVAL) {
		print_message("  this kernel's test_run has no CHECKSUM_COMPLETE (Linux 6.11+)\n");
		skip();
	}
}

#define CHECKSUM_COMPLETE_TOO(test)                         \
	static void test##_checksum_complete(void **state) \
	{                                                   \
		checksum_complete_on();                     \
		test(state);                                \
	}
CHECKSUM_COMPLETE_TOO(test_ipv4_connection_keeps_backend)
CHECKSUM_COMPLETE_TOO(test_ipv6_connection_keeps_backend)
CHECKSUM_COMPLETE_TOO(test_virtual_ip_with_vlan_and_options)

/* A re-created SYN as long as the error it replaces (no options either side): the skb stays
 * CHECKSUM_COMPLETE (a change of length makes it CHECKSUM_NONE, whose stale skb->csum
 * test_run would still compare, so the other retry tests cannot run this way), and its sum
 * must follow the new bytes. */
static void retry_same_length(const struct conn *c, const char *vip, __u32 id_pri, __u32 id_bak)
{
	struct pkt_spec in = c_syn(c, vip, PORT), want = c_syn(c, c->pri, PORT);
	uint8_t rst[PKT_MAX], out[PKT_MAX], fwant[PKT_MAX];
	size_t len, out_len, want_len;

	checksum_complete_on();
	svc_flags = FS_SVC_F_RETRY;
	put_service(vip, c->pri, c->bak, id_pri, id_bak, 0, 0);
	in.mss_option = want.mss_option = false;
	expect_rewrite(&in, &want);
	in = s_pkt(c, c->pri, PORT, TH_RST | TH_ACK, 0, c->isn + 1);
	/* From a few hops away: for IPv6 the sum of a whole valid packet depends on little
	 * else than the hop limit, so only a different one shows a stale skb->csum. */
	in.hops = 61;
	len = pkt_tcp(rst, &in);
	want = c_syn(c, c->bak, BAK_PORT);
	want.mss_option = false;
	want_len = pkt_tcp(fwant, &want);
	assert_int_equal(len, want_len);
	assert_int_equal(run(rst, len, out, &out_len), TC_PASS);
	assert_int_equal(out_len, want_len);
	assert_true(pkt_csums_ok(out, out_len));
	assert_memory_equal(out, fwant, want_len);
	assert_int_equal(backend(id_pri).retried, 1);
}

static void test_retry_same_length_checksum_complete_v4(void **state)
{
	(void)state;
	retry_same_length(&conn4, VIP4, ID_PRI, ID_BAK);
}

static void test_retry_same_length_checksum_complete_v6(void **state)
{
	(void)state;
	retry_same_length(&conn6, VIP6, ID_PRI6, ID_BAK6);
}

/* A refusing reset after the attempt's connect timeout or ICMP error was counted (a backend
 * that blackholed the SYN, then came back refusing its retransmission) is no second failure;
 * nor is the deadline of a connection a reset refused (its entries go). */
static void test_reset_after_failure_not_counted_twice(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42900, 100, 9000 };
	uint8_t frame[PKT_MAX], icmp[PKT_MAX];
	struct pkt_spec in, want, sent;
	size_t ilen;

	(void)state;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	in = c_syn(&c, VIP4_VIRT, PORT);
	want = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &want);
	wait_timeouts(10, 1);
	expect_rewrite(&in, &want); /* the client's retransmission: same backend */
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).attempts, 1);
	assert_int_equal(backend(10).timeouts, 1);
	assert_int_equal(backend(10).resets_connect, 0);

	/* An ICMP error first, then the reset. */
	c.cport = 42901;
	in = c_syn(&c, VIP4_VIRT, PORT);
	sent = c_syn(&c, PRI4, PORT);
	expect_rewrite(&in, &sent);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
	assert_int_equal(run(icmp, ilen, frame, &ilen), TC_PASS);
	assert_int_equal(backend(10).icmp_errors, 1);
	expect_rewrite(&in, &sent);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).resets_connect, 0);

	/* A retrying service whose SYN was not kept (it carries data): the reset goes to the
	 * client, counted once, and the connection's deadline finds nothing to count. */
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	c.cport = 42902;
	in = c_syn(&c, VIP4_VIRT, PORT);
	sent = c_syn(&c, PRI4, PORT);
	in.payload_len = sent.payload_len = 100;
	expect_rewrite(&in, &sent);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	sleep_ms(SHORT_TIMEOUT_MS + 100);
	svc_flags = 0;
	assert_int_equal(backend(10).resets_connect, 1);
	assert_int_equal(backend(10).timeouts, 1);
	assert_int_equal(backend(10).attempts, 3);
}

static void set_backend_route(const char *vip, int idx, __u32 ifindex, bool attached)
{
	struct fs_endpoint key;
	struct fs_service svc;

	endpoint(&key, vip, PORT);
	assert_int_equal(bpf_map__lookup_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), 0), 0);
	svc.backend_ifindex[idx] = ifindex;
	svc.attached_mask = (uint8_t)((svc.attached_mask & ~(1u << idx)) | (attached ? 1u << idx : 0));
	assert_int_equal(bpf_map__update_elem(E.skel->maps.services, &key, sizeof(key), &svc,
					      sizeof(svc), BPF_EXIST), 0);
}

/* Evidence against a backend does not count from the client's side: with the backend
 * routed through attached interface 2, a reset or an ICMP error that comes in where the
 * client's SYN came in (test_run's packets all come in on lo, ifindex 1) is passed on but
 * not counted, nor retried; one made by this node (egress) is. Where sides cannot be told
 * apart it counts: a one-armed node (the backend routed through the client's interface
 * too) and a route through a device the programs are not on (a VLAN or a bridge over
 * theirs). The daemon's re-send keeps the client's side for the next backend. */
static void test_evidence_only_from_the_backend_side(void **state)
{
	struct conn c = { CLI4, VIP4_VIRT, PRI4, BAK4, 42800, 100, 9000 }, c2 = c;
	uint8_t frame[PKT_MAX], icmp[PKT_MAX], out[PKT_MAX];
	struct pkt_spec in, want, sent;
	struct fs_global_stats g0 = global();
	size_t ilen, out_len;

	(void)state;
	svc_flags = FS_SVC_F_RETRY;
	put_service(VIP4_VIRT, PRI4, BAK4, 10, 11, 0, SHORT_TIMEOUT_MS);
	set_backend_route(VIP4_VIRT, 0, 2, true);
	set_backend_route(VIP4_VIRT, 1, 2, true);
	expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
	in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	sent = c_syn(&c, PRI4, PORT);
	ilen = pkt_icmp_unreach(icmp, "198.18.2.1", CLI4, frame, pkt_tcp(frame, &sent));
	assert_int_equal(run(icmp, ilen, out, &out_len), TC_PASS);
	assert_int_equal(backend(10).resets, 0);
	assert_int_equal(backend(10).icmp_errors, 0);
	assert_int_equal(backend(10).retried, 0);
	assert_int_equal(global().rst_rejected, g0.rst_rejected + 1);
	/* Nor does a SYN-ACK from there make the backend look alive (another connection: it
	 * still answers its own, which is no failure then). */
	c2.cport = 42810;
	expect_syn_steered(&c2, VIP4_VIRT, PRI4, PORT);
	in = s_pkt(&c2, PRI4, PORT, TH_SYN | TH_ACK, c2.srv_isn, c2.isn + 1);
	want = s_pkt(&c2, VIP4_VIRT, PORT, TH_SYN | TH_ACK, c2.srv_isn, c2.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(10).established, 0);
	/* Made by this node (egress): counted, and retried. */
	assert_int_equal(run_ctx(E.egress_fd, icmp, ilen, out, &out_len, 0), TC_PASS);
	assert_int_equal(backend(10).icmp_errors, 1);
	assert_int_equal(backend(10).retried, 1);
	/* The client's side is still known on the backup the SYN moved to. */
	in = s_pkt(&c, BAK4, BAK_PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(11).resets, 0);

	/* After the daemon's re-send on a timeout, too. */
	clear_flows();
	c.cport = 42801;
	in = c_syn(&c, VIP4_VIRT, PORT);
	expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
	wait_timeouts(10, 1);
	assert_int_equal(run_retry_mark(frame, pkt_tcp(frame, &in), out), TC_PASS);
	assert_int_equal(backend(11).attempts, 2);
	in = s_pkt(&c, BAK4, BAK_PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	want = s_pkt(&c, VIP4_VIRT, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
	expect_rewrite(&in, &want);
	assert_int_equal(backend(11).resets, 0);

	/* One-armed, and routed through a device the programs are not on: counted. */
	for (int k = 0; k < 2; k++) {
		clear_flows();
		set_backend_route(VIP4_VIRT, 0, k ? 2 : 1, k == 0);
		c.cport = (uint16_t)(42802 + k);
		expect_syn_steered(&c, VIP4_VIRT, PRI4, PORT);
		in = s_pkt(&c, PRI4, PORT, TH_RST | TH_ACK, 0, c.isn + 1);
		assert_int_equal(run(frame, pkt_tcp(frame, &in), out, &out_len), TC_PASS);
		assert_int_equal(backend(10).resets, 1 + k);
		assert_int_equal(backend(10).retried, 3 + k);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ipv4_connection_keeps_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_connection_keeps_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtual_ip_with_vlan_and_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unanswered_syn_follows_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resets_counted_only_in_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_counted_only_for_tracked_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_not_counted_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evidence_flags_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_traffic_passes_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_egress_steers_local_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_after_failure_not_counted_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeouts_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answered_deadline_freed_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_ring_counts_only_waiting_ones_lost, setup_small_ring, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_sweep_stays_in_live_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_flow_table_evicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_close_frees_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclean_close_swept_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unanswered_attempt_swept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unanswered_mark_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind_segments_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind_segments_cannot_walk_the_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_behind_sent_data_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_open_handshakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_errors_reach_the_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_errors_reach_the_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_routing_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_source_route_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_to_the_same_backend_after_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evidence_only_from_the_backend_side, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_reuse_new_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_reuse_keeps_deadlines_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_on_half_closed_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_reset_becomes_syn_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_reset_becomes_syn_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_syn_slot_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_budget_and_last_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_icmp_becomes_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_icmp6_becomes_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_mark_moves_timed_out_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_mark_stale_after_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_connection_keeps_backend_checksum_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_connection_keeps_backend_checksum_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtual_ip_with_vlan_and_options_checksum_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_same_length_checksum_complete_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_same_length_checksum_complete_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_packets_never_corrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_lists_each_service_once, setup, teardown),
	};

	if (geteuid() != 0) {
		printf("SKIP: test_datapath needs root (CAP_BPF)\n");
		return 77;
	}
	return cmocka_run_group_tests_name("bpf_datapath", tests, NULL, NULL);
}
