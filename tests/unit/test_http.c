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

/* Fields egressd writes itself: exactly what the parser takes back. */
static void
test_field_valid(void **state)
{
	(void)state;
	assert_true(http_field_valid("x-api-key", "sk-123"));
	assert_true(http_field_valid("Authorization", "Bearer a b\tc"));
	assert_true(http_field_valid("X-Empty", ""));
	assert_true(http_field_valid("x-obs", "caf\xc3\xa9"));
	/* A line break would start another field, or end the head. */
	assert_false(http_field_valid("x-api-key", "sk\r\nHost: evil"));
	assert_false(http_field_valid("x-api-key", "sk\n"));
	assert_false(http_field_valid("x-api-key", "sk\r"));
	assert_false(http_field_valid("x-api-key", "a\x7f"));
	assert_false(http_field_valid("x-api-key", "a\x01"));
	/* A parser strips whitespace at either end of a value. */
	assert_false(http_field_valid("x-api-key", " sk"));
	assert_false(http_field_valid("x-api-key", "sk\t"));
	/* Names are tokens. */
	assert_false(http_field_valid("", "v"));
	assert_false(http_field_valid("x api", "v"));
	assert_false(http_field_valid("x-api-key:", "v"));
	assert_false(http_field_valid("x\r\ny", "v"));
	assert_false(http_field_valid("x(y)", "v"));
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

/* Scanning a head in pieces, as it arrives. */

/*
 * Scan the n bytes of s in pieces that end at cuts[0..ncuts) (ascending,
 * empty pieces allowed) and at n, until the scanner decides.  Each piece is
 * a heap block of exactly its size that is filled with NULs as soon as its
 * call returns and freed only at the end: a scanner that went back to an
 * earlier piece would find NULs there (and refuse), one that read outside
 * its piece would be caught by AddressSanitizer.  Returns the status; *at is
 * the head's length, the offset of the byte that showed the error, or n.
 */
static enum http_status
scan_head_split(const char *s, size_t n, const struct http_limits *lim,
                const size_t *cuts, size_t ncuts, size_t *at)
{
	struct http_head_scan hs;
	char **pieces = calloc(ncuts + 1, sizeof(*pieces));
	enum http_status st = HTTP_INCOMPLETE;
	size_t i, start = 0, used;

	assert_non_null(pieces);
	http_head_scan_init(&hs);
	*at = n;
	for (i = 0; i <= ncuts && st == HTTP_INCOMPLETE; i++) {
		size_t end = i < ncuts ? cuts[i] : n, len = end - start;

		pieces[i] = dup_exact(s + start, len);
		st = http_head_scan(&hs, pieces[i], len, lim, &used);
		if (st == HTTP_INCOMPLETE)
			assert_int_equal(used, len);
		else
			*at = start + used;
		assert_true(used <= len);
		memset(pieces[i], 0, len);
		start = end;
	}
	for (i = 0; i <= ncuts; i++)
		free(pieces[i]);
	free(pieces);
	return st;
}

/*
 * The whole of s in one piece; then every way of cutting it into two and
 * into three pieces, and byte by byte: always the same status, decided at the
 * same byte.  http_head_end agrees with the one piece.
 */
static void
check_head_splits(const char *what, const char *s, size_t n,
                  const struct http_limits *lim, enum http_status *whole,
                  size_t *whole_at)
{
	size_t cuts[2], i, j, at, head_len = 0;
	size_t *bytes = malloc((n ? n : 1) * sizeof(*bytes));
	enum http_status want, got;

	assert_non_null(bytes);
	want = scan_head_split(s, n, lim, NULL, 0, whole_at);
	got = head_end(s, n, lim, &head_len);
	if (got != want || (got == HTTP_OK && head_len != *whole_at))
		fail_msg("%s: http_head_end %d, one piece %d", what, (int)got,
		         (int)want);
	for (i = 0; i <= n; i++) {
		for (j = i; j <= n; j++) {
			cuts[0] = i;
			cuts[1] = j;
			got = scan_head_split(s, n, lim, cuts, 2, &at);
			if (got != want || at != *whole_at)
				fail_msg("%s: cut at %zu and %zu: %d at %zu, "
				         "whole: %d at %zu",
				         what, i, j, (int)got, at, (int)want,
				         *whole_at);
		}
	}
	for (i = 0; i + 1 < n; i++)
		bytes[i] = i + 1;
	got = scan_head_split(s, n, lim, bytes, n > 0 ? n - 1 : 0, &at);
	if (got != want || at != *whole_at)
		fail_msg("%s: byte by byte: %d at %zu", what, (int)got, at);
	free(bytes);
	*whole = want;
}

/* Every head of the table, cut every way. */
static void
test_head_scan_splits(void **state)
{
	size_t i, at;
	enum http_status st;

	(void)state;
	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];

		check_head_splits(c->what, c->in, c->len, &default_limits, &st,
		                  &at);
		/* Each of them is one whole head, or refused within it. */
		if (st == HTTP_INCOMPLETE || (st == HTTP_OK && at != c->len))
			fail_msg("%s: %d at %zu", c->what, (int)st, at);
	}
}

/* Small limits, so that each is within a few bytes' reach. */
static const struct http_limits small_limits = {
    .max_request_line = 20,
    .max_field_line = 16,
    .max_fields = 2,
    .max_head = 8192,
};
static const struct http_limits small_head = {
    .max_request_line = 8192,
    .max_field_line = 8192,
    .max_fields = HTTP_MAX_FIELDS,
    .max_head = 40,
};

struct scan_case {
	const char *what;
	const struct http_limits *lim;
	const char *in;
	size_t len;
	enum http_status want;
	size_t at; /* head length, or offset of the byte that shows the error */
};

/* A head and what follows it; bytes that are fine and the byte that is not;
 * bytes that are not a whole head yet. */
#define HEAD_THEN(h, rest)     LIT(h rest), HTTP_OK, sizeof(h) - 1
#define BAD_AFTER(ok, bad, st) LIT(ok bad), st, sizeof(ok) - 1
#define NOT_YET(s)             LIT(s), HTTP_INCOMPLETE, sizeof(s) - 1

static const struct scan_case scan_cases[] = {
    {"a body after the head", &default_limits,
     HEAD_THEN("POST /x HTTP/1.1\r\nA: b\r\n\r\n", "hello")},
    {"a request after the head", &default_limits,
     HEAD_THEN("GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\n\r\n")},
    {"no empty line yet", &default_limits,
     NOT_YET("GET / HTTP/1.1\r\nA: b\r\n\r")},
    {"nothing yet", &default_limits, NOT_YET("")},
    {"request line of 20", &small_limits,
     HEAD_THEN("GET /aaaaaa HTTP/1.1\r\n\r\n", "")},
    {"request line of 23", &small_limits,
     BAD_AFTER("GET /aaaaaaaaa HTTP/", "1.1\r\n\r\n", HTTP_URI_TOO_LONG)},
    {"field line of 16", &small_limits,
     HEAD_THEN("GET / HTTP/1.1\r\nX: vvvvvvvvvvvvv\r\n\r\n", "")},
    {"field line of 17", &small_limits,
     BAD_AFTER("GET / HTTP/1.1\r\nX: vvvvvvvvvvvvv", "v\r\n\r\n",
               HTTP_FIELDS_TOO_LARGE)},
    {"two fields", &small_limits,
     HEAD_THEN("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", "")},
    {"a third field", &small_limits,
     BAD_AFTER("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n", "C: 3\r\n\r\n",
               HTTP_FIELDS_TOO_LARGE)},
    {"head of 40", &small_head,
     HEAD_THEN("GET / HTTP/1.1\r\nHost: example.co\r\nX:\r\n\r\n", "")},
    {"head over 40", &small_head,
     BAD_AFTER("GET / HTTP/1.1\r\nHost: example.com\r\nX: y", "\r\n\r\n",
               HTTP_FIELDS_TOO_LARGE)},
    /* The CR is the 40th byte: too large, whatever comes after it. */
    {"bare CR as the 40th byte", &small_head,
     BAD_AFTER("GET / HTTP/1.1\r\nHost: example.com\r\nX: y", "\rz",
               HTTP_FIELDS_TOO_LARGE)},
    /* A bare CR shows in the byte after it. */
    {"bare CR", &default_limits,
     BAD_AFTER("GET / HTTP/1.1\r", "x\r\n\r\n", HTTP_BAD_REQUEST)},
    {"CR CR", &default_limits,
     BAD_AFTER("GET / HTTP/1.1\r", "\r\n\r\n", HTTP_BAD_REQUEST)},
    {"CR, then not LF, in the empty line", &default_limits,
     BAD_AFTER("GET / HTTP/1.1\r\n\r", "x", HTTP_BAD_REQUEST)},
    {"bare LF", &default_limits,
     BAD_AFTER("GET / HTTP/1.1", "\n\r\n", HTTP_BAD_REQUEST)},
    {"NUL in a value", &default_limits,
     BAD_AFTER("GET / HTTP/1.1\r\nX: a", "\0b\r\n\r\n", HTTP_BAD_REQUEST)},
    {"CR after a NUL", &default_limits,
     BAD_AFTER("GET / HTTP/1.1\r\nX: a", "\0\r\n\r\n", HTTP_BAD_REQUEST)},
    {"leading CRLF", &default_limits,
     BAD_AFTER("", "\r\nGET / HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST)},
};

static void
test_head_scan_table(void **state)
{
	size_t i, at;
	enum http_status st;

	(void)state;
	for (i = 0; i < sizeof(scan_cases) / sizeof(scan_cases[0]); i++) {
		const struct scan_case *c = &scan_cases[i];

		check_head_splits(c->what, c->in, c->len, c->lim, &st, &at);
		if (st != c->want || at != c->at)
			fail_msg("%s: %d at %zu, want %d at %zu", c->what,
			         (int)st, at, (int)c->want, c->at);
	}
}

/*
 * A 30 KB head that arrives a byte at a time, as from a client trickling it
 * to keep egressd busy: each byte is in a block of its own, handed to the
 * scanner once and poisoned after (see scan_head_split), so the scanner
 * cannot have looked at any byte twice, and the head is still found.
 */
static void
test_head_scan_trickle(void **state)
{
	static const char rl[] = "POST http://example.com/ HTTP/1.1\r\n",
	                  tail[] = "\r\nbody";
	size_t nfields = 4, field = 7500, n, i, at, *cuts;
	char *s;

	(void)state;
	n = sizeof(rl) - 1 + nfields * (field + 2) + sizeof(tail) - 1;
	s = malloc(n);
	cuts = malloc(n * sizeof(*cuts));
	assert_non_null(s);
	assert_non_null(cuts);
	memcpy(s, rl, sizeof(rl) - 1);
	for (i = 0; i < nfields; i++) {
		char *f = s + sizeof(rl) - 1 + i * (field + 2);

		memset(f, 'v', field);
		memcpy(f, "X-Pad: ", 7);
		memcpy(f + field, "\r\n", 2);
	}
	memcpy(s + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	for (i = 0; i + 1 < n; i++)
		cuts[i] = i + 1;
	assert_int_equal(
	    scan_head_split(s, n, &default_limits, cuts, n - 1, &at), HTTP_OK);
	assert_int_equal(at, n - strlen("body"));
	assert_true(at > 30000);
	free(cuts);
	free(s);
}

/* Once decided, the answer stands and takes no more bytes. */
static void
test_head_scan_sticky(void **state)
{
	struct http_head_scan hs;
	size_t used;

	(void)state;
	http_head_scan_init(&hs);
	assert_int_equal(http_head_scan(&hs, LIT("GET / HTTP/1.1\r\n\r\nGET"),
	                                &default_limits, &used),
	                 HTTP_OK);
	assert_int_equal(used, 18);
	assert_int_equal(http_head_scan(&hs, LIT(" / HTTP/1.1\r\n\r\n"),
	                                &default_limits, &used),
	                 HTTP_OK);
	assert_int_equal(used, 0);

	http_head_scan_init(&hs);
	assert_int_equal(
	    http_head_scan(&hs, LIT("GET /\n"), &default_limits, &used),
	    HTTP_BAD_REQUEST);
	assert_int_equal(used, 5);
	assert_int_equal(
	    http_head_scan(&hs, LIT("\r\n\r\n"), &default_limits, &used),
	    HTTP_BAD_REQUEST);
	assert_int_equal(used, 0);
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

/* Response heads. */

/* Parse a response head as the connection code will; report the status. */
static enum http_status
parse_resp(const char *s, size_t n, const struct http_limits *lim)
{
	static struct http_response resp;
	char *p = dup_exact(s, n);
	size_t head_len = 0;
	enum http_status st = http_head_end(p, n, lim, &head_len);

	if (st == HTTP_OK) {
		assert_int_equal(head_len, n);
		st = http_parse_response(p, n, lim, &resp);
	}
	free(p);
	return st;
}

static void
test_response_ok(void **state)
{
	static const char in[] = "HTTP/1.1 200 OK\r\n"
	                         "Content-Type: text/plain\r\n"
	                         "content-length:  5 \r\n\r\n";
	struct http_response resp;
	const struct http_field *f;
	char *p = dup_exact(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(
	    http_parse_response(p, sizeof(in) - 1, &default_limits, &resp),
	    HTTP_OK);
	assert_int_equal(resp.version_minor, 1);
	assert_int_equal(resp.status, 200);
	assert_true(http_span_eq(resp.reason, "OK"));
	assert_ptr_equal(resp.reason.p, p + 13);
	assert_int_equal(resp.nfields, 2);
	f = http_fields_get(resp.fields, resp.nfields, "Content-Length");
	assert_non_null(f);
	assert_ptr_equal(f, &resp.fields[1]);
	assert_true(http_span_eq(f->value, "5"));
	assert_ptr_equal(
	    http_fields_get(resp.fields, resp.nfields, "CONTENT-TYPE"),
	    &resp.fields[0]);
	assert_null(http_fields_get(resp.fields, resp.nfields, "Content"));
	assert_null(http_fields_get(resp.fields, 0, "Content-Type"));
	free(p);
}

static void
test_response_no_reason(void **state)
{
	static const struct {
		const char *in;
		int minor, status;
		const char *reason;
	} cases[] = {
	    {"HTTP/1.1 204\r\n\r\n", 1, 204, ""},
	    {"HTTP/1.1 204 \r\n\r\n", 1, 204, ""},
	    {"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", 0, 200, "OK"},
	    {"HTTP/1.1 404 Not  Found \r\n\r\n", 1, 404, "Not  Found "},
	    {"HTTP/1.1 100 Continue\r\n\r\n", 1, 100, "Continue"},
	    {"HTTP/1.1 599 \tx\x80\xff\r\n\r\n", 1, 599, "\tx\x80\xff"},
	};
	struct http_response resp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].in);
		char *p = dup_exact(cases[i].in, n);

		if (http_parse_response(p, n, &default_limits, &resp) !=
		    HTTP_OK)
			fail_msg("%s: refused", cases[i].in);
		assert_int_equal(resp.version_minor, cases[i].minor);
		assert_int_equal(resp.status, cases[i].status);
		assert_true(http_span_eq(resp.reason, cases[i].reason));
		free(p);
	}
}

static const struct head_case response_cases[] = {
    {"200 OK", LIT("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), HTTP_OK},
    {"no reason, no SP", LIT("HTTP/1.1 204\r\n\r\n"), HTTP_OK},
    {"100", LIT("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_OK},
    {"599", LIT("HTTP/1.1 599 x\r\n\r\n"), HTTP_OK},
    {"HTTP/1.0", LIT("HTTP/1.0 200 OK\r\n\r\n"), HTTP_OK},

    {"two-digit status", LIT("HTTP/1.1 20 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"two-digit status, no reason", LIT("HTTP/1.1 20\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"four-digit status", LIT("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"four-digit status, no reason", LIT("HTTP/1.1 2000\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"letters for status", LIT("HTTP/1.1 abc OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"status 099", LIT("HTTP/1.1 099 x\r\n\r\n"), HTTP_BAD_REQUEST},
    {"status 000", LIT("HTTP/1.1 000 x\r\n\r\n"), HTTP_BAD_REQUEST},
    {"status 600", LIT("HTTP/1.1 600 x\r\n\r\n"), HTTP_BAD_REQUEST},
    {"signed status", LIT("HTTP/1.1 +20 x\r\n\r\n"), HTTP_BAD_REQUEST},
    {"no status", LIT("HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},
    {"SP, no status", LIT("HTTP/1.1 \r\n\r\n"), HTTP_BAD_REQUEST},
    {"double SP before status", LIT("HTTP/1.1  200 OK\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"HTAB before status", LIT("HTTP/1.1\t200 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTAB after status", LIT("HTTP/1.1 200\tOK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"leading SP", LIT(" HTTP/1.1 200 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"control in reason", LIT("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP_BAD_REQUEST},
    {"DEL in reason", LIT("HTTP/1.1 200 O\x7fK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"NUL in reason", LIT("HTTP/1.1 200 O\0K\r\n\r\n"), HTTP_BAD_REQUEST},
    {"bare CR in reason", LIT("HTTP/1.1 200 O\rK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"bare LF after status line", LIT("HTTP/1.1 200 OK\nA: b\r\n\r\n"),
     HTTP_BAD_REQUEST},

    {"lowercase version", LIT("http/1.1 200 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/2", LIT("HTTP/2 200 OK\r\n\r\n"), HTTP_BAD_REQUEST},
    {"HTTP/2.0", LIT("HTTP/2.0 200 OK\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/1.2", LIT("HTTP/1.2 200 OK\r\n\r\n"), HTTP_BAD_VERSION},
    {"HTTP/0.9", LIT("HTTP/0.9 200 OK\r\n\r\n"), HTTP_BAD_VERSION},
    {"a request line", LIT("GET / HTTP/1.1\r\n\r\n"), HTTP_BAD_REQUEST},

    {"obs-fold", LIT("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"SP before colon", LIT("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
     HTTP_BAD_REQUEST},
    {"control in value", LIT("HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n"),
     HTTP_BAD_REQUEST},
};

static void
test_response_table(void **state)
{
	static struct http_response resp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(response_cases) / sizeof(response_cases[0]);
	     i++) {
		const struct head_case *c = &response_cases[i];
		enum http_status got =
		    parse_resp(c->in, c->len, &default_limits);
		char *p = dup_exact(c->in, c->len);
		enum http_status alone =
		    http_parse_response(p, c->len, &default_limits, &resp);

		free(p);
		if (got != c->want || alone != c->want)
			fail_msg("%s: got %d (alone %d), want %d", c->what,
			         (int)got, (int)alone, (int)c->want);
	}
}

/* Response fields follow the request's rules exactly. */
static void
test_response_fields_as_requests(void **state)
{
	static const char rl[] = "GET / HTTP/1.1\r\n";
	static const char sl[] = "HTTP/1.1 200 OK\r\n";
	size_t i, checked = 0;

	(void)state;
	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];
		size_t rest = c->len - (sizeof(rl) - 1);
		char *s;

		if (c->len <= sizeof(rl) - 1 ||
		    memcmp(c->in, rl, sizeof(rl) - 1) != 0)
			continue;
		s = malloc(sizeof(sl) - 1 + rest);
		assert_non_null(s);
		memcpy(s, sl, sizeof(sl) - 1);
		memcpy(s + sizeof(sl) - 1, c->in + sizeof(rl) - 1, rest);
		if (parse_resp(s, sizeof(sl) - 1 + rest, &default_limits) !=
		    c->want)
			fail_msg("%s: differs in a response", c->what);
		free(s);
		checked++;
	}
	assert_true(checked >= 20);
}

static void
test_response_limits(void **state)
{
	struct http_limits lim = default_limits;
	static const char in[] = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n";

	(void)state;
	lim.max_fields = 2;
	assert_int_equal(parse_resp(LIT(in), &lim), HTTP_OK);
	lim.max_fields = 1;
	assert_int_equal(parse_resp(LIT(in), &lim), HTTP_FIELDS_TOO_LARGE);
	lim = default_limits;
	lim.max_request_line = 15;
	assert_int_equal(parse_resp(LIT(in), &lim), HTTP_OK);
	lim.max_request_line = 14;
	assert_int_equal(parse_resp(LIT(in), &lim), HTTP_URI_TOO_LONG);
	lim = default_limits;
	lim.max_field_line = 3;
	assert_int_equal(parse_resp(LIT(in), &lim), HTTP_FIELDS_TOO_LARGE);
}

/* Lists and tokens. */

/* The elements of list s, joined by '|'. */
static void
assert_list(const char *s, const char *want)
{
	struct http_span rest = {s, strlen(s)}, item;
	char got[256];
	size_t n = 0;

	got[0] = '\0';
	while (http_list_next(&rest, &item)) {
		assert_true(item.len > 0);
		assert_true(n + item.len + 2 < sizeof(got));
		if (n > 0)
			got[n++] = '|';
		memcpy(got + n, item.p, item.len);
		n += item.len;
		got[n] = '\0';
	}
	assert_int_equal(rest.len, 0);
	/* The end stays the end. */
	assert_int_equal(http_list_next(&rest, &item), 0);
	if (strcmp(got, want) != 0)
		fail_msg("list \"%s\": got \"%s\", want \"%s\"", s, got, want);
}

static void
test_list_next(void **state)
{
	struct http_span empty = {NULL, 0}, item;

	(void)state;
	assert_list("a, ,b,,c", "a|b|c");
	assert_list("a", "a");
	assert_list("", "");
	assert_list(" ,\t, ", "");
	assert_list(",,a,,", "a");
	assert_list(" a \t, \tb ", "a|b");
	assert_list("keep-alive, close", "keep-alive|close");
	assert_list("a b , c", "a b|c");
	assert_list("gzip;q=1, chunked", "gzip;q=1|chunked");
	/* RFC 9110 §5.6.4: commas in quoted-strings are not separators. */
	assert_list("a=\"x, y\", b", "a=\"x, y\"|b");
	assert_list("a=\"x\\\", y\", b", "a=\"x\\\", y\"|b");
	assert_list("a=\"x, y", "a=\"x, y");
	assert_list("a=\"x\\", "a=\"x\\");
	assert_int_equal(http_list_next(&empty, &item), 0);
}

static void
test_span_ieq(void **state)
{
	static const char s[] = "Chunked";
	struct http_span span = {s, 7};
	struct http_span empty = {NULL, 0};

	(void)state;
	assert_true(http_span_ieq(span, "chunked"));
	assert_true(http_span_ieq(span, "CHUNKED"));
	assert_true(http_span_ieq(span, "Chunked"));
	assert_false(http_span_ieq(span, "chunke"));
	assert_false(http_span_ieq(span, "chunkedx"));
	assert_false(http_span_ieq(span, ""));
	assert_true(http_span_ieq(empty, ""));
	assert_false(http_span_ieq(empty, "a"));
	/* Only ASCII letters fold: '[' is not '{'. */
	span.p = "[";
	span.len = 1;
	assert_false(http_span_ieq(span, "{"));
}

/* An absolute-form target: routed by its authority only. */
static void
test_absolute_target(void **state)
{
	static const struct {
		const char *target;
		enum http_target want;
		const char *host;
		uint16_t port;
		const char *rest;
	} cases[] = {
	    {"http://pub.test/x?q=1", HTTP_TARGET_OK, "pub.test", 80, "/x?q=1"},
	    {"HTTP://Pub.Test:8080", HTTP_TARGET_OK, "pub.test", 8080, ""},
	    {"http://pub.test?q=a/b", HTTP_TARGET_OK, "pub.test", 80, "?q=a/b"},
	    {"http://[2001:db8::1]:81/", HTTP_TARGET_OK, "2001:db8::1", 81,
	     "/"},
	    {"http://203.0.113.7/", HTTP_TARGET_OK, "203.0.113.7", 80, "/"},
	    {"https://pub.test/", HTTP_TARGET_NOT_HTTP, NULL, 0, NULL},
	    {"/x", HTTP_TARGET_NOT_HTTP, NULL, 0, NULL},
	    {"http:/", HTTP_TARGET_NOT_HTTP, NULL, 0, NULL},
	    {"http://pub.test/#frag", HTTP_TARGET_NOT_HTTP, NULL, 0, NULL},
	    {"http://u:p@pub.test/", HTTP_TARGET_BAD_HOST, NULL, 0, NULL},
	    {"http://0x7f.1/", HTTP_TARGET_BAD_HOST, NULL, 0, NULL},
	    {"http://pub.test:0/", HTTP_TARGET_BAD_HOST, NULL, 0, NULL},
	    {"http://pub.test:99999/", HTTP_TARGET_BAD_HOST, NULL, 0, NULL},
	    {"http:///x", HTTP_TARGET_BAD_HOST, NULL, 0, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_span t = {cases[i].target, strlen(cases[i].target)};
		struct http_span rest = {NULL, 0};
		struct host h;
		uint16_t port = 0;
		enum http_target got =
		    http_absolute_target(t, &h, &port, &rest);

		if (got != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].target, got,
			         cases[i].want);
		if (got != HTTP_TARGET_OK)
			continue;
		assert_string_equal(h.name, cases[i].host);
		assert_int_equal(port, cases[i].port);
		assert_int_equal(rest.len, strlen(cases[i].rest));
		assert_memory_equal(rest.p, cases[i].rest, rest.len);
	}
}

/* A Via that names egressd as a recipient: the request has looped. */
static void
test_via_names(void **state)
{
	static const struct {
		const char *via;
		int want;
	} cases[] = {
	    {"1.1 egressd", 1},
	    {"1.1 EgressD", 1},
	    {"1.0 fred, 1.1 egressd (v0.1)", 1},
	    {"1.1 proxy.example, 1.1 egressd", 1},
	    {"1.1 egressd.example", 0},
	    {"1.1 notegressd", 0},
	    {"egressd", 0},
	    {"1.1 fred (egressd)", 0},
	    {"1.1 \"egressd\"", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char head[256];
		struct http_request req;
		int n = snprintf(head, sizeof(head),
		                 "GET http://pub.test/ HTTP/1.1\r\n"
		                 "Host: pub.test\r\nVia: %s\r\n\r\n",
		                 cases[i].via);

		assert_int_equal(
		    http_parse_request(head, (size_t)n, &default_limits, &req),
		    HTTP_OK);
		if (http_via_names(&req, "egressd") != cases[i].want)
			fail_msg("Via: %s: want %d", cases[i].via,
			         cases[i].want);
	}
}

/* What of a request-target a log line may show: never a credential, never
 * a query. */
static void
test_target_host(void **state)
{
	static const struct {
		const char *target, *host;
	} cases[] = {
	    {"http://agent:ghp_SECRET@pub.test/x", "pub.test"},
	    {"http://agent:ghp_SECRET@pub.test:8080/x?k=v", "pub.test"},
	    {"HTTP://a@b@pub.test", "pub.test"},
	    {"http://pub.test?api_key=sk-1", "pub.test"},
	    {"http://pub.test#frag", "pub.test"},
	    {"http://pub.test#frag@x", ""},
	    {"ftp://u:p@files.test/", "files.test"},
	    {"user:tok@pub.test:443", "pub.test"},
	    {"pub.test:443", "pub.test"},
	    {"pub.test:", "pub.test:"},
	    {"[::1]:443", "[::1]"},
	    {"2130706433", "2130706433"},
	    {"/x?token=abc", ""},
	    {"?token=abc", ""},
	    {"http://", ""},
	    {"", ""},
	    {"1http://pub.test/", "1http:"},
	    {"h%40x://u:p@pub.test/", ""},
	    /* A userinfo with a '/', '?' or '#': no host at all. */
	    {"http://agent:abc/def@pub.test/x", ""},
	    {"http://agent:abc?def@pub.test/", ""},
	    {"agent:abc#def@pub.test:443", ""},
	    {"http://pub.test/x?mail=a@b", ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_span t = {cases[i].target, strlen(cases[i].target)};
		struct http_span h = http_target_host(t);

		if (h.len != strlen(cases[i].host) ||
		    memcmp(h.p, cases[i].host, h.len) != 0)
			fail_msg("%s: got \"%.*s\", want \"%s\"",
			         cases[i].target, (int)h.len, h.p,
			         cases[i].host);
	}
}

static void
test_has_token(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\n"
	                         "Connection: keep-alive, Close\r\n"
	                         "Connection: ,,upgrade\r\n"
	                         "X-Connection: te\r\n"
	                         "Upgrade: h2c\r\n\r\n";
	struct http_request req;
	char *p = dup_exact(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(
	    http_parse_request(p, sizeof(in) - 1, &default_limits, &req),
	    HTTP_OK);
	assert_true(http_fields_has_token(req.fields, req.nfields, "Connection",
	                                  "close"));
	assert_true(http_fields_has_token(req.fields, req.nfields, "connection",
	                                  "KEEP-ALIVE"));
	assert_true(http_fields_has_token(req.fields, req.nfields, "Connection",
	                                  "upgrade"));
	assert_false(http_fields_has_token(req.fields, req.nfields,
	                                   "Connection", "keep"));
	assert_false(
	    http_fields_has_token(req.fields, req.nfields, "Connection", "te"));
	assert_false(http_fields_has_token(req.fields, req.nfields,
	                                   "Connection", "h2c"));
	assert_true(
	    http_fields_has_token(req.fields, req.nfields, "Upgrade", "h2c"));
	assert_false(
	    http_fields_has_token(req.fields, req.nfields, "Connection", ""));
	assert_false(
	    http_fields_has_token(req.fields, 0, "Connection", "close"));
	free(p);
}

/* Body framing. */

struct body_case {
	const char *what;
	const char *head;
	const char *method; /* responses only */
	enum http_status want;
	enum http_body_kind kind;
	uint64_t length;
};

#define REQ(fields)           "POST http://example.com/ HTTP/1.1\r\n" fields "\r\n"
#define REQ10(fields)         "POST http://example.com/ HTTP/1.0\r\n" fields "\r\n"
#define OK_BODY(kind, length) HTTP_OK, HTTP_BODY_##kind, length
#define REFUSED               HTTP_BAD_REQUEST, HTTP_BODY_NONE, 0

static const struct body_case request_body_cases[] = {
    {"no framing", REQ(""), NULL, OK_BODY(NONE, 0)},
    {"no framing, HTTP/1.0", REQ10("Host: a\r\n"), NULL, OK_BODY(NONE, 0)},
    {"CL 5", REQ("Content-Length: 5\r\n"), NULL, OK_BODY(LENGTH, 5)},
    {"CL 0", REQ("Content-Length: 0\r\n"), NULL, OK_BODY(LENGTH, 0)},
    {"CL lowercase name", REQ("content-length: 7\r\n"), NULL,
     OK_BODY(LENGTH, 7)},
    {"CL on HTTP/1.0", REQ10("Content-Length: 3\r\n"), NULL,
     OK_BODY(LENGTH, 3)},
    {"CL with OWS", REQ("Content-Length:  5 \t\r\n"), NULL, OK_BODY(LENGTH, 5)},
    {"CL 5, 5", REQ("Content-Length: 5, 5\r\n"), NULL, OK_BODY(LENGTH, 5)},
    {"CL 5,,5,", REQ("Content-Length: 5,,5,\r\n"), NULL, OK_BODY(LENGTH, 5)},
    {"CL twice, same", REQ("Content-Length: 5\r\nContent-Length: 5\r\n"), NULL,
     OK_BODY(LENGTH, 5)},
    {"CL twice, one a list",
     REQ("Content-Length: 5\r\nX: y\r\ncontent-length: 5, 5\r\n"), NULL,
     OK_BODY(LENGTH, 5)},
    {"CL 005 and 5, same number", REQ("Content-Length: 005, 5\r\n"), NULL,
     OK_BODY(LENGTH, 5)},
    {"CL 2^63 - 1", REQ("Content-Length: 9223372036854775807\r\n"), NULL,
     OK_BODY(LENGTH, UINT64_C(9223372036854775807))},
    {"CL 19 digits, leading zeros",
     REQ("Content-Length: 0000000000000000012\r\n"), NULL, OK_BODY(LENGTH, 12)},
    {"CL 5, 6", REQ("Content-Length: 5, 6\r\n"), NULL, REFUSED},
    {"CL twice, differing", REQ("Content-Length: 5\r\nContent-Length: 6\r\n"),
     NULL, REFUSED},
    {"CL twice, 0 and 5", REQ("Content-Length: 0\r\nContent-Length: 5\r\n"),
     NULL, REFUSED},
    {"CL +5", REQ("Content-Length: +5\r\n"), NULL, REFUSED},
    {"CL -1", REQ("Content-Length: -1\r\n"), NULL, REFUSED},
    {"CL 0x10", REQ("Content-Length: 0x10\r\n"), NULL, REFUSED},
    {"CL 1e3", REQ("Content-Length: 1e3\r\n"), NULL, REFUSED},
    {"CL 5 5", REQ("Content-Length: 5 5\r\n"), NULL, REFUSED},
    {"CL 5;x", REQ("Content-Length: 5;x\r\n"), NULL, REFUSED},
    {"CL 5.0", REQ("Content-Length: 5.0\r\n"), NULL, REFUSED},
    {"CL empty", REQ("Content-Length:\r\n"), NULL, REFUSED},
    {"CL only commas", REQ("Content-Length: , ,\r\n"), NULL, REFUSED},
    {"CL, one empty", REQ("Content-Length: 5\r\nContent-Length: \r\n"), NULL,
     REFUSED},
    {"CL 2^63", REQ("Content-Length: 9223372036854775808\r\n"), NULL, REFUSED},
    {"CL 20 digits", REQ("Content-Length: 00000000000000000005\r\n"), NULL,
     REFUSED},
    {"CL 2^64", REQ("Content-Length: 18446744073709551616\r\n"), NULL, REFUSED},
    {"CL non-ASCII digit", REQ("Content-Length: \xd9\xa5\r\n"), NULL, REFUSED},

    {"TE chunked", REQ("Transfer-Encoding: chunked\r\n"), NULL,
     OK_BODY(CHUNKED, 0)},
    {"TE Chunked", REQ("Transfer-Encoding: Chunked\r\n"), NULL,
     OK_BODY(CHUNKED, 0)},
    {"TE CHUNKED, lowercase name", REQ("transfer-encoding: CHUNKED\r\n"), NULL,
     OK_BODY(CHUNKED, 0)},
    {"TE with empty elements", REQ("Transfer-Encoding: , chunked ,\r\n"), NULL,
     OK_BODY(CHUNKED, 0)},
    {"TE gzip, chunked", REQ("Transfer-Encoding: gzip, chunked\r\n"), NULL,
     REFUSED},
    {"TE chunked, gzip", REQ("Transfer-Encoding: chunked, gzip\r\n"), NULL,
     REFUSED},
    {"TE identity", REQ("Transfer-Encoding: identity\r\n"), NULL, REFUSED},
    {"TE chunked, chunked", REQ("Transfer-Encoding: chunked, chunked\r\n"),
     NULL, REFUSED},
    {"TE chunked twice",
     REQ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), NULL,
     REFUSED},
    {"TE gzip, then TE chunked",
     REQ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), NULL,
     REFUSED},
    {"TE chunked;foo", REQ("Transfer-Encoding: chunked;foo\r\n"), NULL,
     REFUSED},
    {"TE chunked ;foo", REQ("Transfer-Encoding: chunked ;foo\r\n"), NULL,
     REFUSED},
    {"TE chunkedx", REQ("Transfer-Encoding: chunkedx\r\n"), NULL, REFUSED},
    {"TE \"chunked\"", REQ("Transfer-Encoding: \"chunked\"\r\n"), NULL,
     REFUSED},
    {"TE empty", REQ("Transfer-Encoding:\r\n"), NULL, REFUSED},
    {"TE and CL", REQ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
     NULL, REFUSED},
    {"CL and TE", REQ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
     NULL, REFUSED},
    {"TE and CL 0", REQ("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"),
     NULL, REFUSED},
    {"TE on HTTP/1.0", REQ10("Transfer-Encoding: chunked\r\n"), NULL, REFUSED},
};

#define RESP(status, fields) "HTTP/1.1 " status "\r\n" fields "\r\n"

static const struct body_case response_body_cases[] = {
    {"HEAD, CL", RESP("200 OK", "Content-Length: 100\r\n"), "HEAD",
     OK_BODY(NONE, 0)},
    {"HEAD, TE", RESP("200 OK", "Transfer-Encoding: chunked\r\n"), "HEAD",
     OK_BODY(NONE, 0)},
    {"HEAD, bad CL", RESP("200 OK", "Content-Length: x\r\n"), "HEAD",
     OK_BODY(NONE, 0)},
    {"head is not HEAD", RESP("200 OK", "Content-Length: 5\r\n"), "head",
     OK_BODY(LENGTH, 5)},
    {"204, CL", RESP("204 No Content", "Content-Length: 5\r\n"), "GET",
     OK_BODY(NONE, 0)},
    {"304, CL", RESP("304 Not Modified", "Content-Length: 5\r\n"), "GET",
     OK_BODY(NONE, 0)},
    {"304, TE", RESP("304", "Transfer-Encoding: chunked\r\n"), "GET",
     OK_BODY(NONE, 0)},
    {"100", RESP("100 Continue", ""), "POST", OK_BODY(NONE, 0)},
    {"101", RESP("101 Switching Protocols", "Upgrade: x\r\n"), "GET",
     OK_BODY(NONE, 0)},
    {"199, CL", RESP("199 x", "Content-Length: 5\r\n"), "GET",
     OK_BODY(NONE, 0)},
    {"205 is not 204", RESP("205 x", "Content-Length: 0\r\n"), "GET",
     OK_BODY(LENGTH, 0)},
    {"CONNECT like any other", RESP("200 OK", "Content-Length: 5\r\n"),
     "CONNECT", OK_BODY(LENGTH, 5)},

    {"TE chunked", RESP("200 OK", "Transfer-Encoding: chunked\r\n"), "GET",
     OK_BODY(CHUNKED, 0)},
    {"TE gzip, chunked", RESP("200 OK", "Transfer-Encoding: gzip, chunked\r\n"),
     "GET", OK_BODY(CHUNKED, 0)},
    {"TE gzip;q=1, CHUNKED",
     RESP("200 OK", "Transfer-Encoding: gzip;q=1, CHUNKED\r\n"), "GET",
     OK_BODY(CHUNKED, 0)},
    {"TE gzip, then TE chunked",
     RESP("200 OK",
          "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
     "GET", OK_BODY(CHUNKED, 0)},
    {"TE gzip", RESP("200 OK", "Transfer-Encoding: gzip\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE chunked, gzip", RESP("200 OK", "Transfer-Encoding: chunked, gzip\r\n"),
     "GET", OK_BODY(CLOSE, 0)},
    {"TE chunked, chunked",
     RESP("200 OK", "Transfer-Encoding: chunked, chunked\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE chunked;x, chunked",
     RESP("200 OK", "Transfer-Encoding: chunked;x, chunked\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE gzip, chunked;x",
     RESP("200 OK", "Transfer-Encoding: gzip, chunked;x\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE empty", RESP("200 OK", "Transfer-Encoding:\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE and CL",
     RESP("200 OK", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
     "GET", OK_BODY(CHUNKED, 0)},
    {"TE and a bad CL",
     RESP("200 OK", "Transfer-Encoding: chunked\r\nContent-Length: x, 1\r\n"),
     "GET", OK_BODY(CHUNKED, 0)},
    {"TE gzip and CL",
     RESP("200 OK", "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"), "GET",
     OK_BODY(CLOSE, 0)},
    {"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     "GET", REFUSED},

    {"CL", RESP("200 OK", "Content-Length: 10\r\n"), "GET",
     OK_BODY(LENGTH, 10)},
    {"CL 0", RESP("200 OK", "Content-Length: 0\r\n"), "GET",
     OK_BODY(LENGTH, 0)},
    {"CL 5, 5", RESP("200 OK", "Content-Length: 5, 5\r\n"), "GET",
     OK_BODY(LENGTH, 5)},
    {"CL in HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "GET",
     OK_BODY(LENGTH, 3)},
    {"CL 5, 6", RESP("200 OK", "Content-Length: 5, 6\r\n"), "GET", REFUSED},
    {"CL twice, differing",
     RESP("200 OK", "Content-Length: 5\r\nContent-Length: 6\r\n"), "GET",
     REFUSED},
    {"CL abc", RESP("200 OK", "Content-Length: abc\r\n"), "GET", REFUSED},
    {"CL -1", RESP("200 OK", "Content-Length: -1\r\n"), "GET", REFUSED},
    {"CL empty", RESP("200 OK", "Content-Length:\r\n"), "GET", REFUSED},
    {"CL 20 digits", RESP("200 OK", "Content-Length: 10000000000000000000\r\n"),
     "GET", REFUSED},

    {"no framing", RESP("200 OK", ""), "GET", OK_BODY(CLOSE, 0)},
    {"no framing, HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", "GET",
     OK_BODY(CLOSE, 0)},
    {"no framing, 404", RESP("404 Not Found", "Server: x\r\n"), "POST",
     OK_BODY(CLOSE, 0)},
};

static void
check_body(const struct body_case *c, enum http_status st,
           const struct http_body *body)
{
	if (st != c->want)
		fail_msg("%s: got status %d, want %d", c->what, (int)st,
		         (int)c->want);
	if (st != HTTP_OK)
		return;
	if (body->kind != c->kind || body->length != c->length)
		fail_msg("%s: got kind %d length %llu, want %d %llu", c->what,
		         (int)body->kind, (unsigned long long)body->length,
		         (int)c->kind, (unsigned long long)c->length);
}

static void
test_request_body_table(void **state)
{
	static struct http_request req;
	size_t i;

	(void)state;
	for (i = 0;
	     i < sizeof(request_body_cases) / sizeof(request_body_cases[0]);
	     i++) {
		const struct body_case *c = &request_body_cases[i];
		size_t n = strlen(c->head);
		char *p = dup_exact(c->head, n);
		struct http_body body = {HTTP_BODY_CLOSE, 99};

		if (http_parse_request(p, n, &default_limits, &req) != HTTP_OK)
			fail_msg("%s: head refused", c->what);
		check_body(c, http_request_body(&req, &body), &body);
		free(p);
	}
}

static void
test_response_body_table(void **state)
{
	static struct http_response resp;
	size_t i;

	(void)state;
	for (i = 0;
	     i < sizeof(response_body_cases) / sizeof(response_body_cases[0]);
	     i++) {
		const struct body_case *c = &response_body_cases[i];
		size_t n = strlen(c->head);
		char *p = dup_exact(c->head, n);
		struct http_body body = {HTTP_BODY_CLOSE, 99};

		if (http_parse_response(p, n, &default_limits, &resp) !=
		    HTTP_OK)
			fail_msg("%s: head refused", c->what);
		check_body(c, http_response_body(&resp, c->method, &body),
		           &body);
		free(p);
	}
}

/* Chunked bodies. */

#define CHUNK_MAX_LINE 4096

/*
 * Scan s split at the given offsets (ascending, within n), each piece in a
 * buffer of exactly its length.  Returns the status of the last call made
 * and sets *at to the bytes used in all: the body's length on HTTP_OK, the
 * offset of the bad byte on HTTP_BAD_REQUEST.
 */
static enum http_status
scan_split(const char *s, size_t n, size_t max_line, const size_t *cuts,
           size_t ncuts, size_t *at, uint64_t *data)
{
	struct http_chunked c;
	enum http_status st = HTTP_INCOMPLETE;
	size_t k, from = 0, used;

	http_chunked_init(&c, max_line);
	*at = 0;
	for (k = 0; k <= ncuts && st == HTTP_INCOMPLETE; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		char *p = dup_exact(s + from, to - from);

		used = 12345;
		st = http_chunked_scan(&c, p, to - from, &used);
		free(p);
		assert_true(used <= to - from);
		if (st == HTTP_INCOMPLETE)
			assert_int_equal(used, to - from);
		*at += used;
		from = to;
	}
	if (data != NULL)
		*data = http_chunked_data_bytes(&c);
	return st;
}

static enum http_status
scan(const char *s, size_t n, size_t *at)
{
	return scan_split(s, n, CHUNK_MAX_LINE, NULL, 0, at, NULL);
}

struct chunk_case {
	const char *what;
	const char *in;
	size_t len;
	enum http_status want;
	size_t at; /* body length, or offset of the bad byte */
};

/* The bytes after a body: the next request on the connection. */
#define NEXT          "GET / HTTP/1.1\r\n\r\n"
#define BODY(s)       LIT(s NEXT), HTTP_OK, sizeof(s) - 1
#define BAD_AT(s, at) LIT(s), HTTP_BAD_REQUEST, at
#define MORE(s)       LIT(s), HTTP_INCOMPLETE, sizeof(s) - 1

static const struct chunk_case chunk_cases[] = {
    {"hello", BODY("5\r\nhello\r\n0\r\n\r\n")},
    {"last chunk only", BODY("0\r\n\r\n")},
    {"last chunk of zeros", BODY("000\r\n\r\n")},
    {"two chunks", BODY("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")},
    {"uppercase hex", BODY("A\r\n0123456789\r\n0\r\n\r\n")},
    {"lowercase hex", BODY("a\r\n0123456789\r\n0\r\n\r\n")},
    {"mixed-case hex",
     BODY("1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n")},
    {"15 digits with leading zeros",
     BODY("000000000000005\r\nhello\r\n0\r\n\r\n")},
    {"framing inside data", BODY("5\r\n0\r\n\r\n\r\n0\r\n\r\n")},
    {"CR and LF in data", BODY("4\r\n\n\r\r\n\r\n0\r\n\r\n")},
    {"binary data", BODY("3\r\n\0\xff\x7f\r\n0\r\n\r\n")},
    {"ext name", BODY("5;a\r\nhello\r\n0\r\n\r\n")},
    {"ext token", BODY("5;a=b\r\nhello\r\n0\r\n\r\n")},
    {"ext quoted", BODY("5;a=\"b c, d;e\"\r\nhello\r\n0\r\n\r\n")},
    {"ext quoted-pair", BODY("5;a=\"q\\\"\\\\x\"\r\nhello\r\n0\r\n\r\n")},
    {"ext empty quoted", BODY("5;a=\"\"\r\nhello\r\n0\r\n\r\n")},
    {"ext obs-text quoted", BODY("5;a=\"\x80\xff\"\r\nhello\r\n0\r\n\r\n")},
    {"ext several", BODY("5;a;b=c;d=\"e\"\r\nhello\r\n0\r\n\r\n")},
    {"ext BWS", BODY("5 ; a = b ;\tc = \"d\" ; e\r\nhello\r\n0\r\n\r\n")},
    {"ext BWS after name", BODY("5;a ;b\r\nhello\r\n0\r\n\r\n")},
    {"ext on last chunk", BODY("0;last=1\r\n\r\n")},
    {"trailer", BODY("0\r\nX-Sum: abc\r\n\r\n")},
    {"trailers", BODY("1\r\nx\r\n0\r\nA: b\r\nC:d \t\r\nE:\r\n\r\n")},
    {"trailer obs-text", BODY("0\r\nX: caf\xc3\xa9\r\n\r\n")},

    {"empty size", BAD_AT("\r\n", 0)},
    {"no size, ext", BAD_AT(";a\r\n", 0)},
    {"size not hex", BAD_AT("g\r\n", 0)},
    {"0x prefix", BAD_AT("0x5\r\nhello\r\n", 1)},
    {"leading SP", BAD_AT(" 5\r\nhello\r\n", 0)},
    {"plus sign", BAD_AT("+5\r\nhello\r\n", 0)},
    {"minus sign", BAD_AT("-5\r\nhello\r\n", 0)},
    {"SP after size, no ext", BAD_AT("5 \r\nhello\r\n", 2)},
    {"HTAB after size, no ext", BAD_AT("5\t\r\nhello\r\n", 2)},
    {"NUL in size line", BAD_AT("5\0\r\nhello\r\n", 1)},
    {"bare LF after size", BAD_AT("5\nhello\r\n0\r\n\r\n", 1)},
    {"bare CR after size", BAD_AT("5\rhello\r\n0\r\n\r\n", 2)},
    {"CR CR LF after size", BAD_AT("5\r\r\nhello\r\n0\r\n\r\n", 2)},
    {"data too long", BAD_AT("5\r\nhelloX\r\n0\r\n\r\n", 8)},
    {"data too short", BAD_AT("5\r\nhell\r\n0\r\n\r\n", 8)},
    {"bare LF after data", BAD_AT("5\r\nhello\n0\r\n\r\n", 8)},
    {"bare CR after data", BAD_AT("5\r\nhello\r0\r\n\r\n", 9)},
    {"16 digits", BAD_AT("0000000000000005\r\nhello\r\n", 15)},
    {"2^60", BAD_AT("1000000000000000\r\n", 15)},
    {"2^61", BAD_AT("2000000000000000\r\n", 15)},
    {"2^64", BAD_AT("10000000000000000\r\n", 15)},
    {"ext empty name", BAD_AT("5;\r\nhello\r\n", 2)},
    {"ext trailing ;", BAD_AT("5;a;\r\nhello\r\n", 4)},
    {"ext SP ;", BAD_AT("5 ;\r\nhello\r\n", 3)},
    {"ext no name, value", BAD_AT("5;=b\r\nhello\r\n", 2)},
    {"ext empty value", BAD_AT("5;a=\r\nhello\r\n", 4)},
    {"ext SP inside name", BAD_AT("5;a b\r\nhello\r\n", 4)},
    {"ext SP inside value", BAD_AT("5;a=b c\r\nhello\r\n", 6)},
    {"ext SP then CRLF", BAD_AT("5;a \r\nhello\r\n", 4)},
    {"ext value, SP then CRLF", BAD_AT("5;a=b \r\nhello\r\n", 6)},
    {"ext name not a token", BAD_AT("5;a@b\r\nhello\r\n", 3)},
    {"ext comma", BAD_AT("5,a\r\nhello\r\n", 1)},
    {"ext unterminated quote", BAD_AT("5;a=\"b\r\nhello\r\n", 6)},
    {"ext text after quote", BAD_AT("5;a=\"b\"c\r\nhello\r\n", 7)},
    {"ext control in quote", BAD_AT("5;a=\"\x01\"\r\nhello\r\n", 5)},
    {"ext DEL in quote", BAD_AT("5;a=\"\x7f\"\r\nhello\r\n", 5)},
    {"ext control after '\\'", BAD_AT("5;a=\"\\\x01\"\r\nhello\r\n", 6)},
    {"ext bare LF", BAD_AT("5;a\nhello\r\n", 3)},
    {"final bare LF", BAD_AT("0\r\n\n", 3)},
    {"final bare CR", BAD_AT("0\r\n\rX", 4)},
    {"trailer bare LF", BAD_AT("0\r\nX: a\nY: b\r\n\r\n", 7)},
    {"trailer bare CR", BAD_AT("0\r\nX: a\rY: b\r\n\r\n", 8)},
    {"trailer obs-fold", BAD_AT("0\r\nX: a\r\n b\r\n\r\n", 9)},
    {"trailer leading SP", BAD_AT("0\r\n X: a\r\n\r\n", 3)},
    {"trailer SP before colon", BAD_AT("0\r\nX : a\r\n\r\n", 4)},
    {"trailer empty name", BAD_AT("0\r\n: a\r\n\r\n", 3)},
    {"trailer no colon", BAD_AT("0\r\nX\r\n\r\n", 4)},
    /* RFC 9110 §6.5.1: no framing, routing or hop-by-hop trailers; refused
     * at the colon that ends the name. */
    {"trailer Host", BAD_AT("0\r\nHost: evil.test\r\n\r\n", 7)},
    {"trailer Content-Length", BAD_AT("0\r\ncontent-length: 5\r\n\r\n", 17)},
    {"trailer Transfer-Encoding",
     BAD_AT("0\r\nA: b\r\nTRANSFER-ENCODING: chunked\r\n\r\n", 26)},
    {"trailer Connection", BAD_AT("0\r\nConnection: close\r\n\r\n", 13)},
    {"trailer Proxy-Authorization",
     BAD_AT("0\r\nProxy-Authorization: x\r\n\r\n", 22)},
    {"trailer like Host but longer",
     BODY("0\r\nHostx: a\r\nX-Host: b\r\n\r\n")},
    {"trailer long name",
     BODY("0\r\nX-Content-Length-Checksum-Value: 1\r\n\r\n")},
    {"trailer SP in name", BAD_AT("0\r\nX Y: a\r\n\r\n", 4)},
    {"trailer control in value", BAD_AT("0\r\nX: a\x01\r\n\r\n", 7)},
    {"trailer NUL in value", BAD_AT("0\r\nX: a\0\r\n\r\n", 7)},
    {"trailer DEL in value", BAD_AT("0\r\nX: \x7f\r\n\r\n", 6)},

    {"nothing yet", MORE("")},
    {"size only", MORE("5")},
    {"size line", MORE("5\r\n")},
    {"partial data", MORE("5\r\nhel")},
    {"after data", MORE("5\r\nhello\r\n")},
    {"last chunk", MORE("0\r\n")},
    {"last chunk and CR", MORE("0\r\n\r")},
    {"in a trailer", MORE("0\r\nX: a\r\n")},
    {"15 hex digits", MORE("FFFFFFFFFFFFFFF\r\nabc")},
    {"ext in progress", MORE("5;a=\"b")},
};

static void
test_chunked_table(void **state)
{
	size_t i, at;

	(void)state;
	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];
		enum http_status got = scan(c->in, c->len, &at);

		if (got != c->want || at != c->at)
			fail_msg("%s: got %d at %zu, want %d at %zu", c->what,
			         (int)got, at, (int)c->want, c->at);
	}
}

/* Any split of the input gives the one-shot result. */
static void
test_chunked_splits(void **state)
{
	uint32_t seed = 2463534242u;
	size_t i, j, k, at, at1;
	uint64_t data, data1;

	(void)state;
	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];
		size_t cuts[64], ncuts, n = c->len;
		enum http_status want, got;

		want =
		    scan_split(c->in, n, CHUNK_MAX_LINE, NULL, 0, &at1, &data1);
		/* Byte by byte. */
		for (j = 0; j + 1 < n && j < 64; j++)
			cuts[j] = j + 1;
		if (n <= 65) {
			got = scan_split(c->in, n, CHUNK_MAX_LINE, cuts,
			                 n > 0 ? n - 1 : 0, &at, &data);
			if (got != want || at != at1 || data != data1)
				fail_msg("%s: byte by byte: %d at %zu", c->what,
				         (int)got, at);
		}
		/* Random splits, empty pieces included. */
		for (k = 0; k < 200; k++) {
			size_t prev = 0;

			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			ncuts = seed % 8;
			for (j = 0; j < ncuts; j++) {
				seed ^= seed << 13;
				seed ^= seed >> 17;
				seed ^= seed << 5;
				prev += n > prev ? seed % (n - prev + 1) : 0;
				cuts[j] = prev;
			}
			got = scan_split(c->in, n, CHUNK_MAX_LINE, cuts, ncuts,
			                 &at, &data);
			if (got != want || at != at1 || data != data1)
				fail_msg("%s: split %zu: %d at %zu", c->what, k,
				         (int)got, at);
		}
	}
}

/* The whole of a long body, byte by byte, in one buffer each. */
static void
test_chunked_byte_by_byte_long(void **state)
{
	static const char in[] =
	    "1a;name=\"v a l\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "3\r\n\r\n\r\r\n"
	    "10 ; x\r\n0123456789ABCDEF\r\n"
	    "0\r\nTrailer-One: 1\r\nTrailer-Two: two\r\n\r\n" NEXT;
	size_t body = sizeof(in) - 1 - strlen(NEXT);
	struct http_chunked c;
	size_t i, used;
	char *p;

	(void)state;
	http_chunked_init(&c, CHUNK_MAX_LINE);
	for (i = 0; i + 1 < body; i++) {
		p = dup_exact(in + i, 1);
		assert_int_equal(http_chunked_scan(&c, p, 1, &used),
		                 HTTP_INCOMPLETE);
		assert_int_equal(used, 1);
		free(p);
	}
	p = dup_exact(in + i, sizeof(in) - 1 - i);
	assert_int_equal(http_chunked_scan(&c, p, sizeof(in) - 1 - i, &used),
	                 HTTP_OK);
	assert_int_equal(used, 1);
	assert_int_equal(http_chunked_data_bytes(&c), 26 + 3 + 16);
	/* Once done, it stays done and takes nothing more. */
	assert_int_equal(http_chunked_scan(&c, p, 1, &used), HTTP_OK);
	assert_int_equal(used, 0);
	free(p);
}

static void
test_chunked_sticky_error(void **state)
{
	struct http_chunked c;
	size_t used;

	(void)state;
	http_chunked_init(&c, CHUNK_MAX_LINE);
	assert_int_equal(http_chunked_scan(&c, LIT("5\r\nhi"), &used),
	                 HTTP_INCOMPLETE);
	assert_int_equal(http_chunked_scan(&c, LIT("xyzW"), &used),
	                 HTTP_BAD_REQUEST);
	assert_int_equal(used, 3);
	assert_int_equal(http_chunked_scan(&c, LIT("\r\n0\r\n\r\n"), &used),
	                 HTTP_BAD_REQUEST);
	assert_int_equal(used, 0);
}

static void
test_chunked_data_bytes(void **state)
{
	size_t at;
	uint64_t data;

	(void)state;
	assert_int_equal(scan_split(LIT("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
	                            CHUNK_MAX_LINE, NULL, 0, &at, &data),
	                 HTTP_OK);
	assert_int_equal(data, 5);
	assert_int_equal(scan_split(LIT("FFFFFFFFFFFFFFF\r\nabcd"),
	                            CHUNK_MAX_LINE, NULL, 0, &at, &data),
	                 HTTP_INCOMPLETE);
	assert_int_equal(data, 4);
}

/* A large chunk is skipped, not looked at byte by byte. */
static void
test_chunked_large(void **state)
{
	size_t n = 1 << 20, len = 8 + n + 7, at;
	char *s = malloc(len);

	(void)state;
	assert_non_null(s);
	memcpy(s, "100000\r\n", 8);
	memset(s + 8, '\n', n);
	memcpy(s + 8 + n, "\r\n0\r\n\r\n", 7);
	assert_int_equal(scan(s, len, &at), HTTP_OK);
	assert_int_equal(at, len);
	free(s);
}

static void
test_chunked_line_limit(void **state)
{
	size_t at;

	(void)state;
	/* A size line of 4 bytes, without CRLF. */
	assert_int_equal(scan_split(LIT("5;ab\r\nhello\r\n0\r\n\r\n"), 4, NULL,
	                            0, &at, NULL),
	                 HTTP_OK);
	assert_int_equal(scan_split(LIT("5;abc\r\nhello\r\n0\r\n\r\n"), 4, NULL,
	                            0, &at, NULL),
	                 HTTP_BAD_REQUEST);
	assert_int_equal(at, 4);
	/* Refused before the line ends. */
	assert_int_equal(scan_split(LIT("5;abc"), 4, NULL, 0, &at, NULL),
	                 HTTP_BAD_REQUEST);
	/* Chunk data is not a line. */
	assert_int_equal(scan_split(LIT("a\r\n0123456789\r\n0\r\n\r\n"), 4,
	                            NULL, 0, &at, NULL),
	                 HTTP_OK);
	/* A trailer line of 4 bytes, then one of 5. */
	assert_int_equal(
	    scan_split(LIT("0\r\nX: a\r\n\r\n"), 4, NULL, 0, &at, NULL),
	    HTTP_OK);
	assert_int_equal(
	    scan_split(LIT("0\r\nX: ab\r\n\r\n"), 4, NULL, 0, &at, NULL),
	    HTTP_BAD_REQUEST);
	assert_int_equal(at, 7);
	/* Each line has its own count. */
	assert_int_equal(scan_split(LIT("1;ab\r\nx\r\n1;cd\r\ny\r\n0\r\n"
	                                "X: a\r\nY: b\r\n\r\n"),
	                            4, NULL, 0, &at, NULL),
	                 HTTP_OK);
}

/* "0\r\n" then n trailer lines "T: v\r\n" then CRLF; caller frees. */
static char *
body_with_trailers(size_t n, size_t *len)
{
	static const char tl[] = "T: v\r\n";
	size_t tn = sizeof(tl) - 1, i;
	char *s = malloc(3 + n * tn + 2);

	assert_non_null(s);
	memcpy(s, "0\r\n", 3);
	for (i = 0; i < n; i++)
		memcpy(s + 3 + i * tn, tl, tn);
	memcpy(s + 3 + n * tn, "\r\n", 2);
	*len = 3 + n * tn + 2;
	return s;
}

static void
test_chunked_trailer_count(void **state)
{
	size_t len, at;
	char *s;

	(void)state;
	s = body_with_trailers(100, &len);
	assert_int_equal(scan(s, len, &at), HTTP_OK);
	assert_int_equal(at, len);
	free(s);
	s = body_with_trailers(101, &len);
	assert_int_equal(scan(s, len, &at), HTTP_BAD_REQUEST);
	/* At the first byte of the 101st line. */
	assert_int_equal(at, 3 + 100 * 6);
	free(s);
}

/* Trailer fields follow the head's field rules exactly. */
static void
test_chunked_trailers_as_fields(void **state)
{
	static const char rl[] = "GET / HTTP/1.1\r\n";
	size_t i, at, checked = 0;

	(void)state;
	for (i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
		const struct head_case *c = &head_cases[i];
		size_t rest = c->len - (sizeof(rl) - 1);
		enum http_status got;
		char *s;

		if (c->len <= sizeof(rl) - 1 ||
		    memcmp(c->in, rl, sizeof(rl) - 1) != 0)
			continue;
		s = malloc(3 + rest);
		assert_non_null(s);
		memcpy(s, "0\r\n", 3);
		memcpy(s + 3, c->in + sizeof(rl) - 1, rest);
		got = scan(s, 3 + rest, &at);
		free(s);
		if (c->want == HTTP_OK ? got != HTTP_OK || at != 3 + rest
		                       : got != HTTP_BAD_REQUEST)
			fail_msg("%s: as trailers, got %d", c->what, (int)got);
		checked++;
	}
	assert_true(checked >= 20);
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
	    cmocka_unit_test(test_field_valid),
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
	    cmocka_unit_test(test_head_scan_splits),
	    cmocka_unit_test(test_head_scan_table),
	    cmocka_unit_test(test_head_scan_trickle),
	    cmocka_unit_test(test_head_scan_sticky),
	    cmocka_unit_test(test_status_kinds),
	    cmocka_unit_test(test_response_ok),
	    cmocka_unit_test(test_response_no_reason),
	    cmocka_unit_test(test_response_table),
	    cmocka_unit_test(test_response_fields_as_requests),
	    cmocka_unit_test(test_response_limits),
	    cmocka_unit_test(test_list_next),
	    cmocka_unit_test(test_span_ieq),
	    cmocka_unit_test(test_target_host),
	    cmocka_unit_test(test_absolute_target),
	    cmocka_unit_test(test_via_names),
	    cmocka_unit_test(test_has_token),
	    cmocka_unit_test(test_request_body_table),
	    cmocka_unit_test(test_response_body_table),
	    cmocka_unit_test(test_chunked_table),
	    cmocka_unit_test(test_chunked_splits),
	    cmocka_unit_test(test_chunked_byte_by_byte_long),
	    cmocka_unit_test(test_chunked_sticky_error),
	    cmocka_unit_test(test_chunked_data_bytes),
	    cmocka_unit_test(test_chunked_large),
	    cmocka_unit_test(test_chunked_line_limit),
	    cmocka_unit_test(test_chunked_trailer_count),
	    cmocka_unit_test(test_chunked_trailers_as_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
