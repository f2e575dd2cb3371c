/*
 * Unit tests for proxy/forward.c: the header plan (pure: the head written
 * into an evbuffer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forward.h"

static const struct http_limits head_limits = {
    .max_request_line = 8192,
    .max_field_line = 8192,
    .max_fields = HTTP_MAX_FIELDS,
    .max_head = 65536,
};

/* The parsed head points into text, which must outlive it. */
static void
parse_head(const char *text, struct http_request *req)
{
	size_t head_len = 0;

	assert_int_equal(
	    http_head_end(text, strlen(text), &head_limits, &head_len),
	    HTTP_OK);
	assert_int_equal(http_parse_request(text, head_len, &head_limits, req),
	                 HTTP_OK);
}

static struct forward_request
request_for(const struct http_request *req, const char *path,
            struct http_body body)
{
	return (struct forward_request){
	    .method = "POST",
	    .req = req,
	    .path = {path, strlen(path)},
	    .authority = "api.example.com",
	    .body = body,
	    .keep_upstream = 1,
	};
}

/* The head forward_write_head writes for fr, NUL-terminated. */
static char *
head_of(const struct forward_request *fr)
{
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *s;

	assert_non_null(out);
	n = forward_write_head(out, fr);
	assert_int_equal(n, evbuffer_get_length(out));
	s = calloc(1, n + 1);
	assert_non_null(s);
	evbuffer_remove(out, s, n);
	evbuffer_free(out);
	return s;
}

/* --- the header plan ------------------------------------------------------ */

static const char client_head[] =
    "POST http://api.example.com/v1/messages HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "Connection: keep-alive, X-Trace\r\n"
    "X-Trace: 1\r\n"
    "Keep-Alive: timeout=5\r\n"
    "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
    "Authorization: Bearer fake-1\r\n"
    "Via: 1.1 edge\r\n"
    "x-api-key: fake-2\r\n"
    "Content-Type: application/json\r\n"
    "X-API-KEY: fake-3\r\n"
    "authorization: Bearer fake-4\r\n"
    "Content-Length: 2\r\n"
    "\r\n";

/* Without a plan: the head as forward has always written it. */
static void
test_head_without_plan(void **state)
{
	struct http_request req;
	struct forward_request fr;
	char *head;

	(void)state;
	parse_head(client_head, &req);
	fr = request_for(&req, "/v1/messages",
	                 (struct http_body){HTTP_BODY_LENGTH, 2});
	head = head_of(&fr);
	assert_string_equal(head, "POST /v1/messages HTTP/1.1\r\n"
	                          "Host: api.example.com\r\n"
	                          "Authorization: Bearer fake-1\r\n"
	                          "x-api-key: fake-2\r\n"
	                          "Content-Type: application/json\r\n"
	                          "X-API-KEY: fake-3\r\n"
	                          "authorization: Bearer fake-4\r\n"
	                          "Via: 1.1 edge, 1.1 egressd\r\n"
	                          "Content-Length: 2\r\n"
	                          "\r\n");
	free(head);

	/* Chunked, and an upstream connection not to be kept. */
	fr.body = (struct http_body){HTTP_BODY_CHUNKED, 0};
	fr.keep_upstream = 0;
	fr.method = "GET";
	head = head_of(&fr);
	assert_non_null(strstr(head, "\r\nVia: 1.1 edge, 1.1 egressd\r\n"
	                             "Transfer-Encoding: chunked\r\n"
	                             "Connection: close\r\n\r\n"));
	assert_memory_equal(head, "GET /v1/messages HTTP/1.1\r\n", 27);
	free(head);
}

/* Every instance of a dropped or added field goes, in any case; the added
 * ones follow Via, before the framing field. */
static void
test_head_with_plan(void **state)
{
	static const char *const drop[] = {"Authorization"};
	static const struct forward_field add[] = {
	    {"x-api-key", "sk-real"},
	    {"anthropic-version", "2023-06-01"},
	};
	const struct forward_plan plan = {drop, 1, add, 2};
	struct http_request req;
	struct forward_request fr;
	char *head;

	(void)state;
	parse_head(client_head, &req);
	fr = request_for(&req, "/v1/messages",
	                 (struct http_body){HTTP_BODY_LENGTH, 2});
	fr.plan = &plan;
	head = head_of(&fr);
	assert_string_equal(head, "POST /v1/messages HTTP/1.1\r\n"
	                          "Host: api.example.com\r\n"
	                          "Content-Type: application/json\r\n"
	                          "Via: 1.1 edge, 1.1 egressd\r\n"
	                          "x-api-key: sk-real\r\n"
	                          "anthropic-version: 2023-06-01\r\n"
	                          "Content-Length: 2\r\n"
	                          "\r\n");
	assert_null(strstr(head, "fake"));
	free(head);
}

/* A client that names the added field in Connection does not lose ours. */
static void
test_plan_add_survives_connection(void **state)
{
	static const struct forward_field add[] = {{"X-Api-Key", "sk-real"}};
	const struct forward_plan plan = {NULL, 0, add, 1};
	static const char text[] = "GET http://a.example/ HTTP/1.1\r\n"
	                           "Host: a.example\r\n"
	                           "Connection: x-api-key\r\n"
	                           "X-Api-Key: fake\r\n"
	                           "\r\n";
	struct http_request req;
	struct forward_request fr;
	char *head;

	(void)state;
	parse_head(text, &req);
	fr = request_for(&req, "/", (struct http_body){HTTP_BODY_NONE, 0});
	fr.method = "GET";
	fr.plan = &plan;
	head = head_of(&fr);
	assert_string_equal(head, "GET / HTTP/1.1\r\n"
	                          "Host: api.example.com\r\n"
	                          "Via: 1.1 egressd\r\n"
	                          "X-Api-Key: sk-real\r\n"
	                          "\r\n");
	free(head);
}

static void
test_keeps_field(void **state)
{
	static const char *const drop[] = {"cookie", "X-Forwarded-For"};
	static const struct forward_field add[] = {{"Authorization", "x"}};
	const struct forward_plan plan = {drop, 2, add, 1};
	static const char text[] = "GET http://a.example/ HTTP/1.1\r\n"
	                           "Host: a.example\r\n"
	                           "Connection: X-Hop\r\n"
	                           "\r\n";
	static const struct {
		const char *name;
		int plain, planned;
	} cases[] = {
	    {"Accept", 1, 1},
	    {"COOKIE", 1, 0},
	    {"x-forwarded-for", 1, 0},
	    {"authorization", 1, 0},
	    {"Authorization-Extra", 1, 1},
	    {"x-hop", 0, 0},
	    {"Host", 0, 0},
	    {"Via", 0, 0},
	    {"content-length", 0, 0},
	    {"Transfer-Encoding", 0, 0},
	    {"TE", 0, 0},
	    {"Proxy-Authorization", 0, 0},
	};
	struct http_request req;

	(void)state;
	parse_head(text, &req);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_span name = {cases[i].name, strlen(cases[i].name)};

		if (forward_keeps_field(req.fields, req.nfields, name, NULL) !=
		        cases[i].plain ||
		    forward_keeps_field(req.fields, req.nfields, name, &plan) !=
		        cases[i].planned)
			fail_msg("%s", cases[i].name);
	}
}

static void
test_plan_check(void **state)
{
	static const char *const drop[] = {"authorization", "x-api-key"};
	static const char *const bad_drop[] = {"x api"};
	static const struct {
		const char *name, *value;
		int want;
	} adds[] = {
	    {"x-api-key", "sk-1", 0},
	    {"Authorization", "Bearer a.b", 0},
	    {"x-api-key", "sk-1\r\nHost: evil.example", -1},
	    {"x-api-key", "sk-1\n", -1},
	    {"x-api-key", " sk-1", -1},
	    {"x api key", "sk-1", -1},
	    {"x-api-key:", "sk-1", -1},
	    {"", "sk-1", -1},
	    {"Host", "a.example", -1},
	    {"via", "1.1 x", -1},
	    {"Content-Length", "0", -1},
	    {"transfer-encoding", "chunked", -1},
	    {"Connection", "close", -1},
	    {"Proxy-Authorization", "Basic x", -1},
	    {"Upgrade", "h2c", -1},
	};
	struct forward_field two[2] = {{"X-Key", "a"}, {"x-key", "b"}};
	struct forward_plan plan = {drop, 2, NULL, 0};

	(void)state;
	assert_int_equal(forward_plan_check(&plan), 0);
	for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++) {
		struct forward_field f = {adds[i].name, adds[i].value};

		plan.add = &f;
		plan.nadd = 1;
		if (forward_plan_check(&plan) != adds[i].want)
			fail_msg("%s: %s", adds[i].name, adds[i].value);
	}
	/* One value a name. */
	plan.add = two;
	plan.nadd = 2;
	assert_int_equal(forward_plan_check(&plan), -1);
	two[1].name = "y-key";
	assert_int_equal(forward_plan_check(&plan), 0);
	plan.drop = bad_drop;
	plan.ndrop = 1;
	assert_int_equal(forward_plan_check(&plan), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_head_without_plan),
	    cmocka_unit_test(test_head_with_plan),
	    cmocka_unit_test(test_plan_add_survives_connection),
	    cmocka_unit_test(test_keeps_field),
	    cmocka_unit_test(test_plan_check),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	libevent_global_shutdown();
	return failed;
}
