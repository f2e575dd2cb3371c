/* Unit tests for route: the gateway's path check, route lookup, rules,
 * upstream target, Location rewrite and origin URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static int
parses(const char *t)
{
	struct route_target rt;

	return route_target_parse(t, strlen(t), &rt) == 0;
}

static void
test_target_accepts(void **state)
{
	static const char *const ok[] = {
	    "/",
	    "/v1/messages",
	    "/v1/messages/",
	    "/v1/messages?beta=true&x=%2e%2e",
	    "/a/b-c_d.e~f/%41x",
	    "/org/repo.git/info/refs?service=git-upload-pack",
	    "/a/..b/c..",
	    "/a/.b",
	    "/%41%7e",
	};
	struct route_target t;
	const char *s = "/v1/models?limit=2";

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!parses(ok[i]))
			fail_msg("refused: %s", ok[i]);
	}
	assert_int_equal(route_target_parse(s, strlen(s), &t), 0);
	assert_int_equal(t.path_len, strlen("/v1/models"));
	assert_non_null(t.query);
	assert_int_equal(t.query_len, strlen("limit=2"));
	assert_memory_equal(t.query, "limit=2", t.query_len);
}

static void
test_target_refuses(void **state)
{
	static const char *const bad[] = {
	    "",
	    "v1/messages",
	    "*",
	    "http://x/v1",
	    "/v1/../admin",
	    "/v1/./messages",
	    "/..",
	    "/.",
	    "/v1/..",
	    "/v1//messages",
	    "//v1",
	    "/v1/%2e%2e/x",
	    "/v1/%2E%2e/x",
	    "/v1/%2e/x",
	    "/v1%2fmessages",
	    "/v1%2Fmessages",
	    "/v1%5cmessages",
	    "/v1/%5C",
	    "/v1/%252e%252e/x",
	    "/v1/%00",
	    "/v1/%0a",
	    "/v1/%7f",
	    "/v1/%80",
	    "/v1/%ff",
	    "/v1/%20",
	    "/v1/%3b",
	    "/v1/%",
	    "/v1/%2",
	    "/v1/%zz",
	    "/v1\\messages",
	    "/v1/mess ages",
	    "/v1/mess\tages",
	    "/v1/\x01",
	    "/v1/\x7f",
	    "/v1/caf\xc3\xa9",
	    "/v1;jsessionid=x",
	    "/v1/x;y/z",
	    "/v1#frag",
	    "/v1?a b",
	    "/v1?\x01",
	    "/v1?x#y",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parses(bad[i]))
			fail_msg("accepted: %s", bad[i]);
}

static void
test_target_length(void **state)
{
	char *p = malloc(ROUTE_PATH_MAX + 2);

	(void)state;
	p[0] = '/';
	memset(p + 1, 'a', ROUTE_PATH_MAX);
	p[ROUTE_PATH_MAX] = '\0';
	assert_true(parses(p)); /* exactly ROUTE_PATH_MAX bytes */
	p[ROUTE_PATH_MAX] = 'a';
	p[ROUTE_PATH_MAX + 1] = '\0';
	assert_false(parses(p));
	free(p);
}

static struct route_rule anthropic_rules[] = {
    {"POST", "/v1/messages"},
    {"GET", "/v1/models"},
    {NULL, "/v1/files/*"},
};
static struct route anthropic = {"/anthropic", "api.anthropic.com", 443,
                                 "",           anthropic_rules,     3};
static struct route openai = {"/openai", "api.openai.com", 443, "/v1", NULL, 0};
static struct route deeper = {
    "/anthropic/beta", "beta.example", 8443, "/api", NULL, 0};
static struct route root = {"/", "catch.example", 443, "", NULL, 0};

static int
find(const struct route *const *routes, size_t n, const char *path,
     const char **rest, size_t *rest_len)
{
	struct route_target t;

	assert_int_equal(route_target_parse(path, strlen(path), &t), 0);
	return route_find(routes, n, &t, rest, rest_len);
}

static void
test_find(void **state)
{
	const struct route *routes[] = {&anthropic, &openai, &deeper};
	const struct route *with_root[] = {&root, &anthropic};
	const char *rest;
	size_t len;

	(void)state;
	assert_int_equal(find(routes, 3, "/anthropic/v1/messages", &rest, &len),
	                 0);
	assert_int_equal(len, strlen("/v1/messages"));
	assert_memory_equal(rest, "/v1/messages", len);
	assert_int_equal(find(routes, 3, "/anthropic", &rest, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(find(routes, 3, "/anthropic/", &rest, &len), 0);
	assert_int_equal(len, 1);
	/* A segment boundary, not a string prefix. */
	assert_int_equal(find(routes, 3, "/anthropicx/v1", &rest, &len), -1);
	assert_int_equal(find(routes, 3, "/openai-evil", &rest, &len), -1);
	/* The longest prefix wins. */
	assert_int_equal(find(routes, 3, "/anthropic/beta/x", &rest, &len), 2);
	assert_memory_equal(rest, "/x", len);
	assert_int_equal(find(routes, 3, "/anthropic/betax", &rest, &len), 0);
	assert_int_equal(find(routes, 3, "/", &rest, &len), -1);
	/* "/" takes what no other does, with the whole path as its rest. */
	assert_int_equal(find(with_root, 2, "/x/y", &rest, &len), 0);
	assert_int_equal(len, 4);
	assert_int_equal(find(with_root, 2, "/anthropic/v1", &rest, &len), 1);
}

static void
test_rules(void **state)
{
	(void)state;
	assert_true(route_pattern_match("/v1/*", "/v1/x", 5));
	assert_true(route_pattern_match("/v1/*", "/v1/x/y", 7));
	assert_false(route_pattern_match("/v1/*", "/v1/", 4));
	assert_false(route_pattern_match("/v1/*", "/v1", 3));
	assert_false(route_pattern_match("/v1/*", "/v1x", 4));
	assert_true(route_pattern_match("/v1/models", "/v1/models", 10));
	assert_false(route_pattern_match("/v1/models", "/v1/models/", 11));
	assert_false(route_pattern_match("/v1/models", "/v1/model", 9));

	assert_true(route_allows(&anthropic, "POST", "/v1/messages", 12));
	assert_false(route_allows(&anthropic, "GET", "/v1/messages", 12));
	assert_false(route_allows(&anthropic, "post", "/v1/messages", 12));
	assert_true(route_allows(&anthropic, "GET", "/v1/models", 10));
	assert_false(route_allows(&anthropic, "POST", "/v1/models", 10));
	assert_true(route_allows(&anthropic, "DELETE", "/v1/files/f1", 12));
	assert_false(route_allows(&anthropic, "GET", "/v1/files", 9));
	assert_false(route_allows(&anthropic, "GET", "", 0));
	/* No rules: everything. */
	assert_true(route_allows(&openai, "PATCH", "/anything", 9));
	assert_true(route_allows(&openai, "GET", "", 0));
}

static const char *
upstream(const struct route *r, const char *path)
{
	static char buf[256];
	const struct route *routes[] = {r};
	struct route_target t;
	const char *rest;
	size_t len;

	assert_int_equal(route_target_parse(path, strlen(path), &t), 0);
	assert_int_equal(route_find(routes, 1, &t, &rest, &len), 0);
	assert_true(route_upstream_target(r, rest, len, &t, buf, sizeof(buf)) >
	            0);
	return buf;
}

static void
test_upstream_target(void **state)
{
	char small[8];
	struct route_target t;
	const char *p = "/openai/chat/completions";

	(void)state;
	assert_string_equal(upstream(&anthropic, "/anthropic/v1/messages?b=1"),
	                    "/v1/messages?b=1");
	assert_string_equal(upstream(&anthropic, "/anthropic"), "/");
	assert_string_equal(upstream(&anthropic, "/anthropic?x"), "/?x");
	assert_string_equal(upstream(&openai, "/openai/chat/completions"),
	                    "/v1/chat/completions");
	assert_string_equal(upstream(&openai, "/openai"), "/v1");
	assert_string_equal(upstream(&root, "/a/b?c=d"), "/a/b?c=d");
	assert_int_equal(route_target_parse(p, strlen(p), &t), 0);
	assert_int_equal(route_upstream_target(&openai, p + 7, strlen(p + 7),
	                                       &t, small, sizeof(small)),
	                 -1);
}

static int
rewrite(const struct route *r, const char *loc, char *buf)
{
	return route_rewrite_location(r, loc, strlen(loc), buf, 256);
}

static void
test_location(void **state)
{
	char buf[256];

	(void)state;
	assert_int_equal(
	    rewrite(&anthropic, "https://api.anthropic.com/v1/models", buf), 1);
	assert_string_equal(buf, "/anthropic/v1/models");
	assert_int_equal(
	    rewrite(&anthropic, "https://API.anthropic.com:443/v1?x=1", buf),
	    1);
	assert_string_equal(buf, "/anthropic/v1?x=1");
	assert_int_equal(rewrite(&anthropic, "https://api.anthropic.com", buf),
	                 1);
	assert_string_equal(buf, "/anthropic/");
	assert_int_equal(rewrite(&anthropic, "/v1/models", buf), 1);
	assert_string_equal(buf, "/anthropic/v1/models");
	/* Under the base only. */
	assert_int_equal(rewrite(&openai, "https://api.openai.com/v1/x", buf),
	                 1);
	assert_string_equal(buf, "/openai/x");
	assert_int_equal(rewrite(&openai, "https://api.openai.com/v1", buf), 1);
	assert_string_equal(buf, "/openai/");
	assert_int_equal(rewrite(&openai, "https://api.openai.com/v2/x", buf),
	                 0);
	assert_int_equal(rewrite(&openai, "https://api.openai.com/v1x", buf),
	                 0);
	/* Anything else passes as it is. */
	assert_int_equal(rewrite(&anthropic, "https://evil.example/v1", buf),
	                 0);
	assert_int_equal(
	    rewrite(&anthropic, "https://api.anthropic.com.evil/v1", buf), 0);
	assert_int_equal(
	    rewrite(&anthropic, "https://api.anthropic.com:8443/v1", buf), 0);
	assert_int_equal(
	    rewrite(&anthropic, "https://u@api.anthropic.com/v1", buf), 0);
	assert_int_equal(
	    rewrite(&anthropic, "http://api.anthropic.com/v1", buf), 0);
	assert_int_equal(rewrite(&anthropic, "//api.anthropic.com/v1", buf), 0);
	assert_int_equal(rewrite(&anthropic, "v1/models", buf), 0);
	assert_int_equal(
	    rewrite(&deeper, "https://beta.example:8443/api/z", buf), 1);
	assert_string_equal(buf, "/anthropic/beta/z");
	assert_int_equal(rewrite(&deeper, "https://beta.example/api/z", buf),
	                 0);
}

static void
test_origin_parse(void **state)
{
	char *host, *base;
	uint16_t port;

	(void)state;
	assert_null(
	    route_origin_parse("https://API.Example.com", &host, &port, &base));
	assert_string_equal(host, "api.example.com");
	assert_int_equal(port, 443);
	assert_string_equal(base, "");
	free(host);
	free(base);
	assert_null(route_origin_parse("https://git.corp.example:8443/api/v3/",
	                               &host, &port, &base));
	assert_int_equal(port, 8443);
	assert_string_equal(base, "/api/v3");
	free(host);
	free(base);
	assert_null(
	    route_origin_parse("https://[2001:db8::1]/", &host, &port, &base));
	assert_string_equal(host, "2001:db8::1");
	assert_string_equal(base, "");
	free(host);
	free(base);
	static const char *const bad[] = {
	    "http://api.example.com",
	    "ftp://x",
	    "https://",
	    "https:///v1",
	    "https://u:p@example.com",
	    "https://example.com?x",
	    "https://example.com#f",
	    "https://example.com:0",
	    "https://example.com:70000",
	    "https://exa mple.com",
	    "https://example.com/a/../b",
	    "https://example.com//a",
	    "https://2130706433",
	    "api.example.com",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!route_origin_parse(bad[i], &host, &port, &base))
			fail_msg("accepted: %s", bad[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_accepts),
	    cmocka_unit_test(test_target_refuses),
	    cmocka_unit_test(test_target_length),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_upstream_target),
	    cmocka_unit_test(test_location),
	    cmocka_unit_test(test_origin_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
