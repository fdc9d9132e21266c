/* Test packet builder; see pkt.h. */
#include "pkt.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

int pkt_addr(const char *text, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, text, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, text, out) == 1)
		return 6;
	abort();
}

static size_t put_eth(uint8_t *b, bool vlan, uint16_t ethertype)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	size_t off = 12;

	memcpy(b, dmac, 6);
	memcpy(b + 6, smac, 6);
	if (vlan) {
		b[off++] = 0x81;
		b[off++] = 0x00;
		b[off++] = 0x00;
		b[off++] = 0x2a;
	}
	b[off++] = ethertype >> 8;
	b[off++] = ethertype & 0xff;
	return off;
}

/* L4 checksum over the pseudo header (RFC 793, RFC 8200 section 8.1); 0 when verifying. */
static uint16_t l4_csum(int fam, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			const uint8_t *l4, size_t len)
{
	uint32_t acc = 0;

	acc = sum16(src, fam == 4 ? 4 : 16, acc);
	acc = sum16(dst, fam == 4 ? 4 : 16, acc);
	acc += proto + (uint32_t)len;
	acc = sum16(l4, len, acc);
	return fold(acc);
}

size_t pkt_tcp(uint8_t *b, const struct pkt_spec *s)
{
	uint8_t src[16], dst[16];
	int fam = pkt_addr(s->src, src);
	size_t off, l3, l4, optlen = s->mss_option ? 20 : 0, thl = 20 + optlen, iplen;
	uint8_t *th;

	if (pkt_addr(s->dst, dst) != fam)
		abort();
	memset(b, 0, PKT_MAX);
	off = put_eth(b, s->vlan, fam == 4 ? 0x0800 : 0x86dd);
	l3 = off;
	if (fam == 4) {
		size_t hl = 20 + (s->ip_opt ? s->ip_opt_len : s->ip_options ? 4 : 0);

		iplen = hl + thl + s->payload_len;
		b[l3] = 0x40 | (uint8_t)(hl / 4);
		b[l3 + 2] = iplen >> 8;
		b[l3 + 3] = iplen & 0xff;
		b[l3 + 4] = 0x12;
		b[l3 + 6] = 0x40; /* DF */
		b[l3 + 8] = s->hops ? s->hops : 64;
		b[l3 + 9] = 6;
		memcpy(b + l3 + 12, src, 4);
		memcpy(b + l3 + 16, dst, 4);
		if (s->ip_opt)
			memcpy(b + l3 + 20, s->ip_opt, s->ip_opt_len);
		else if (s->ip_options)
			memset(b + l3 + 20, 1, 4); /* NOPs */
		l4 = l3 + hl;
		uint16_t c = fold(sum16(b + l3, hl, 0));
		b[l3 + 10] = c >> 8;
		b[l3 + 11] = c & 0xff;
	} else {
		size_t ext = s->ip_options ? 8 : 0;
		size_t plen = ext + thl + s->payload_len;

		b[l3] = 0x60;
		b[l3 + 4] = plen >> 8;
		b[l3 + 5] = plen & 0xff;
		b[l3 + 6] = s->ip_options ? 60 : 6;
		b[l3 + 7] = s->hops ? s->hops : 64;
		memcpy(b + l3 + 8, src, 16);
		memcpy(b + l3 + 24, dst, 16);
		if (s->ip_options) {
			b[l3 + 40] = 6;  /* next: TCP */
			b[l3 + 41] = 0;  /* 8 bytes */
			b[l3 + 42] = 1;  /* PadN */
			b[l3 + 43] = 4;
		}
		l4 = l3 + 40 + ext;
		iplen = 40 + plen;
	}
	th = b + l4;
	th[0] = s->sport >> 8;
	th[1] = s->sport & 0xff;
	th[2] = s->dport >> 8;
	th[3] = s->dport & 0xff;
	{
		uint32_t seq = htonl(s->seq), ack = htonl(s->ack);

		memcpy(th + 4, &seq, 4); /* a frame's TCP header need not be 4-byte aligned */
		memcpy(th + 8, &ack, 4);
	}
	th[12] = (uint8_t)((thl / 4) << 4);
	th[13] = s->flags;
	th[14] = 0xfa;
	th[15] = 0xf0;
	if (s->mss_option) {
		/* What Linux puts in a SYN: MSS 1460, SACK permitted, timestamps, NOP, window
		 * scale 7 (20 bytes). */
		const uint8_t opts[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x12, 0x34, 0x56, 0x78,
					   0, 0, 0, 0, 1, 3, 3, 7 };

		memcpy(th + 20, opts, 20);
	}
	memset(th + thl, 'x', s->payload_len);
	uint16_t c = l4_csum(fam, src, dst, 6, th, thl + s->payload_len);
	th[16] = c >> 8;
	th[17] = c & 0xff;
	return l3 + iplen;
}

size_t pkt_icmp_error(uint8_t *b, const char *from, const char *to, uint8_t type, uint8_t code,
		      uint32_t info, const uint8_t *quoted, size_t quoted_len, size_t l4_quoted)
{
	uint8_t src[16], dst[16];
	int fam = pkt_addr(from, src);
	size_t l3 = 14, hl = fam == 4 ? 20 : 40, qlen, len;
	const uint8_t *q = quoted + 14;
	uint8_t *ic;

	pkt_addr(to, dst);
	qlen = (fam == 4 ? (size_t)(q[0] & 0xf) * 4 : 40) + l4_quoted;
	if (qlen > quoted_len - 14)
		qlen = quoted_len - 14;
	memset(b, 0, PKT_MAX);
	put_eth(b, false, fam == 4 ? 0x0800 : 0x86dd);
	len = 8 + qlen;
	ic = b + l3 + hl;
	if (fam == 4) {
		b[l3] = 0x45;
		b[l3 + 2] = (hl + len) >> 8;
		b[l3 + 3] = (hl + len) & 0xff;
		b[l3 + 8] = 64;
		b[l3 + 9] = 1;
		memcpy(b + l3 + 12, src, 4);
		memcpy(b + l3 + 16, dst, 4);
		uint16_t c = fold(sum16(b + l3, hl, 0));
		b[l3 + 10] = c >> 8;
		b[l3 + 11] = c & 0xff;
	} else {
		b[l3] = 0x60;
		b[l3 + 4] = len >> 8;
		b[l3 + 5] = len & 0xff;
		b[l3 + 6] = 58;
		b[l3 + 7] = 64;
		memcpy(b + l3 + 8, src, 16);
		memcpy(b + l3 + 24, dst, 16);
	}
	ic[0] = type;
	ic[1] = code;
	for (int i = 0; i < 4; i++)
		ic[4 + i] = (uint8_t)(info >> (24 - 8 * i));
	memcpy(ic + 8, q, qlen);
	uint16_t c = fam == 4 ? fold(sum16(ic, len, 0)) : l4_csum(6, src, dst, 58, ic, len);
	ic[2] = c >> 8;
	ic[3] = c & 0xff;
	return l3 + hl + len;
}

size_t pkt_icmp_unreach(uint8_t *b, const char *from, const char *to, const uint8_t *quoted,
			size_t quoted_len)
{
	uint8_t a[16];
	bool v4 = pkt_addr(from, a) == 4;

	/* Host (v4) or address (v6) unreachable quoting the IP header and 8 bytes of TCP, as
	 * routers do (RFC 792). */
	return pkt_icmp_error(b, from, to, v4 ? 3 : 1, v4 ? 1 : 3, 0, quoted, quoted_len, 8);
}

bool pkt_csums_ok(const uint8_t *b, size_t len)
{
	size_t l3 = 14, l4;
	uint16_t et = b[12] << 8 | b[13];
	int fam;
	uint8_t proto;
	size_t l4len;

	if (et == 0x8100) {
		l3 += 4;
		et = b[16] << 8 | b[17];
	}
	if (et == 0x0800) {
		size_t hl = (size_t)(b[l3] & 0xf) * 4;

		if (fold(sum16(b + l3, hl, 0)) != 0)
			return false;
		fam = 4;
		proto = b[l3 + 9];
		l4 = l3 + hl;
		l4len = (size_t)(b[l3 + 2] << 8 | b[l3 + 3]) - hl;
	} else if (et == 0x86dd) {
		fam = 6;
		proto = b[l3 + 6];
		l4 = l3 + 40;
		l4len = (size_t)(b[l3 + 4] << 8 | b[l3 + 5]);
		if (proto == 60) {
			proto = b[l4];
			l4len -= (size_t)(b[l4 + 1] + 1) * 8;
			l4 += (size_t)(b[l4 + 1] + 1) * 8;
		}
	} else {
		return false;
	}
	if (l4 + l4len > len)
		return false;
	if (fam == 4 && proto == 1)
		return fold(sum16(b + l4, l4len, 0)) == 0;
	const uint8_t *src = b + l3 + (fam == 4 ? 12 : 8), *dst = b + l3 + (fam == 4 ? 16 : 24);
	return l4_csum(fam, src, dst, proto, b + l4, l4len) == 0;
}

bool pkt_parse_tcp(const uint8_t *b, size_t len, struct pkt_layout *l)
{
	size_t off = 14, hl;
	uint16_t et;
	uint8_t next;

	if (len < 14)
		return false;
	et = b[12] << 8 | b[13];
	for (int i = 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++) {
		if (off + 4 > len)
			return false;
		et = b[off + 2] << 8 | b[off + 3];
		off += 4;
	}
	l->l3 = off;
	if (et == 0x0800) {
		if (off + 20 > len || b[off] >> 4 != 4 || (b[off] & 0xf) < 5)
			return false;
		hl = (size_t)(b[off] & 0xf) * 4;
		if (off + hl > len || (b[off + 6] & 0x3f) || b[off + 7]) /* MF or an offset */
			return false;
		l->fam = 4;
		l->l3_len = (size_t)(b[off + 2] << 8 | b[off + 3]);
		next = b[off + 9];
		off += hl;
	} else if (et == 0x86dd) {
		if (off + 40 > len || b[off] >> 4 != 6)
			return false;
		l->fam = 6;
		l->l3_len = 40 + (size_t)(b[off + 4] << 8 | b[off + 5]);
		next = b[off + 6];
		off += 40;
		for (int i = 0; i < 4 && (next == 0 || next == 43 || next == 60 || next == 51); i++) {
			if (off + 2 > len)
				return false;
			hl = next == 51 ? (size_t)(b[off + 1] + 2) * 4 : (size_t)(b[off + 1] + 1) * 8;
			next = b[off];
			off += hl;
			if (off > len)
				return false;
		}
	} else {
		return false;
	}
	if (next != 6 || off + 20 > len)
		return false;
	l->l4 = off;
	l->thl = (size_t)(b[off + 12] >> 4) * 4;
	return l->thl >= 20 && off + l->thl <= len && l->l3_len >= off - l->l3 + l->thl;
}

bool pkt_layout_csums_ok(const uint8_t *b, size_t len, const struct pkt_layout *l)
{
	size_t l4_len = l->l3_len - (l->l4 - l->l3);

	if (l->l3 + l->l3_len > len)
		return false;
	if (l->fam == 4 && fold(sum16(b + l->l3, (size_t)(b[l->l3] & 0xf) * 4, 0)) != 0)
		return false;
	return l4_csum(l->fam, b + l->l3 + (l->fam == 4 ? 12 : 8), b + l->l3 + (l->fam == 4 ? 16 : 24),
		       6, b + l->l4, l4_len) == 0;
}
