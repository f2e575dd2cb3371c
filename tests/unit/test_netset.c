/*
 * Unit tests for netset: address text, CIDR parsing, sets and the built-in
 * special-purpose ranges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "netset.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* An address from text, parsed by libc so the tests do not lean on the code
 * under test: dotted quad to the mapped form, anything else as IPv6. */
static struct netaddr
addr(const char *s)
{
	struct netaddr a;
	struct in_addr in;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, &in) == 1) {
		a.b[10] = a.b[11] = 0xff;
		memcpy(a.b + 12, &in, 4);
		return a;
	}
	if (inet_pton(AF_INET6, s, a.b) != 1) {
		print_error("test bug: bad address %s\n", s);
		fail();
	}
	return a;
}

static struct cidr
cidr(const char *s)
{
	struct cidr c;
	const char *why = NULL;

	if (cidr_parse(s, &c, &why) != 0) {
		print_error("test bug: cidr_parse(%s): %s\n", s, why);
		fail();
	}
	return c;
}

static void
test_cidr_parse_ok(void **state)
{
	static const struct {
		const char *in;
		const char *str;
		unsigned prefix;
	} t[] = {
	    {"10.0.0.0/8", "10.0.0.0/8", 104},
	    {"10.0.0.5", "10.0.0.5/32", 128},
	    {"10.0.0.5/32", "10.0.0.5/32", 128},
	    {"0.0.0.0", "0.0.0.0/32", 128},
	    {"0.0.0.0/0", "0.0.0.0/0", 96},
	    {"255.255.255.255/32", "255.255.255.255/32", 128},
	    {"192.168.1.0/24", "192.168.1.0/24", 120},
	    {"10.20.0.0/16", "10.20.0.0/16", 112},
	    {"100.64.0.0/10", "100.64.0.0/10", 106},
	    {"128.0.0.0/1", "128.0.0.0/1", 97},
	    {"fc00::/7", "fc00::/7", 7},
	    {"2001:db8::1", "2001:db8::1/128", 128},
	    {"2001:DB8::/32", "2001:db8::/32", 32},
	    {"2001:0db8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/32", 32},
	    {"::/0", "::/0", 0},
	    {"::", "::/128", 128},
	    {"::1", "::1/128", 128},
	    {"::1/128", "::1/128", 128},
	    {"fe80::/10", "fe80::/10", 10},
	    {"8000::/1", "8000::/1", 1},
	    {"::ffff:10.0.0.0/104", "10.0.0.0/8", 104},
	    {"::ffff:0:0/96", "0.0.0.0/0", 96},
	    {"64:ff9b::a00:0/104", "64:ff9b::a00:0/104", 104},
	    {"64:ff9b::10.0.0.0/104", "64:ff9b::a00:0/104", 104},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct cidr c;
		const char *why = NULL;
		char buf[NETADDR_STRLEN];

		if (cidr_parse(t[i].in, &c, &why) != 0) {
			print_error("cidr_parse(\"%s\") failed: %s\n", t[i].in,
			            why);
			bad++;
			continue;
		}
		cidr_str(&c, buf);
		if (strcmp(buf, t[i].str) != 0 || c.prefix != t[i].prefix) {
			print_error("cidr_parse(\"%s\") = %s (%u), want %s "
			            "(%u)\n",
			            t[i].in, buf, c.prefix, t[i].str,
			            t[i].prefix);
			bad++;
		}
		/* The text form parses back to the same network. */
		struct cidr again;
		if (cidr_parse(buf, &again, &why) != 0 ||
		    memcmp(&again.net, &c.net, sizeof(c.net)) != 0 ||
		    again.prefix != c.prefix) {
			print_error("cidr_str round trip of \"%s\" via \"%s\" "
			            "failed\n",
			            t[i].in, buf);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_cidr_parse_bad(void **state)
{
	static const struct {
		const char *in;
		const char *why; /* a substring of *why */
	} t[] = {
	    {"", "empty"},
	    {"10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"},
	    {"10.20.1.0/16", "did you mean 10.20.0.0/16?"},
	    {"192.168.1.1/24", "did you mean 192.168.1.0/24?"},
	    {"0.0.0.1/0", "did you mean 0.0.0.0/0?"},
	    {"2001:db8::1/32", "did you mean 2001:db8::/32?"},
	    {"fd00::1/7", "did you mean fc00::/7?"},
	    {"::1/0", "did you mean ::/0?"},
	    {"::ffff:10.0.0.1/104", "did you mean 10.0.0.0/8?"},
	    {"10.0.0.0/33", "0-32"},
	    {"10.0.0.0/-1", "0-32"},
	    {"10.0.0.0/+8", "0-32"},
	    {"10.0.0.0/08", "0-32"},
	    {"10.0.0.0/00", "0-32"},
	    {"10.0.0.0/", "0-32"},
	    {"10.0.0.0/8/8", "0-32"},
	    {"10.0.0.0/8x", "0-32"},
	    {"10.0.0.0/8 ", "0-32"},
	    {"10.0.0.0/1000", "0-32"},
	    {"2001:db8::/129", "0-128"},
	    {"2001:db8::/0032", "0-128"},
	    {"::/", "0-128"},
	    {"010.0.0.0/8", "dotted-quad"},
	    {"10.0.0/24", "dotted-quad"},
	    {"10.0.0.0.0/8", "dotted-quad"},
	    {"10.0.0.256", "dotted-quad"},
	    {"10.0.0.1000", "dotted-quad"},
	    {"0x0a.0.0.0/8", "dotted-quad"},
	    {"10.0.0.0 /8", "dotted-quad"},
	    {" 10.0.0.0", "dotted-quad"},
	    {"1.2.3.4.", "dotted-quad"},
	    {".1.2.3.4", "dotted-quad"},
	    {"1..2.3", "dotted-quad"},
	    {"2130706433", "dotted-quad"},
	    {"127.1", "dotted-quad"},
	    {"0177.0.0.1", "dotted-quad"},
	    {"127.000.0.1", "dotted-quad"},
	    {"-1.0.0.0", "dotted-quad"},
	    {"abc", "dotted-quad"},
	    {"/8", "dotted-quad"},
	    {"fe80::1%eth0", "zone"},
	    {"fe80::1%eth0/64", "zone"},
	    {"fe80::%1/64", "zone"},
	    {"1::2::3", "IPv6"},
	    {"gggg::", "IPv6"},
	    {"1:2:3:4:5:6:7:8:9", "IPv6"},
	    {"12345::", "IPv6"},
	    {"::ffff:10.0.0.01", "IPv6"},
	    {"::ffff:10.0.0", "IPv6"},
	    {":::", "IPv6"},
	    {" ::1", "IPv6"},
	    {"[::1]", "IPv6"},
	    {"[::1]/128", "IPv6"},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct cidr c;
		const char *why = NULL;

		if (cidr_parse(t[i].in, &c, &why) == 0) {
			print_error("cidr_parse(\"%s\") accepted\n", t[i].in);
			bad++;
			continue;
		}
		if (why == NULL || strstr(why, t[i].why) == NULL) {
			print_error("cidr_parse(\"%s\") why \"%s\", want "
			            "\"%s\"\n",
			            t[i].in, why ? why : "(null)", t[i].why);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
	/* A NULL why is allowed, and NULL input is empty. */
	struct cidr c;
	assert_int_equal(cidr_parse("10.0.0.1/8", &c, NULL), -1);
	assert_int_equal(cidr_parse(NULL, &c, NULL), -1);
}

static void
test_cidr_parse_why_exact(void **state)
{
	struct cidr c;
	const char *why = NULL;

	(void)state;
	assert_int_equal(cidr_parse("10.1.2.3/8", &c, &why), -1);
	assert_string_equal(why, "host bits set (did you mean 10.0.0.0/8?)");
	assert_int_equal(cidr_parse("2001:db8::1/32", &c, &why), -1);
	assert_string_equal(why, "host bits set (did you mean 2001:db8::/32?)");
}

static void
test_netaddr_str(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} t[] = {
	    {"127.0.0.1", "127.0.0.1"},
	    {"0.0.0.0", "0.0.0.0"},
	    {"255.255.255.255", "255.255.255.255"},
	    {"10.0.0.5", "10.0.0.5"},
	    {"::ffff:1.2.3.4", "1.2.3.4"},
	    {"::ffff:0:0", "0.0.0.0"},
	    {"::", "::"},
	    {"::1", "::1"},
	    {"1::", "1::"},
	    {"2001:db8::1", "2001:db8::1"},
	    {"2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
	    {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
	    {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
	    {"1:0:0:0:2:0:0:0", "1::2:0:0:0"},
	    {"0:0:1:0:0:0:0:0", "0:0:1::"},
	    {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
	    {"1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"},
	    {"0:2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"},
	    {"1:0:0:4:5:6:7:8", "1::4:5:6:7:8"},
	    {"::2:3", "::2:3"},
	    {"::1.2.3.4", "::102:304"},
	    {"0:0:0:0:0:ffff:ffff:0", "255.255.0.0"},
	    {"0:0:0:0:ffff:0:0:0", "::ffff:0:0:0"},
	    {"fe80::1", "fe80::1"},
	    {"ff02:0:0:0:0:1:ff00:1", "ff02::1:ff00:1"},
	    {"2001:0DB8:00AB:0C00:0000:0000:0000:0001", "2001:db8:ab:c00::1"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	    {"64:ff9b::7f00:1", "64:ff9b::7f00:1"},
	    {"2606:4700::1111", "2606:4700::1111"},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct netaddr a = addr(t[i].in), back;
		char buf[NETADDR_STRLEN];

		if (netaddr_str(&a, buf) != buf || strcmp(buf, t[i].out) != 0) {
			print_error("netaddr_str(%s) = %s, want %s\n", t[i].in,
			            buf, t[i].out);
			bad++;
			continue;
		}
		back = addr(buf);
		if (memcmp(&a, &back, sizeof(a)) != 0) {
			print_error(
			    "netaddr_str(%s) = %s does not parse back\n",
			    t[i].in, buf);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_netaddr_is_v4(void **state)
{
	struct netaddr a;

	(void)state;
	a = addr("1.2.3.4");
	assert_int_equal(netaddr_is_v4(&a), 1);
	a = addr("::ffff:0:0");
	assert_int_equal(netaddr_is_v4(&a), 1);
	a = addr("::1.2.3.4");
	assert_int_equal(netaddr_is_v4(&a), 0);
	a = addr("::fffe:1.2.3.4");
	assert_int_equal(netaddr_is_v4(&a), 0);
	a = addr("1::ffff:1.2.3.4");
	assert_int_equal(netaddr_is_v4(&a), 0);
	a = addr("64:ff9b::1.2.3.4");
	assert_int_equal(netaddr_is_v4(&a), 0);
}

static void
test_sockaddr_v4(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	struct netaddr a;
	char buf[NETADDR_STRLEN];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1234);
	assert_int_equal(inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr), 1);
	assert_int_equal(netaddr_from_sockaddr(&a, (struct sockaddr *)&sin), 0);
	assert_int_equal(netaddr_is_v4(&a), 1);
	assert_string_equal(netaddr_str(&a, buf), "10.1.2.3");

	memset(&ss, 0xaa, sizeof(ss));
	assert_int_equal(netaddr_to_sockaddr(&a, 443, &ss),
	                 sizeof(struct sockaddr_in));
	const struct sockaddr_in *out = (const struct sockaddr_in *)&ss;
	assert_int_equal(out->sin_family, AF_INET);
	assert_int_equal(ntohs(out->sin_port), 443);
	assert_memory_equal(&out->sin_addr, &sin.sin_addr, 4);
}

static void
test_sockaddr_v6(void **state)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_storage ss;
	struct netaddr a;
	char buf[NETADDR_STRLEN];

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(1234);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr),
	                 1);
	assert_int_equal(netaddr_from_sockaddr(&a, (struct sockaddr *)&sin6),
	                 0);
	assert_int_equal(netaddr_is_v4(&a), 0);
	assert_string_equal(netaddr_str(&a, buf), "2001:db8::42");

	memset(&ss, 0xaa, sizeof(ss));
	assert_int_equal(netaddr_to_sockaddr(&a, 65535, &ss),
	                 sizeof(struct sockaddr_in6));
	const struct sockaddr_in6 *out = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(out->sin6_family, AF_INET6);
	assert_int_equal(ntohs(out->sin6_port), 65535);
	assert_int_equal(out->sin6_flowinfo, 0);
	assert_int_equal(out->sin6_scope_id, 0);
	assert_memory_equal(&out->sin6_addr, &sin6.sin6_addr, 16);

	/* A mapped address from an IPv6 socket is IPv4, and connects as
	 * IPv4. */
	assert_int_equal(
	    inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr), 1);
	assert_int_equal(netaddr_from_sockaddr(&a, (struct sockaddr *)&sin6),
	                 0);
	assert_int_equal(netaddr_is_v4(&a), 1);
	assert_string_equal(netaddr_str(&a, buf), "192.0.2.1");
	assert_int_equal(netaddr_to_sockaddr(&a, 80, &ss),
	                 sizeof(struct sockaddr_in));
	assert_int_equal(ss.ss_family, AF_INET);
}

static void
test_sockaddr_other(void **state)
{
	struct sockaddr_un sun;
	struct netaddr a;

	(void)state;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(netaddr_from_sockaddr(&a, (struct sockaddr *)&sun),
	                 -1);
	assert_int_equal(netaddr_from_sockaddr(&a, NULL), -1);
}

static void
test_cidr_contains(void **state)
{
	static const struct {
		const char *cidr;
		const char *addr;
		int want;
	} t[] = {
	    {"0.0.0.0/0", "0.0.0.0", 1},
	    {"0.0.0.0/0", "255.255.255.255", 1},
	    {"0.0.0.0/0", "::1", 0},
	    {"0.0.0.0/0", "2001:db8::1", 0},
	    {"0.0.0.0/0", "::", 0},
	    {"::/0", "::", 1},
	    {"::/0", "::1", 1},
	    {"::/0", "1.2.3.4", 1},
	    {"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"10.0.0.0/8", "10.0.0.0", 1},
	    {"10.0.0.0/8", "10.255.255.255", 1},
	    {"10.0.0.0/8", "9.255.255.255", 0},
	    {"10.0.0.0/8", "11.0.0.0", 0},
	    {"10.0.0.0/8", "::a00:1", 0},
	    {"10.0.0.0/8", "64:ff9b::a00:1", 0},
	    {"10.0.0.0/9", "10.127.255.255", 1},
	    {"10.0.0.0/9", "10.128.0.0", 0},
	    {"172.16.0.0/12", "172.31.255.255", 1},
	    {"172.16.0.0/12", "172.32.0.0", 0},
	    {"172.16.0.0/12", "172.15.255.255", 0},
	    {"10.0.0.5/32", "10.0.0.5", 1},
	    {"10.0.0.5/32", "10.0.0.4", 0},
	    {"10.0.0.5/32", "10.0.0.6", 0},
	    {"255.255.255.255/32", "255.255.255.255", 1},
	    {"255.255.255.255/32", "255.255.255.254", 0},
	    {"::ffff:0:0/96", "8.8.8.8", 1},
	    {"::ffff:0:0/96", "::1", 0},
	    {"2001:db8::1/128", "2001:db8::1", 1},
	    {"2001:db8::1/128", "2001:db8::", 0},
	    {"2001:db8::1/128", "2001:db8::2", 0},
	    {"2001:db8::1/128", "2001:db9::1", 0},
	    {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"2001:db8::/32", "2001:db9::", 0},
	    {"2001:db8::/33", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"2001:db8::/33", "2001:db8:8000::", 0},
	    {"fc00::/7", "fc00::", 1},
	    {"fc00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"fc00::/7", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	    {"fc00::/7", "fe00::", 0},
	    {"8000::/1", "8000::", 1},
	    {"8000::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	    {"::/128", "::", 1},
	    {"::/128", "::1", 0},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct cidr c = cidr(t[i].cidr);
		struct netaddr a = addr(t[i].addr);
		int got = cidr_contains(&c, &a);

		if (got != t[i].want) {
			print_error("cidr_contains(%s, %s) = %d, want %d\n",
			            t[i].cidr, t[i].addr, got, t[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_netset(void **state)
{
	struct netset s = {NULL, 0, 0};
	struct netaddr a;
	char text[NETADDR_STRLEN];

	(void)state;
	a = addr("10.0.0.1");
	assert_null(netset_find(&s, &a));

	/* Enough entries to grow the array several times. */
	for (unsigned i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "10.%u.0.0/16", i);
		struct cidr c = cidr(text);
		assert_int_equal(netset_add(&s, &c), 0);
	}
	struct cidr wide = cidr("10.0.0.0/8");
	assert_int_equal(netset_add(&s, &wide), 0);
	struct cidr v6 = cidr("2001:db8::/32");
	assert_int_equal(netset_add(&s, &v6), 0);
	assert_int_equal(s.n, 102);
	assert_true(s.cap >= s.n);

	for (unsigned i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "10.%u.255.255", i);
		a = addr(text);
		const struct cidr *c = netset_find(&s, &a);
		assert_non_null(c);
		assert_ptr_equal(c, &s.v[i]);
	}
	/* The first match wins. */
	a = addr("10.200.0.1");
	assert_ptr_equal(netset_find(&s, &a), &s.v[100]);
	a = addr("2001:db8::1");
	assert_ptr_equal(netset_find(&s, &a), &s.v[101]);
	a = addr("11.0.0.1");
	assert_null(netset_find(&s, &a));
	a = addr("::a00:1");
	assert_null(netset_find(&s, &a));

	netset_free(&s);
	assert_null(s.v);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.cap, 0);
	a = addr("10.0.0.1");
	assert_null(netset_find(&s, &a));
	netset_free(&s);

	/* Usable again after free. */
	assert_int_equal(netset_add(&s, &wide), 0);
	assert_non_null(netset_find(&s, &a));
	netset_free(&s);
}

static void
test_special(void **state)
{
	static const struct {
		const char *addr;
		const char *want; /* NULL: globally routable */
	} t[] = {
	    /* IPv4, each range's first and last address and its
	     * neighbours. */
	    {"0.0.0.0", "this-network"},
	    {"0.255.255.255", "this-network"},
	    {"1.0.0.0", NULL},
	    {"1.1.1.1", NULL},
	    {"8.8.8.8", NULL},
	    {"9.255.255.255", NULL},
	    {"10.0.0.0", "private"},
	    {"10.0.0.5", "private"},
	    {"10.255.255.255", "private"},
	    {"11.0.0.0", NULL},
	    {"100.63.255.255", NULL},
	    {"100.64.0.0", "cgnat"},
	    {"100.127.255.255", "cgnat"},
	    {"100.128.0.0", NULL},
	    {"126.255.255.255", NULL},
	    {"127.0.0.0", "loopback"},
	    {"127.0.0.1", "loopback"},
	    {"127.255.255.255", "loopback"},
	    {"128.0.0.0", NULL},
	    {"169.253.255.255", NULL},
	    {"169.254.0.0", "link-local"},
	    {"169.254.169.254", "link-local"},
	    {"169.254.255.255", "link-local"},
	    {"169.255.0.0", NULL},
	    {"172.15.255.255", NULL},
	    {"172.16.0.0", "private"},
	    {"172.31.255.255", "private"},
	    {"172.32.0.0", NULL},
	    {"191.255.255.255", NULL},
	    {"192.0.0.0", "ietf-protocol"},
	    {"192.0.0.255", "ietf-protocol"},
	    {"192.0.1.0", NULL},
	    {"192.0.1.255", NULL},
	    {"192.0.2.0", "documentation"},
	    {"192.0.2.255", "documentation"},
	    {"192.0.3.0", NULL},
	    {"192.31.195.255", NULL},
	    {"192.31.196.0", "as112"},
	    {"192.31.196.255", "as112"},
	    {"192.31.197.0", NULL},
	    {"192.52.192.255", NULL},
	    {"192.52.193.0", "amt"},
	    {"192.52.193.255", "amt"},
	    {"192.52.194.0", NULL},
	    {"192.88.98.255", NULL},
	    {"192.88.99.0", "6to4-relay"},
	    {"192.88.99.255", "6to4-relay"},
	    {"192.88.100.0", NULL},
	    {"192.167.255.255", NULL},
	    {"192.168.0.0", "private"},
	    {"192.168.255.255", "private"},
	    {"192.169.0.0", NULL},
	    {"192.175.47.255", NULL},
	    {"192.175.48.0", "as112"},
	    {"192.175.48.255", "as112"},
	    {"192.175.49.0", NULL},
	    {"198.17.255.255", NULL},
	    {"198.18.0.0", "benchmarking"},
	    {"198.19.255.255", "benchmarking"},
	    {"198.20.0.0", NULL},
	    {"198.51.99.255", NULL},
	    {"198.51.100.0", "documentation"},
	    {"198.51.100.255", "documentation"},
	    {"198.51.101.0", NULL},
	    {"203.0.112.255", NULL},
	    {"203.0.113.0", "documentation"},
	    {"203.0.113.255", "documentation"},
	    {"203.0.114.0", NULL},
	    {"223.255.255.255", NULL},
	    {"224.0.0.0", "multicast"},
	    {"239.255.255.255", "multicast"},
	    {"240.0.0.0", "reserved"},
	    {"255.255.255.254", "reserved"},
	    {"255.255.255.255", "broadcast"},

	    /* IPv6. */
	    {"::", "unspecified"},
	    {"::1", "loopback"},
	    {"::2", "ipv4-compatible"},
	    {"::1.2.3.4", "ipv4-compatible"},
	    {"::ffff:ffff", "ipv4-compatible"},
	    {"64:ff9b:1::", "nat64-local"},
	    {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "nat64-local"},
	    {"64:ff9b:2::", NULL},
	    {"64:ff9b:0:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"100::", "discard"},
	    {"100::ffff:ffff:ffff:ffff", "discard"},
	    {"100:0:0:1::", NULL},
	    {"2001:1::", "ietf-protocol"},
	    {"2001:2::1", "ietf-protocol"},
	    {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "ietf-protocol"},
	    {"2001:200::", NULL},
	    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"2001:db8::", "documentation"},
	    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"},
	    {"2001:db9::", NULL},
	    {"2001:4860:4860::8888", NULL},
	    {"2606:4700::1111", NULL},
	    {"2a00:1450:4001::1", NULL},
	    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"3fff::", "documentation"},
	    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"},
	    {"3fff:1000::", NULL},
	    {"5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"5f00::", "srv6"},
	    {"5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "srv6"},
	    {"5f01::", NULL},
	    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"fc00::", "ula"},
	    {"fd00::1", "ula"},
	    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ula"},
	    {"fe00::", NULL},
	    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"fe80::", "link-local"},
	    {"fe80::1", "link-local"},
	    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"},
	    {"fec0::", "site-local"},
	    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local"},
	    {"ff00::", "multicast"},
	    {"ff02::1", "multicast"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},

	    /* IPv4-mapped: the way IPv4 is stored. */
	    {"::ffff:0.0.0.0", "this-network"},
	    {"::ffff:127.0.0.1", "loopback"},
	    {"::ffff:169.254.169.254", "link-local"},
	    {"::ffff:10.1.2.3", "private"},
	    {"::ffff:8.8.8.8", NULL},

	    /* NAT64 64:ff9b::/96, judged by the IPv4 it carries. */
	    {"64:ff9b::", "nat64:this-network"},
	    {"64:ff9b::7f00:1", "nat64:loopback"},
	    {"64:ff9b::a00:1", "nat64:private"},
	    {"64:ff9b::a9fe:a9fe", "nat64:link-local"},
	    {"64:ff9b::169.254.169.254", "nat64:link-local"},
	    {"64:ff9b::ffff:ffff", "nat64:broadcast"},
	    {"64:ff9b::808:808", NULL},
	    {"64:ff9b::1:7f00:1", NULL},

	    /* 6to4 2002::/16: the IPv4 in bits 16..47. */
	    {"2002::", "6to4:this-network"},
	    {"2002:7f00:1::", "6to4:loopback"},
	    {"2002:a9fe:a9fe::1", "6to4:link-local"},
	    {"2002:c000:204::", "6to4:documentation"},
	    {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4:broadcast"},
	    {"2002:808:808::", NULL},
	    {"2002:808:808:ffff:ffff:ffff:ffff:ffff", NULL},
	    {"2003::", NULL},

	    /* Teredo 2001::/32: server IPv4 in bits 32..63, client IPv4
	     * inverted in the last 32 bits.  The RFC 4380 example:
	     * server 65.54.227.120, client 192.0.2.45. */
	    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo:documentation"},
	    {"2001:0:808:808:0:0:80ff:fffe", "teredo:loopback"},
	    {"2001:0:a00:1::", "teredo:private"},
	    {"2001::", "teredo:this-network"},
	    {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "teredo:broadcast"},
	    {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", NULL},
	    {"2001:0:808:808:ffff:ffff:f7f7:f7f7", NULL},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct netaddr a = addr(t[i].addr);
		const char *got = netset_special(&a);

		if ((got == NULL) != (t[i].want == NULL) ||
		    (got != NULL && strcmp(got, t[i].want) != 0)) {
			print_error("netset_special(%s) = %s, want %s\n",
			            t[i].addr, got ? got : "(global)",
			            t[i].want ? t[i].want : "(global)");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_cidr_is_special(void **state)
{
	static const struct {
		const char *cidr;
		int want;
	} t[] = {
	    {"10.20.0.0/16", 1},
	    {"10.0.0.0/8", 1},
	    {"10.0.0.5", 1},
	    {"10.0.0.0/7", 0},
	    {"0.0.0.0/0", 0},
	    {"0.0.0.0/8", 1},
	    {"8.8.8.0/24", 0},
	    {"8.8.8.8", 0},
	    {"127.0.0.0/8", 1},
	    {"126.0.0.0/7", 0},
	    {"169.254.169.254/32", 1},
	    {"169.254.0.0/16", 1},
	    {"169.254.0.0/15", 0},
	    {"172.16.0.0/12", 1},
	    {"172.0.0.0/11", 0},
	    {"100.64.0.0/10", 1},
	    {"100.0.0.0/8", 0},
	    {"192.0.0.0/24", 1},
	    {"192.0.0.0/16", 0},
	    {"198.18.0.0/15", 1},
	    {"198.16.0.0/14", 0},
	    {"224.0.0.0/4", 1},
	    {"240.0.0.0/4", 1},
	    /* Multicast and reserved together, but not one range. */
	    {"224.0.0.0/3", 0},
	    {"255.255.255.255", 1},

	    {"fd00::/8", 1},
	    {"fc00::/7", 1},
	    {"fc00::/6", 0},
	    {"::/0", 0},
	    {"2000::/3", 0},
	    {"::1", 1},
	    {"::/128", 1},
	    {"::/96", 1},
	    {"::/95", 0},
	    {"fe80::/10", 1},
	    {"fe80::/64", 1},
	    {"ff02::/16", 1},
	    {"2001:db8::/32", 1},
	    {"2001:db8::/31", 0},
	    {"2606:4700::/32", 0},

	    {"::ffff:10.0.0.0/104", 1},
	    {"::ffff:127.0.0.1/128", 1},
	    {"::ffff:0:0/96", 0},
	    {"::ffff:8.8.8.0/120", 0},

	    {"64:ff9b::a00:0/104", 1},
	    {"64:ff9b::7f00:1/128", 1},
	    {"64:ff9b::/96", 0},
	    {"64:ff9b::808:800/120", 0},
	    {"64:ff9b::/64", 0},
	    {"64:ff9b:1::/48", 1},
	    {"64:ff9b::/32", 0},

	    {"2002:a00::/24", 1},
	    {"2002:7f00:1::/48", 1},
	    {"2002:a00:1:1::/64", 1},
	    {"2002::/16", 0},
	    {"2002:a00::/23", 0},
	    {"2002:808:808::/48", 0},
	    {"2002::/15", 0},
	    /* Past /48 the subnet bits carry no more IPv4. */
	    {"2002:a00:1:ffff::/64", 1},
	    {"2002:a00:1::1/128", 1},
	    {"2002:808:808:ffff::/64", 0},

	    {"2001::/32", 0},
	    {"2001:0:a00::/40", 1},
	    {"2001:0:808:808::/64", 0},
	    {"2001:0:808:808:0:0:80ff:fffe/128", 1},
	    {"2001:0:808:808::8000:0/104", 1},
	    {"2001:0:808:808:0:0:f7f7:f7f7/128", 0},
	    /* 2001::/23 is special, but the Teredo space inside it
	     * carries global addresses too. */
	    {"2001::/23", 0},
	    {"2001::/31", 0},
	    {"2001:2::/48", 1},
	    {"2001:1::/32", 1},
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		struct cidr c = cidr(t[i].cidr);
		int got = netset_cidr_is_special(&c);

		if (got != t[i].want) {
			print_error("netset_cidr_is_special(%s) = %d, want "
			            "%d\n",
			            t[i].cidr, got, t[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/*
 * Agreement between the two: a CIDR judged special holds only special
 * addresses.  Checked on each CIDR's first and last address.
 */
static void
test_cidr_is_special_agrees(void **state)
{
	static const char *const special[] = {
	    "10.20.0.0/16",
	    "64:ff9b::a00:0/104",
	    "2002:a00::/24",
	    "2001:0:a00::/40",
	    "fd00::/8",
	    "::/96",
	    "2001:2::/48",
	    "240.0.0.0/4",
	    "::ffff:10.0.0.0/104",
	    "2001:0:808:808::8000:0/104",
	};

	(void)state;
	for (size_t i = 0; i < NELEM(special); i++) {
		struct cidr c = cidr(special[i]);
		struct netaddr last = c.net;

		assert_int_equal(netset_cidr_is_special(&c), 1);
		for (unsigned bit = c.prefix; bit < 128; bit++)
			last.b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		if (netset_special(&c.net) == NULL ||
		    netset_special(&last) == NULL) {
			print_error("%s is special but holds a global "
			            "address\n",
			            special[i]);
			fail();
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_parse_ok),
	    cmocka_unit_test(test_cidr_parse_bad),
	    cmocka_unit_test(test_cidr_parse_why_exact),
	    cmocka_unit_test(test_netaddr_str),
	    cmocka_unit_test(test_netaddr_is_v4),
	    cmocka_unit_test(test_sockaddr_v4),
	    cmocka_unit_test(test_sockaddr_v6),
	    cmocka_unit_test(test_sockaddr_other),
	    cmocka_unit_test(test_cidr_contains),
	    cmocka_unit_test(test_netset),
	    cmocka_unit_test(test_special),
	    cmocka_unit_test(test_cidr_is_special),
	    cmocka_unit_test(test_cidr_is_special_agrees),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
