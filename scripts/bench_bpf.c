/* Per-packet cost of failsteer's TC paths through bpf_prog_test_run, each next to the
 * baseline program (parse + one hash lookup) measured in the same run, at 1 and 10,000
 * configured services. Used by scripts/bench.sh (`make bench`), not a test.
 *
 * Usage: bench_bpf [--repeat N] [--rounds R] [--syns N] [--tsv FILE]
 *
 * Paths with a stable packet (established, reply, non-matching) run with a large repeat
 * count; opts.duration is the kernel's average per run. A rewritten packet would miss its
 * flow on the next repetition, so each rewriting path gets a mirror flow entry that rewrites
 * it back: every repetition does the full lookup + counters + rewrite. A new SYN can only be
 * new once, so it is timed over many repeat=1 runs of distinct SYNs, interleaved with as many
 * repeat=1 baseline runs on distinct packets (same per-call timer overhead), medians compared.
 *
 * TSV lines: path <TAB> services <TAB> round <TAB> path_ns <TAB> baseline_ns <TAB> warm_ns
 * (warm_ns: SYN paths only, the baseline's large-repeat cost in the same pass; else 0)
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "baseline.skel.h"
#include "failsteer.skel.h"
#include "failsteer/failsteer.h"
#include "loader.h"
#include "pkt.h"
#include "stats.h"

#define PORT 8080
#define BAK_PORT 9090
#define CLI4 "198.18.1.2"
#define CLI6 "2001:db8:1::2"
#define VIP4 "198.18.9.9"     /* a virtual service address: every packet is rewritten */
#define PRI4 "198.18.2.10"    /* the primary's own address as service address: no rewrite */
#define BAK4 "198.18.3.10"
#define VIP6 "2001:db8:9::9"
#define BAK6 "2001:db8:3::10"
#define OTHER4 "198.18.7.7"   /* not a service */
#define FLOW_TABLE_SIZE 262144 /* the daemon's default */
#define MANY_SERVICES 10000
#define CONNECT_TIMEOUT_MS 300
#define ID_BAK 1

struct bench {
	struct failsteer_bpf *fs;
	struct baseline_bpf *base;
	int ingress_fd, base_fd;
	FILE *tsv;
	unsigned repeat, rounds, syns;
};

/* The programs' verdict for a packet passed on (TC_ACT_UNSPEC). */
#define TC_PASS (-1)

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench_bpf: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void endpoint(struct fs_endpoint *ep, const char *addr, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	ep->family = pkt_addr(addr, (uint8_t *)ep->addr) == 4 ? FS_AF_INET : FS_AF_INET6;
	ep->port = htons(port);
}

/* The flow key the parser builds for spec s. */
static void key_of(struct fs_flow_key *k, const struct pkt_spec *s)
{
	memset(k, 0, sizeof(*k));
	k->family = pkt_addr(s->src, (uint8_t *)k->src) == 4 ? FS_AF_INET : FS_AF_INET6;
	pkt_addr(s->dst, (uint8_t *)k->dst);
	k->sport = htons(s->sport);
	k->dport = htons(s->dport);
}

static void put_service(struct bench *b, const struct fs_endpoint *key, const char *bak,
			uint16_t bak_port, __u16 flags)
{
	struct fs_service svc = { 0 };

	svc.n_backends = 2;
	svc.active = 1; /* the backup: its address and port differ from the service's */
	svc.flags = flags;
	svc.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	svc.backend_ids[0] = 0;
	svc.backend_ids[1] = ID_BAK;
	svc.backends[0] = *key;
	endpoint(&svc.backends[1], bak, bak_port);
	if (bpf_map__update_elem(b->fs->maps.services, key, sizeof(*key), &svc, sizeof(svc), BPF_ANY))
		die("writing a service: %s", strerror(errno));
}

static void put_service_at(struct bench *b, const char *addr, uint16_t port, const char *bak,
			   uint16_t bak_port, __u16 flags)
{
	struct fs_endpoint key;

	endpoint(&key, addr, port);
	put_service(b, &key, bak, bak_port, flags);
}

/* Fills the services map up to MANY_SERVICES with services nobody connects to. */
static void fill_services(struct bench *b, int n)
{
	for (int i = 0; i < n; i++) {
		struct fs_endpoint key = { .family = FS_AF_INET };

		key.addr[0] = htonl(0xc6130000u + (unsigned)i); /* 198.19.0.0/16 */
		key.port = htons((uint16_t)(1000 + i % 50000));
		put_service(b, &key, BAK4, BAK_PORT, FS_SVC_F_RETRY);
	}
}

static unsigned run_prog(int fd, const uint8_t *in, size_t len, unsigned repeat, uint8_t *out,
			 size_t *out_len, int *verdict)
{
	uint8_t scratch[PKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = out ? out : scratch, .data_size_out = PKT_MAX, .repeat = repeat);

	if (bpf_prog_test_run_opts(fd, &opts))
		die("bpf_prog_test_run: %s", strerror(errno));
	if (out_len)
		*out_len = opts.data_size_out;
	if (verdict)
		*verdict = (int)opts.retval;
	return opts.duration;
}

/* The baseline looks up the packet's own key and finds it, as a tracked flow would. */
static void baseline_knows(struct bench *b, const struct pkt_spec *s)
{
	struct fs_flow_key k;
	__u64 zero = 0;

	key_of(&k, s);
	if (bpf_map__update_elem(b->base->maps.baseline_table, &k, sizeof(k), &zero, sizeof(zero),
				 BPF_ANY))
		die("writing the baseline table: %s", strerror(errno));
}

static void one(struct bench *b, const struct pkt_spec *s, uint8_t *out, size_t *out_len, int *v)
{
	uint8_t in[PKT_MAX];

	run_prog(b->ingress_fd, in, pkt_tcp(in, s), 1, out, out_len, v);
}

/* Puts a copy of flow entry 'of' under the key of packet 'as', answering to 'nat': the
 * mirror that rewrites the rewritten packet back. */
static void mirror_flow(struct bench *b, const struct pkt_spec *of, const struct pkt_spec *as,
			const char *nat, uint16_t nat_port)
{
	struct fs_flow_key k, mk;
	struct fs_flow f;

	key_of(&k, of);
	key_of(&mk, as);
	if (bpf_map__lookup_elem(b->fs->maps.flows, &k, sizeof(k), &f, sizeof(f), 0))
		die("no flow entry for the %s packet", of->src);
	endpoint(&f.nat, nat, nat_port);
	if (bpf_map__update_elem(b->fs->maps.flows, &mk, sizeof(mk), &f, sizeof(f), BPF_ANY))
		die("writing a mirror flow: %s", strerror(errno));
}

/* Runs in, checks the program turned it into want and want back into in. */
static void check_pingpong(struct bench *b, const struct pkt_spec *in, const struct pkt_spec *want,
			   const char *what)
{
	uint8_t a[PKT_MAX], w[PKT_MAX], out[PKT_MAX], back[PKT_MAX];
	size_t alen = pkt_tcp(a, in), wlen = pkt_tcp(w, want), olen, blen;
	int v;

	run_prog(b->ingress_fd, a, alen, 1, out, &olen, &v);
	if (v != TC_PASS || olen != wlen || memcmp(out, w, wlen))
		die("%s: the program did not rewrite the packet as expected (verdict %d)", what, v);
	run_prog(b->ingress_fd, out, olen, 1, back, &blen, &v);
	if (v != TC_PASS || blen != alen || memcmp(back, a, alen))
		die("%s: the mirror flow did not rewrite the packet back (verdict %d)", what, v);
}

/* Runs a packet that matches a flow on the primary's own address (no rewrite) and checks it
 * went through the flow: the backend's packet counter in that direction moved by one. */
static void check_counted(struct bench *b, const struct pkt_spec *s, bool to_backend, const char *what)
{
	struct fs_backend_traffic before, after;
	int fd = bpf_map__fd(b->fs->maps.backend_traffic), v;

	if (stats_read_traffic(fd, ID_BAK, &before))
		die("reading backend counters");
	one(b, s, NULL, NULL, &v);
	if (stats_read_traffic(fd, ID_BAK, &after))
		die("reading backend counters");
	if (v != TC_PASS || (to_backend ? after.pkts_to - before.pkts_to : after.pkts_from - before.pkts_from) != 1)
		die("%s: the packet did not go through its flow entry", what);
}

struct path {
	const char *name;
	struct pkt_spec pkt;
};

/* A connection from cport through the programs: SYN, SYN-ACK, so both entries exist and
 * the connection is established. */
static void connect_flow(struct bench *b, const char *cli, const char *svc, const char *srv,
			 uint16_t srv_port, uint16_t cport)
{
	struct pkt_spec syn = { .src = cli, .dst = svc, .sport = cport, .dport = PORT,
				.flags = TH_SYN, .seq = 1000, .mss_option = true };
	struct pkt_spec synack = { .src = srv, .dst = cli, .sport = srv_port, .dport = cport,
				   .flags = TH_SYN | TH_ACK, .seq = 5000, .ack = 1001,
				   .mss_option = true };
	int v;

	one(b, &syn, NULL, NULL, &v);
	one(b, &synack, NULL, NULL, &v);
}

static int cmp_u(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

static double median_u(unsigned *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_u);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_d(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* Prints and records one path's rounds; warm > 0 (SYN paths): the warm baseline of the
 * large-repeat runs, to put the SYN's extra cost per call in proportion. */
static void report(struct bench *b, const char *path, int services, double *p, double *base,
		   unsigned n, double warm)
{
	double ratio[64], rp[64], rb[64];

	for (unsigned i = 0; i < n; i++) {
		ratio[i] = p[i] / base[i];
		rp[i] = p[i];
		rb[i] = base[i];
		if (b->tsv)
			fprintf(b->tsv, "%s\t%d\t%u\t%.2f\t%.2f\t%.2f\n", path, services, i + 1, p[i],
				base[i], warm);
	}
	double mp = median_d(rp, n), mb = median_d(rb, n);

	qsort(ratio, n, sizeof(*ratio), cmp_d);
	printf("  %-44s %6d svc  %7.1f ns  baseline %6.1f ns  ratio %.2fx (%.2f-%.2f)\n", path,
	       services, mp, mb, median_d(ratio, n), ratio[0], ratio[n - 1]);
	if (warm > 0)
		printf("  %-44s %6s      %+7.1f ns over the baseline per call = %.1fx the warm baseline"
		       " (%.1f ns)\n", "", "", mp - mb, 1 + (mp - mb) / warm, warm);
	fflush(stdout);
	if (b->tsv)
		fflush(b->tsv);
}

/* Large-repeat paths, alternating with the baseline on the same packet, b->rounds times. */
static double bench_stable(struct bench *b, const struct path *paths, int n_paths, int services)
{
	double p[16][64], base[16][64];
	uint8_t in[PKT_MAX];

	for (unsigned r = 0; r < b->rounds; r++)
		for (int i = 0; i < n_paths; i++) {
			size_t len = pkt_tcp(in, &paths[i].pkt);

			p[i][r] = run_prog(b->ingress_fd, in, len, b->repeat, NULL, NULL, NULL);
			base[i][r] = run_prog(b->base_fd, in, len, b->repeat, NULL, NULL, NULL);
		}
	for (int i = 0; i < n_paths; i++)
		report(b, paths[i].name, services, p[i], base[i], b->rounds, 0);
	return median_d(base[0], b->rounds); /* the baseline, warm, on a plain TCP packet */
}

/* New SYNs: distinct connections, one repeat=1 run each, interleaved with baseline runs on
 * distinct packets; b->rounds medians of b->syns / rounds runs. */
static void bench_syn(struct bench *b, const char *name, int services, int client_net, double warm)
{
	unsigned per = b->syns / b->rounds, *ts = calloc(per, sizeof(*ts)),
		 *tb = calloc(per, sizeof(*tb));
	double p[64], base[64];
	char cli[32];
	uint8_t in[PKT_MAX], out[PKT_MAX];

	if (!ts || !tb)
		die("out of memory");
	for (unsigned r = 0; r < b->rounds; r++) {
		/* A fresh client address per round: every SYN below is a new connection. */
		snprintf(cli, sizeof(cli), "198.18.%d.%u", client_net, r + 1);
		for (unsigned i = 0; i < per; i++) {
			struct pkt_spec syn = { .src = cli, .dst = VIP4, .sport = (uint16_t)(10000 + i),
						.dport = PORT, .flags = TH_SYN, .seq = 1000 + i,
						.mss_option = true };
			baseline_knows(b, &syn);
		}
		for (unsigned i = 0; i < per; i++) {
			struct pkt_spec syn = { .src = cli, .dst = VIP4, .sport = (uint16_t)(10000 + i),
						.dport = PORT, .flags = TH_SYN, .seq = 1000 + i,
						.mss_option = true };
			size_t len = pkt_tcp(in, &syn), olen;
			int v;

			ts[i] = run_prog(b->ingress_fd, in, len, 1, out, &olen, &v);
			if (i == 0 && (v != TC_PASS || olen != len || !memcmp(out, in, len)))
				die("%s: the SYN was not steered (verdict %d)", name, v);
			tb[i] = run_prog(b->base_fd, in, len, 1, NULL, NULL, NULL);
		}
		p[r] = median_u(ts, per);
		base[r] = median_u(tb, per);
	}
	/* Let the connect deadlines expire and be swept, as they would, before the next path
	 * (the ring holds FLOW_TABLE_SIZE / 16 of them). */
	usleep((CONNECT_TIMEOUT_MS + 100) * 1000);
	report(b, name, services, p, base, b->rounds, warm);
	free(ts);
	free(tb);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_bpf [--repeat N] [--rounds R] [--syns N] [--tsv FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repeat", required_argument, NULL, 'r' }, { "rounds", required_argument, NULL, 'n' },
		{ "syns", required_argument, NULL, 's' },   { "tsv", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .repeat = 300000, .rounds = 5, .syns = 10000 };
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': b.repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': b.rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': b.syns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't':
			b.tsv = fopen(optarg, "w");
			if (!b.tsv)
				die("%s: %s", optarg, strerror(errno));
			break;
		default: usage();
		}
	}
	if (!b.repeat || b.rounds < 1 || b.rounds > 64 || b.syns < b.rounds || b.syns > 60000)
		usage();

	/* Sized as the daemon sizes them by default (loader_load). */
	b.fs = failsteer_bpf__open();
	if (!b.fs)
		die("opening the failsteer object: %s", strerror(errno));
	bpf_map__set_max_entries(b.fs->maps.flows, FLOW_TABLE_SIZE);
	b.fs->rodata->syn_slots = FLOW_TABLE_SIZE / 4;
	bpf_map__set_max_entries(b.fs->maps.syn_store, FLOW_TABLE_SIZE / 4);
	b.fs->rodata->deadline_slots = FLOW_TABLE_SIZE / 16;
	bpf_map__set_max_entries(b.fs->maps.deadlines, FLOW_TABLE_SIZE / 16);
	if (failsteer_bpf__load(b.fs))
		die("loading the failsteer programs: %s", strerror(errno));
	if (loader_start_deadline_timer(bpf_program__fd(b.fs->progs.fs_deadline_setup)))
		die("starting the deadline timer");
	b.base = baseline_bpf__open_and_load();
	if (!b.base)
		die("loading the baseline program: %s", strerror(errno));
	b.ingress_fd = bpf_program__fd(b.fs->progs.fs_tc_ingress);
	b.base_fd = bpf_program__fd(b.base->progs.fs_baseline);

	/* One service on a virtual address (IPv4 and IPv6), one on the primary's own address;
	 * new connections go to the backup, a different address and port. */
	put_service_at(&b, VIP4, PORT, BAK4, BAK_PORT, FS_SVC_F_RETRY);
	put_service_at(&b, VIP6, PORT, BAK6, BAK_PORT, FS_SVC_F_RETRY);
	put_service_at(&b, PRI4, PORT, PRI4, PORT, FS_SVC_F_RETRY);

	/* Established connections, each with a mirror entry for the rewritten packet. */
	connect_flow(&b, CLI4, VIP4, BAK4, BAK_PORT, 40001);
	connect_flow(&b, CLI6, VIP6, BAK6, BAK_PORT, 40001);
	connect_flow(&b, CLI4, PRI4, PRI4, PORT, 40002);
	struct pkt_spec est4 = { .src = CLI4, .dst = VIP4, .sport = 40001, .dport = PORT,
				 .flags = TH_ACK | TH_PSH, .seq = 1001, .ack = 5001, .payload_len = 100 };
	struct pkt_spec est4_out = est4, rep4, rep4_out, est6, est6_out, rep6, rep6_out, own4, ownrep4,
			 other4;

	est4_out.dst = BAK4;
	est4_out.dport = BAK_PORT;
	rep4 = (struct pkt_spec){ .src = BAK4, .dst = CLI4, .sport = BAK_PORT, .dport = 40001,
				  .flags = TH_ACK | TH_PSH, .seq = 5001, .ack = 1101, .payload_len = 100 };
	rep4_out = rep4;
	rep4_out.src = VIP4;
	rep4_out.sport = PORT;
	est6 = est4;
	est6.src = CLI6;
	est6.dst = VIP6;
	est6_out = est6;
	est6_out.dst = BAK6;
	est6_out.dport = BAK_PORT;
	rep6 = rep4;
	rep6.src = BAK6;
	rep6.dst = CLI6;
	rep6_out = rep6;
	rep6_out.src = VIP6;
	rep6_out.sport = PORT;
	own4 = est4;
	own4.dst = PRI4;
	own4.sport = 40002;
	ownrep4 = rep4;
	ownrep4.src = PRI4;
	ownrep4.sport = PORT;
	ownrep4.dport = 40002;
	other4 = est4;
	other4.dst = OTHER4;

	mirror_flow(&b, &est4, &est4_out, VIP4, PORT);
	mirror_flow(&b, &rep4, &rep4_out, BAK4, BAK_PORT);
	mirror_flow(&b, &est6, &est6_out, VIP6, PORT);
	mirror_flow(&b, &rep6, &rep6_out, BAK6, BAK_PORT);
	check_pingpong(&b, &est4, &est4_out, "established IPv4");
	check_pingpong(&b, &rep4, &rep4_out, "reply IPv4");
	check_pingpong(&b, &est6, &est6_out, "established IPv6");
	check_pingpong(&b, &rep6, &rep6_out, "reply IPv6");
	check_counted(&b, &own4, true, "established, no rewrite");
	check_counted(&b, &ownrep4, false, "reply, no rewrite");

	const struct path paths[] = {
		{ "established, client packet (IPv4, rewrite)", est4 },
		{ "established, reply packet (IPv4, rewrite)", rep4 },
		{ "established, client packet (IPv6, rewrite)", est6 },
		{ "established, reply packet (IPv6, rewrite)", rep6 },
		{ "established, client packet (no rewrite)", own4 },
		{ "established, reply packet (no rewrite)", ownrep4 },
		{ "non-matching packet (other destination)", other4 },
	};
	int n_paths = (int)(sizeof(paths) / sizeof(paths[0]));

	for (int i = 0; i < n_paths; i++)
		baseline_knows(&b, &paths[i].pkt);

	printf("bench_bpf: %u rounds, repeat %u (stable paths), %u distinct SYNs per SYN path\n",
	       b.rounds, b.repeat, b.syns);
	for (int pass = 0; pass < 2; pass++) {
		int services = pass ? MANY_SERVICES : 3;

		if (pass) {
			fill_services(&b, MANY_SERVICES - 3);
			printf(" with %d services configured:\n", MANY_SERVICES);
		} else {
			printf(" with 3 services configured (the ones the packets use):\n");
		}
		double warm = bench_stable(&b, paths, n_paths, services);

		bench_syn(&b, "new SYN (zero-error retry on, default)", services, 100 + 2 * pass, warm);
		put_service_at(&b, VIP4, PORT, BAK4, BAK_PORT, 0);
		bench_syn(&b, "new SYN (zero-error retry off)", services, 101 + 2 * pass, warm);
		put_service_at(&b, VIP4, PORT, BAK4, BAK_PORT, FS_SVC_F_RETRY);
	}

	if (b.tsv)
		fclose(b.tsv);
	baseline_bpf__destroy(b.base);
	failsteer_bpf__destroy(b.fs);
	return 0;
}
