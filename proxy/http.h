/*
 * http: strict HTTP/1.1 message parsing and body framing.  No I/O.
 *
 * The head parsers work on a complete head (start line and header section,
 * ending with the empty line) that the caller has already found, with
 * http_head_scan as its bytes arrive, and copied.
 * Parsed strings point into that buffer.  They are deliberately stricter than
 * RFC 9112 allows a server to be: a proxy that is lenient where the upstream
 * is strict (or the other way round) is how requests get smuggled.  The body
 * framing functions decide where a body ends; the chunked scanner checks a
 * chunked body as it streams past without changing it.
 */
#ifndef EGRESSD_HTTP_H
#define EGRESSD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

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

struct http_response {
	int version_minor;       /* HTTP/1.0 → 0, HTTP/1.1 → 1 */
	int status;              /* 100..599 */
	struct http_span reason; /* may be empty */
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
 * max_head, more field lines than max_fields, a bare LF or bare CR, or a NUL.
 * Leading empty lines before the request line (RFC 9112 §2.2) are not
 * accepted.  The bytes are looked at in order and each answer is decided by
 * the byte that shows it, never by a later one, so a prefix of the bytes
 * gives HTTP_INCOMPLETE or the same answer as the whole.  It is
 * http_head_scan given all the bytes at once.
 */
enum http_status http_head_end(const char *buf, size_t len,
                               const struct http_limits *lim, size_t *head_len);

/*
 * http_head_end for bytes that arrive in pieces: each call is given only the
 * bytes that follow those of the calls before, and no earlier piece needs to
 * be kept for it, so a head that trickles in costs time linear in its
 * length.  The fields are private to http.c.
 */
struct http_head_scan {
	size_t pos;        /* bytes scanned so far */
	size_t line_start; /* offset of the current line */
	size_t nlines;     /* complete lines so far; 0: in the request line */
	int after_cr;      /* the last byte scanned was a CR */
	enum http_status status; /* HTTP_INCOMPLETE until decided */
};

/* Start scanning a head. */
void http_head_scan_init(struct http_head_scan *s);

/*
 * Scan the next len bytes of a head, under the same limits on every call.
 * However the bytes are split across calls, the answer is what
 * http_head_end gives for all of them together, decided at the same byte.
 * HTTP_OK: the head ends within these bytes, after their first *used (the
 * rest belong to whatever follows it: a body or the next request).
 * HTTP_INCOMPLETE: all len bytes are head (*used = len).  An error: buf[*used]
 * is the byte that shows it.  Once decided, later calls give the same status
 * with *used = 0.  Reads only buf[0..len), each byte once.
 */
enum http_status http_head_scan(struct http_head_scan *s, const char *buf,
                                size_t len, const struct http_limits *lim,
                                size_t *used);

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

/*
 * Parse a complete response head (as delimited by http_head_end) into *resp,
 * whose spans point into buf.  RFC 9112 §4: status-line = HTTP-version SP
 * 3DIGIT SP [reason-phrase]; the SP before an empty reason phrase may be
 * missing too, as many servers send it.  The status must be 100..599.  Fields
 * follow the rules of http_parse_request.  The status line is held to
 * lim->max_request_line, so an over-long one is HTTP_URI_TOO_LONG, as from
 * http_head_end.  A version other than HTTP/1.0 and HTTP/1.1 is
 * HTTP_BAD_VERSION; anything else wrong is HTTP_BAD_REQUEST.  Every error means
 * a bad gateway, not a bad client.
 */
enum http_status http_parse_response(const char *buf, size_t len,
                                     const struct http_limits *lim,
                                     struct http_response *resp);

/*
 * Is "name: value" a field line that http_parse_request accepts, with value
 * exactly as given (no whitespace at either end that a parser would strip)?
 * For fields egressd writes itself: a CR or LF in value would start another
 * field, or end the head.  1 or 0.
 */
int http_field_valid(const char *name, const char *value);

/* The first of the n fields with this name (case-insensitive), or NULL. */
const struct http_field *http_fields_get(const struct http_field *fields,
                                         size_t n, const char *name);

/* The first field of the request with this name (case-insensitive), or NULL. */
const struct http_field *http_field_get(const struct http_request *req,
                                        const char *name);

/* Does the span equal the NUL-terminated string exactly?  1 or 0. */
int http_span_eq(struct http_span s, const char *str);

/* The same, ignoring the case of ASCII letters.  1 or 0. */
int http_span_ieq(struct http_span s, const char *str);

/* How an absolute-form request-target parsed. */
enum http_target {
	HTTP_TARGET_OK,
	HTTP_TARGET_NOT_HTTP, /* not http://, or with a fragment */
	HTTP_TARGET_BAD_HOST, /* the authority is not a strict host[:port] */
};

/*
 * An absolute-form http:// target (RFC 9112 §3.2.2), routed by its authority
 * only: the host and port (80 when none) into *h and *port, and what follows
 * the authority, its path and query, into *rest (pointing into target; empty
 * for "http://host", which is sent as "/").
 */
enum http_target http_absolute_target(struct http_span target, struct host *h,
                                      uint16_t *port, struct http_span *rest);

/* Does a Via field of the request already name `by` as its received-by, so
 * that the request has looped back (RFC 9110 §7.6.3)?  1 or 0. */
int http_via_names(const struct http_request *req, const char *by);

/*
 * What a request-target, however malformed, may show in a log line as its
 * host: the authority without a scheme, userinfo (through the last '@'), a
 * path, query or fragment, or a trailing ":port".  A credential in
 * "http://user:token@host/" or a query string never reaches the log this
 * way; nor does one that holds a '/', '?' or '#' (then nothing is shown,
 * since where the host starts cannot be told).  Points into target; may be
 * empty (an origin-form "/path?query").
 */
struct http_span http_target_host(struct http_span target);

/*
 * Take the next element of a comma-separated list (RFC 9110 §5.6.1) off the
 * front of *rest: skip OWS and empty elements, set *item to the element with
 * its surrounding OWS removed and *rest to what follows its comma, and return
 * 1; return 0 when no element is left.  A comma inside a quoted-string does
 * not end an element.  Both spans point into the original bytes.
 */
int http_list_next(struct http_span *rest, struct http_span *item);

/*
 * Is token (case-insensitive) an element of the list in any of the n fields
 * with this name, as "close" is in "Connection: keep-alive, close"?  1 or 0.
 */
int http_fields_has_token(const struct http_field *fields, size_t n,
                          const char *name, const char *token);

/* How a message body ends, RFC 9112 §6.3. */
enum http_body_kind {
	HTTP_BODY_NONE,    /* no body */
	HTTP_BODY_LENGTH,  /* exactly length bytes (possibly 0) */
	HTTP_BODY_CHUNKED, /* chunked: run http_chunked_scan to find its end */
	HTTP_BODY_CLOSE,   /* everything until the server closes */
};

struct http_body {
	enum http_body_kind kind;
	uint64_t length; /* HTTP_BODY_LENGTH only; 0 otherwise */
};

/*
 * Decide how the body of a parsed request is framed (RFC 9112 §6.3).  No
 * Content-Length and no Transfer-Encoding: no body.  Content-Length: its
 * value; each field may be a list, each element 1..19 digits no greater
 * than 2^63 - 1, all elements of all fields equal.  Transfer-Encoding: the
 * codings of all its fields together must be exactly "chunked".  Refused
 * with HTTP_BAD_REQUEST: anything else, both fields together, and
 * Transfer-Encoding in an HTTP/1.0 request.  A request forwarded with a
 * Content-Length list should carry a single value of its own instead.
 */
enum http_status http_request_body(const struct http_request *req,
                                   struct http_body *body);

/*
 * Decide how the body of a parsed response to request_method (a
 * NUL-terminated method, compared case-sensitively) is framed, in the order
 * of RFC 9112 §6.3: a response to HEAD and a 1xx, 204 or 304 response have
 * none; with Transfer-Encoding, it is chunked when chunked is the final
 * coding and appears once, otherwise it runs until the server closes;
 * otherwise a Content-Length as for requests; otherwise until close.  A 2xx
 * to CONNECT gets no special case: CONNECT is tunnelled, not forwarded.
 * HTTP_BAD_REQUEST (to be answered with 502) for an invalid or conflicting
 * Content-Length, and for Transfer-Encoding in an HTTP/1.0 response.  When
 * both fields are present Transfer-Encoding wins and Content-Length is not
 * looked at: the caller must not forward it (RFC 9112 §6.3 item 3).
 */
enum http_status http_response_body(const struct http_response *resp,
                                    const char *request_method,
                                    struct http_body *body);

/*
 * A validating scanner for a chunked body (RFC 9112 §7.1), fed the body as it
 * arrives.  It does not decode: the caller forwards the bytes as they are and
 * learns where the body ends.  The fields are private to http.c.
 */
struct http_chunked {
	int state;
	int field;          /* where in a trailer field line */
	size_t max_line;    /* for a chunk-size line and a trailer line */
	size_t line_len;    /* bytes of the current line so far */
	unsigned ndigits;   /* hex digits of the chunk size so far */
	unsigned ntrailers; /* trailer field lines so far */
	char name[20];      /* the trailer field's name, lowercased */
	unsigned name_len;  /* its length; over sizeof(name): longer */
	uint64_t size;      /* chunk size, then chunk data bytes left */
	uint64_t data;      /* chunk data bytes so far */
};

/*
 * Start scanning a chunked body.  max_line limits each chunk-size line (with
 * its extensions) and each trailer field line, without CRLF.  Also refused:
 * a chunk size that is not 1 to 15 hex digits (so below 2^60), a chunk-ext
 * outside RFC 9112 §7.1.1, chunk data not followed by CRLF, a line not ended
 * by CRLF, a trailer line that is not a field line as in a head, a
 * trailer field that frames or routes the message (Content-Length,
 * Transfer-Encoding, Host, Connection and the other hop-by-hop fields,
 * Proxy-Authorization: RFC 9110 §6.5.1 forbids sending them as trailers,
 * and a recipient that merged one would be smuggled to), and more than 100
 * trailer lines.
 */
void http_chunked_init(struct http_chunked *c, size_t max_line);

/*
 * Scan the next len bytes of the body.  HTTP_OK: the body ends within them,
 * after its first *used bytes (the rest belong to whatever follows it).
 * HTTP_INCOMPLETE: all len bytes are body and more is to come (*used = len).
 * HTTP_BAD_REQUEST: the framing is malformed at buf[*used].  The result does
 * not depend on how the body is split across calls.  After HTTP_OK, later
 * calls return HTTP_OK with *used = 0; after HTTP_BAD_REQUEST, they return
 * HTTP_BAD_REQUEST with *used = 0.  Never reads past len; O(len).
 */
enum http_status http_chunked_scan(struct http_chunked *c, const char *buf,
                                   size_t len, size_t *used);

/* The chunk data bytes (payload without framing) scanned so far. */
uint64_t http_chunked_data_bytes(const struct http_chunked *c);

#endif
