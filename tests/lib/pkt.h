/* Test packet builder: Ethernet/IPv4/IPv6/TCP/ICMP frames with checksums computed from scratch. */
#ifndef FS_TEST_PKT_H
#define FS_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 512

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

/* One TCP packet to build; addresses as text ("198.18.0.1" or "2001:db8::1"). */
struct pkt_spec {
	const char *src, *dst;
	uint16_t sport, dport;
	uint8_t flags;
	uint32_t seq, ack;
	uint16_t payload_len;   /* bytes of 'x' */
	bool vlan;              /* one 802.1Q tag */
	bool ip_options;        /* IPv4: 4 bytes of NOP options; IPv6: an 8-byte destination-options header */
	const uint8_t *ip_opt;  /* IPv4: these options instead (ip_opt_len bytes, a multiple of 4) */
	uint8_t ip_opt_len;
	bool mss_option;        /* the 20 bytes of TCP options a Linux SYN carries (MSS, SACK
				 * permitted, timestamps, window scale) */
	uint8_t hops;           /* IPv4 TTL / IPv6 hop limit; 0 = 64 */
};

/* Builds the frame into buf (PKT_MAX bytes); returns its length. */
size_t pkt_tcp(uint8_t *buf, const struct pkt_spec *s);

/* ICMP(v6) error of type and code (info: the word after the checksum, an MTU) from
 * 'from' to 'to', quoting the IP header of the packet inside frame 'quoted' (as built by
 * pkt_tcp, without VLAN) and l4_quoted bytes after it. */
size_t pkt_icmp_error(uint8_t *buf, const char *from, const char *to, uint8_t type, uint8_t code,
		      uint32_t info, const uint8_t *quoted, size_t quoted_len, size_t l4_quoted);

/* Destination unreachable quoting 8 bytes of TCP, as routers do. */
size_t pkt_icmp_unreach(uint8_t *buf, const char *from, const char *to, const uint8_t *quoted,
			size_t quoted_len);

/* Recomputes every checksum of a frame from scratch and compares: true if all correct. */
bool pkt_csums_ok(const uint8_t *buf, size_t len);

/* Where the headers of a TCP packet lie in a frame, as found by pkt_parse_tcp. */
struct pkt_layout {
	int fam;       /* 4 or 6 */
	size_t l3, l4; /* offsets of the IP and TCP headers */
	size_t thl;    /* TCP header length */
	size_t l3_len; /* IP header(s) and payload, as the IP header says */
};

/* An independent reading of the packets failsteer must handle (Ethernet with up to two
 * VLAN tags; IPv4 with options, not a fragment; IPv6 with up to four hop-by-hop, routing,
 * destination-options or AH headers; TCP with its whole header in the frame): true and the
 * layout for a TCP packet, false for anything the programs must pass on untouched. */
bool pkt_parse_tcp(const uint8_t *buf, size_t len, struct pkt_layout *out);

/* True if the IPv4 header checksum (IPv4) and the TCP checksum of a parsed packet verify;
 * false also when the IP length says the packet is longer than the frame. */
bool pkt_layout_csums_ok(const uint8_t *buf, size_t len, const struct pkt_layout *l);

/* Parses "a.b.c.d" or an IPv6 address into 16 bytes (IPv4 in the first 4); returns family 4/6. */
int pkt_addr(const char *text, uint8_t out[16]);

#endif
