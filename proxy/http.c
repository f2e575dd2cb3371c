/*
 * http: strict HTTP/1.1 request-head parsing.  No I/O.
 *
 * Two passes over the same bytes.  http_head_end() only delimits the head and
 * enforces the framing rules and size limits, so that it can be run on every
 * read without building anything.  http_parse_request() repeats those checks
 * (it may be handed a buffer nobody checked) and then splits the head into
 * spans, applying the grammar of RFC 9112 §3 and §5.
 */
#include <string.h>

#include "http.h"

/* Longer methods than this are not methods anyone uses through a proxy. */
#define HTTP_METHOD_MAX 32

/* RFC 9110 §5.6.2: tchar. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * RFC 3986 §2.2 and §2.3: unreserved, sub-delims and gen-delims.  '%' is
 * handled by the caller, since it must start a pct-encoded triplet.
 */
static int
is_target_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("-._~!$&'()*+,;=:/?#[]@", c) != NULL;
}

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 9110 §5.5: field-vchar is VCHAR or obs-text, with SP and HTAB between
 * them.  Every other control, DEL included, is refused rather than replaced
 * with SP: the upstream may not do the same.
 */
static int
is_value_char(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static size_t
max_fields_of(const struct http_limits *lim)
{
	return lim->max_fields < HTTP_MAX_FIELDS ? lim->max_fields
	                                         : HTTP_MAX_FIELDS;
}

enum http_status
http_head_end(const char *buf, size_t len, const struct http_limits *lim,
              size_t *head_len)
{
	size_t max_fields = max_fields_of(lim);
	size_t line_start = 0; /* offset of the current line */
	size_t nlines = 0; /* complete lines so far; 0: in the request line */
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\0')
			return HTTP_BAD_REQUEST;
		if (c == '\r') {
			/*
			 * RFC 9112 §2.2 lets a server skip empty lines before
			 * the request line; we do not, so that no two parsers
			 * disagree on where a request starts.  A CR there is
			 * either that or a bare CR: wrong either way.
			 */
			if (nlines == 0 && i == line_start)
				return HTTP_BAD_REQUEST;
			/* RFC 9112 §2.2: a bare CR is not a line end. */
			if (i + 1 < len && buf[i + 1] != '\n')
				return HTTP_BAD_REQUEST;
		} else if (c == '\n') {
			/* RFC 9112 §2.2: only CRLF ends a line, never LF. */
			if (i == 0 || buf[i - 1] != '\r')
				return HTTP_BAD_REQUEST;
			if (i - 1 == line_start) {
				/*
				 * The empty line ends the head.  It fits in
				 * max_head: the check below let byte i - 1
				 * through.
				 */
				*head_len = i + 1;
				return HTTP_OK;
			}
			nlines++;
			line_start = i + 1;
		} else {
			size_t line_len = i + 1 - line_start;

			if (nlines == 0) {
				if (line_len > lim->max_request_line)
					return HTTP_URI_TOO_LONG;
			} else {
				if (line_len > lim->max_field_line)
					return HTTP_FIELDS_TOO_LARGE;
				/* The first byte of one field too many. */
				if (line_len == 1 && nlines - 1 >= max_fields)
					return HTTP_FIELDS_TOO_LARGE;
			}
		}
		/* i + 1 bytes and no end yet: the head will be longer. */
		if (i + 1 >= lim->max_head)
			return HTTP_FIELDS_TOO_LARGE;
	}
	return HTTP_INCOMPLETE;
}

/* RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive. */
static enum http_status
parse_version(const char *v, size_t n, int *minor)
{
	size_t i = 5, digits;

	if (n < 5 || memcmp(v, "HTTP/", 5) != 0)
		return HTTP_BAD_REQUEST;
	for (digits = 0; i < n && is_digit((unsigned char)v[i]); i++)
		digits++;
	if (digits == 0 || i == n || v[i] != '.')
		return HTTP_BAD_REQUEST;
	for (i++, digits = 0; i < n && is_digit((unsigned char)v[i]); i++)
		digits++;
	if (digits == 0 || i != n)
		return HTTP_BAD_REQUEST;

	/*
	 * Well-formed enough to be a version we do not speak ("HTTP/2.0",
	 * "HTTP/1.10"): RFC 9110 §15.6.6, 505.
	 */
	if (n == 8 && v[5] == '1' && v[7] == '1')
		*minor = 1;
	else if (n == 8 && v[5] == '1' && v[7] == '0')
		*minor = 0;
	else
		return HTTP_BAD_VERSION;
	return HTTP_OK;
}

/*
 * RFC 9112 §3: request-line = method SP request-target SP HTTP-version, with
 * exactly one SP each.  The lenient whitespace of §3 ("SP, HTAB, VT, FF or
 * bare CR") is not accepted.
 */
static enum http_status
parse_request_line(const char *p, size_t n, struct http_request *req)
{
	size_t i = 0, start;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i > HTTP_METHOD_MAX || i == n || p[i] != ' ')
		return HTTP_BAD_REQUEST;
	req->method.p = p;
	req->method.len = i;

	start = ++i;
	while (i < n && p[i] != ' ') {
		unsigned char c = (unsigned char)p[i];

		/* RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG. */
		if (c == '%') {
			if (i + 2 >= n || !is_hex((unsigned char)p[i + 1]) ||
			    !is_hex((unsigned char)p[i + 2]))
				return HTTP_BAD_REQUEST;
			i += 3;
			continue;
		}
		if (!is_target_char(c))
			return HTTP_BAD_REQUEST;
		i++;
	}
	if (i == start || i == n)
		return HTTP_BAD_REQUEST;
	req->target.p = p + start;
	req->target.len = i - start;

	i++;
	return parse_version(p + i, n - i, &req->version_minor);
}

/* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS. */
static enum http_status
parse_field_line(const char *p, size_t n, struct http_field *f)
{
	size_t i = 0, end;

	/*
	 * RFC 9112 §5.2: obs-fold is refused, not unfolded.  A first field
	 * line that starts with whitespace (§2.2) is refused the same way.
	 */
	if (is_ows((unsigned char)p[0]))
		return HTTP_BAD_REQUEST;
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	/* RFC 9112 §5.1: no whitespace between field name and colon. */
	if (i == 0 || i == n || p[i] != ':')
		return HTTP_BAD_REQUEST;
	f->name.p = p;
	f->name.len = i;

	for (i++; i < n && is_ows((unsigned char)p[i]); i++)
		;
	for (end = n; end > i && is_ows((unsigned char)p[end - 1]); end--)
		;
	f->value.p = p + i;
	f->value.len = end - i;
	for (; i < end; i++)
		if (!is_value_char((unsigned char)p[i]))
			return HTTP_BAD_REQUEST;
	return HTTP_OK;
}

enum http_status
http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                   struct http_request *req)
{
	size_t max_fields = max_fields_of(lim);
	size_t head_len, pos, eol;
	enum http_status st;

	req->method.p = req->target.p = NULL;
	req->method.len = req->target.len = 0;
	req->version_minor = 0;
	req->nfields = 0;

	st = http_head_end(buf, len, lim, &head_len);
	if (st == HTTP_INCOMPLETE)
		return HTTP_BAD_REQUEST;
	if (st != HTTP_OK)
		return st;
	/* Bytes after the head are the caller's to frame, not ours. */
	if (head_len != len)
		return HTTP_BAD_REQUEST;

	/*
	 * http_head_end() has shown that every CR is followed by LF and that
	 * the head ends with an empty line, so each memchr() finds a line end
	 * and buf[pos] is never read past len.
	 */
	eol = (size_t)((const char *)memchr(buf, '\r', len) - buf);
	st = parse_request_line(buf, eol, req);
	if (st != HTTP_OK)
		return st;

	for (pos = eol + 2; buf[pos] != '\r'; pos = eol + 2) {
		if (req->nfields >= max_fields)
			return HTTP_FIELDS_TOO_LARGE;
		eol =
		    (size_t)((const char *)memchr(buf + pos, '\r', len - pos) -
		             buf);
		st = parse_field_line(buf + pos, eol - pos,
		                      &req->fields[req->nfields]);
		if (st != HTTP_OK)
			return st;
		req->nfields++;
	}
	return HTTP_OK;
}

const struct http_field *
http_field_get(const struct http_request *req, const char *name)
{
	size_t n = strlen(name);
	size_t i, j;

	for (i = 0; i < req->nfields; i++) {
		const struct http_field *f = &req->fields[i];

		if (f->name.len != n)
			continue;
		for (j = 0; j < n; j++)
			if (ascii_lower((unsigned char)f->name.p[j]) !=
			    ascii_lower((unsigned char)name[j]))
				break;
		if (j == n)
			return f;
	}
	return NULL;
}

int
http_span_eq(struct http_span s, const char *str)
{
	/* No memcmp() on a NULL span: undefined even for length 0. */
	if (s.len == 0)
		return str[0] == '\0';
	return strlen(str) == s.len && memcmp(s.p, str, s.len) == 0;
}
