/*
 * Unit tests for proxy/http.c.
 *
 * Every input is copied into a heap buffer of exactly its length, so that
 * AddressSanitizer catches a read past len (the parser's buffers are not
 * NUL-terminated).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

/* A literal's length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

static const struct http_limits default_limits = {
    .max_request_line = 8192,
    .max_field_line = 8192,
    .max_fields = HTTP_MAX_FIELDS,
    .max_head = 65536,
};

static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

static enum http_status
head_end(const char *s, size_t n, const struct http_limits *lim,
         size_t *head_len)
{
	char *p = dup_exact(s, n);
	enum http_status st = http_head_end(p, n, lim, head_len);

	free(p);
	return st;
}

/* Run both passes as the connection code does; report the first failure. */
static enum http_status
parse(const char *s, size_t n, const struct http_limits *lim)
{
	static struct http_request req;
	char *p = dup_exact(s, n);
	size_t head_len = 0;
	enum http_status st = http_head_end(p, n, lim, &head_len);

	if (st == HTTP_OK) {
		assert_int_equal(head_len, n);
		st = http_parse_request(p, n, lim, &req);
	}
	free(p);
	return st;
}

/* Make a string of n copies of c followed by tail; caller frees. */
static char *
repeat(char c, size_t n, const char *head, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, c, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

/* Accepted heads. */

static void
test_connect(void **state)
{
	static const char in[] = "CONNECT api.example.com:443 HTTP/1.1\r\n"
	                         "Host: api.example.com:443\r\n\r\n";
	struct http_request req;
	size_t head_len = 0;
	const struct http_field *f;

	(void)state;
	assert_int_equal(
	    http_head_end(in, sizeof(in) - 1, &default_limits, &head_len),
	    HTTP_OK);
	assert_int_equal(head_len, sizeof(in) - 1);
	assert_int_equal(
	    http_parse_request(in, head_len, &default_limits, &req), HTTP_OK);
	assert_true(http_span_eq(req.method, "CONNECT"));
	assert_true(http_span_eq(req.target, "api.example.com:443"));
	assert_int_equal(req.version_minor, 1);
	assert_int_equal(req.nfields, 1);
	f = http_field_get(&req, "Host");
	assert_non_null(f);
	assert_true(http_span_eq(f->name, "Host"));
	assert_true(http_span_eq(f->value, "api.example.com:443"));
	/* Spans point into the caller's buffer. */
	assert_ptr_equal(req.method.p, in);
	assert_ptr_equal(req.target.p, in + 8);
}

static void
test_get_absolute_form(void **state)
{
	static const char in[] =
	    "GET http://example.com/a/b%2Fc?x=1&y=[2]#frag HTTP/1.1\r\n"
	    "Host: example.com\r\n"
	    "User-Agent: curl/8.0\r\n"
	    "Accept: */*\r\n\r\n";
	struct http_request req;

	(void)state;
	assert_int_equal(
	    http_parse_request(in, sizeof(in) - 1, &default_limits, &req),
	    HTTP_OK);
	assert_true(http_span_eq(req.method, "GET"));
	assert_true(http_span_eq(req.target,
	                         "http://example.com/a/b%2Fc?x=1&y=[2]#frag"));
	assert_int_equal(req.version_minor, 1);
	assert_int_equal(req.nfields, 3);
	assert_true(http_span_eq(req.fields[0].name, "Host"));
	assert_true(http_span_eq(req.fields[1].value, "curl/8.0"));
	assert_true(http_span_eq(req.fields[2].name, "Accept"));
	assert_true(http_span_eq(req.fields[2].value, "*/*"));
}

static void
test_http10(void **state)
{
	static const char in[] = "GET http://example.com/ HTTP/1.0\r\n\r\n";
	struct http_request req;

	(void)state;
	assert_int_equal(
	    http_parse_request(in, sizeof(in) - 1, &default_limits, &req),
	    HTTP_OK);
	assert_int_equal(req.version_minor, 0);
	assert_int_equal(req.nfields, 0);
	assert_null(http_field_get(&req, "Host"));
}

static void
test_ows_and_empty_values(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\n"
	                         "A:   v  a \t \r\n"
	                         "B:\tv\r\n"
	                         "C:v\r\n"
	                         "D:\r\n"
	                         "E: \t \r\n"
	                         "F: caf\xc3\xa9\r\n\r\n";
	static const struct {
		const char *name, *value;
	} want[] = {
	    {"A", "v  a"}, {"B", "v"}, {"C", "v"},
	    {"D", ""},     {"E", ""},  {"F", "caf\xc3\xa9"},
	};
	struct http_request req;
	size_t i;

	(void)state;
	assert_int_equal(
	    http_parse_request(in, sizeof(in) - 1, &default_limits, &req),
	    HTTP_OK);
	assert_int_equal(req.nfields, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < req.nfields; i++) {
		assert_true(http_span_eq(req.fields[i].name, want[i].name));
		assert_true(http_span_eq(req.fields[i].value, want[i].value));
	}
}

static void
test_field_get(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\n"
	                         "hOsT: first\r\n"
	                         "X-Thing: y\r\n"
	                         "HOST: second\r\n\r\n";
	struct http_request req;
	const struct http_field *f;

	(void)state;
	assert_int_equal(
	    http_parse_request(in, sizeof(in) - 1, &default_limits, &req),
	    HTTP_OK);
	f = http_field_get(&req, "host");
	assert_non_null(f);
	assert_true(http_span_eq(f->value, "first"));
	assert_ptr_equal(http_field_get(&req, "HOST"), f);
	assert_ptr_equal(http_field_get(&req, "Host"), f);
	assert_non_null(http_field_get(&req, "x-thing"));
	/* The length must match exactly: no prefixes, no extensions. */
	assert_null(http_field_get(&req, "Hos"));
	assert_null(http_field_get(&req, "Hostx"));
	assert_null(http_field_get(&req, "X-Thin"));
	assert_null(http_field_get(&req, ""));
	/* Case folding is ASCII letters only. */
	assert_null(http_field_get(&req, "X_Thing"));
}

static void
test_span_eq(void **state)
{
	static const char s[] = "abc";
	struct http_span span = {s, 3};
	struct http_span empty = {NULL, 0};

	(void)state;
	assert_true(http_span_eq(span, "abc"));
	assert_false(http_span_eq(span, "ABC"));
	assert_false(http_span_eq(span, "ab"));
	assert_false(http_span_eq(span, "abcd"));
	assert_false(http_span_eq(span, ""));
	assert_true(http_span_eq(empty, ""));
	assert_false(http_span_eq(empty, "a"));
	span.len = 2;
	assert_true(http_span_eq(span, "ab"));
}

/* Table of whole heads and the status each must get. */

struct head_case {
	const char *what;
	const char *in;
	size_t len;
	enum http_status want;
};

static const struct head_case head_cases[] = {
    /* Accepted. */
    {"origin-form", LIT("GET /index.html?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
     HTTP_OK},
    {"asterisk-form", LIT("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK},
    {"sub-delims in target", LIT("GET /!$&'()*+,;=:@-._~ HTTP/1.1\r\n\r\n"),
     HTTP_OK},
    {"token chars in name",
     LIT("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n"), HTTP_OK},
    {"method of 32 chars",
     LIT("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF / HTTP/1.1\r\n\r\n"), HTTP_OK},
    {"obs-text in value", LIT("GET / HTTP/1.1\r\nX: \x80\xff\r\n\r\n"),
     HTTP_OK},
    {"colon in value", LIT("GET / HTTP/1.1\r\nX: a: b\r\n\r\n"), HTTP_OK},

    /* Line framing, RFC 9112 §2.2. */
    {"bare LF in request line", LIT("GET / HTTP/1.1\nHost: a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"bare LF ending a field", LIT("GET / HTTP/1.1\r\nHost: a\n\r\n"),
     HTTP_BAD_REQUEST},
    {"bare LF as terminator", LIT("GET / HTTP/1.1\r\nHost: a\r\n\n"),
     HTTP_BAD_REQUEST},
    {"LF only", LIT("GET / HTTP/1.1\n\n"), HTTP_BAD_REQUEST},
    {"bare CR in request line", LIT("GET /\r HTTP/1.1\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"bare CR as line end", LIT("GET / HTTP/1.1\rHost: a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"bare CR in value", LIT("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"CR CR LF", LIT("GET / HTTP/1.1\r\r\n\r\n"), HTTP_BAD_REQUEST},
    {"NUL in request line", LIT("GET /\0 HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"NUL in method", LIT("G\0T / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"NUL in value", LIT("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"NUL in name", LIT("GET / HTTP/1.1\r\nX\0: a\r\n\r\n"), HTTP_BAD_REQUEST},
    {"leading CRLF", LIT("\r\nGET / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"leading bare LF", LIT("\nGET / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"empty head", LIT("\r\n\r\n"), HTTP_BAD_REQUEST},

    /* Request line, RFC 9112 §3. */
    {"double SP after method", LIT("GET  / HTTP/1.1\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"double SP after target", LIT("GET /  HTTP/1.1\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"HTAB after method", LIT("GET\t/ HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTAB after target", LIT("GET /\tHTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"leading SP", LIT(" GET / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"trailing SP", LIT("GET / HTTP/1.1 \r\n\r\n"), HTTP_BAD_REQUEST},
    {"no version", LIT("GET /\r\n\r\n"), HTTP_BAD_REQUEST},
    {"method only", LIT("GET\r\n\r\n"), HTTP_BAD_REQUEST},
    {"method not a token", LIT("GE(T / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"method of 33 chars",
     LIT("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"empty target", LIT("GET  HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"SP in target", LIT("GET /a b HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'<' in target", LIT("GET /<script> HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'\"' in target", LIT("GET /\" HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'\\' in target", LIT("GET /a\\b HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'^' in target", LIT("GET /^ HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'`' in target", LIT("GET /` HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'{' in target", LIT("GET /{ HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'|' in target", LIT("GET /| HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'}' in target", LIT("GET /} HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"DEL in target", LIT("GET /\x7f HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"control in target", LIT("GET /\x01 HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"non-ASCII in target", LIT("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"'%zz' in target", LIT("GET /%zz HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'%4' then SP", LIT("GET /%4 HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'%' at end of target", LIT("GET /% HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'%4g' in target", LIT("GET /%4g HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},

    /* Version, RFC 9112 §2.3. */
    {"lowercase http/1.1", LIT("GET / http/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTPS/1.1", LIT("GET / HTTPS/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/1", LIT("GET / HTTP/1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/1.", LIT("GET / HTTP/1.\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/.1", LIT("GET / HTTP/.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/1.x", LIT("GET / HTTP/1.x\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/", LIT("GET / HTTP/\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/2", LIT("GET / HTTP/2\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/2.0", LIT("GET / HTTP/2.0\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/1.2", LIT("GET / HTTP/1.2\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/1.10", LIT("GET / HTTP/1.10\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/0.9", LIT("GET / HTTP/0.9\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/01.1", LIT("GET / HTTP/01.1\r\n\r\n"), HTTP_BAD_VERSION},

    /* Field lines, RFC 9112 §5. */
    {"obs-fold with SP", LIT("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"obs-fold with HTAB", LIT("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"SP before the first field", LIT("GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"SP before colon", LIT("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"HTAB before colon", LIT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"SP in name", LIT("GET / HTTP/1.1\r\nX Y: a\r\n\r\n"), HTTP_BAD_REQUEST},
    {"'@' in name", LIT("GET / HTTP/1.1\r\nX@Y: a\r\n\r\n"), HTTP_BAD_REQUEST},
    {"non-ASCII in name", LIT("GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"empty name", LIT("GET / HTTP/1.1\r\n: a\r\n\r\n"), HTTP_BAD_REQUEST},
    {"no colon", LIT("GET / HTTP/1.1\r\nHost a\r\n\r\n"), HTTP_BAD_REQUEST},
    {"\\x01 in value",
     LIT("GET / HTTP/1.1\r\nX: a\x01"
         "b\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"\\x7f in value",
     LIT("GET / HTTP/1.1\r\nX: a\x7f"
         "b\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"VT in value", LIT("GET / HTTP/1.1\r\nX: a\vb\r\n\r\n"), HTTP_BAD_REQUEST},
    {"trailing control in value", LIT("GET / HTTP/1.1\r\nX: a\x1f\r\n\r\n"),
     HTTP_BAD_REQUEST},
};

static void
test_head_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];
		enum http_status got = parse(c->in, c->len, &default_limits);

		if (got != c->want)
			fail_msg("%s: got %d, want %d", c->what, (int)got,
			         (int)c->want);
	}
}

/*
 * http_parse_request() must refuse on its own what http_head_end() would
 * have refused, for a caller that skips it.
 */
static void
test_parse_without_head_end(void **state)
{
	static struct http_request req;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];
		char *p = dup_exact(c->in, c->len);
		enum http_status got =
		    http_parse_request(p, c->len, &default_limits, &req);

		free(p);
		if (got != c->want)
			fail_msg("%s: got %d, want %d", c->what, (int)got,
			         (int)c->want);
	}
}

/* Framing errors show before the head is complete. */
static void
test_head_end_early_errors(void **state)
{
	static const struct head_case cases[] = {
	    {"bare LF", LIT("GET /\n"), HTTP_BAD_REQUEST},
	    {"bare CR", LIT("GET /\rx"), HTTP_BAD_REQUEST},
	    {"NUL", LIT("GET\0"), HTTP_BAD_REQUEST},
	    {"leading CR", LIT("\r"), HTTP_BAD_REQUEST},
	    {"leading CRLF", LIT("\r\n"), HTTP_BAD_REQUEST},
	    {"leading LF", LIT("\n"), HTTP_BAD_REQUEST},
	    {"CR last", LIT("GET / HTTP/1.1\r"), HTTP_INCOMPLETE},
	    {"one CRLF", LIT("GET / HTTP/1.1\r\n"), HTTP_INCOMPLETE},
	    {"one CRLF and CR", LIT("GET / HTTP/1.1\r\n\r"), HTTP_INCOMPLETE},
	    {"field, no end", LIT("GET / HTTP/1.1\r\nHost: a\r\n"),
	     HTTP_INCOMPLETE},
	    {"nothing", "", 0, HTTP_INCOMPLETE},
	};
	size_t i, head_len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum http_status got = head_end(cases[i].in, cases[i].len,
		                                &default_limits, &head_len);

		if (got != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].what, (int)got,
			         (int)cases[i].want);
	}
}

static void
test_parse_incomplete(void **state)
{
	static struct http_request req;
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n";

	(void)state;
	assert_int_equal(
	    http_parse_request(in, sizeof(in) - 1, &default_limits, &req),
	    HTTP_BAD_REQUEST);
}

/* Limits. */

static void
test_request_line_limit(void **state)
{
	struct http_limits lim = default_limits;
	/* "GET /" + 35 × 'a' + " HTTP/1.1" = 49 bytes. */
	char *line = repeat('a', 35, "GET /", " HTTP/1.1");
	char *head = repeat('a', 35, "GET /", " HTTP/1.1\r\nHost: a\r\n\r\n");
	size_t n = strlen(line), head_len;

	(void)state;
	assert_int_equal(n, 49);

	lim.max_request_line = n;
	assert_int_equal(parse(head, strlen(head), &lim), HTTP_OK);
	lim.max_request_line = n - 1;
	assert_int_equal(parse(head, strlen(head), &lim), HTTP_URI_TOO_LONG);

	/* Seen as soon as one byte too many is in, CRLF or not. */
	assert_int_equal(head_end(line, n, &lim, &head_len), HTTP_URI_TOO_LONG);
	assert_int_equal(head_end(line, n - 1, &lim, &head_len),
	                 HTTP_INCOMPLETE);
	lim.max_request_line = n;
	assert_int_equal(head_end(line, n, &lim, &head_len), HTTP_INCOMPLETE);
	/* The CR of the CRLF does not count towards the line. */
	assert_int_equal(head_end(head, n + 1, &lim, &head_len),
	                 HTTP_INCOMPLETE);
	free(line);
	free(head);
}

static void
test_field_line_limit(void **state)
{
	struct http_limits lim = default_limits;
	/* "X: " + 17 × 'v' = 20 bytes. */
	char *head = repeat(
	    'v', 17, "GET / HTTP/1.1\r\nA: b\r\nX: ", "\r\nC: d\r\n\r\n");
	char *part = repeat('v', 17, "GET / HTTP/1.1\r\nX: ", "");
	size_t head_len;

	(void)state;
	lim.max_field_line = 20;
	assert_int_equal(parse(head, strlen(head), &lim), HTTP_OK);
	lim.max_field_line = 19;
	assert_int_equal(parse(head, strlen(head), &lim),
	                 HTTP_FIELDS_TOO_LARGE);

	/* The field-line limit is not the request-line limit. */
	lim.max_request_line = 14;
	lim.max_field_line = 19;
	assert_int_equal(head_end(part, strlen(part), &lim, &head_len),
	                 HTTP_FIELDS_TOO_LARGE);
	assert_int_equal(head_end(part, strlen(part) - 1, &lim, &head_len),
	                 HTTP_INCOMPLETE);
	free(head);
	free(part);
}

/* A head of n field lines "F: v"; caller frees. */
static char *
head_with_fields(size_t n, size_t *len)
{
	static const char rl[] = "GET / HTTP/1.1\r\n", fl[] = "F: v\r\n";
	size_t rn = sizeof(rl) - 1, fn = sizeof(fl) - 1, i;
	char *s = malloc(rn + n * fn + 2);

	assert_non_null(s);
	memcpy(s, rl, rn);
	for (i = 0; i < n; i++)
		memcpy(s + rn + i * fn, fl, fn);
	memcpy(s + rn + n * fn, "\r\n", 2);
	*len = rn + n * fn + 2;
	return s;
}

static void
test_field_count_limit(void **state)
{
	struct http_limits lim = default_limits;
	size_t len, head_len;
	char *s;

	(void)state;
	lim.max_fields = 3;
	s = head_with_fields(3, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_OK);
	free(s);
	s = head_with_fields(4, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_FIELDS_TOO_LARGE);
	/* Refused at the first byte of the fourth field, before its end. */
	assert_int_equal(head_end(s, 16 + 3 * 6, &lim, &head_len),
	                 HTTP_INCOMPLETE);
	assert_int_equal(head_end(s, 16 + 3 * 6 + 1, &lim, &head_len),
	                 HTTP_FIELDS_TOO_LARGE);
	free(s);

	/* The struct holds HTTP_MAX_FIELDS, whatever the limit says. */
	lim.max_fields = 1000;
	s = head_with_fields(HTTP_MAX_FIELDS, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_OK);
	free(s);
	s = head_with_fields(HTTP_MAX_FIELDS + 1, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_FIELDS_TOO_LARGE);
	free(s);

	lim.max_fields = 0;
	s = head_with_fields(0, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_OK);
	free(s);
	s = head_with_fields(1, &len);
	assert_int_equal(parse(s, len, &lim), HTTP_FIELDS_TOO_LARGE);
	free(s);
}

static void
test_head_limit(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
	struct http_limits lim = default_limits;
	size_t n = sizeof(in) - 1, head_len;
	struct http_request req;

	(void)state;
	lim.max_head = n;
	assert_int_equal(head_end(in, n, &lim, &head_len), HTTP_OK);
	assert_int_equal(head_len, n);
	assert_int_equal(parse(in, n, &lim), HTTP_OK);

	lim.max_head = n - 1;
	assert_int_equal(head_end(in, n, &lim, &head_len),
	                 HTTP_FIELDS_TOO_LARGE);
	assert_int_equal(http_parse_request(in, n, &lim, &req),
	                 HTTP_FIELDS_TOO_LARGE);
	/* As soon as max_head bytes are in without the end. */
	assert_int_equal(head_end(in, n - 1, &lim, &head_len),
	                 HTTP_FIELDS_TOO_LARGE);
	assert_int_equal(head_end(in, n - 2, &lim, &head_len), HTTP_INCOMPLETE);
}

/* Feed the head one byte at a time, as a slow client would. */
static void
test_incremental(void **state)
{
	static const char in[] = "CONNECT api.example.com:443 HTTP/1.1\r\n"
	                         "Host: api.example.com:443\r\n"
	                         "Proxy-Authorization: Bearer x\r\n\r\n"
	                         "\x16\x03\x01 TLS bytes";
	size_t head = sizeof(in) - 1 - strlen("\x16\x03\x01 TLS bytes");
	size_t i, head_len;

	(void)state;
	for (i = 0; i < head; i++)
		assert_int_equal(head_end(in, i, &default_limits, &head_len),
		                 HTTP_INCOMPLETE);
	for (i = head; i <= sizeof(in) - 1; i++) {
		head_len = 0;
		assert_int_equal(head_end(in, i, &default_limits, &head_len),
		                 HTTP_OK);
		assert_int_equal(head_len, head);
	}
}

/* Bytes after the empty line (a body, a pipelined request) are not head. */
static void
test_bytes_after_head(void **state)
{
	static const char in[] = "POST http://example.com/ HTTP/1.1\r\n"
	                         "Host: example.com\r\n"
	                         "Content-Length: 5\r\n\r\n"
	                         "hello"
	                         "GET / HTTP/1.1\r\n\r\n";
	static const char head[] = "POST http://example.com/ HTTP/1.1\r\n"
	                           "Host: example.com\r\n"
	                           "Content-Length: 5\r\n\r\n";
	struct http_request req;
	size_t head_len = 0;
	char *p = dup_exact(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(
	    http_head_end(p, sizeof(in) - 1, &default_limits, &head_len),
	    HTTP_OK);
	assert_int_equal(head_len, sizeof(head) - 1);
	assert_int_equal(http_parse_request(p, head_len, &default_limits, &req),
	                 HTTP_OK);
	assert_int_equal(req.nfields, 2);
	assert_true(
	    http_span_eq(http_field_get(&req, "content-length")->value, "5"));
	/* Handed more than the head, the parser refuses rather than guess. */
	assert_int_equal(
	    http_parse_request(p, sizeof(in) - 1, &default_limits, &req),
	    HTTP_BAD_REQUEST);
	free(p);
}

/* Status codes the enum comments promise, for the reason table. */
static void
test_status_kinds(void **state)
{
	(void)state;
	assert_int_equal(parse(LIT("GET / HTTP/2.0\r\n\r\n"), &default_limits),
	                 HTTP_BAD_VERSION);
	assert_int_not_equal(HTTP_BAD_VERSION, HTTP_BAD_REQUEST);
	assert_int_equal(HTTP_OK, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect),
	    cmocka_unit_test(test_get_absolute_form),
	    cmocka_unit_test(test_http10),
	    cmocka_unit_test(test_ows_and_empty_values),
	    cmocka_unit_test(test_field_get),
	    cmocka_unit_test(test_span_eq),
	    cmocka_unit_test(test_head_table),
	    cmocka_unit_test(test_parse_without_head_end),
	    cmocka_unit_test(test_head_end_early_errors),
	    cmocka_unit_test(test_parse_incomplete),
	    cmocka_unit_test(test_request_line_limit),
	    cmocka_unit_test(test_field_line_limit),
	    cmocka_unit_test(test_field_count_limit),
	    cmocka_unit_test(test_head_limit),
	    cmocka_unit_test(test_incremental),
	    cmocka_unit_test(test_bytes_after_head),
	    cmocka_unit_test(test_status_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
