/*
 * netset: IPv4/IPv6 addresses, CIDR sets and the built-in special-purpose
 * ranges.  No I/O.
 */
#include "netset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An IPv4 address written as four octets, host byte order. */
#define V4(a, b, c, d)                                                         \
	(((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) |                       \
	 ((uint32_t)(c) << 8) | (uint32_t)(d))

struct special_v4 {
	uint32_t net;
	unsigned prefix;
	const char *name;
	/* The same range met inside an IPv6 form that carries IPv4. */
	const char *nat64;
	const char *sixto4;
	const char *teredo;
};

#define SPECIAL_V4(a, b, c, d, len, nm)                                        \
	{                                                                      \
		V4(a, b, c, d), len, nm, "nat64:" nm, "6to4:" nm, "teredo:" nm \
	}

/*
 * IANA IPv4 Special-Purpose Address Registry, plus multicast and the rest of
 * the old class E.  First match names the range, so the broadcast address
 * comes before 240.0.0.0/4 that holds it.
 */
static const struct special_v4 special_v4[] = {
    SPECIAL_V4(0, 0, 0, 0, 8, "this-network"),
    SPECIAL_V4(10, 0, 0, 0, 8, "private"),
    SPECIAL_V4(100, 64, 0, 0, 10, "cgnat"),
    SPECIAL_V4(127, 0, 0, 0, 8, "loopback"),
    SPECIAL_V4(169, 254, 0, 0, 16, "link-local"),
    SPECIAL_V4(172, 16, 0, 0, 12, "private"),
    SPECIAL_V4(192, 0, 0, 0, 24, "ietf-protocol"),
    SPECIAL_V4(192, 0, 2, 0, 24, "documentation"),
    SPECIAL_V4(192, 31, 196, 0, 24, "as112"),
    SPECIAL_V4(192, 52, 193, 0, 24, "amt"),
    SPECIAL_V4(192, 88, 99, 0, 24, "6to4-relay"),
    SPECIAL_V4(192, 168, 0, 0, 16, "private"),
    SPECIAL_V4(192, 175, 48, 0, 24, "as112"),
    SPECIAL_V4(198, 18, 0, 0, 15, "benchmarking"),
    SPECIAL_V4(198, 51, 100, 0, 24, "documentation"),
    SPECIAL_V4(203, 0, 113, 0, 24, "documentation"),
    SPECIAL_V4(224, 0, 0, 0, 4, "multicast"),
    SPECIAL_V4(255, 255, 255, 255, 32, "broadcast"),
    SPECIAL_V4(240, 0, 0, 0, 4, "reserved"),
};

struct special_v6 {
	struct cidr range;
	const char *name;
};

/*
 * IANA IPv6 Special-Purpose Address Registry, less the forms that carry an
 * IPv4 address (mapped, NAT64, 6to4, Teredo): those are judged by the IPv4
 * address inside them, before this table is consulted.
 */
static const struct special_v6 special_v6[] = {
    {{{{0}}, 128}, "unspecified"},
    {{{{[15] = 1}}, 128}, "loopback"},
    {{{{0}}, 96}, "ipv4-compatible"},
    {{{{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}}, 48}, "nat64-local"},
    {{{{0x01, 0x00}}, 64}, "discard"},
    {{{{0x20, 0x01, 0x0d, 0xb8}}, 32}, "documentation"},
    {{{{0x20, 0x01}}, 23}, "ietf-protocol"},
    {{{{0x3f, 0xff}}, 20}, "documentation"},
    {{{{0x5f, 0x00}}, 16}, "srv6"},
    {{{{0xfc}}, 7}, "ula"},
    {{{{0xfe, 0x80}}, 10}, "link-local"},
    {{{{0xfe, 0xc0}}, 10}, "site-local"},
    {{{{0xff}}, 8}, "multicast"},
};

/* The IPv6 forms that carry an IPv4 address. */
static const struct cidr v4_mapped = {{{[10] = 0xff, [11] = 0xff}}, 96};
static const struct cidr nat64 = {{{0x00, 0x64, 0xff, 0x9b}}, 96};
static const struct cidr sixto4 = {{{0x20, 0x02}}, 16};
static const struct cidr teredo = {{{0x20, 0x01, 0x00, 0x00}}, 32};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t
v4_mask(unsigned prefix)
{
	return (uint32_t)(UINT64_C(0xffffffff) << (32 - prefix));
}

/* Four bytes of an address, from byte off, as a host-order integer. */
static uint32_t
netaddr_u32(const struct netaddr *a, size_t off)
{
	return ((uint32_t)a->b[off] << 24) | ((uint32_t)a->b[off + 1] << 16) |
	       ((uint32_t)a->b[off + 2] << 8) | (uint32_t)a->b[off + 3];
}

static void
netaddr_set_v4(struct netaddr *a, uint32_t v4)
{
	memset(a->b, 0, 10);
	a->b[10] = 0xff;
	a->b[11] = 0xff;
	a->b[12] = (uint8_t)(v4 >> 24);
	a->b[13] = (uint8_t)(v4 >> 16);
	a->b[14] = (uint8_t)(v4 >> 8);
	a->b[15] = (uint8_t)v4;
}

/* Do a and b agree on their first prefix bits? */
static int
prefix_equal(const struct netaddr *a, const struct netaddr *b, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a->b, b->b, bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return (a->b[bytes] & mask) == (b->b[bytes] & mask);
}

/* Is inner wholly inside outer? */
static int
cidr_within(const struct cidr *inner, const struct cidr *outer)
{
	return inner->prefix >= outer->prefix &&
	       prefix_equal(&inner->net, &outer->net, outer->prefix);
}

int
netaddr_is_v4(const struct netaddr *a)
{
	return prefix_equal(a, &v4_mapped.net, 96);
}

int
netaddr_from_sockaddr(struct netaddr *a, const struct sockaddr *sa)
{
	if (sa == NULL)
		return -1;
	/* Copied out, so that sa need not be aligned for the larger type. */
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof(sin));
		netaddr_set_v4(a, ntohl(sin.sin_addr.s_addr));
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(a->b, sin6.sin6_addr.s6_addr, 16);
		return 0;
	}
	return -1;
}

socklen_t
netaddr_to_sockaddr(const struct netaddr *a, uint16_t port,
                    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (netaddr_is_v4(a)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(netaddr_u32(a, 12));
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(sin6->sin6_addr.s6_addr, a->b, 16);
	return sizeof(*sin6);
}

/*
 * RFC 5952 text of the full 128 bits, in hex even for mapped addresses:
 * lowercase, no leading zeros, the longest run of two or more zero groups
 * (the first, on a tie) shortened to "::".  Written here rather than left to
 * inet_ntop, which prints some IPv4-compatible addresses in dotted form.
 */
static void
netaddr_str_v6(const struct netaddr *a, char *buf)
{
	unsigned g[8];
	int best = -1, best_len = 0;

	for (int i = 0; i < 8; i++)
		g[i] = ((unsigned)a->b[2 * i] << 8) | a->b[2 * i + 1];
	for (int i = 0; i < 8;) {
		if (g[i] != 0) {
			i++;
			continue;
		}
		int j = i;
		while (j < 8 && g[j] == 0)
			j++;
		if (j - i > best_len) {
			best = i;
			best_len = j - i;
		}
		i = j;
	}
	if (best_len < 2)
		best = -1;

	char *p = buf;
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			*p++ = ':';
			*p++ = ':';
			i += best_len - 1;
			continue;
		}
		if (i > 0 && i != best + best_len)
			*p++ = ':';
		p += sprintf(p, "%x", g[i]);
	}
	*p = '\0';
}

const char *
netaddr_str(const struct netaddr *a, char *buf)
{
	if (netaddr_is_v4(a)) {
		snprintf(buf, NETADDR_STRLEN, "%u.%u.%u.%u", a->b[12], a->b[13],
		         a->b[14], a->b[15]);
		return buf;
	}
	netaddr_str_v6(a, buf);
	return buf;
}

const char *
cidr_str(const struct cidr *c, char *buf)
{
	size_t n;

	if (netaddr_is_v4(&c->net) && c->prefix >= 96) {
		netaddr_str(&c->net, buf);
		n = strlen(buf);
		snprintf(buf + n, NETADDR_STRLEN - n, "/%u", c->prefix - 96);
		return buf;
	}
	netaddr_str_v6(&c->net, buf);
	n = strlen(buf);
	snprintf(buf + n, NETADDR_STRLEN - n, "/%u", c->prefix);
	return buf;
}

/*
 * A strict dotted quad: four decimal parts of 1..3 digits, each at most 255,
 * no leading zeros.  inet_aton's other spellings ("127.1", "0x7f.1",
 * "0177.0.0.1") are how a filter and a resolver come to disagree.
 */
static int
parse_v4(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return -1;
			i++;
		}
		size_t start = i;
		unsigned octet = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			octet = octet * 10 + (unsigned)(s[i++] - '0');
		size_t digits = i - start;
		if (digits == 0 || octet > 255 ||
		    (digits > 1 && s[start] == '0'))
			return -1;
		v = (v << 8) | octet;
	}
	if (i != len)
		return -1;
	*out = v;
	return 0;
}

/* An IPv6 address: hex digits, colons and an optional trailing dotted quad. */
static int
parse_v6(const char *s, size_t len, struct netaddr *out)
{
	char buf[INET6_ADDRSTRLEN];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
			return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
}

/* The prefix length: plain decimal, "0" or no leading zero. */
static int
parse_prefix(const char *s, unsigned max, unsigned *out)
{
	size_t len = strlen(s);
	unsigned v = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static void
netaddr_mask(struct netaddr *a, unsigned prefix)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned lo = i * 8;
		if (prefix >= lo + 8)
			continue;
		a->b[i] =
		    prefix <= lo
		        ? 0
		        : (uint8_t)(a->b[i] & (0xff << (8 - (prefix - lo))));
	}
}

int
cidr_parse(const char *s, struct cidr *out, const char **why)
{
	/* Room for the longest message and network text; per thread so that
	 * config checks on two threads do not overwrite each other. */
	static _Thread_local char why_buf[128];
	const char *dummy;
	struct cidr c;
	unsigned plen;

	if (why == NULL)
		why = &dummy;
	if (s == NULL || *s == '\0') {
		*why = "empty network";
		return -1;
	}
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	int is_v6 = memchr(s, ':', alen) != NULL;

	if (is_v6) {
		if (memchr(s, '%', alen) != NULL) {
			*why = "zone ids are not allowed in networks";
			return -1;
		}
		if (parse_v6(s, alen, &c.net) != 0) {
			*why = "not an IPv6 address";
			return -1;
		}
	} else {
		uint32_t v4;
		if (parse_v4(s, alen, &v4) != 0) {
			*why = "not a dotted-quad IPv4 address (four decimal "
			       "parts 0-255, no leading zeros)";
			return -1;
		}
		netaddr_set_v4(&c.net, v4);
	}

	if (slash == NULL) {
		plen = is_v6 ? 128 : 32;
	} else if (parse_prefix(slash + 1, is_v6 ? 128 : 32, &plen) != 0) {
		*why = is_v6 ? "prefix length must be 0-128 in plain decimal"
		             : "prefix length must be 0-32 in plain decimal";
		return -1;
	}
	c.prefix = is_v6 ? plen : plen + 96;

	struct cidr masked = c;
	netaddr_mask(&masked.net, masked.prefix);
	if (memcmp(masked.net.b, c.net.b, 16) != 0) {
		char net[NETADDR_STRLEN];
		snprintf(why_buf, sizeof(why_buf),
		         "host bits set (did you mean %s?)",
		         cidr_str(&masked, net));
		*why = why_buf;
		return -1;
	}
	*out = c;
	return 0;
}

int
cidr_contains(const struct cidr *c, const struct netaddr *a)
{
	return prefix_equal(&c->net, a, c->prefix);
}

int
netset_add(struct netset *s, const struct cidr *c)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		if (cap > SIZE_MAX / sizeof(*s->v))
			return -1;
		struct cidr *v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *c;
	return 0;
}

const struct cidr *
netset_find(const struct netset *s, const struct netaddr *a)
{
	for (size_t i = 0; i < s->n; i++)
		if (cidr_contains(&s->v[i], a))
			return &s->v[i];
	return NULL;
}

void
netset_free(struct netset *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static const struct special_v4 *
special_v4_find(uint32_t v4)
{
	for (size_t i = 0; i < NELEM(special_v4); i++) {
		const struct special_v4 *e = &special_v4[i];
		if ((v4 & v4_mask(e->prefix)) == e->net)
			return e;
	}
	return NULL;
}

const char *
netset_special(const struct netaddr *a)
{
	const struct special_v4 *e;

	if (netaddr_is_v4(a)) {
		e = special_v4_find(netaddr_u32(a, 12));
		return e != NULL ? e->name : NULL;
	}
	if (cidr_contains(&nat64, a)) {
		e = special_v4_find(netaddr_u32(a, 12));
		return e != NULL ? e->nat64 : NULL;
	}
	if (cidr_contains(&sixto4, a)) {
		/* RFC 3056 §2: 2002:V4ADDR::/48. */
		e = special_v4_find(netaddr_u32(a, 2));
		return e != NULL ? e->sixto4 : NULL;
	}
	if (cidr_contains(&teredo, a)) {
		/* RFC 4380 §4: the server's IPv4 address in bits 32..63, the
		 * client's, inverted, in the last 32 bits. */
		e = special_v4_find(netaddr_u32(a, 4));
		if (e == NULL)
			e = special_v4_find(~netaddr_u32(a, 12));
		return e != NULL ? e->teredo : NULL;
	}
	for (size_t i = 0; i < NELEM(special_v6); i++)
		if (cidr_contains(&special_v6[i].range, a))
			return special_v6[i].name;
	return NULL;
}

/* Is the IPv4 network v4/prefix inside one special-purpose range? */
static int
v4_cidr_is_special(uint32_t v4, unsigned prefix)
{
	v4 &= v4_mask(prefix);
	for (size_t i = 0; i < NELEM(special_v4); i++) {
		const struct special_v4 *e = &special_v4[i];
		if (prefix >= e->prefix && (v4 & v4_mask(e->prefix)) == e->net)
			return 1;
	}
	return 0;
}

static unsigned
min_u(unsigned a, unsigned b)
{
	return a < b ? a : b;
}

int
netset_cidr_is_special(const struct cidr *c)
{
	static const struct cidr *const carriers[] = {
	    &v4_mapped,
	    &nat64,
	    &sixto4,
	    &teredo,
	};

	/* Inside a form that carries IPv4, judge the IPv4 prefix it fixes. */
	if (cidr_within(c, &v4_mapped) || cidr_within(c, &nat64))
		return v4_cidr_is_special(netaddr_u32(&c->net, 12),
		                          c->prefix - 96);
	if (cidr_within(c, &sixto4))
		return v4_cidr_is_special(netaddr_u32(&c->net, 2),
		                          min_u(c->prefix, 48) - 16);
	if (cidr_within(c, &teredo)) {
		if (v4_cidr_is_special(netaddr_u32(&c->net, 4),
		                       min_u(c->prefix, 64) - 32))
			return 1;
		return c->prefix > 96 &&
		       v4_cidr_is_special(~netaddr_u32(&c->net, 12),
		                          c->prefix - 96);
	}
	/* A wider network holds carried global addresses too: 2001::/23
	 * is special but the Teredo addresses inside it need not be. */
	for (size_t i = 0; i < NELEM(carriers); i++)
		if (cidr_within(carriers[i], c))
			return 0;
	for (size_t i = 0; i < NELEM(special_v6); i++)
		if (cidr_within(c, &special_v6[i].range))
			return 1;
	return 0;
}
