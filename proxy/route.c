#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host.h"

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A byte that may appear as itself in a path segment: visible ASCII but
 * for the ones refused (backslash, '#', ';', '?' ends the path anyway). */
static int
path_byte_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '\\' && c != '#' && c != ';';
}

/* A percent-encoded byte the gateway does not decode-match on: '.', '/',
 * '\\', '%' (a second decoder would see what the first did not) and
 * anything not visible ASCII. */
static int
encoded_byte_refused(int v)
{
	return v < 0x21 || v > 0x7e || v == '.' || v == '/' || v == '\\' ||
	       v == '%' || v == ';';
}

/* One segment (between slashes, possibly empty): 0 or -1. */
static int
segment_ok(const char *s, size_t len)
{
	if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;

		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			hi = hex_value(s[i + 1]);
			lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0 ||
			    encoded_byte_refused(hi * 16 + lo))
				return -1;
			i += 2;
			continue;
		}
		if (!path_byte_ok(c))
			return -1;
	}
	return 0;
}

int
route_target_parse(const char *target, size_t len, struct route_target *out)
{
	const char *q = memchr(target, '?', len);
	size_t plen = q ? (size_t)(q - target) : len;
	size_t start;

	memset(out, 0, sizeof(*out));
	if (plen == 0 || target[0] != '/' || plen > ROUTE_PATH_MAX)
		return -1;
	/* Segments: each between two slashes, or after the last.  An empty
	 * one is refused, except the last (a trailing '/'). */
	start = 1;
	for (size_t i = 1; i <= plen; i++) {
		if (i < plen && target[i] != '/')
			continue;
		if (i == start && i < plen)
			return -1; /* "//" */
		if (segment_ok(target + start, i - start) < 0)
			return -1;
		start = i + 1;
	}
	if (q) {
		for (size_t i = plen + 1; i < len; i++) {
			unsigned char c = (unsigned char)target[i];

			if (c <= 0x20 || c >= 0x7f || c == '#')
				return -1;
		}
		out->query = q + 1;
		out->query_len = len - plen - 1;
	}
	out->path = target;
	out->path_len = plen;
	return 0;
}

/* Does prefix start path at a segment boundary?  "/" starts every path. */
static int
prefix_starts(const char *prefix, const char *path, size_t len)
{
	size_t n = strlen(prefix);

	if (n == 1 && prefix[0] == '/')
		return 1;
	return n <= len && memcmp(prefix, path, n) == 0 &&
	       (n == len || path[n] == '/');
}

int
route_find(const struct route *const *routes, size_t n,
           const struct route_target *t, const char **rest, size_t *rest_len)
{
	int best = -1;
	size_t best_len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t plen = strlen(routes[i]->prefix);

		if (!prefix_starts(routes[i]->prefix, t->path, t->path_len))
			continue;
		if (best < 0 || plen > best_len) {
			best = (int)i;
			best_len = plen;
		}
	}
	if (best < 0)
		return -1;
	if (best_len == 1 && routes[best]->prefix[0] == '/')
		best_len = 0; /* the catch-all: the rest is the whole path */
	*rest = t->path + best_len;
	*rest_len = t->path_len - best_len;
	return best;
}

int
route_pattern_match(const char *pattern, const char *path, size_t len)
{
	size_t n = strlen(pattern);

	if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '/')
		/* "/v1/\*": something after "/v1/". */
		return len > n - 1 && memcmp(pattern, path, n - 1) == 0;
	return n == len && memcmp(pattern, path, len) == 0;
}

int
route_allows(const struct route *r, const char *method, const char *rest,
             size_t rest_len)
{
	if (r->nrules == 0)
		return 1;
	if (rest_len == 0) {
		rest = "/";
		rest_len = 1;
	}
	for (size_t i = 0; i < r->nrules; i++) {
		const struct route_rule *rule = &r->rules[i];

		if (rule->method && strcmp(rule->method, "*") != 0 &&
		    strcmp(rule->method, method) != 0)
			continue;
		if (route_pattern_match(rule->path, rest, rest_len))
			return 1;
	}
	return 0;
}

int
route_upstream_target(const struct route *r, const char *rest, size_t rest_len,
                      const struct route_target *t, char *buf, size_t size)
{
	int n;

	if (rest_len == 0 && r->base[0] == '\0') {
		rest = "/";
		rest_len = 1;
	}
	if (t->query)
		n = snprintf(buf, size, "%s%.*s?%.*s", r->base, (int)rest_len,
		             rest, (int)t->query_len, t->query);
	else
		n = snprintf(buf, size, "%s%.*s", r->base, (int)rest_len, rest);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* Is host[:port] (len bytes) the route's origin?  The default port may be
 * written or not. */
static int
same_authority(const struct route *r, const char *a, size_t len)
{
	size_t hlen = strlen(r->host);
	const char *colon;
	char port[8];

	if (len < hlen || strncasecmp(a, r->host, hlen) != 0)
		return 0;
	if (len == hlen)
		return r->port == 443;
	colon = a + hlen;
	if (*colon != ':')
		return 0;
	snprintf(port, sizeof(port), "%u", r->port);
	return len - hlen - 1 == strlen(port) &&
	       memcmp(colon + 1, port, strlen(port)) == 0;
}

int
route_rewrite_location(const struct route *r, const char *loc, size_t len,
                       char *buf, size_t size)
{
	const char *path = loc, *end = loc + len;
	size_t blen = strlen(r->base), plen;
	int n;

	if (len >= 8 && strncasecmp(loc, "https://", 8) == 0) {
		const char *auth = loc + 8;
		const char *slash = memchr(auth, '/', (size_t)(end - auth));
		const char *stop = slash ? slash : end;

		for (const char *p = auth; p < stop; p++)
			if (*p == '?' || *p == '#' || *p == '@')
				return 0;
		if (!same_authority(r, auth, (size_t)(stop - auth)))
			return 0;
		path = stop;
	} else if (!(len >= 1 && loc[0] == '/' &&
	             !(len >= 2 && loc[1] == '/'))) {
		return 0; /* relative, another scheme, or "//host" */
	}
	plen = (size_t)(end - path);
	/* Under base: base itself, or base followed by '/', '?' or '#'. */
	if (plen < blen || memcmp(path, r->base, blen) != 0 ||
	    (plen > blen && path[blen] != '/' && path[blen] != '?' &&
	     path[blen] != '#'))
		return 0;
	path += blen;
	plen -= blen;
	n = snprintf(buf, size, "%s%s%.*s",
	             strcmp(r->prefix, "/") == 0 ? "" : r->prefix,
	             plen == 0 || path[0] != '/' ? "/" : "", (int)plen, path);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return 1;
}

const char *
route_origin_parse(const char *url, char **host, uint16_t *port, char **base)
{
	const char *auth, *slash, *end = url + strlen(url);
	struct host h;
	struct route_target t;
	size_t blen;

	*host = *base = NULL;
	if (strncasecmp(url, "https://", 8) != 0)
		return "an origin is https://host[:port][/path]";
	auth = url + 8;
	if (strpbrk(auth, "?#@"))
		return "no user, query or fragment in an origin";
	slash = strchr(auth, '/');
	if (!slash)
		slash = end;
	if (slash == auth)
		return "no host";
	if (host_parse_authority(auth, (size_t)(slash - auth), 443, &h, port) <
	    0)
		return "the host or port is not valid";
	blen = (size_t)(end - slash);
	if (blen > 1 && slash[blen - 1] == '/')
		blen--; /* one trailing '/' is not part of the base */
	if (blen == 1)
		blen = 0;
	if (blen > 0 && route_target_parse(slash, blen, &t) < 0)
		return "the path fails the gateway's path check";
	if (!(*host = strdup(h.name)) || !(*base = strndup(slash, blen))) {
		free(*host);
		*host = NULL;
		return "out of memory";
	}
	return NULL;
}
