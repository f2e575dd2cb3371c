/*
 * Unit tests for host: name normalisation, strict IP literals, authorities
 * and host patterns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Copy into a heap buffer of exactly len bytes, without a terminating NUL,
 * so that AddressSanitizer catches any read past the length.
 */
static char *
dup_exact(const char *s, size_t len)
{
	char *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static const char *
kind_str(enum host_kind k)
{
	switch (k) {
	case HOST_NAME:
		return "name";
	case HOST_IPV4:
		return "ipv4";
	case HOST_IPV6:
		return "ipv6";
	}
	return "?";
}

/* A string of n copies of c. */
static char *
repeat(char c, size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	memset(p, c, n);
	p[n] = '\0';
	return p;
}

struct parse_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	int brackets;
	int rc;
	enum host_kind kind;
	const char *name;
};

static int
run_parse_case(const struct parse_case *t)
{
	size_t len = t->len ? t->len : strlen(t->in);
	char *buf = dup_exact(t->in, len);
	struct host h;
	int rc, bad = 0;

	memset(&h, 0x5a, sizeof(h));
	rc = host_parse(buf, len, t->brackets, &h);
	if (rc != t->rc) {
		print_error("host_parse(\"%.*s\", %d) = %d, want %d\n",
		            (int)len, t->in, t->brackets, rc, t->rc);
		bad = 1;
	} else if (rc == 0 &&
	           (h.kind != t->kind || strcmp(h.name, t->name) != 0)) {
		print_error("host_parse(\"%.*s\", %d) = %s \"%s\", want %s "
		            "\"%s\"\n",
		            (int)len, t->in, t->brackets, kind_str(h.kind),
		            h.name, kind_str(t->kind), t->name);
		bad = 1;
	} else if (rc == 0 && h.kind != HOST_NAME) {
		/* The address is the one the canonical text names. */
		struct netaddr want;
		char text[NETADDR_STRLEN];
		struct in_addr in;

		memset(&want, 0, sizeof(want));
		if (inet_pton(AF_INET, h.name, &in) == 1) {
			want.b[10] = want.b[11] = 0xff;
			memcpy(want.b + 12, &in, 4);
		} else {
			assert_int_equal(inet_pton(AF_INET6, h.name, want.b),
			                 1);
		}
		if (memcmp(&want, &h.addr, sizeof(want)) != 0 ||
		    strcmp(netaddr_str(&h.addr, text), h.name) != 0 ||
		    netaddr_is_v4(&h.addr) != (h.kind == HOST_IPV4)) {
			print_error("host_parse(\"%.*s\"): address does not "
			            "match \"%s\"\n",
			            (int)len, t->in, h.name);
			bad = 1;
		}
	}
	free(buf);
	return bad;
}

static int
run_parse_table(const struct parse_case *t, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += run_parse_case(&t[i]);
	return bad;
}

static void
test_parse_names(void **state)
{
	static const struct parse_case t[] = {
	    {"example.com", 0, 1, 0, HOST_NAME, "example.com"},
	    {"example.com", 0, 0, 0, HOST_NAME, "example.com"},
	    {"example.com.", 0, 1, 0, HOST_NAME, "example.com"},
	    {"EXAMPLE.com", 0, 1, 0, HOST_NAME, "example.com"},
	    {"Api.OpenAI.COM.", 0, 1, 0, HOST_NAME, "api.openai.com"},
	    {"xn--bcher-kva.example", 0, 1, 0, HOST_NAME,
	     "xn--bcher-kva.example"},
	    {"a", 0, 1, 0, HOST_NAME, "a"},
	    {"A.", 0, 1, 0, HOST_NAME, "a"},
	    {"localhost", 0, 1, 0, HOST_NAME, "localhost"},
	    {"3com.com", 0, 1, 0, HOST_NAME, "3com.com"},
	    {"a-b.c--d.e", 0, 1, 0, HOST_NAME, "a-b.c--d.e"},
	    {"a1.b2", 0, 1, 0, HOST_NAME, "a1.b2"},
	    {"1.2.example", 0, 1, 0, HOST_NAME, "1.2.example"},
	    {"10.0.0.5.nip.io", 0, 1, 0, HOST_NAME, "10.0.0.5.nip.io"},
	    {"deadbeef", 0, 1, 0, HOST_NAME, "deadbeef"},
	    {"a.0xg", 0, 1, 0, HOST_NAME, "a.0xg"},
	    {"0x.com", 0, 1, 0, HOST_NAME, "0x.com"},
	    {"1.2.3.4e", 0, 1, 0, HOST_NAME, "1.2.3.4e"},
	    {"a.b.c.d.e.f.g", 0, 1, 0, HOST_NAME, "a.b.c.d.e.f.g"},
	    {"git.git-system.svc.cluster.local", 0, 1, 0, HOST_NAME,
	     "git.git-system.svc.cluster.local"},

	    {"", 0, 1, -1, HOST_NAME, NULL},
	    {".", 0, 1, -1, HOST_NAME, NULL},
	    {"..", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com..", 0, 1, -1, HOST_NAME, NULL},
	    {".example.com", 0, 1, -1, HOST_NAME, NULL},
	    {"a..b", 0, 1, -1, HOST_NAME, NULL},
	    {"example..com", 0, 0, -1, HOST_NAME, NULL},
	    {"-a.com", 0, 1, -1, HOST_NAME, NULL},
	    {"a-.com", 0, 1, -1, HOST_NAME, NULL},
	    {"a.-b.com", 0, 1, -1, HOST_NAME, NULL},
	    {"a.b-.com", 0, 1, -1, HOST_NAME, NULL},
	    {"a.com-", 0, 1, -1, HOST_NAME, NULL},
	    {"-", 0, 1, -1, HOST_NAME, NULL},
	    {"exa mple.com", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com ", 0, 1, -1, HOST_NAME, NULL},
	    {" example.com", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com\t", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com\r\n", 0, 1, -1, HOST_NAME, NULL},
	    {"_dmarc.example.com", 0, 1, -1, HOST_NAME, NULL},
	    {"ex_ample.com", 0, 1, -1, HOST_NAME, NULL},
	    {"exa%41mple.com", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com%00", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com/", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com\\", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com?", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com#", 0, 1, -1, HOST_NAME, NULL},
	    {"*.example.com", 0, 1, -1, HOST_NAME, NULL},
	    {"@evil.com", 0, 1, -1, HOST_NAME, NULL},
	    {"user@example.com", 0, 1, -1, HOST_NAME, NULL},
	    {"ex\0ample.com", 12, 1, -1, HOST_NAME, NULL},
	    {"example.com\0", 12, 1, -1, HOST_NAME, NULL},
	    {"\0", 1, 1, -1, HOST_NAME, NULL},
	    {"b\xc3\xbc"
	     "cher.example",
	     0, 1, -1, HOST_NAME, NULL},
	    {"\xff.com", 0, 1, -1, HOST_NAME, NULL},
	    {"exampl\xc5\xbf.com", 0, 1, -1, HOST_NAME, NULL},
	    {"example\xe3\x80\x82"
	     "com",
	     0, 1, -1, HOST_NAME, NULL},
	    {"example.com:443", 0, 1, -1, HOST_NAME, NULL},
	    {"example.com:443", 0, 0, -1, HOST_NAME, NULL},
	    {"[example.com]", 0, 1, -1, HOST_NAME, NULL},
	    {"[example.com]", 0, 0, -1, HOST_NAME, NULL},
	};

	(void)state;
	assert_int_equal(run_parse_table(t, NELEM(t)), 0);
}

static void
test_parse_lengths(void **state)
{
	char *l63 = repeat('a', 63), *l64 = repeat('b', 64);
	/* 4 labels of 62 plus 4 dots = 251; then "x" or "xyz". */
	char *l62 = repeat('c', 62);
	char n253[300], n254[300], n253dot[310], n255[300];

	(void)state;
	snprintf(n253, sizeof(n253), "%s.%s.%s.%s.x", l62, l62, l62, l62);
	snprintf(n254, sizeof(n254), "%s.%s.%s.%s.xy", l62, l62, l62, l62);
	snprintf(n253dot, sizeof(n253dot), "%s.", n253);
	snprintf(n255, sizeof(n255), "%s.%s.%s.%s", l63, l63, l63, l63);
	assert_int_equal(strlen(n253), 253);
	assert_int_equal(strlen(n254), 254);
	assert_int_equal(strlen(n255), 255);

	const struct parse_case t[] = {
	    {l63, 0, 1, 0, HOST_NAME, l63},
	    {l64, 0, 1, -1, HOST_NAME, NULL},
	    {n253, 0, 1, 0, HOST_NAME, n253},
	    {n253dot, 0, 1, 0, HOST_NAME, n253},
	    {n254, 0, 1, -1, HOST_NAME, NULL},
	    {n255, 0, 1, -1, HOST_NAME, NULL},
	};
	assert_int_equal(run_parse_table(t, NELEM(t)), 0);

	/* An over-long label in the middle of a name. */
	char mid[300];
	snprintf(mid, sizeof(mid), "a.%s.com", l64);
	struct host h;
	assert_int_equal(host_parse(mid, strlen(mid), 1, &h), -1);

	free(l63);
	free(l64);
	free(l62);
}

static void
test_parse_ipv4(void **state)
{
	static const struct parse_case t[] = {
	    {"10.0.0.5", 0, 1, 0, HOST_IPV4, "10.0.0.5"},
	    {"10.0.0.5", 0, 0, 0, HOST_IPV4, "10.0.0.5"},
	    {"0.0.0.0", 0, 1, 0, HOST_IPV4, "0.0.0.0"},
	    {"127.0.0.1", 0, 1, 0, HOST_IPV4, "127.0.0.1"},
	    {"169.254.169.254", 0, 1, 0, HOST_IPV4, "169.254.169.254"},
	    {"255.255.255.255", 0, 1, 0, HOST_IPV4, "255.255.255.255"},
	    {"1.2.3.4", 0, 1, 0, HOST_IPV4, "1.2.3.4"},
	    {"100.10.1.0", 0, 1, 0, HOST_IPV4, "100.10.1.0"},

	    /* Numeric forms a lenient parser reads as 127.0.0.1. */
	    {"2130706433", 0, 1, -1, HOST_NAME, NULL},
	    {"2130706433", 0, 0, -1, HOST_NAME, NULL},
	    {"0x7f.1", 0, 1, -1, HOST_NAME, NULL},
	    {"0177.0.0.1", 0, 1, -1, HOST_NAME, NULL},
	    {"127.1", 0, 1, -1, HOST_NAME, NULL},
	    {"127.0.1", 0, 1, -1, HOST_NAME, NULL},
	    {"127.0.0.1.", 0, 1, -1, HOST_NAME, NULL},
	    {"127.0.0.1..", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3.4.5", 0, 1, -1, HOST_NAME, NULL},
	    {"0x7f000001", 0, 1, -1, HOST_NAME, NULL},
	    {"0X7F000001", 0, 1, -1, HOST_NAME, NULL},
	    {"0x7F.0.0.1", 0, 1, -1, HOST_NAME, NULL},
	    {"127.000.0.1", 0, 1, -1, HOST_NAME, NULL},
	    {"127.0.0.01", 0, 1, -1, HOST_NAME, NULL},
	    {"127.0.0.0x1", 0, 1, -1, HOST_NAME, NULL},
	    {"017700000001", 0, 1, -1, HOST_NAME, NULL},
	    {"01.2.3.4", 0, 1, -1, HOST_NAME, NULL},
	    {"256.0.0.1", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3.256", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3.1000", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3", 0, 1, -1, HOST_NAME, NULL},
	    {"1", 0, 1, -1, HOST_NAME, NULL},
	    {"0", 0, 1, -1, HOST_NAME, NULL},
	    {"0x", 0, 1, -1, HOST_NAME, NULL},
	    {".1.2.3.4", 0, 1, -1, HOST_NAME, NULL},
	    {"1..2.3.4", 0, 1, -1, HOST_NAME, NULL},
	    {"-1.2.3.4", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3.-4", 0, 1, -1, HOST_NAME, NULL},
	    {"1.2.3.4 ", 0, 1, -1, HOST_NAME, NULL},
	    /* A name whose last label is numeric is an attempted
	     * address (WHATWG URL "ends in a number"), so malformed. */
	    {"example.123", 0, 1, -1, HOST_NAME, NULL},
	    {"example.0x1f", 0, 1, -1, HOST_NAME, NULL},
	    {"example.0X", 0, 1, -1, HOST_NAME, NULL},
	    {"a.1.", 0, 1, -1, HOST_NAME, NULL},
	    {"1.0x2", 0, 1, -1, HOST_NAME, NULL},
	    {"[1.2.3.4]", 0, 1, -1, HOST_NAME, NULL},
	    {"[1.2.3.4]", 0, 0, -1, HOST_NAME, NULL},
	};

	(void)state;
	assert_int_equal(run_parse_table(t, NELEM(t)), 0);
}

static void
test_parse_ipv6(void **state)
{
	static const struct parse_case t[] = {
	    {"[2001:db8::1]", 0, 1, 0, HOST_IPV6, "2001:db8::1"},
	    {"[2001:DB8:0:0:0:0:0:1]", 0, 1, 0, HOST_IPV6, "2001:db8::1"},
	    {"[::1]", 0, 1, 0, HOST_IPV6, "::1"},
	    {"[::]", 0, 1, 0, HOST_IPV6, "::"},
	    {"[fe80::1]", 0, 1, 0, HOST_IPV6, "fe80::1"},
	    {"[64:ff9b::127.0.0.1]", 0, 1, 0, HOST_IPV6, "64:ff9b::7f00:1"},
	    {"[::127.0.0.1]", 0, 1, 0, HOST_IPV6, "::7f00:1"},
	    /* Mapped IPv4 is IPv4, as it is stored and connected to. */
	    {"[::ffff:127.0.0.1]", 0, 1, 0, HOST_IPV4, "127.0.0.1"},
	    {"[::FFFF:7f00:1]", 0, 1, 0, HOST_IPV4, "127.0.0.1"},
	    /* Unbracketed only where brackets are optional. */
	    {"2001:db8::1", 0, 0, 0, HOST_IPV6, "2001:db8::1"},
	    {"[2001:db8::1]", 0, 0, 0, HOST_IPV6, "2001:db8::1"},
	    {"::1", 0, 0, 0, HOST_IPV6, "::1"},
	    {"2001:db8::1", 0, 1, -1, HOST_NAME, NULL},
	    {"::1", 0, 1, -1, HOST_NAME, NULL},
	    {"::ffff:127.0.0.1", 0, 1, -1, HOST_NAME, NULL},

	    {"[fe80::1%eth0]", 0, 1, -1, HOST_NAME, NULL},
	    {"[fe80::1%25eth0]", 0, 1, -1, HOST_NAME, NULL},
	    {"fe80::1%eth0", 0, 0, -1, HOST_NAME, NULL},
	    {"[::ffff:127.0.0.01]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::ffff:127.1]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::ffff:0x7f.0.0.1]", 0, 1, -1, HOST_NAME, NULL},
	    {"[1:2:3:4:5:6:7:8:9]", 0, 1, -1, HOST_NAME, NULL},
	    {"[1::2::3]", 0, 1, -1, HOST_NAME, NULL},
	    {"[12345::]", 0, 1, -1, HOST_NAME, NULL},
	    {"[g::]", 0, 1, -1, HOST_NAME, NULL},
	    {"[ ::1]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::1 ]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::1/128]", 0, 1, -1, HOST_NAME, NULL},
	    {"[v1.fe]", 0, 1, -1, HOST_NAME, NULL},
	    {"[]", 0, 1, -1, HOST_NAME, NULL},
	    {"[", 0, 1, -1, HOST_NAME, NULL},
	    {"]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::1", 0, 1, -1, HOST_NAME, NULL},
	    {"::1]", 0, 1, -1, HOST_NAME, NULL},
	    {"[[::1]]", 0, 1, -1, HOST_NAME, NULL},
	    {"[::1]x", 0, 1, -1, HOST_NAME, NULL},
	    {"[::1]:443", 0, 1, -1, HOST_NAME, NULL},
	    {"[:]", 0, 1, -1, HOST_NAME, NULL},
	    {"[:::]", 0, 1, -1, HOST_NAME, NULL},
	};

	(void)state;
	assert_int_equal(run_parse_table(t, NELEM(t)), 0);
}

/* The length is authoritative: what follows it is never read. */
static void
test_parse_not_nul_terminated(void **state)
{
	static const struct parse_case t[] = {
	    {"example.com.evil.net", 11, 1, 0, HOST_NAME, "example.com"},
	    {"example.com.", 11, 1, 0, HOST_NAME, "example.com"},
	    {"example.com_", 11, 1, 0, HOST_NAME, "example.com"},
	    {"10.0.0.55", 8, 1, 0, HOST_IPV4, "10.0.0.5"},
	    {"10.0.0.5", 7, 1, -1, HOST_NAME, NULL},
	    {"127.0.0.1x", 9, 1, 0, HOST_IPV4, "127.0.0.1"},
	    {"[::1]:443", 5, 1, 0, HOST_IPV6, "::1"},
	    {"[::1]", 4, 1, -1, HOST_NAME, NULL},
	    {"a.b", 1, 1, 0, HOST_NAME, "a"},
	};
	struct host h;

	(void)state;
	assert_int_equal(run_parse_table(t, NELEM(t)), 0);
	assert_int_equal(host_parse("example.com", 0, 1, &h), -1);
	assert_int_equal(host_parse(NULL, 0, 1, &h), -1);
}

struct authority_case {
	const char *in;
	uint16_t default_port;
	int rc;
	const char *name;
	uint16_t port;
};

static void
test_parse_authority(void **state)
{
	static const struct authority_case t[] = {
	    {"example.com:443", 0, 0, "example.com", 443},
	    {"example.com:443", 80, 0, "example.com", 443},
	    {"example.com", 443, 0, "example.com", 443},
	    {"example.com", 0, -1, NULL, 0},
	    {"Example.COM.:8443", 0, 0, "example.com", 8443},
	    {"example.com.:443", 0, 0, "example.com", 443},
	    {"[2001:db8::1]:443", 0, 0, "2001:db8::1", 443},
	    {"[::1]", 80, 0, "::1", 80},
	    {"[::1]", 0, -1, NULL, 0},
	    {"[::ffff:10.0.0.1]:443", 0, 0, "10.0.0.1", 443},
	    {"10.0.0.5:22", 0, 0, "10.0.0.5", 22},
	    {"10.0.0.5", 443, 0, "10.0.0.5", 443},
	    {"example.com:1", 0, 0, "example.com", 1},
	    {"example.com:9", 0, 0, "example.com", 9},
	    {"example.com:65535", 0, 0, "example.com", 65535},
	    {"example.com:10000", 0, 0, "example.com", 10000},

	    {"example.com:65536", 0, -1, NULL, 0},
	    {"example.com:99999", 0, -1, NULL, 0},
	    {"example.com:123456", 0, -1, NULL, 0},
	    {"example.com:0", 443, -1, NULL, 0},
	    {"example.com:00", 0, -1, NULL, 0},
	    {"example.com:0443", 0, -1, NULL, 0},
	    {"example.com:00443", 0, -1, NULL, 0},
	    {"example.com:+443", 0, -1, NULL, 0},
	    {"example.com:-1", 0, -1, NULL, 0},
	    {"example.com: 443", 0, -1, NULL, 0},
	    {"example.com:443 ", 0, -1, NULL, 0},
	    {"example.com :443", 0, -1, NULL, 0},
	    {"example.com:", 443, -1, NULL, 0},
	    {"example.com:4a", 0, -1, NULL, 0},
	    {"example.com:0x1bb", 0, -1, NULL, 0},
	    {"example.com:443:443", 0, -1, NULL, 0},
	    {"example.com::443", 0, -1, NULL, 0},
	    {"example.com:443/", 0, -1, NULL, 0},

	    {"user@example.com:443", 0, -1, NULL, 0},
	    {"user:pass@example.com", 443, -1, NULL, 0},
	    {"example.com@evil.com", 443, -1, NULL, 0},
	    {"example.com:443@evil.com:443", 0, -1, NULL, 0},
	    {"@", 443, -1, NULL, 0},
	    {"[::1]@x:443", 0, -1, NULL, 0},

	    {":443", 0, -1, NULL, 0},
	    {"", 443, -1, NULL, 0},
	    {":", 443, -1, NULL, 0},
	    {"[]:443", 0, -1, NULL, 0},
	    {"2001:db8::1:443", 0, -1, NULL, 0},
	    {"::1", 443, -1, NULL, 0},
	    {"[2001:db8::1]443", 0, -1, NULL, 0},
	    {"[2001:db8::1]:", 0, -1, NULL, 0},
	    {"[2001:db8::1", 443, -1, NULL, 0},
	    {"[::1]]:443", 0, -1, NULL, 0},
	    {"[fe80::1%25eth0]:443", 0, -1, NULL, 0},
	    {"[10.0.0.1]:443", 0, -1, NULL, 0},
	    {"127.1:443", 0, -1, NULL, 0},
	    {"2130706433:80", 0, -1, NULL, 0},
	    {"0x7f.1:80", 0, -1, NULL, 0},
	    {"exa mple.com:443", 0, -1, NULL, 0},
	    {"a..b:443", 0, -1, NULL, 0},
	    {"example.com..:443", 0, -1, NULL, 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		size_t len = strlen(t[i].in);
		char *buf = dup_exact(t[i].in, len);
		struct host h;
		uint16_t port = 7;
		int rc = host_parse_authority(buf, len, t[i].default_port, &h,
		                              &port);

		if (rc != t[i].rc) {
			print_error("host_parse_authority(\"%s\", %u) = %d, "
			            "want %d\n",
			            t[i].in, t[i].default_port, rc, t[i].rc);
			bad++;
		} else if (rc == 0 && (strcmp(h.name, t[i].name) != 0 ||
		                       port != t[i].port)) {
			print_error("host_parse_authority(\"%s\") = %s port "
			            "%u, want %s port %u\n",
			            t[i].in, h.name, port, t[i].name,
			            t[i].port);
			bad++;
		}
		free(buf);
	}
	assert_int_equal(bad, 0);

	/* The length, not a NUL, ends the authority. */
	struct host h;
	uint16_t port;
	assert_int_equal(
	    host_parse_authority("example.com:4433", 15, 0, &h, &port), 0);
	assert_string_equal(h.name, "example.com");
	assert_int_equal(port, 443);
	assert_int_equal(
	    host_parse_authority("example.com:443", 11, 8080, &h, &port), 0);
	assert_int_equal(port, 8080);
	assert_int_equal(
	    host_parse_authority("example.com:443", 12, 8080, &h, &port), -1);
}

static void
test_pattern_parse_ok(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} t[] = {
	    {"api.example.com", "api.example.com"},
	    {"API.Example.COM.", "api.example.com"},
	    {"*.example.com", "*.example.com"},
	    {"*.EXAMPLE.com.", "*.example.com"},
	    {"*.githubusercontent.com", "*.githubusercontent.com"},
	    {"*.com", "*.com"},
	    {"localhost", "localhost"},
	    {"xn--bcher-kva.example", "xn--bcher-kva.example"},
	    {"git.git-system.svc.cluster.local",
	     "git.git-system.svc.cluster.local"},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		char out[HOST_NAME_MAX_LEN + 3];
		const char *why = NULL;

		if (host_pattern_parse(t[i].in, out, &why) != 0) {
			print_error("host_pattern_parse(\"%s\") failed: %s\n",
			            t[i].in, why);
			bad++;
		} else if (strcmp(out, t[i].out) != 0) {
			print_error("host_pattern_parse(\"%s\") = \"%s\", want "
			            "\"%s\"\n",
			            t[i].in, out, t[i].out);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_pattern_parse_longest(void **state)
{
	char *l62 = repeat('c', 62);
	char name[300], pattern[310], out[HOST_NAME_MAX_LEN + 3];
	const char *why = NULL;

	(void)state;
	snprintf(name, sizeof(name), "%s.%s.%s.%s.x", l62, l62, l62, l62);
	snprintf(pattern, sizeof(pattern), "*.%s.", name);
	assert_int_equal(host_pattern_parse(pattern, out, &why), 0);
	assert_int_equal(strlen(out), HOST_NAME_MAX_LEN + 2);
	assert_int_equal(strncmp(out, "*.", 2), 0);
	assert_string_equal(out + 2, name);
	free(l62);
}

static void
test_pattern_parse_bad(void **state)
{
	static const struct {
		const char *in;
		const char *why; /* a substring of *why */
	} t[] = {
	    {"", "empty"},
	    {"*", "every host"},
	    {"*.", "needs a domain"},
	    {"**.a", "wildcards only as a leading \"*.\" label"},
	    {"a.*.b", "wildcards only"},
	    {"*a.com", "wildcards only"},
	    {"foo*.com", "wildcards only"},
	    {"*.*.example.com", "wildcards only"},
	    {"example.*", "wildcards only"},
	    {"*.example.*", "wildcards only"},
	    {".*.example.com", "wildcards only"},
	    {"*example.com", "wildcards only"},

	    {"10.0.0.1", "IP addresses go in networks, not hosts"},
	    {"10.0.0.0/8", "networks"},
	    {"::1", "networks"},
	    {"[::1]", "networks"},
	    {"2001:db8::/32", "networks"},
	    {"[::ffff:10.0.0.1]", "networks"},
	    {"*.10.0.0.1", "networks"},
	    {"2130706433", "dotted quad"},
	    {"127.1", "dotted quad"},
	    {"0x7f.1", "dotted quad"},
	    {"example.123", "dotted quad"},

	    {"api\\.openai\\.com", "regular expression"},
	    {"^api.openai.com$", "regular expression"},
	    {"(api|www).example.com", "regular expression"},
	    {"api.openai.com?", "regular expression"},
	    {"a+.example.com", "regular expression"},
	    {"a{2}.example.com", "regular expression"},

	    {"https://example.com", "no scheme, port or path"},
	    {"example.com:443", "no scheme, port or path"},
	    {"example.com/path", "no scheme, port or path"},
	    {"*.example.com:443", "no scheme, port or path"},

	    {"a..b", "empty label"},
	    {"example.com..", "empty label"},
	    {".", "empty"},
	    {"-a.com", "'-'"},
	    {"a-.com", "'-'"},
	    {"_x.example.com", "character"},
	    {"exa mple.com", "character"},
	    {"b\xc3\xbc"
	     "cher.de",
	     "character"},
	    {"[example.com]", "brackets"},
	    {"fe80::1%eth0", "zone"},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		char out[HOST_NAME_MAX_LEN + 3];
		const char *why = NULL;

		if (host_pattern_parse(t[i].in, out, &why) == 0) {
			print_error("host_pattern_parse(\"%s\") accepted as "
			            "\"%s\"\n",
			            t[i].in, out);
			bad++;
		} else if (why == NULL || strstr(why, t[i].why) == NULL) {
			print_error("host_pattern_parse(\"%s\") why \"%s\", "
			            "want \"%s\"\n",
			            t[i].in, why ? why : "(null)", t[i].why);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_pattern_parse_lengths(void **state)
{
	char *l64 = repeat('a', 64), *l62 = repeat('c', 62);
	char buf[400], out[HOST_NAME_MAX_LEN + 3];
	const char *why = NULL;

	(void)state;
	snprintf(buf, sizeof(buf), "%s.com", l64);
	assert_int_equal(host_pattern_parse(buf, out, &why), -1);
	assert_non_null(strstr(why, "63"));
	snprintf(buf, sizeof(buf), "*.%s.com", l64);
	assert_int_equal(host_pattern_parse(buf, out, &why), -1);
	snprintf(buf, sizeof(buf), "%s.%s.%s.%s.xy", l62, l62, l62, l62);
	assert_int_equal(host_pattern_parse(buf, out, &why), -1);
	assert_non_null(strstr(why, "253"));
	/* why may be NULL. */
	assert_int_equal(host_pattern_parse("a..b", out, NULL), -1);
	assert_int_equal(host_pattern_parse(NULL, out, NULL), -1);
	free(l64);
	free(l62);
}

static void
test_pattern_match(void **state)
{
	static const struct {
		const char *pattern;
		const char *name;
		int want;
	} t[] = {
	    {"example.com", "example.com", 1},
	    {"example.com", "a.example.com", 0},
	    {"example.com", "example.co", 0},
	    {"example.com", "example.comm", 0},
	    {"example.com", "xexample.com", 0},
	    {"api.openai.com", "apixopenaixcom", 0},
	    {"*.example.com", "a.example.com", 1},
	    {"*.example.com", "a.b.example.com", 1},
	    {"*.example.com", "xn--bcher-kva.example.com", 1},
	    {"*.example.com", "example.com", 0},
	    {"*.example.com", "badexample.com", 0},
	    {"*.example.com", "xexample.com", 0},
	    {"*.example.com", "a-example.com", 0},
	    {"*.example.com", "example.com.evil.net", 0},
	    {"*.example.com", "a.example.com.evil.net", 0},
	    {"*.example.com", "a.example.co", 0},
	    {"*.example.com", "com", 0},
	    {"*.example.com", "", 0},
	    {"*.example.com", ".example.com", 0},
	    {"*.com", "a.com", 1},
	    {"*.com", "com", 0},
	    {"*.com", "a.co", 0},
	    {"*.githubusercontent.com", "raw.githubusercontent.com", 1},
	    {"*.githubusercontent.com", "githubusercontent.com.evil", 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		int got = host_pattern_match(t[i].pattern, t[i].name);

		if (got != t[i].want) {
			print_error("host_pattern_match(\"%s\", \"%s\") = %d, "
			            "want %d\n",
			            t[i].pattern, t[i].name, got, t[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Pattern and name both go through normalisation before they meet. */
static void
test_pattern_match_normalised(void **state)
{
	char pattern[HOST_NAME_MAX_LEN + 3];
	const char *why = NULL;
	struct host h;
	const char *name = "A.Example.COM.";

	(void)state;
	assert_int_equal(host_pattern_parse("*.EXAMPLE.com.", pattern, &why),
	                 0);
	assert_int_equal(host_parse(name, strlen(name), 1, &h), 0);
	assert_int_equal(host_pattern_match(pattern, h.name), 1);
	name = "Example.COM.";
	assert_int_equal(host_parse(name, strlen(name), 1, &h), 0);
	assert_int_equal(host_pattern_match(pattern, h.name), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_names),
	    cmocka_unit_test(test_parse_lengths),
	    cmocka_unit_test(test_parse_ipv4),
	    cmocka_unit_test(test_parse_ipv6),
	    cmocka_unit_test(test_parse_not_nul_terminated),
	    cmocka_unit_test(test_parse_authority),
	    cmocka_unit_test(test_pattern_parse_ok),
	    cmocka_unit_test(test_pattern_parse_longest),
	    cmocka_unit_test(test_pattern_parse_bad),
	    cmocka_unit_test(test_pattern_parse_lengths),
	    cmocka_unit_test(test_pattern_match),
	    cmocka_unit_test(test_pattern_match_normalised),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
