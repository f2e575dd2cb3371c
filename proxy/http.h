/*
 * http: strict HTTP/1.1 request-head parsing.  No I/O.
 *
 * The parser works on a complete head (request line and header section,
 * ending with the empty line) that the caller has already found and copied.
 * Parsed strings point into that buffer.  It is deliberately stricter than
 * RFC 9112 allows a server to be: a proxy that is lenient where the upstream
 * is strict (or the other way round) is how requests get smuggled.
 */
#ifndef EGRESSD_HTTP_H
#define EGRESSD_HTTP_H

#include <stddef.h>

#define HTTP_MAX_FIELDS 100

struct http_span {
	const char *p;
	size_t len;
};

struct http_field {
	struct http_span name;  /* as sent; compare case-insensitively */
	struct http_span value; /* leading and trailing whitespace removed */
};

struct http_request {
	struct http_span method;
	struct http_span target;
	int version_minor; /* HTTP/1.0 → 0, HTTP/1.1 → 1 */
	struct http_field fields[HTTP_MAX_FIELDS];
	size_t nfields;
};

enum http_status {
	HTTP_OK = 0,
	HTTP_INCOMPLETE,       /* http_head_end: no end of head yet */
	HTTP_BAD_REQUEST,      /* malformed: 400 */
	HTTP_URI_TOO_LONG,     /* request line over the limit: 414 */
	HTTP_FIELDS_TOO_LARGE, /* a field line, the section or the count over
	                          the limit: 431 */
	HTTP_BAD_VERSION,      /* not HTTP/1.0 or HTTP/1.1: 505 */
};

struct http_limits {
	size_t max_request_line; /* bytes, without CRLF */
	size_t max_field_line;   /* bytes, without CRLF */
	size_t max_fields;       /* at most HTTP_MAX_FIELDS */
	size_t max_head;         /* whole head, with the final CRLFCRLF */
};

/*
 * Find the end of the head in the bytes received so far.  Returns HTTP_OK and
 * sets *head_len (bytes up to and including the empty line), HTTP_INCOMPLETE
 * when more bytes are needed, or an error status as soon as the bytes already
 * show one: a request line or field line over its limit, a head over
 * max_head, a bare LF or bare CR, or a NUL.  Leading empty lines before the
 * request line (RFC 9112 §2.2) are not accepted.
 */
enum http_status http_head_end(const char *buf, size_t len,
                               const struct http_limits *lim, size_t *head_len);

/*
 * Parse a complete head (as delimited by http_head_end) into *req, whose
 * spans point into buf.  Rejects: a method that is not a token, a target with
 * characters outside RFC 3986 (or empty), a version other than HTTP/1.0 and
 * HTTP/1.1, obs-fold, whitespace between a field name and its colon, field
 * names that are not tokens, control characters in values, too many fields.
 */
enum http_status http_parse_request(const char *buf, size_t len,
                                    const struct http_limits *lim,
                                    struct http_request *req);

/* The first field with this name (case-insensitive), or NULL. */
const struct http_field *http_field_get(const struct http_request *req,
                                        const char *name);

/* Does the span equal the NUL-terminated string exactly?  1 or 0. */
int http_span_eq(struct http_span s, const char *str);

#endif
