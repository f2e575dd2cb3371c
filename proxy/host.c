/*
 * host: destination name normalisation and matching.  No I/O.
 */
#include "host.h"

#include <string.h>

/* Long enough for any IP literal we accept, brackets excluded. */
#define HOST_IP_MAX 64

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char
to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Parse an IP literal with cidr_parse, which is strict (dotted quad only,
 * no zone): it sees only hex digits, colons and dots, so never a "/n".
 */
static int
host_ip(const char *s, size_t len, struct host *out, const char **why)
{
	char buf[HOST_IP_MAX];
	struct cidr c;
	const char *ignored;

	if (len == 0 || len >= sizeof(buf)) {
		*why = "not a valid IP address";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.') {
			*why = s[i] == '%' ? "zone ids are not allowed"
			                   : "not a valid IP address";
			return -1;
		}
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (cidr_parse(buf, &c, &ignored) != 0 || c.prefix != 128) {
		*why = memchr(s, ':', len) != NULL
		           ? "not a valid IPv6 address"
		           : "numeric host that is not a strict dotted quad";
		return -1;
	}
	out->addr = c.net;
	out->kind = netaddr_is_v4(&c.net) ? HOST_IPV4 : HOST_IPV6;
	netaddr_str(&c.net, out->name);
	return 0;
}

/*
 * WHATWG URL "ends in a number": a last label of digits, or of "0x" and hex
 * digits, makes the host an attempted IPv4 address.  Browsers and many
 * resolvers read "0x7f.1" or "2130706433" as 127.0.0.1, so such a host is a
 * strict dotted quad or nothing: never a name.
 */
static int
ends_in_number(const char *label, size_t len)
{
	size_t i = 0;

	if (len >= 2 && label[0] == '0' &&
	    (label[1] == 'x' || label[1] == 'X')) {
		for (i = 2; i < len; i++)
			if (!is_hex(label[i]))
				return 0;
		return 1;
	}
	for (i = 0; i < len; i++)
		if (!is_digit(label[i]))
			return 0;
	return len > 0;
}

/* host_parse with a description of what is wrong, for config errors. */
static int
host_parse_why(const char *s, size_t len, int brackets, struct host *out,
               const char **why)
{
	struct host h;

	if (s == NULL || len == 0) {
		*why = "empty host";
		return -1;
	}
	if (s[0] == '[') {
		if (len < 2 || s[len - 1] != ']' ||
		    memchr(s + 1, ':', len - 2) == NULL) {
			*why = "brackets hold only an IPv6 address";
			return -1;
		}
		if (host_ip(s + 1, len - 2, &h, why) != 0)
			return -1;
		*out = h;
		return 0;
	}
	if (memchr(s, ':', len) != NULL) {
		if (brackets) {
			*why = "an IPv6 address must be in brackets";
			return -1;
		}
		if (host_ip(s, len, &h, why) != 0)
			return -1;
		*out = h;
		return 0;
	}

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!is_digit(c) && !(c >= 'a' && c <= 'z') &&
		    !(c >= 'A' && c <= 'Z') && c != '-' && c != '.') {
			*why = "character outside letters, digits, '-' and '.'";
			return -1;
		}
	}

	/* One trailing dot is the root of the DNS, "example.com." is the same
	 * name as "example.com". */
	size_t n = len;
	if (s[n - 1] == '.')
		n--;
	if (n == 0) {
		*why = "empty host";
		return -1;
	}
	size_t last = n;
	while (last > 0 && s[last - 1] != '.')
		last--;
	if (ends_in_number(s + last, n - last)) {
		/* The trailing dot is not stripped here: "127.0.0.1." is not
		 * a strict dotted quad. */
		if (host_ip(s, len, &h, why) != 0) {
			*why = "numeric host that is not a strict dotted quad";
			return -1;
		}
		*out = h;
		return 0;
	}
	if (n > HOST_NAME_MAX_LEN) {
		*why = "name longer than 253 bytes";
		return -1;
	}

	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		size_t label = i - start;
		if (label == 0) {
			*why = "empty label";
			return -1;
		}
		if (label > 63) {
			*why = "label longer than 63 bytes";
			return -1;
		}
		if (s[start] == '-' || s[i - 1] == '-') {
			*why = "label starts or ends with '-'";
			return -1;
		}
		start = i + 1;
	}

	h.kind = HOST_NAME;
	for (size_t i = 0; i < n; i++)
		h.name[i] = to_lower(s[i]);
	h.name[n] = '\0';
	memset(&h.addr, 0, sizeof(h.addr));
	*out = h;
	return 0;
}

int
host_parse(const char *s, size_t len, int brackets, struct host *out)
{
	const char *why;

	return host_parse_why(s, len, brackets, out, &why);
}

/* 1..65535 in 1..5 plain digits, no sign, no leading zero. */
static int
parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned v = 0;

	if (len == 0 || len > 5 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int
host_parse_authority(const char *s, size_t len, uint16_t default_port,
                     struct host *out, uint16_t *port)
{
	size_t hlen;
	struct host h;
	uint16_t p;

	if (s == NULL || len == 0 || memchr(s, '@', len) != NULL)
		return -1;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (rb == NULL)
			return -1;
		hlen = (size_t)(rb - s) + 1;
	} else {
		const char *colon = memchr(s, ':', len);
		hlen = colon != NULL ? (size_t)(colon - s) : len;
	}

	if (hlen == len) {
		if (default_port == 0)
			return -1;
		p = default_port;
	} else if (s[hlen] != ':' ||
	           parse_port(s + hlen + 1, len - hlen - 1, &p) != 0) {
		return -1;
	}
	if (host_parse(s, hlen, 1, &h) != 0)
		return -1;
	*out = h;
	*port = p;
	return 0;
}

/* "https://x", "x/path" or "x:443": a name with more than a name. */
static int
looks_like_url(const char *s)
{
	const char *colon = strchr(s, ':');

	if (strchr(s, '/') != NULL)
		return 1;
	if (colon == NULL || strchr(colon + 1, ':') != NULL)
		return 0;
	return colon[1] != '\0' &&
	       strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

int
host_pattern_parse(const char *s, char *out, const char **why)
{
	const char *dummy;
	const char *name = s;
	struct host h;
	struct cidr c;

	if (why == NULL)
		why = &dummy;
	if (s == NULL || *s == '\0') {
		*why = "empty host pattern";
		return -1;
	}
	if (strcmp(s, "*") == 0) {
		*why = "\"*\" would allow every host; list the names";
		return -1;
	}
	if (strncmp(s, "*.", 2) == 0)
		name = s + 2;
	if (strchr(name, '*') != NULL) {
		*why = "wildcards only as a leading \"*.\" label";
		return -1;
	}
	if (*name == '\0') {
		*why = "\"*.\" needs a domain after it";
		return -1;
	}
	if (strpbrk(name, "\\^$()|+?{}") != NULL) {
		*why = "not a regular expression: write an exact name or "
		       "\"*.suffix\"";
		return -1;
	}
	if (cidr_parse(name, &c, &dummy) == 0) {
		*why = "IP addresses go in networks, not hosts";
		return -1;
	}
	if (host_parse_why(name, strlen(name), 0, &h, why) != 0) {
		if (looks_like_url(name))
			*why = "a host name only: no scheme, port or path";
		return -1;
	}
	if (h.kind != HOST_NAME) {
		*why = "IP addresses go in networks, not hosts";
		return -1;
	}
	if (name != s) {
		out[0] = '*';
		out[1] = '.';
		memcpy(out + 2, h.name, strlen(h.name) + 1);
	} else {
		memcpy(out, h.name, strlen(h.name) + 1);
	}
	return 0;
}

int
host_pattern_match(const char *pattern, const char *name)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* The suffix with its leading dot: a label boundary. */
		const char *suffix = pattern + 1;
		size_t slen = strlen(suffix), nlen = strlen(name);
		return nlen > slen && strcmp(name + nlen - slen, suffix) == 0;
	}
	return strcmp(pattern, name) == 0;
}
