/*
 * fuzz_http: checks shared by the request and response drivers.
 */
#ifndef EGRESSD_FUZZ_HTTP_H
#define EGRESSD_FUZZ_HTTP_H

#include "fuzz.h"
#include "http.h"

/* egressd's defaults (config.c), and limits small enough that every one of
 * them is within the fuzzer's reach. */
static const struct http_limits fuzz_limits[] = {
    {8192, 32768, 64, 32768},
    {64, 48, 4, 256},
};

static int
fuzz_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Walk a field value as a list: every element lies inside the value, has
 * no surrounding OWS, and every step makes progress. */
static void
fuzz_check_list(struct http_span value)
{
	struct http_span rest = value, item;

	for (;;) {
		size_t before = rest.len;
		int more = http_list_next(&rest, &item);

		FUZZ_CHECK(rest.len <= before);
		FUZZ_CHECK(fuzz_within(rest.p, rest.len, value.p, value.len));
		if (!more) {
			FUZZ_CHECK(rest.len == 0);
			break;
		}
		FUZZ_CHECK(rest.len < before);
		FUZZ_CHECK(item.len > 0);
		FUZZ_CHECK(fuzz_within(item.p, item.len, value.p, value.len));
		FUZZ_CHECK(!fuzz_is_ows(item.p[0]) &&
		           !fuzz_is_ows(item.p[item.len - 1]));
	}
}

/* The fields of a parsed head, which lies in [buf, buf + len). */
static void
fuzz_check_fields(const struct http_field *fields, size_t n, const char *buf,
                  size_t len, const struct http_limits *lim)
{
	FUZZ_CHECK(n <= lim->max_fields && n <= HTTP_MAX_FIELDS);
	for (size_t i = 0; i < n; i++) {
		const struct http_field *f = &fields[i];

		FUZZ_CHECK(f->name.len > 0);
		FUZZ_CHECK(fuzz_within(f->name.p, f->name.len, buf, len));
		FUZZ_CHECK(memchr(f->name.p, ':', f->name.len) == NULL);
		FUZZ_CHECK(fuzz_within(f->value.p, f->value.len, buf, len));
		for (size_t j = 0; j < f->value.len; j++)
			FUZZ_CHECK(f->value.p[j] != '\r' &&
			           f->value.p[j] != '\n' && f->value.p[j] != 0);
		if (f->value.len > 0)
			FUZZ_CHECK(!fuzz_is_ows(f->value.p[0]) &&
			           !fuzz_is_ows(f->value.p[f->value.len - 1]));
		/* Looking the name up finds this field or an earlier one of
		 * the same name. */
		char *name = fuzz_strdup(f->name.p, f->name.len);
		const struct http_field *g = http_fields_get(fields, n, name);
		FUZZ_CHECK(g != NULL && g <= f && http_span_ieq(g->name, name));
		free(name);
		fuzz_check_list(f->value);
	}
	(void)http_fields_has_token(fields, n, "Connection", "close");
	(void)http_fields_has_token(fields, n, "Transfer-Encoding", "chunked");
}

/*
 * Is the prefix of length k worth a try?  All of them for short inputs;
 * otherwise those that end in a CR (where the only look-ahead, for the LF
 * after it, happens), those around the end of the head, and a few more
 * spread evenly.
 */
static int
fuzz_prefix_wanted(const uint8_t *data, size_t size, size_t k, size_t end)
{
	if (size <= 64 || k == 0 || k == size)
		return 1;
	if (data[k - 1] == '\r')
		return k < 2048;
	if (end && k + 2 >= end && k <= end + 2)
		return 1;
	return k % (size / 16 + 1) == 0;
}

/*
 * http_head_end on prefixes of the input: a prefix never ends a head the
 * whole does not end the same way, and never shows an error other than the
 * whole's.  Each prefix sits at the end of the heap block, so that
 * AddressSanitizer sees a read past its length.
 */
static void
fuzz_check_prefixes(const uint8_t *data, size_t size,
                    const struct http_limits *lim, enum http_status whole,
                    size_t whole_len)
{
	char *buf = fuzz_dup(data, size);

	for (size_t k = 0; k <= size; k++) {
		char *p = buf + size - k;
		size_t head_len = 0;
		enum http_status st;

		if (!fuzz_prefix_wanted(data, size, k, whole_len))
			continue;
		memcpy(p, data, k);
		st = http_head_end(p, k, lim, &head_len);
		if (st == HTTP_OK) {
			FUZZ_CHECK(whole == HTTP_OK && head_len == whole_len);
		} else if (st != HTTP_INCOMPLETE) {
			FUZZ_CHECK(st == whole);
		} else if (whole == HTTP_OK) {
			FUZZ_CHECK(k < whole_len);
		}
	}
	free(buf);
}

/*
 * Scan the input with http_head_scan in up to three pieces, cut at a and b
 * (a <= b <= size), each a heap block of exactly its size that is filled
 * with NULs once its call returns: a scanner that went back to an earlier
 * piece would see the NULs.  Returns the status; *at is the head's length,
 * the offset of the byte that showed the error, or size.
 */
static enum http_status
fuzz_scan_pieces(const uint8_t *data, size_t size,
                 const struct http_limits *lim, size_t a, size_t b, size_t *at)
{
	size_t cuts[3] = {a, b, size}, start = 0, used;
	char *pieces[3] = {NULL, NULL, NULL};
	struct http_head_scan s;
	enum http_status st = HTTP_INCOMPLETE;

	http_head_scan_init(&s);
	*at = size;
	for (size_t i = 0; i < 3 && st == HTTP_INCOMPLETE; i++) {
		size_t len = cuts[i] - start;

		pieces[i] = fuzz_dup(data + start, len);
		st = http_head_scan(&s, pieces[i], len, lim, &used);
		FUZZ_CHECK(used <= len);
		if (st == HTTP_INCOMPLETE)
			FUZZ_CHECK(used == len);
		else
			*at = start + used;
		memset(pieces[i], 0, len);
		start = cuts[i];
	}
	for (size_t i = 0; i < 3; i++)
		free(pieces[i]);
	return st;
}

/*
 * The resumable scanner against the whole input: cut in three at two points
 * taken from the input's last four bytes, and (for short inputs) byte by
 * byte, it gives the status of http_head_end on the whole, decided at the
 * same byte.
 */
static void
fuzz_check_splits(const uint8_t *data, size_t size,
                  const struct http_limits *lim, enum http_status whole,
                  size_t whole_len)
{
	size_t a = 0, b = 0, at, whole_at, used;
	enum http_status st;

	st = fuzz_scan_pieces(data, size, lim, 0, 0, &whole_at);
	FUZZ_CHECK(st == whole);
	if (st == HTTP_OK)
		FUZZ_CHECK(whole_at == whole_len);
	if (size >= 4) {
		a = ((size_t)data[size - 1] << 8 | data[size - 2]) % (size + 1);
		b = ((size_t)data[size - 3] << 8 | data[size - 4]) % (size + 1);
	}
	if (a > b) {
		size_t t = a;
		a = b;
		b = t;
	}
	st = fuzz_scan_pieces(data, size, lim, a, b, &at);
	FUZZ_CHECK(st == whole && at == whole_at);

	if (size <= 1024) {
		struct http_head_scan s;

		http_head_scan_init(&s);
		st = HTTP_INCOMPLETE;
		for (size_t i = 0; i < size && st == HTTP_INCOMPLETE; i++) {
			char *p = fuzz_dup(data + i, 1);

			st = http_head_scan(&s, p, 1, lim, &used);
			at = st == HTTP_INCOMPLETE ? size : i + used;
			free(p);
		}
		FUZZ_CHECK(st == whole && at == whole_at);
	}
}

/* The checks of http_head_end on the whole input; returns its status and
 * sets *head_len when it is HTTP_OK. */
static enum http_status
fuzz_head_end(const uint8_t *data, size_t size, const struct http_limits *lim,
              size_t *head_len)
{
	char *buf = fuzz_dup(data, size);
	enum http_status st = http_head_end(buf, size, lim, head_len);

	if (st == HTTP_OK) {
		/* The shortest head is "X\r\n\r\n". */
		FUZZ_CHECK(*head_len >= 5 && *head_len <= size);
		FUZZ_CHECK(*head_len <= lim->max_head);
		FUZZ_CHECK(memcmp(buf + *head_len - 4, "\r\n\r\n", 4) == 0);
	}
	free(buf);
	fuzz_check_prefixes(data, size, lim, st, st == HTTP_OK ? *head_len : 0);
	fuzz_check_splits(data, size, lim, st, st == HTTP_OK ? *head_len : 0);
	return st;
}

/* Room enough to parse a head written out again: limits above anything the
 * first parse allowed. */
static const struct http_limits fuzz_wide_limits = {1 << 20, 1 << 20,
                                                    HTTP_MAX_FIELDS, 1 << 22};

/*
 * Write a head out again from its parse: the start line (len bytes), then
 * each field as "name: value", then the empty line.  The caller frees it.
 */
static char *
fuzz_write_head(const char *start, size_t len, const struct http_field *f,
                size_t n, size_t *out_len)
{
	size_t cap = len + 4, o = 0;
	char *buf;

	for (size_t i = 0; i < n; i++)
		cap += f[i].name.len + f[i].value.len + 4;
	if (!(buf = malloc(cap)))
		abort();
	memcpy(buf, start, len);
	o = len;
	buf[o++] = '\r';
	buf[o++] = '\n';
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + o, f[i].name.p, f[i].name.len);
		o += f[i].name.len;
		buf[o++] = ':';
		buf[o++] = ' ';
		if (f[i].value.len)
			memcpy(buf + o, f[i].value.p, f[i].value.len);
		o += f[i].value.len;
		buf[o++] = '\r';
		buf[o++] = '\n';
	}
	buf[o++] = '\r';
	buf[o++] = '\n';
	*out_len = o;
	return buf;
}

static int
fuzz_span_same(struct http_span a, struct http_span b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Two parses of the fields agree, name by name and value by value. */
static void
fuzz_same_fields(const struct http_field *a, size_t na,
                 const struct http_field *b, size_t nb)
{
	FUZZ_CHECK(na == nb);
	for (size_t i = 0; i < na; i++) {
		FUZZ_CHECK(fuzz_span_same(a[i].name, b[i].name));
		FUZZ_CHECK(fuzz_span_same(a[i].value, b[i].value));
	}
}

/* A head parsed as a request or as a response. */
union fuzz_msg {
	struct http_request req;
	struct http_response resp;
};

static enum http_status
fuzz_parse(int response, const char *buf, size_t len,
           const struct http_limits *lim, union fuzz_msg *m)
{
	return response ? http_parse_response(buf, len, lim, &m->resp)
	                : http_parse_request(buf, len, lim, &m->req);
}

/*
 * One driver's run over the input, for each of fuzz_limits: the checks of
 * http_head_end; the whole input parses (as a response when response is
 * set, else as a request) only when it is exactly one head, and a head_end
 * error is the parser's error too.  A head found parses to a status other
 * than HTTP_INCOMPLETE; when it parses, check gets the message, the head
 * (a heap copy of exactly its length) and the bytes after it.
 */
static void
fuzz_heads(const uint8_t *data, size_t size, int response,
           void (*check)(const union fuzz_msg *, const char *, size_t,
                         const struct http_limits *, const uint8_t *, size_t))
{
	for (size_t l = 0; l < sizeof(fuzz_limits) / sizeof(fuzz_limits[0]);
	     l++) {
		const struct http_limits *lim = &fuzz_limits[l];
		size_t head_len = 0;
		enum http_status st = fuzz_head_end(data, size, lim, &head_len);
		union fuzz_msg m;
		char *buf;

		buf = fuzz_dup(data, size);
		enum http_status pst = fuzz_parse(response, buf, size, lim, &m);
		free(buf);
		if (pst == HTTP_OK)
			FUZZ_CHECK(st == HTTP_OK && head_len == size);
		if (st != HTTP_OK && st != HTTP_INCOMPLETE)
			FUZZ_CHECK(pst == st);
		if (st == HTTP_INCOMPLETE)
			FUZZ_CHECK(pst != HTTP_OK);

		if (st == HTTP_OK) {
			buf = fuzz_dup(data, head_len);
			pst = fuzz_parse(response, buf, head_len, lim, &m);
			FUZZ_CHECK(pst != HTTP_INCOMPLETE);
			if (pst == HTTP_OK)
				check(&m, buf, head_len, lim, data + head_len,
				      size - head_len);
			free(buf);
		}
	}
}

/* Feed a chunked body to the scanner in one call. */
static void
fuzz_scan_chunked(const uint8_t *data, size_t size)
{
	char *buf = fuzz_dup(data, size);
	struct http_chunked c;
	size_t used = SIZE_MAX;
	enum http_status st;

	http_chunked_init(&c, 8192);
	st = http_chunked_scan(&c, buf, size, &used);
	FUZZ_CHECK(used <= size);
	FUZZ_CHECK(st == HTTP_OK || st == HTTP_INCOMPLETE ||
	           st == HTTP_BAD_REQUEST);
	FUZZ_CHECK(http_chunked_data_bytes(&c) <= used);
	free(buf);
}

#endif
