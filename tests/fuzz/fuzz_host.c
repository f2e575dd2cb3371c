/*
 * fuzz_host: destination names, IP literals, authorities and host patterns
 * (host.c).  The input is the text, as a request target or a config file
 * would hand it over.  What is accepted must be in normal form: it parses
 * again to itself, a name is lowercase LDH without a trailing dot or a
 * numeric last label, an IPv4 literal is a strict dotted quad.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "host.h"

/* Four decimal parts 0..255 of 1..3 digits, no leading zero. */
static bool
strict_dotted_quad(const char *s)
{
	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;

		if (part > 0 && *s++ != '.')
			return false;
		if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
			return false;
		for (; *s >= '0' && *s <= '9' && digits < 4; s++, digits++)
			v = v * 10 + (unsigned)(*s - '0');
		if (digits == 0 || digits > 3 || v > 255)
			return false;
	}
	return *s == '\0';
}

static bool
all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* "0x" and hex digits, perhaps none: a number to WHATWG URL too. */
static bool
hex_number(const char *s, size_t n)
{
	if (n < 2 || s[0] != '0' || s[1] != 'x')
		return false;
	for (size_t i = 2; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A normalised name: LDH labels of 1..63 bytes, lowercase, no '-' at either
 * end of a label, no trailing dot, a last label that is not a number. */
static void
check_name(const char *name)
{
	size_t n = strlen(name), start = 0;

	FUZZ_CHECK(n >= 1 && n <= HOST_NAME_MAX_LEN);
	for (size_t i = 0; i <= n; i++) {
		if (i < n && name[i] != '.') {
			char c = name[i];
			FUZZ_CHECK((c >= 'a' && c <= 'z') ||
			           (c >= '0' && c <= '9') || c == '-');
			continue;
		}
		FUZZ_CHECK(i > start && i - start <= 63);
		FUZZ_CHECK(name[start] != '-' && name[i - 1] != '-');
		if (i == n) {
			/* WHATWG "ends in a number": never a name. */
			FUZZ_CHECK(!all_digits(name + start, i - start));
			FUZZ_CHECK(!hex_number(name + start, i - start));
		}
		start = i + 1;
	}
}

static void
same_host(const struct host *a, const struct host *b)
{
	FUZZ_CHECK(a->kind == b->kind);
	FUZZ_CHECK(strcmp(a->name, b->name) == 0);
	if (a->kind != HOST_NAME)
		FUZZ_CHECK(memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0);
}

/* A host as a request target writes it: IPv6 in brackets. */
static size_t
host_text(const struct host *h, char *buf, size_t len)
{
	int n = h->kind == HOST_IPV6 ? snprintf(buf, len, "[%s]", h->name)
	                             : snprintf(buf, len, "%s", h->name);

	FUZZ_CHECK(n > 0 && (size_t)n < len);
	return (size_t)n;
}

static void
check_host(const struct host *h)
{
	struct host again;
	char text[HOST_NAME_MAX_LEN + 3], addr[NETADDR_STRLEN];
	size_t n;

	FUZZ_CHECK(memchr(h->name, '\0', sizeof(h->name)) != NULL);
	switch (h->kind) {
	case HOST_NAME:
		check_name(h->name);
		break;
	case HOST_IPV4:
		FUZZ_CHECK(strict_dotted_quad(h->name));
		FUZZ_CHECK(netaddr_is_v4(&h->addr));
		FUZZ_CHECK(strcmp(netaddr_str(&h->addr, addr), h->name) == 0);
		break;
	case HOST_IPV6:
		FUZZ_CHECK(!netaddr_is_v4(&h->addr));
		FUZZ_CHECK(strcmp(netaddr_str(&h->addr, addr), h->name) == 0);
		break;
	default:
		FUZZ_CHECK(0);
	}
	/* The normal form is a fixed point, in both bracket modes. */
	FUZZ_CHECK(host_parse(h->name, strlen(h->name), 0, &again) == 0);
	same_host(h, &again);
	n = host_text(h, text, sizeof(text));
	FUZZ_CHECK(host_parse(text, n, 1, &again) == 0);
	same_host(h, &again);
}

static void
check_pattern(const char *s, const struct host *h, int have_host)
{
	char *out = malloc(HOST_NAME_MAX_LEN + 3), again[HOST_NAME_MAX_LEN + 3];
	const char *why = NULL;

	if (!out)
		abort();
	if (host_pattern_parse(s, out, &why) != 0) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		free(out);
		return;
	}
	FUZZ_CHECK(strlen(out) <= HOST_NAME_MAX_LEN + 2);
	FUZZ_CHECK(host_pattern_parse(out, again, &why) == 0);
	FUZZ_CHECK(strcmp(out, again) == 0);
	if (out[0] == '*') {
		/* "*.suffix" matches proper subdomains, not the suffix. */
		const char *suffix = out + 2;
		char sub[HOST_NAME_MAX_LEN + 3];

		FUZZ_CHECK(out[1] == '.');
		check_name(suffix);
		FUZZ_CHECK(!host_pattern_match(out, suffix));
		snprintf(sub, sizeof(sub), "a.%s", suffix);
		FUZZ_CHECK(host_pattern_match(out, sub));
		snprintf(sub, sizeof(sub), "a%s", suffix);
		FUZZ_CHECK(!host_pattern_match(out, sub));
	} else {
		check_name(out);
		FUZZ_CHECK(host_pattern_match(out, out));
	}
	if (have_host) {
		int m = host_pattern_match(out, h->name);
		/* An exact pattern matches exactly the name it normalises. */
		if (out[0] != '*' && h->kind == HOST_NAME)
			FUZZ_CHECK(m == (strcmp(out, h->name) == 0));
		if (h->kind != HOST_NAME)
			FUZZ_CHECK(!m);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_dup(data, size), *str;
	struct host h0, h1, h;
	int r0, r1;
	uint16_t port;

	r0 = host_parse(buf, size, 0, &h0);
	r1 = host_parse(buf, size, 1, &h1);
	FUZZ_CHECK(r0 == 0 || r0 == -1);
	FUZZ_CHECK(r1 == 0 || r1 == -1);
	if (r0 == 0)
		check_host(&h0);
	if (r1 == 0) {
		check_host(&h1);
		/* Brackets required only refuse more. */
		FUZZ_CHECK(r0 == 0);
		same_host(&h0, &h1);
	}

	for (uint16_t dflt = 0; dflt <= 443; dflt += 443) {
		if (host_parse_authority(buf, size, dflt, &h, &port) != 0)
			continue;
		char text[HOST_NAME_MAX_LEN + 16];
		struct host again;
		uint16_t port2;
		int n;

		check_host(&h);
		FUZZ_CHECK(port >= 1);
		FUZZ_CHECK(memchr(buf, '@', size) == NULL);
		/* host:port written out is the same authority. */
		n = snprintf(text, sizeof(text),
		             h.kind == HOST_IPV6 ? "[%s]:%u" : "%s:%u", h.name,
		             port);
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof(text));
		FUZZ_CHECK(host_parse_authority(text, (size_t)n, 0, &again,
		                                &port2) == 0);
		same_host(&h, &again);
		FUZZ_CHECK(port2 == port);
	}
	free(buf);

	/* Patterns come from config strings: up to the first NUL. */
	str = fuzz_strdup(data, size);
	check_pattern(str, r0 == 0 ? &h0 : NULL, r0 == 0);
	/* Two arbitrary strings must not trip the matcher either. */
	char *half = str + strlen(str) / 2;
	(void)host_pattern_match(half, str);
	(void)host_pattern_match(str, half);
	free(str);
	return 0;
}
