/*
 * fuzz_http_request: a client's bytes as egressd reads them.  The input is
 * what arrives on the connection: http_head_end finds the head, which
 * http_parse_request and http_request_body take apart; a chunked body that
 * follows goes through the scanner.
 */
#include "fuzz_http.h"

static int
is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* What egressd takes from the request-target: the host a log line may
 * show (never a userinfo, path, query or fragment), the absolute-form's
 * authority and the rest it sends, and the loop check. */
static void
check_target(const struct http_request *req)
{
	struct http_span shown = http_target_host(req->target), rest;
	struct host h;
	uint16_t port;

	FUZZ_CHECK(shown.len == 0 ||
	           fuzz_within(shown.p, shown.len, req->target.p,
	                       req->target.len));
	for (size_t i = 0; i < shown.len; i++)
		FUZZ_CHECK(!strchr("@/?#", shown.p[i]));
	if (http_absolute_target(req->target, &h, &port, &rest) ==
	    HTTP_TARGET_OK) {
		FUZZ_CHECK(port != 0 && h.name[0] != '\0');
		FUZZ_CHECK(fuzz_within(rest.p, rest.len, req->target.p,
		                       req->target.len));
		FUZZ_CHECK(rest.p + rest.len == req->target.p + req->target.len);
		FUZZ_CHECK(rest.len == 0 || rest.p[0] == '/' ||
		           rest.p[0] == '?');
		FUZZ_CHECK(!memchr(req->target.p, '#', req->target.len));
		/* A host is shown for it, unless a '@' (in its path or
		 * query) leaves where the host starts in doubt. */
		FUZZ_CHECK(shown.len > 0 ||
		           memchr(req->target.p, '@', req->target.len));
	}
	(void)http_via_names(req, "egressd");
}

static void
check_request(const union fuzz_msg *msg, const char *head, size_t len,
              const struct http_limits *lim, const uint8_t *rest, size_t nrest)
{
	const struct http_request *req = &msg->req;

	FUZZ_CHECK(req->method.len >= 1 && req->method.len <= 32);
	FUZZ_CHECK(fuzz_within(req->method.p, req->method.len, head, len));
	for (size_t i = 0; i < req->method.len; i++)
		FUZZ_CHECK(is_tchar(req->method.p[i]));
	FUZZ_CHECK(req->target.len >= 1);
	FUZZ_CHECK(fuzz_within(req->target.p, req->target.len, head, len));
	FUZZ_CHECK(memchr(req->target.p, ' ', req->target.len) == NULL);
	/* "M T HTTP/1.1" */
	FUZZ_CHECK(req->method.len + req->target.len + 10 <=
	           lim->max_request_line);
	FUZZ_CHECK(req->version_minor == 0 || req->version_minor == 1);
	fuzz_check_fields(req->fields, req->nfields, head, len, lim);

	check_target(req);

	/* Written out again, the head parses the same, to the same framing. */
	struct http_request again;
	struct http_body body, body2;
	enum http_status st, st2;
	size_t line_len = (size_t)(req->target.p + req->target.len - head) + 9;
	size_t n2;
	char *head2 =
	    fuzz_write_head(head, line_len, req->fields, req->nfields, &n2);

	FUZZ_CHECK(http_parse_request(head2, n2, &fuzz_wide_limits, &again) ==
	           HTTP_OK);
	FUZZ_CHECK(fuzz_span_same(req->method, again.method) &&
	           fuzz_span_same(req->target, again.target) &&
	           req->version_minor == again.version_minor);
	fuzz_same_fields(req->fields, req->nfields, again.fields,
	                 again.nfields);
	st = http_request_body(req, &body);
	st2 = http_request_body(&again, &body2);
	FUZZ_CHECK(st == st2);
	if (st == HTTP_OK)
		FUZZ_CHECK(body.kind == body2.kind &&
		           body.length == body2.length);
	free(head2);

	if (st != HTTP_OK) {
		FUZZ_CHECK(st == HTTP_BAD_REQUEST);
		return;
	}
	switch (body.kind) {
	case HTTP_BODY_NONE:
		FUZZ_CHECK(body.length == 0);
		FUZZ_CHECK(!http_field_get(req, "Content-Length") &&
		           !http_field_get(req, "Transfer-Encoding"));
		break;
	case HTTP_BODY_LENGTH:
		FUZZ_CHECK(body.length <= (uint64_t)INT64_MAX);
		FUZZ_CHECK(http_field_get(req, "Content-Length") &&
		           !http_field_get(req, "Transfer-Encoding"));
		break;
	case HTTP_BODY_CHUNKED:
		FUZZ_CHECK(body.length == 0);
		/* RFC 9112 §6.3: never both; never in HTTP/1.0. */
		FUZZ_CHECK(http_field_get(req, "Transfer-Encoding") &&
		           !http_field_get(req, "Content-Length"));
		FUZZ_CHECK(req->version_minor == 1);
		fuzz_scan_chunked(rest, nrest);
		break;
	case HTTP_BODY_CLOSE:
		/* A request body never runs until close. */
		FUZZ_CHECK(0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_heads(data, size, 0, check_request);
	return 0;
}
