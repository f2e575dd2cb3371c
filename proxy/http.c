/*
 * http: strict HTTP/1.1 message parsing and body framing.  No I/O.
 *
 * Two passes over the same bytes.  http_head_scan() only delimits the head
 * and enforces the framing rules and size limits, a byte at a time with its
 * state kept between calls, so that each read is scanned once, as it
 * arrives, without building anything.  http_parse_request() and
 * http_parse_response() repeat those checks (they may be handed a buffer
 * nobody checked) and then split the head into spans, applying the grammar of
 * RFC 9112 §3, §4 and §5.  Body framing (§6) is decided from the parsed
 * fields; a chunked body (§7.1) is checked by a byte-at-a-time scanner that
 * keeps its whole state in struct http_chunked.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

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

/*
 * One byte of a head, at offset s->pos.  Every answer is decided by the byte
 * that shows it, never by looking ahead or back, so that the split of the
 * bytes across calls cannot change it.
 */
static enum http_status
head_step(struct http_head_scan *s, unsigned char c,
          const struct http_limits *lim, size_t max_fields)
{
	size_t at = s->pos;

	if (c == '\0')
		return HTTP_BAD_REQUEST;
	if (s->after_cr) {
		/* RFC 9112 §2.2: a bare CR is not a line end. */
		s->after_cr = 0;
		if (c != '\n')
			return HTTP_BAD_REQUEST;
		/* The empty line ends the head.  It fits in max_head: the
		 * check below let its CR through. */
		if (at - 1 == s->line_start)
			return HTTP_OK;
		s->nlines++;
		s->line_start = at + 1;
	} else if (c == '\r') {
		/*
		 * RFC 9112 §2.2 lets a server skip empty lines before the
		 * request line; we do not, so that no two parsers disagree on
		 * where a request starts.
		 */
		if (s->nlines == 0 && at == s->line_start)
			return HTTP_BAD_REQUEST;
		s->after_cr = 1;
	} else if (c == '\n') {
		/* RFC 9112 §2.2: only CRLF ends a line, never LF. */
		return HTTP_BAD_REQUEST;
	} else {
		size_t line_len = at + 1 - s->line_start;

		if (s->nlines == 0) {
			if (line_len > lim->max_request_line)
				return HTTP_URI_TOO_LONG;
		} else {
			if (line_len > lim->max_field_line)
				return HTTP_FIELDS_TOO_LARGE;
			/* The first byte of one field too many. */
			if (line_len == 1 && s->nlines - 1 >= max_fields)
				return HTTP_FIELDS_TOO_LARGE;
		}
	}
	/* at + 1 bytes and no end yet: the head will be longer. */
	if (at + 1 >= lim->max_head)
		return HTTP_FIELDS_TOO_LARGE;
	return HTTP_INCOMPLETE;
}

void
http_head_scan_init(struct http_head_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->status = HTTP_INCOMPLETE;
}

enum http_status
http_head_scan(struct http_head_scan *s, const char *buf, size_t len,
               const struct http_limits *lim, size_t *used)
{
	size_t max_fields = max_fields_of(lim);
	size_t i;

	*used = 0;
	if (s->status != HTTP_INCOMPLETE)
		return s->status;
	for (i = 0; i < len; i++) {
		enum http_status st =
		    head_step(s, (unsigned char)buf[i], lim, max_fields);

		if (st != HTTP_INCOMPLETE) {
			s->status = st;
			/* A head ends after its last byte; an error is at
			 * the byte that shows it. */
			*used = st == HTTP_OK ? i + 1 : i;
			s->pos += *used;
			return st;
		}
		s->pos++;
	}
	*used = len;
	return HTTP_INCOMPLETE;
}

enum http_status
http_head_end(const char *buf, size_t len, const struct http_limits *lim,
              size_t *head_len)
{
	struct http_head_scan s;
	size_t used;
	enum http_status st;

	http_head_scan_init(&s);
	st = http_head_scan(&s, buf, len, lim, &used);
	if (st == HTTP_OK)
		*head_len = used;
	return st;
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

/*
 * RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, checked one
 * byte at a time so that head fields and chunked trailer fields follow the
 * same rule.  A line is valid when its last byte leaves FIELD_VALUE.
 */
enum field_state {
	FIELD_START,
	FIELD_NAME,
	FIELD_VALUE,
	FIELD_INVALID,
};

static enum field_state
field_step(enum field_state st, unsigned char c)
{
	switch (st) {
	case FIELD_START:
		/*
		 * RFC 9112 §5.2: obs-fold is refused, not unfolded.  A first
		 * field line that starts with whitespace (§2.2) is refused the
		 * same way.  Neither SP nor HTAB is a tchar.
		 */
		return is_tchar(c) ? FIELD_NAME : FIELD_INVALID;
	case FIELD_NAME:
		/* RFC 9112 §5.1: no whitespace between field name and colon. */
		if (c == ':')
			return FIELD_VALUE;
		return is_tchar(c) ? FIELD_NAME : FIELD_INVALID;
	case FIELD_VALUE:
		/* OWS is made of value chars: it needs no state of its own. */
		return is_value_char(c) ? FIELD_VALUE : FIELD_INVALID;
	case FIELD_INVALID:
		break;
	}
	return FIELD_INVALID;
}

static enum http_status
parse_field_line(const char *p, size_t n, struct http_field *f)
{
	enum field_state st = FIELD_START;
	size_t i, end;

	for (i = 0; i < n && st != FIELD_INVALID; i++)
		st = field_step(st, (unsigned char)p[i]);
	if (st != FIELD_VALUE)
		return HTTP_BAD_REQUEST;

	for (i = 0; p[i] != ':'; i++)
		;
	f->name.p = p;
	f->name.len = i;
	for (i++; i < n && is_ows((unsigned char)p[i]); i++)
		;
	for (end = n; end > i && is_ows((unsigned char)p[end - 1]); end--)
		;
	f->value.p = p + i;
	f->value.len = end - i;
	return HTTP_OK;
}

int
http_field_valid(const char *name, const char *value)
{
	enum field_state st = FIELD_START;
	size_t n = strlen(value);

	for (const char *p = name; *p && st != FIELD_INVALID; p++)
		st = field_step(st, (unsigned char)*p);
	if (st != FIELD_NAME)
		return 0;
	st = field_step(st, ':');
	for (size_t i = 0; i < n && st != FIELD_INVALID; i++)
		st = field_step(st, (unsigned char)value[i]);
	return st == FIELD_VALUE &&
	       (n == 0 || (!is_ows((unsigned char)value[0]) &&
	                   !is_ows((unsigned char)value[n - 1])));
}

/*
 * Check that buf is exactly one head by the rules of http_head_end(); then
 * every CR in it is followed by LF and it ends with an empty line.
 */
static enum http_status
check_head(const char *buf, size_t len, const struct http_limits *lim)
{
	enum http_status st;
	size_t head_len;

	st = http_head_end(buf, len, lim, &head_len);
	if (st == HTTP_INCOMPLETE)
		return HTTP_BAD_REQUEST;
	if (st != HTTP_OK)
		return st;
	/* Bytes after the head are the caller's to frame, not ours. */
	if (head_len != len)
		return HTTP_BAD_REQUEST;
	return HTTP_OK;
}

/*
 * Split the field lines of a head that check_head() has accepted, from
 * offset pos (the start of the first field line, or of the empty line) on.
 * Each memchr() finds a line end, so buf[pos] is never read past len.
 */
static enum http_status
parse_fields(const char *buf, size_t len, size_t pos, size_t max_fields,
             struct http_field *fields, size_t *nfields)
{
	enum http_status st;
	size_t eol;

	for (*nfields = 0; buf[pos] != '\r'; pos = eol + 2) {
		if (*nfields >= max_fields)
			return HTTP_FIELDS_TOO_LARGE;
		eol =
		    (size_t)((const char *)memchr(buf + pos, '\r', len - pos) -
		             buf);
		st = parse_field_line(buf + pos, eol - pos, &fields[*nfields]);
		if (st != HTTP_OK)
			return st;
		(*nfields)++;
	}
	return HTTP_OK;
}

enum http_status
http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                   struct http_request *req)
{
	size_t eol;
	enum http_status st;

	req->method.p = req->target.p = NULL;
	req->method.len = req->target.len = 0;
	req->version_minor = 0;
	req->nfields = 0;

	st = check_head(buf, len, lim);
	if (st != HTTP_OK)
		return st;
	eol = (size_t)((const char *)memchr(buf, '\r', len) - buf);
	st = parse_request_line(buf, eol, req);
	if (st != HTTP_OK)
		return st;
	return parse_fields(buf, len, eol + 2, max_fields_of(lim), req->fields,
	                    &req->nfields);
}

const struct http_field *
http_fields_get(const struct http_field *fields, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (http_span_ieq(fields[i].name, name))
			return &fields[i];
	return NULL;
}

const struct http_field *
http_field_get(const struct http_request *req, const char *name)
{
	return http_fields_get(req->fields, req->nfields, name);
}

int
http_span_eq(struct http_span s, const char *str)
{
	/* No memcmp() on a NULL span: undefined even for length 0. */
	if (s.len == 0)
		return str[0] == '\0';
	return strlen(str) == s.len && memcmp(s.p, str, s.len) == 0;
}

enum http_target
http_absolute_target(struct http_span t, struct host *h, uint16_t *port,
                     struct http_span *rest)
{
	const char *auth, *end, *stop;

	if (t.len < 7 || strncasecmp(t.p, "http://", 7) != 0)
		return HTTP_TARGET_NOT_HTTP;
	/* A fragment is never part of a request-target (RFC 9112 §3.2). */
	if (memchr(t.p, '#', t.len))
		return HTTP_TARGET_NOT_HTTP;
	auth = t.p + 7;
	end = t.p + t.len;
	for (stop = auth; stop < end && *stop != '/' && *stop != '?'; stop++)
		;
	if (host_parse_authority(auth, (size_t)(stop - auth), 80, h, port) < 0)
		return HTTP_TARGET_BAD_HOST;
	*rest = (struct http_span){stop, (size_t)(end - stop)};
	return HTTP_TARGET_OK;
}

int
http_via_names(const struct http_request *req, const char *by)
{
	for (size_t i = 0; i < req->nfields; i++) {
		struct http_span rest = req->fields[i].value, item;

		if (!http_span_ieq(req->fields[i].name, "via"))
			continue;
		/* Via = received-protocol RWS received-by [ RWS comment ] */
		while (http_list_next(&rest, &item)) {
			const char *sp = memchr(item.p, ' ', item.len);
			struct http_span rby;

			if (!sp)
				continue;
			rby.p = sp + 1;
			rby.len = item.len - (size_t)(rby.p - item.p);
			for (size_t j = 0; j < rby.len; j++)
				if (rby.p[j] == ' ') {
					rby.len = j;
					break;
				}
			if (http_span_ieq(rby, by))
				return 1;
		}
	}
	return 0;
}

struct http_span
http_target_host(struct http_span t)
{
	const char *p = t.p, *end = t.p + t.len, *at;
	size_t n;

	/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
	 */
	for (n = 0; n < t.len && (isalnum((unsigned char)p[n]) || p[n] == '+' ||
	                          p[n] == '-' || p[n] == '.');
	     n++)
		;
	if (n > 0 && isalpha((unsigned char)p[0]) && t.len - n >= 3 &&
	    memcmp(p + n, "://", 3) == 0)
		p += n + 3;
	/* The authority ends at the path, the query or the fragment. */
	for (n = 0; p + n < end && p[n] != '/' && p[n] != '?' && p[n] != '#';
	     n++)
		;
	/* A '@' past that end means the userinfo itself held a '/', '?' or
	 * '#': where the host starts cannot be told, so none is shown. */
	if (p + n < end && memchr(p + n, '@', (size_t)(end - p) - n))
		return (struct http_span){t.p, 0};
	end = p + n;
	for (at = end; at > p && at[-1] != '@'; at--)
		;
	if (at > p)
		p = at;
	/* A port is not part of the host. */
	for (at = end; at > p && isdigit((unsigned char)at[-1]); at--)
		;
	if (at > p && at < end && at[-1] == ':')
		end = at - 1;
	return (struct http_span){p, (size_t)(end - p)};
}

int
http_span_ieq(struct http_span s, const char *str)
{
	size_t i;

	if (strlen(str) != s.len)
		return 0;
	for (i = 0; i < s.len; i++)
		if (ascii_lower((unsigned char)s.p[i]) !=
		    ascii_lower((unsigned char)str[i]))
			return 0;
	return 1;
}

/* --- responses ----------------------------------------------------------- */

/*
 * RFC 9112 §4: status-line = HTTP-version SP status-code SP [reason-phrase].
 * The second SP is optional here: servers that send no reason phrase often
 * send no SP either, and nothing is framed by the reason phrase.
 */
static enum http_status
parse_status_line(const char *p, size_t n, struct http_response *resp)
{
	size_t i, j;
	enum http_status st;

	for (i = 0; i < n && p[i] != ' '; i++)
		;
	st = parse_version(p, i, &resp->version_minor);
	if (st != HTTP_OK)
		return st;
	if (i == n)
		return HTTP_BAD_REQUEST;
	i++;

	/* RFC 9110 §15: a status code is three digits, 100..599. */
	if (n - i < 3 || !is_digit((unsigned char)p[i]) ||
	    !is_digit((unsigned char)p[i + 1]) ||
	    !is_digit((unsigned char)p[i + 2]))
		return HTTP_BAD_REQUEST;
	resp->status =
	    (p[i] - '0') * 100 + (p[i + 1] - '0') * 10 + p[i + 2] - '0';
	if (resp->status < 100 || resp->status > 599)
		return HTTP_BAD_REQUEST;
	i += 3;

	if (i < n) {
		if (p[i] != ' ')
			return HTTP_BAD_REQUEST;
		i++;
	}
	/* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) */
	for (j = i; j < n; j++)
		if (!is_value_char((unsigned char)p[j]))
			return HTTP_BAD_REQUEST;
	resp->reason.p = p + i;
	resp->reason.len = n - i;
	return HTTP_OK;
}

enum http_status
http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                    struct http_response *resp)
{
	size_t eol;
	enum http_status st;

	resp->version_minor = 0;
	resp->status = 0;
	resp->reason.p = NULL;
	resp->reason.len = 0;
	resp->nfields = 0;

	st = check_head(buf, len, lim);
	if (st != HTTP_OK)
		return st;
	eol = (size_t)((const char *)memchr(buf, '\r', len) - buf);
	st = parse_status_line(buf, eol, resp);
	if (st != HTTP_OK)
		return st;
	return parse_fields(buf, len, eol + 2, max_fields_of(lim), resp->fields,
	                    &resp->nfields);
}

/* --- lists --------------------------------------------------------------- */

int
http_list_next(struct http_span *rest, struct http_span *item)
{
	const char *p = rest->p;
	size_t n = rest->len, i = 0, start, end;
	int quoted = 0;

	while (i < n && (p[i] == ',' || is_ows((unsigned char)p[i])))
		i++;
	if (i == n) {
		/* No arithmetic on p: it may be NULL when n is 0. */
		if (n > 0)
			rest->p = p + n;
		rest->len = 0;
		return 0;
	}

	/*
	 * RFC 9110 §5.6.4: a comma in a quoted-string, escaped or not, is
	 * part of the element.  An unterminated quoted-string runs to the end.
	 */
	for (start = i; i < n; i++) {
		if (quoted) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"')
				quoted = 0;
		} else if (p[i] == '"') {
			quoted = 1;
		} else if (p[i] == ',') {
			break;
		}
	}
	for (end = i; end > start && is_ows((unsigned char)p[end - 1]); end--)
		;
	item->p = p + start;
	item->len = end - start;
	if (i < n)
		i++;
	rest->p = p + i;
	rest->len = n - i;
	return 1;
}

int
http_fields_has_token(const struct http_field *fields, size_t n,
                      const char *name, const char *token)
{
	struct http_span rest, item;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!http_span_ieq(fields[i].name, name))
			continue;
		rest = fields[i].value;
		while (http_list_next(&rest, &item))
			if (http_span_ieq(item, token))
				return 1;
	}
	return 0;
}

/* --- body framing -------------------------------------------------------- */

/* 2^63 - 1 has 19 digits; the framing lengths are kept within int64_t. */
#define HTTP_LENGTH_MAX    UINT64_C(9223372036854775807)
#define HTTP_LENGTH_DIGITS 19

/* One Content-Length element: 1*DIGIT, no sign, no inner space. */
static int
parse_length(struct http_span s, uint64_t *value)
{
	uint64_t v = 0;
	size_t i;

	if (s.len == 0 || s.len > HTTP_LENGTH_DIGITS)
		return -1;
	for (i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';

		if (!is_digit((unsigned char)s.p[i]))
			return -1;
		if (v > (HTTP_LENGTH_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*value = v;
	return 0;
}

/*
 * RFC 9110 §8.6: Content-Length = 1*DIGIT.  A list of identical values (as
 * a field repeated by some intermediary and then combined) is accepted as
 * that one value; differing values, a field with no value and an element
 * that is not digits are refused.  Values are compared as numbers.
 */
static enum http_status
content_length(const struct http_field *fields, size_t n, int *present,
               uint64_t *length)
{
	struct http_span rest, item;
	uint64_t v;
	size_t i;
	int any;

	*present = 0;
	*length = 0;
	for (i = 0; i < n; i++) {
		if (!http_span_ieq(fields[i].name, "Content-Length"))
			continue;
		rest = fields[i].value;
		for (any = 0; http_list_next(&rest, &item); any = 1) {
			if (parse_length(item, &v) != 0)
				return HTTP_BAD_REQUEST;
			if (*present && v != *length)
				return HTTP_BAD_REQUEST;
			*present = 1;
			*length = v;
		}
		if (!any)
			return HTTP_BAD_REQUEST;
	}
	return HTTP_OK;
}

/* Is the transfer-coding's name (RFC 9112 §7: before any ';') "chunked"? */
static int
is_chunked_coding(struct http_span coding)
{
	struct http_span name = {coding.p, 0};

	while (name.len < coding.len &&
	       is_tchar((unsigned char)name.p[name.len]))
		name.len++;
	return http_span_ieq(name, "chunked");
}

/*
 * Walk the codings of every Transfer-Encoding field in order, as if they had
 * been sent as one list (RFC 9110 §5.3).  Sets *count to the number of
 * codings, *nchunked to the number named chunked, and *last to the last one.
 */
static void
transfer_codings(const struct http_field *fields, size_t n, size_t *count,
                 size_t *nchunked, struct http_span *last)
{
	struct http_span rest, item;
	size_t i;

	*count = *nchunked = 0;
	last->p = NULL;
	last->len = 0;
	for (i = 0; i < n; i++) {
		if (!http_span_ieq(fields[i].name, "Transfer-Encoding"))
			continue;
		rest = fields[i].value;
		while (http_list_next(&rest, &item)) {
			(*count)++;
			if (is_chunked_coding(item))
				(*nchunked)++;
			*last = item;
		}
	}
}

enum http_status
http_request_body(const struct http_request *req, struct http_body *body)
{
	const struct http_field *f = req->fields;
	size_t n = req->nfields, count, nchunked;
	struct http_span last;
	enum http_status st;
	int present;

	body->kind = HTTP_BODY_NONE;
	body->length = 0;

	if (http_fields_get(f, n, "Transfer-Encoding") != NULL) {
		/*
		 * RFC 9112 §6.3 item 3: a request with both is likely an
		 * attempt to smuggle; a proxy may refuse it, and we do.
		 */
		if (http_fields_get(f, n, "Content-Length") != NULL)
			return HTTP_BAD_REQUEST;
		/* RFC 9112 §6.1: in HTTP/1.0, the framing is faulty. */
		if (req->version_minor == 0)
			return HTTP_BAD_REQUEST;
		/*
		 * RFC 9112 §6.3 item 4 requires chunked to be the final
		 * coding.  We go further and accept only chunked on its own:
		 * we do not decode other codings, and an upstream that does
		 * not know one answers 501 after reading who knows how much.
		 * Parameters ("chunked;x=1") and a repeat are refused too.
		 */
		transfer_codings(f, n, &count, &nchunked, &last);
		if (count != 1 || !http_span_ieq(last, "chunked"))
			return HTTP_BAD_REQUEST;
		body->kind = HTTP_BODY_CHUNKED;
		return HTTP_OK;
	}

	/* RFC 9112 §6.3 items 5 to 7. */
	st = content_length(f, n, &present, &body->length);
	if (st != HTTP_OK)
		return st;
	if (present)
		body->kind = HTTP_BODY_LENGTH;
	return HTTP_OK;
}

enum http_status
http_response_body(const struct http_response *resp, const char *request_method,
                   struct http_body *body)
{
	const struct http_field *f = resp->fields;
	size_t n = resp->nfields, count, nchunked;
	struct http_span last;
	enum http_status st;
	int present;

	body->kind = HTTP_BODY_NONE;
	body->length = 0;

	/*
	 * RFC 9112 §6.3 item 1, whatever the fields say.  Item 2 (a 2xx to
	 * CONNECT) does not arise: CONNECT is tunnelled, not forwarded.
	 */
	if (strcmp(request_method, "HEAD") == 0 || resp->status < 200 ||
	    resp->status == 204 || resp->status == 304)
		return HTTP_OK;

	/*
	 * RFC 9112 §6.3 item 3: Transfer-Encoding overrides Content-Length,
	 * which the caller must then not forward.
	 */
	if (http_fields_get(f, n, "Transfer-Encoding") != NULL) {
		/* RFC 9112 §6.1: in HTTP/1.0, the framing is faulty. */
		if (resp->version_minor == 0)
			return HTTP_BAD_REQUEST;
		/*
		 * RFC 9112 §6.3 item 4: chunked last means chunked framing;
		 * otherwise the body runs until close.  Chunked twice (which
		 * §6.1 forbids a sender) is not trusted as framing either.
		 */
		transfer_codings(f, n, &count, &nchunked, &last);
		if (nchunked == 1 && http_span_ieq(last, "chunked"))
			body->kind = HTTP_BODY_CHUNKED;
		else
			body->kind = HTTP_BODY_CLOSE;
		return HTTP_OK;
	}

	/*
	 * RFC 9112 §6.3 item 5: an invalid Content-Length in a response is
	 * an unrecoverable error; a proxy answers 502.  Items 6 and 7.
	 */
	st = content_length(f, n, &present, &body->length);
	if (st != HTTP_OK)
		return st;
	body->kind = present ? HTTP_BODY_LENGTH : HTTP_BODY_CLOSE;
	return HTTP_OK;
}

/* --- chunked bodies ------------------------------------------------------ */

/* 15 hex digits: chunk sizes stay below 2^60. */
#define CHUNK_SIZE_DIGITS 15
/* Trailer field lines allowed after the last chunk. */
/* Fields that must never arrive as trailers (RFC 9110 §6.5.1): framing,
 * routing and the hop-by-hop fields. */
static int
trailer_forbidden(const struct http_chunked *c)
{
	static const char *const names[] = {"content-length",
	                                    "transfer-encoding",
	                                    "host",
	                                    "connection",
	                                    "keep-alive",
	                                    "te",
	                                    "trailer",
	                                    "upgrade",
	                                    "proxy-connection",
	                                    "proxy-authorization",
	                                    "proxy-authenticate",
	                                    NULL};

	if (c->name_len > sizeof(c->name))
		return 0;
	for (const char *const *n = names; *n; n++)
		if (strlen(*n) == c->name_len &&
		    memcmp(*n, c->name, c->name_len) == 0)
			return 1;
	return 0;
}

#define CHUNK_MAX_TRAILERS 100

/*
 * RFC 9112 §7.1:
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val      = token / quoted-string
 * Whitespace is allowed only where BWS is: before ';' and around '='.
 */
enum chunked_state {
	/* In the chunk-size line; all before CHUNK_SIZE_LF. */
	CHUNK_SIZE,       /* hex digits */
	CHUNK_EXT_SEMI,   /* BWS, then ';' */
	CHUNK_EXT_START,  /* BWS after ';', then ext-name */
	CHUNK_EXT_NAME,   /* in ext-name */
	CHUNK_EXT_EQ,     /* BWS after ext-name, then '=' or ';' */
	CHUNK_EXT_VAL,    /* BWS after '=', then ext-val */
	CHUNK_EXT_TOKEN,  /* in a token ext-val */
	CHUNK_EXT_QUOTED, /* in a quoted-string ext-val */
	CHUNK_EXT_ESCAPE, /* after '\' in a quoted-string */
	CHUNK_EXT_QEND,   /* after a quoted-string ext-val */
	CHUNK_SIZE_LF,    /* CR of the chunk-size line seen */
	CHUNK_DATA,       /* in chunk data; size bytes left */
	CHUNK_DATA_CR,    /* chunk data done */
	CHUNK_DATA_LF,    /* CR after the chunk data seen */
	CHUNK_TRAILER,    /* in or at the start of a trailer line */
	CHUNK_TRAILER_LF, /* CR of a trailer line seen */
	CHUNK_END_LF,     /* CR of the final empty line seen */
	CHUNK_DONE,
	CHUNK_INVALID,
};

static int
is_line_state(enum chunked_state st)
{
	return st < CHUNK_SIZE_LF || st == CHUNK_TRAILER;
}

static unsigned
hex_value(unsigned char c)
{
	if (is_digit(c))
		return (unsigned)(c - '0');
	return (unsigned)(ascii_lower(c) - 'a') + 10;
}

/* RFC 9110 §5.6.4: qdtext, and what may follow '\' in a quoted-pair. */
static int
is_qdtext(unsigned char c)
{
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
	       (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static int
is_quoted_pair_char(unsigned char c)
{
	return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

/* After a chunk-size, an ext-name or an ext-val: what may end it. */
static enum chunked_state
chunk_ext_next(unsigned char ch, enum chunked_state on_ows)
{
	if (is_ows(ch))
		return on_ows;
	if (ch == ';')
		return CHUNK_EXT_START;
	if (ch == '\r')
		return CHUNK_SIZE_LF;
	return CHUNK_INVALID;
}

/* One byte outside chunk data. */
static enum chunked_state
chunked_step(struct http_chunked *c, unsigned char ch)
{
	enum chunked_state st = (enum chunked_state)c->state;

	/* CRLF is not part of a line's length. */
	if (is_line_state(st) && ch != '\r' && ++c->line_len > c->max_line)
		return CHUNK_INVALID;

	switch (st) {
	case CHUNK_SIZE:
		if (is_hex(ch)) {
			if (++c->ndigits > CHUNK_SIZE_DIGITS)
				return CHUNK_INVALID;
			c->size = c->size * 16 + hex_value(ch);
			return CHUNK_SIZE;
		}
		if (c->ndigits == 0)
			return CHUNK_INVALID;
		return chunk_ext_next(ch, CHUNK_EXT_SEMI);
	case CHUNK_EXT_SEMI:
		if (is_ows(ch))
			return CHUNK_EXT_SEMI;
		return ch == ';' ? CHUNK_EXT_START : CHUNK_INVALID;
	case CHUNK_EXT_START:
		if (is_ows(ch))
			return CHUNK_EXT_START;
		return is_tchar(ch) ? CHUNK_EXT_NAME : CHUNK_INVALID;
	case CHUNK_EXT_NAME:
		if (is_tchar(ch))
			return CHUNK_EXT_NAME;
		if (ch == '=')
			return CHUNK_EXT_VAL;
		return chunk_ext_next(ch, CHUNK_EXT_EQ);
	case CHUNK_EXT_EQ:
		if (is_ows(ch))
			return CHUNK_EXT_EQ;
		if (ch == '=')
			return CHUNK_EXT_VAL;
		return ch == ';' ? CHUNK_EXT_START : CHUNK_INVALID;
	case CHUNK_EXT_VAL:
		if (is_ows(ch))
			return CHUNK_EXT_VAL;
		if (ch == '"')
			return CHUNK_EXT_QUOTED;
		return is_tchar(ch) ? CHUNK_EXT_TOKEN : CHUNK_INVALID;
	case CHUNK_EXT_TOKEN:
		if (is_tchar(ch))
			return CHUNK_EXT_TOKEN;
		return chunk_ext_next(ch, CHUNK_EXT_SEMI);
	case CHUNK_EXT_QUOTED:
		if (ch == '"')
			return CHUNK_EXT_QEND;
		if (ch == '\\')
			return CHUNK_EXT_ESCAPE;
		return is_qdtext(ch) ? CHUNK_EXT_QUOTED : CHUNK_INVALID;
	case CHUNK_EXT_ESCAPE:
		return is_quoted_pair_char(ch) ? CHUNK_EXT_QUOTED
		                               : CHUNK_INVALID;
	case CHUNK_EXT_QEND:
		return chunk_ext_next(ch, CHUNK_EXT_SEMI);
	case CHUNK_SIZE_LF:
		if (ch != '\n')
			return CHUNK_INVALID;
		c->line_len = 0;
		if (c->size == 0) {
			c->field = FIELD_START;
			return CHUNK_TRAILER;
		}
		return CHUNK_DATA;
	case CHUNK_DATA_CR:
		return ch == '\r' ? CHUNK_DATA_LF : CHUNK_INVALID;
	case CHUNK_DATA_LF:
		if (ch != '\n')
			return CHUNK_INVALID;
		c->size = 0;
		c->ndigits = 0;
		return CHUNK_SIZE;
	case CHUNK_TRAILER:
		if (c->field == FIELD_START)
			c->name_len = 0;
		if (c->field == FIELD_NAME && ch == ':' && trailer_forbidden(c))
			return CHUNK_INVALID;
		if (ch == '\r') {
			/* An empty line ends the trailer section and the body.
			 */
			if (c->field == FIELD_START)
				return CHUNK_END_LF;
			return c->field == FIELD_VALUE ? CHUNK_TRAILER_LF
			                               : CHUNK_INVALID;
		}
		if (c->field == FIELD_START &&
		    ++c->ntrailers > CHUNK_MAX_TRAILERS)
			return CHUNK_INVALID;
		/* RFC 9112 §7.1.2: trailer fields are field lines. */
		c->field = field_step((enum field_state)c->field, ch);
		if (c->field == FIELD_NAME && c->name_len++ < sizeof(c->name))
			c->name[c->name_len - 1] = (char)tolower(ch);
		return c->field == FIELD_INVALID ? CHUNK_INVALID
		                                 : CHUNK_TRAILER;
	case CHUNK_TRAILER_LF:
		if (ch != '\n')
			return CHUNK_INVALID;
		c->line_len = 0;
		c->field = FIELD_START;
		return CHUNK_TRAILER;
	case CHUNK_END_LF:
		return ch == '\n' ? CHUNK_DONE : CHUNK_INVALID;
	case CHUNK_DATA:
	case CHUNK_DONE:
	case CHUNK_INVALID:
		break;
	}
	return CHUNK_INVALID;
}

void
http_chunked_init(struct http_chunked *c, size_t max_line)
{
	memset(c, 0, sizeof(*c));
	c->state = CHUNK_SIZE;
	c->field = FIELD_START;
	c->max_line = max_line;
}

enum http_status
http_chunked_scan(struct http_chunked *c, const char *buf, size_t len,
                  size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (c->state == CHUNK_DONE)
		return HTTP_OK;
	if (c->state == CHUNK_INVALID)
		return HTTP_BAD_REQUEST;

	while (i < len) {
		if (c->state == CHUNK_DATA) {
			/* Chunk data is skipped whole, not looked at. */
			size_t take = len - i;

			if (take > c->size)
				take = (size_t)c->size;
			i += take;
			c->size -= take;
			c->data += take;
			if (c->size == 0)
				c->state = CHUNK_DATA_CR;
			continue;
		}
		c->state = chunked_step(c, (unsigned char)buf[i]);
		if (c->state == CHUNK_INVALID) {
			*used = i;
			return HTTP_BAD_REQUEST;
		}
		i++;
		if (c->state == CHUNK_DONE) {
			*used = i;
			return HTTP_OK;
		}
	}
	*used = len;
	return HTTP_INCOMPLETE;
}

uint64_t
http_chunked_data_bytes(const struct http_chunked *c)
{
	return c->data;
}
