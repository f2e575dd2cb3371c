/*
 * fuzz_route: the gateway's path check, route lookup, rules, upstream
 * target and Location rewrite (route.c).  The input is a request target as
 * a client sends it.  What the check accepts must need no cleaning: no '.'
 * or '..' segment, no empty one but a trailing '/', no encoded '.', '/',
 * '\\', '%' or control byte, nothing outside visible ASCII.  A route found
 * starts the path at a segment boundary, and the target sent upstream
 * passes the same check.
 */
#include <strings.h>

#include "fuzz.h"
#include "route.h"

static struct route_rule rules[] = {{"POST", "/v1/messages"},
                                    {NULL, "/v1/files/*"}};
static struct route routes[] = {
    {"/anthropic", "api.anthropic.com", 443, "", rules, 2},
    {"/anthropic/beta", "beta.example", 8443, "/api", NULL, 0},
    {"/openai", "api.openai.com", 443, "/v1", NULL, 0},
};
static const struct route *const table[] = {&routes[0], &routes[1],
                                            &routes[2]};

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* The invariants of an accepted path. */
static void
check_path(const char *p, size_t n)
{
	FUZZ_CHECK(n >= 1 && p[0] == '/');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '\\' && c != '?' &&
		           c != '#' && c != ';');
		if (c == '%') {
			FUZZ_CHECK(i + 2 < n && is_hex(p[i + 1]) &&
			           is_hex(p[i + 2]));
			FUZZ_CHECK(strncasecmp(p + i, "%2e", 3) != 0 &&
			           strncasecmp(p + i, "%2f", 3) != 0 &&
			           strncasecmp(p + i, "%5c", 3) != 0 &&
			           strncasecmp(p + i, "%25", 3) != 0 &&
			           !(p[i + 1] == '0' || p[i + 1] == '1'));
		}
		if (c == '/' && i + 1 < n)
			FUZZ_CHECK(p[i + 1] != '/');
		if (c == '/') {
			/* No "." or ".." segment. */
			size_t e = i + 1;

			while (e < n && p[e] != '/')
				e++;
			FUZZ_CHECK(!(e - i - 1 == 1 && p[i + 1] == '.'));
			FUZZ_CHECK(!(e - i - 1 == 2 && p[i + 1] == '.' &&
			             p[i + 2] == '.'));
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_dup(data, size);
	char out[ROUTE_PATH_MAX * 2 + 64], loc[ROUTE_PATH_MAX + 64];
	struct route_target t, again;
	const char *rest;
	size_t rest_len;
	int i, n;

	/* A Location of any shape: rewritten or not, never past its end. */
	n = route_rewrite_location(&routes[2], buf, size, loc, sizeof(loc));
	FUZZ_CHECK(n >= -1 && n <= 1);
	if (n == 1)
		FUZZ_CHECK(strncmp(loc, "/openai", 7) == 0);

	if (route_target_parse(buf, size, &t) < 0) {
		free(buf);
		return 0;
	}
	FUZZ_CHECK(t.path == buf && t.path_len <= size);
	check_path(t.path, t.path_len);
	i = route_find(table, 3, &t, &rest, &rest_len);
	if (i >= 0) {
		size_t plen = strlen(table[i]->prefix);

		FUZZ_CHECK(memcmp(t.path, table[i]->prefix, plen) == 0);
		FUZZ_CHECK(t.path_len == plen || t.path[plen] == '/');
		FUZZ_CHECK(rest == t.path + plen);
		(void)route_allows(table[i], "POST", rest, rest_len);
		n = route_upstream_target(table[i], rest, rest_len, &t, out,
		                          sizeof(out));
		FUZZ_CHECK(n > 0);
		/* What goes upstream passes the same check. */
		FUZZ_CHECK(route_target_parse(out, (size_t)n, &again) == 0);
	}
	free(buf);
	return 0;
}
