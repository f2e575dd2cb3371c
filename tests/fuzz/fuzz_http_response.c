/*
 * fuzz_http_response: an upstream's bytes as egressd reads them when
 * forwarding plain HTTP.  http_head_end finds the head, http_parse_response
 * takes it apart, http_response_body frames it for each kind of request.
 */
#include "fuzz_http.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "CONNECT"};

static void
check_response(const union fuzz_msg *msg, const char *head, size_t len,
               const struct http_limits *lim, const uint8_t *rest, size_t nrest)
{
	const struct http_response *resp = &msg->resp;

	FUZZ_CHECK(resp->version_minor == 0 || resp->version_minor == 1);
	FUZZ_CHECK(resp->status >= 100 && resp->status <= 599);
	FUZZ_CHECK(fuzz_within(resp->reason.p, resp->reason.len, head, len));
	fuzz_check_fields(resp->fields, resp->nfields, head, len, lim);

	/* Written out again (with the SP before an empty reason), the head
	 * parses the same, to the same framing. */
	char line[16 + 1024], *head2;
	struct http_response again;
	size_t n2;

	if (resp->reason.len <= 1024) {
		int k = snprintf(line, sizeof(line), "HTTP/1.%d %03d %.*s",
		                 resp->version_minor, resp->status,
		                 (int)resp->reason.len,
		                 resp->reason.len ? resp->reason.p : "");

		FUZZ_CHECK(k > 0 && (size_t)k < sizeof(line));
		head2 = fuzz_write_head(line, (size_t)k, resp->fields,
		                        resp->nfields, &n2);
		FUZZ_CHECK(http_parse_response(head2, n2, &fuzz_wide_limits,
		                               &again) == HTTP_OK);
		FUZZ_CHECK(again.status == resp->status &&
		           again.version_minor == resp->version_minor &&
		           fuzz_span_same(again.reason, resp->reason));
		fuzz_same_fields(resp->fields, resp->nfields, again.fields,
		                 again.nfields);
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]);
		     m++) {
			struct http_body b1, b2;
			enum http_status s1 =
			    http_response_body(resp, methods[m], &b1);
			enum http_status s2 =
			    http_response_body(&again, methods[m], &b2);

			FUZZ_CHECK(s1 == s2);
			if (s1 == HTTP_OK)
				FUZZ_CHECK(b1.kind == b2.kind &&
				           b1.length == b2.length);
		}
		free(head2);
	}

	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		struct http_body body;
		int te = http_fields_get(resp->fields, resp->nfields,
		                         "Transfer-Encoding") != NULL;
		int no_body = strcmp(methods[m], "HEAD") == 0 ||
		              resp->status < 200 || resp->status == 204 ||
		              resp->status == 304;
		enum http_status st =
		    http_response_body(resp, methods[m], &body);

		if (st != HTTP_OK) {
			FUZZ_CHECK(st == HTTP_BAD_REQUEST && !no_body);
			continue;
		}
		if (no_body) {
			/* RFC 9112 §6.3 item 1, whatever the fields say. */
			FUZZ_CHECK(body.kind == HTTP_BODY_NONE);
			continue;
		}
		FUZZ_CHECK(body.kind != HTTP_BODY_NONE);
		if (body.kind != HTTP_BODY_LENGTH)
			FUZZ_CHECK(body.length == 0);
		if (body.kind == HTTP_BODY_LENGTH) {
			FUZZ_CHECK(!te);
			FUZZ_CHECK(body.length <= (uint64_t)INT64_MAX);
		}
		if (body.kind == HTTP_BODY_CHUNKED) {
			FUZZ_CHECK(te && resp->version_minor == 1);
			if (m == 0)
				fuzz_scan_chunked(rest, nrest);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_heads(data, size, 1, check_response);
	return 0;
}
