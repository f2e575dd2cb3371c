/*
 * Unit tests for proxy/forward.c: the header plan (pure: the head written
 * into an evbuffer) and the inspection hook (a forward driven over two
 * socketpairs on an event loop of the test's own, one step at a time).
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

/* --- a forward on an event loop ------------------------------------------- */

struct rig {
	struct event_base *base;
	struct bufferevent *client, *upstream;
	int client_peer, upstream_peer; /* the test's ends */
	struct config_limits lim;
	struct http_request req;
	struct forward_request fr;
	struct forward *f;
	/* The hook's record and its answer. */
	int calls;
	unsigned char seen[256];
	size_t seen_len;
	int last_final;
	size_t accept_at; /* accept once this much payload is seen */
	int refuse;       /* refuse at the first call */
	int stall;        /* answer 0, always */
	/* The done callback's. */
	int done;
	struct forward_result res;
};

static int
inspect_cb(void *arg, const unsigned char *buf, size_t len, int final,
           enum reason *why)
{
	struct rig *r = arg;

	assert_true(len <= sizeof(r->seen));
	assert_int_equal(*why, REASON_INTERNAL_ERROR);
	r->calls++;
	memcpy(r->seen, buf, len);
	r->seen_len = len;
	r->last_final = final;
	if (r->refuse) {
		*why = REASON_METHOD_NOT_ALLOWED;
		return -1;
	}
	if (r->stall)
		return 0;
	return len >= r->accept_at || final == FORWARD_INSPECT_END ? 1 : 0;
}

static void
done_cb(void *arg, const struct forward_result *res)
{
	struct rig *r = arg;

	r->done++;
	r->res = *res;
}

static void
rig_start(struct rig *r, const char *head, struct http_body body,
          size_t inspect_max)
{
	int c[2], u[2];

	memset(r, 0, sizeof(*r));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, u), 0);
	assert_int_equal(evutil_make_socket_nonblocking(u[1]), 0);
	r->base = event_base_new();
	assert_non_null(r->base);
	r->client =
	    bufferevent_socket_new(r->base, c[0], BEV_OPT_CLOSE_ON_FREE);
	r->upstream =
	    bufferevent_socket_new(r->base, u[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(r->client);
	assert_non_null(r->upstream);
	r->client_peer = c[1];
	r->upstream_peer = u[1];
	r->lim.idle_timeout_ms = 10000;
	r->lim.buffer_bytes = 65536;
	r->lim.max_request_line = 8192;
	r->lim.max_header_bytes = 32768;
	parse_head(head, &r->req);
	r->fr = request_for(&r->req, "/git/repo.git/git-receive-pack", body);
	r->fr.method = http_span_eq(r->req.method, "GET") ? "GET" : "POST";
	r->fr.inspect = inspect_cb;
	r->fr.inspect_max = inspect_max;
	r->fr.inspect_arg = r;
	r->accept_at = SIZE_MAX;
}

static void
rig_forward(struct rig *r)
{
	r->f = forward_new(r->client, r->upstream, &r->fr, &r->lim, done_cb, r);
	assert_non_null(r->f);
	/* Never judged inside forward_new. */
	assert_int_equal(r->calls, 0);
	assert_int_equal(r->done, 0);
}

static void
rig_end(struct rig *r)
{
	forward_free(r->f);
	bufferevent_free(r->client);
	bufferevent_free(r->upstream);
	close(r->client_peer);
	close(r->upstream_peer);
	event_base_free(r->base);
}

static void
give_up_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Run the loop until cond holds; fail after 5 s (a bug, not a slow run:
 * every byte the test waits for is already in a socket). */
static void
run_until(struct rig *r, int (*cond)(struct rig *))
{
	int late = 0;
	struct event *timer = evtimer_new(r->base, give_up_cb, &late);
	struct timeval tv = {5, 0};

	assert_non_null(timer);
	evtimer_add(timer, &tv);
	while (!cond(r) && !late)
		event_base_loop(r->base, EVLOOP_ONCE);
	event_free(timer);
	if (late)
		fail_msg("the forward did not get there");
}

/* The forward has read everything the client sent (or is done). */
static int
client_read_all(struct rig *r)
{
	int unread = 0;

	assert_int_equal(ioctl(bufferevent_getfd(r->client), FIONREAD, &unread),
	                 0);
	return unread == 0 || r->done;
}

static int
is_done(struct rig *r)
{
	return r->done > 0;
}

static int
upstream_flushed(struct rig *r)
{
	return evbuffer_get_length(bufferevent_get_output(r->upstream)) == 0 ||
	       r->done;
}

static int
judged_and_flushed(struct rig *r)
{
	return r->calls > 0 && upstream_flushed(r);
}

/* The client sends s; run until the forward has it. */
static void
client_sends(struct rig *r, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(write(r->client_peer, s, n), (ssize_t)n);
	run_until(r, client_read_all);
}

/* Everything the upstream has received so far, NUL-terminated. */
static char *
upstream_got(struct rig *r)
{
	static char buf[8192];
	size_t len = 0;
	ssize_t n;

	while ((n = read(r->upstream_peer, buf + len, sizeof(buf) - 1 - len)) >
	       0)
		len += (size_t)n;
	assert_true(n == 0 || errno == EAGAIN);
	buf[len] = '\0';
	return buf;
}

/* A Content-Length body: held while the hook wants more, then sent on
 * unchanged, head first; the rest of the forward as without a hook. */
static void
test_inspect_accepts_length_body(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Content-Length: 11\r\n\r\n";
	struct rig r;
	char *want_head, *got;
	size_t want_len;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_LENGTH, 11}, 64);
	want_head = head_of(&r.fr);
	want_len = strlen(want_head);
	r.accept_at = 11;
	rig_forward(&r);

	client_sends(&r, "hello");
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last_final, 0);
	assert_memory_equal(r.seen, "hello", 5);
	run_until(&r, upstream_flushed);
	assert_string_equal(upstream_got(&r), "");

	/* The end of the body, and the next request pipelined behind it. */
	client_sends(&r, " worldGET http://git.example/ HTTP/1.1\r\n");
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.last_final, FORWARD_INSPECT_END);
	assert_int_equal(r.seen_len, 11);
	assert_memory_equal(r.seen, "hello world", 11);
	run_until(&r, upstream_flushed);
	got = upstream_got(&r);
	assert_int_equal(strlen(got), want_len + 11);
	assert_memory_equal(got, want_head, want_len);
	assert_string_equal(got + want_len, "hello world");

	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	                           "\r\nok";
	assert_int_equal(write(r.upstream_peer, resp, sizeof(resp) - 1),
	                 (ssize_t)sizeof(resp) - 1);
	run_until(&r, is_done);
	assert_int_equal(r.res.reason, REASON_COMPLETE);
	assert_int_equal(r.res.status, 200);
	assert_int_equal(r.res.bytes_up, want_len + 11);
	assert_true(r.res.keep_upstream);
	assert_true(r.res.keep_client);
	free(want_head);
	rig_end(&r);
}

/* A refusal: not a byte of head or body reaches the upstream, and conn
 * can still answer the client (status 0) from the hook's reason. */
static void
test_inspect_refuses(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Content-Length: 100\r\n\r\n";
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_LENGTH, 100}, 64);
	r.refuse = 1;
	rig_forward(&r);
	client_sends(&r, "0077oldsha newsha refs/heads/main");
	/* Refused, but not done: the rest of the body is read and dropped
	 * first (a client still sending would miss the answer). */
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.done, 0);
	client_sends(&r, "0000PACK");
	assert_int_equal(r.done, 0);
	client_sends(&r, "-----------------------------------------------------"
	                 "-----------");
	run_until(&r, is_done);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.res.reason, REASON_METHOD_NOT_ALLOWED);
	assert_int_equal(r.res.status, 0);
	assert_int_equal(r.res.bytes_up, 0);
	assert_int_equal(r.res.bytes_down, 0);
	assert_false(r.res.keep_upstream);
	assert_false(r.res.keep_client);
	run_until(&r, upstream_flushed);
	assert_string_equal(upstream_got(&r), "");
	rig_end(&r);
}

/* A client that leaves while its refused body is being dropped: the
 * forward ends with the refusal's reason, not client_closed. */
static void
test_inspect_refusal_outlives_the_client(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_CHUNKED, 0}, 64);
	r.refuse = 1;
	rig_forward(&r);
	client_sends(&r, "8\r\n0008abcd\r\n");
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.done, 0);
	assert_int_equal(shutdown(r.client_peer, SHUT_WR), 0);
	run_until(&r, is_done);
	assert_int_equal(r.res.reason, REASON_METHOD_NOT_ALLOWED);
	assert_int_equal(r.res.status, 0);
	assert_int_equal(r.res.bytes_up, 0);
	assert_string_equal(upstream_got(&r), "");
	rig_end(&r);
}

/* A chunked body: the hook sees chunk data only, however the framing is
 * split; the upstream gets the chunks as the client sent them. */
static void
test_inspect_dechunks(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	static const char *const pieces[] = {"5;ex", "t=1\r\nhel",
	                                     "lo\r\n6\r\n world\r",
	                                     "\n0\r\nX-T: 1\r\n", "\r\n"};
	static const int calls_after[] = {0, 1, 2, 2, 3};
	struct rig r;
	char *want_head, *got;
	size_t want_len;
	char body[128] = "";

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_CHUNKED, 0}, 128);
	want_head = head_of(&r.fr);
	want_len = strlen(want_head);
	rig_forward(&r);
	for (size_t i = 0; i < 5; i++) {
		client_sends(&r, pieces[i]);
		strcat(body, pieces[i]);
		if (r.calls != calls_after[i])
			fail_msg("piece %zu: %d calls", i, r.calls);
		run_until(&r, upstream_flushed);
		if (i < 4)
			assert_string_equal(upstream_got(&r), "");
	}
	assert_int_equal(r.last_final, FORWARD_INSPECT_END);
	assert_int_equal(r.seen_len, 11);
	assert_memory_equal(r.seen, "hello world", 11);
	got = upstream_got(&r);
	assert_memory_equal(got, want_head, want_len);
	assert_string_equal(got + want_len, body);
	free(want_head);
	rig_end(&r);
}

/* inspect_max bounds what is held, framing included: then the hook must
 * decide, and 0 counts as a refusal with the preset reason. */
static void
test_inspect_full(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Content-Length: 20\r\n\r\n";
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_LENGTH, 20}, 8);
	r.stall = 1;
	rig_forward(&r);
	client_sends(&r, "0123456789abcdefghij");
	run_until(&r, is_done);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last_final, FORWARD_INSPECT_FULL);
	assert_int_equal(r.seen_len, 8);
	assert_memory_equal(r.seen, "01234567", 8);
	assert_int_equal(r.res.reason, REASON_INTERNAL_ERROR);
	assert_int_equal(r.res.status, 0);
	assert_int_equal(r.res.bytes_up, 0);
	run_until(&r, upstream_flushed);
	assert_string_equal(upstream_got(&r), "");
	rig_end(&r);
}

/* A request without a body is judged too, once, from the loop. */
static void
test_inspect_no_body(void **state)
{
	static const char head[] =
	    "GET http://git.example/r HTTP/1.1\r\nHost: git.example\r\n\r\n";
	struct rig r;
	char *want_head;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_NONE, 0}, 64);
	want_head = head_of(&r.fr);
	rig_forward(&r);
	run_until(&r, judged_and_flushed);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.seen_len, 0);
	assert_int_equal(r.last_final, FORWARD_INSPECT_END);
	assert_string_equal(upstream_got(&r), want_head);
	assert_int_equal(r.done, 0);
	free(want_head);
	rig_end(&r);
}

static void
test_inspect_bad_framing(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_CHUNKED, 0}, 64);
	rig_forward(&r);
	client_sends(&r, "5\r\nhello\r\nzz\r\n");
	run_until(&r, is_done);
	/* Framing is checked before the hook sees any of it. */
	assert_int_equal(r.calls, 0);
	assert_int_equal(r.res.reason, REASON_BAD_FRAMING);
	assert_int_equal(r.res.status, 0);
	assert_int_equal(r.res.bytes_up, 0);
	run_until(&r, upstream_flushed);
	assert_string_equal(upstream_got(&r), "");
	rig_end(&r);
}

/* The client gives up while its request is held. */
static void
test_inspect_client_closes(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Content-Length: 10\r\n\r\n";
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_LENGTH, 10}, 64);
	rig_forward(&r);
	client_sends(&r, "abc");
	assert_int_equal(shutdown(r.client_peer, SHUT_WR), 0);
	run_until(&r, is_done);
	assert_int_equal(r.res.reason, REASON_CLIENT_CLOSED);
	assert_int_equal(r.res.bytes_up, 0);
	run_until(&r, upstream_flushed);
	assert_string_equal(upstream_got(&r), "");
	rig_end(&r);
}

/* Without a hook the head goes out from forward_new, as it always has. */
static void
test_no_hook_sends_head_at_once(void **state)
{
	static const char head[] =
	    "POST http://git.example/r HTTP/1.1\r\nHost: git.example\r\n"
	    "Content-Length: 2\r\n\r\n";
	struct rig r;
	char *want_head;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_LENGTH, 2}, 0);
	r.fr.inspect = NULL;
	want_head = head_of(&r.fr);
	r.f = forward_new(r.client, r.upstream, &r.fr, &r.lim, done_cb, &r);
	assert_non_null(r.f);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(r.upstream)),
	    strlen(want_head));
	client_sends(&r, "ok");
	run_until(&r, upstream_flushed);
	assert_int_equal(r.calls, 0);
	assert_memory_equal(upstream_got(&r), want_head, strlen(want_head));
	free(want_head);
	rig_end(&r);
}

/* forward_new refuses a plan that forward_plan_check refuses. */
static void
test_new_refuses_bad_plan(void **state)
{
	static const char head[] =
	    "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n";
	static const struct forward_field add[] = {{"x-api-key", "a\r\nb"}};
	const struct forward_plan plan = {NULL, 0, add, 1};
	struct rig r;

	(void)state;
	rig_start(&r, head, (struct http_body){HTTP_BODY_NONE, 0}, 0);
	r.fr.plan = &plan;
	assert_null(
	    forward_new(r.client, r.upstream, &r.fr, &r.lim, done_cb, &r));
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(r.upstream)), 0);
	rig_end(&r);
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
	    cmocka_unit_test(test_inspect_accepts_length_body),
	    cmocka_unit_test(test_inspect_refuses),
	    cmocka_unit_test(test_inspect_refusal_outlives_the_client),
	    cmocka_unit_test(test_inspect_dechunks),
	    cmocka_unit_test(test_inspect_full),
	    cmocka_unit_test(test_inspect_no_body),
	    cmocka_unit_test(test_inspect_bad_framing),
	    cmocka_unit_test(test_inspect_client_closes),
	    cmocka_unit_test(test_no_hook_sends_head_at_once),
	    cmocka_unit_test(test_new_refuses_bad_plan),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	libevent_global_shutdown();
	return failed;
}
