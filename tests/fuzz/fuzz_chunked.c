/*
 * fuzz_chunked: the chunked-body scanner (RFC 9112 §7.1) fed a body in
 * pieces.  The first five bytes of the input are not body: two split points
 * (16 bits each, little-endian, taken modulo the body length) and max_line
 * (0 for egressd's 8192).  The scanner's result must not depend on how the
 * body is split: one call, three pieces and one byte at a time agree on the
 * status, on where the body ends or the error lies, and on the data bytes.
 */
#include "fuzz.h"
#include "http.h"

struct outcome {
	enum http_status st;
	size_t used; /* bytes of the input up to the end or the error */
	uint64_t data;
};

/* Scan body in the pieces that the sorted cut points make. */
static struct outcome
scan(const uint8_t *body, size_t n, size_t max_line, const size_t *cuts,
     size_t ncuts)
{
	struct http_chunked c;
	struct outcome o = {HTTP_INCOMPLETE, 0, 0};
	size_t off = 0;

	http_chunked_init(&c, max_line);
	for (size_t i = 0; i <= ncuts && o.st == HTTP_INCOMPLETE; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		size_t len = end - off, used = SIZE_MAX;
		char *piece = fuzz_dup(body + off, len);

		o.st = http_chunked_scan(&c, piece, len, &used);
		free(piece);
		FUZZ_CHECK(used <= len);
		if (o.st == HTTP_INCOMPLETE)
			FUZZ_CHECK(used == len);
		else
			FUZZ_CHECK(o.st == HTTP_OK || o.st == HTTP_BAD_REQUEST);
		o.used = off + used;
		off = end;
	}
	o.data = http_chunked_data_bytes(&c);
	FUZZ_CHECK(o.data <= o.used);

	/* Once done or broken, the scanner stays so and takes nothing. */
	if (o.st != HTTP_INCOMPLETE) {
		size_t used = SIZE_MAX;
		enum http_status again =
		    http_chunked_scan(&c, "0\r\n\r\n", 5, &used);
		FUZZ_CHECK(again == o.st && used == 0);
		FUZZ_CHECK(http_chunked_data_bytes(&c) == o.data);
	}
	return o;
}

/*
 * A second reading of the same body, written from RFC 9112 §7.1 and the
 * limits http.h documents rather than from http.c: a recursive descent over
 * the whole buffer that fails at the first byte no valid body could have
 * there, and runs out (HTTP_INCOMPLETE) when the bytes end first.
 */
struct model {
	const uint8_t *p;
	size_t n, pos, max_line, line_start;
	uint64_t data;
};

enum { M_OK, M_MORE, M_BAD };

static int
m_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
m_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static int
m_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Look at the next byte of a line: M_MORE when there is none, M_BAD when
 * taking it would make the line too long (CR does not count). */
static int
m_peek(struct model *m, uint8_t *c)
{
	if (m->pos == m->n)
		return M_MORE;
	*c = m->p[m->pos];
	if (*c != '\r' && m->pos - m->line_start + 1 > m->max_line)
		return M_BAD;
	return M_OK;
}

#define M_PEEK(m, c)                                                           \
	do {                                                                   \
		int r_ = m_peek(m, &c);                                        \
		if (r_ != M_OK)                                                \
			return r_;                                             \
	} while (0)

/* CRLF at the end of a line (the CR not yet taken). */
static int
m_crlf(struct model *m)
{
	uint8_t c;

	M_PEEK(m, c);
	if (c != '\r')
		return M_BAD;
	m->pos++;
	if (m->pos == m->n)
		return M_MORE;
	if (m->p[m->pos] != '\n')
		return M_BAD;
	m->pos++;
	return M_OK;
}

/* chunk-size [ chunk-ext ] CRLF; *size gets the size. */
static int
m_size_line(struct model *m, uint64_t *size)
{
	unsigned digits = 0;
	uint8_t c;

	m->line_start = m->pos;
	*size = 0;
	for (;;) {
		M_PEEK(m, c);
		if (!m_hex(c))
			break;
		if (++digits > 15)
			return M_BAD;
		*size = *size * 16 +
		        (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		m->pos++;
	}
	if (digits == 0)
		return M_BAD;
	/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ),
	 * then CRLF: BWS only ever comes before ";" or "=". */
	for (;;) {
		size_t start = m->pos;

		M_PEEK(m, c);
		while (m_ows(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		if (c == '\r')
			return start == m->pos ? m_crlf(m) : M_BAD;
		if (c != ';')
			return M_BAD;
		m->pos++;
		M_PEEK(m, c);
		while (m_ows(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		if (!m_tchar(c))
			return M_BAD;
		while (m_tchar(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		/* Back to the top for ";" or CRLF, on to "=" otherwise. */
		size_t ows = m->pos;
		while (m_ows(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		if (c == ';' || c == '\r') {
			m->pos = ows;
			continue;
		}
		if (c != '=')
			return M_BAD;
		m->pos++;
		M_PEEK(m, c);
		while (m_ows(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		if (c == '"') {
			m->pos++;
			for (;;) {
				M_PEEK(m, c);
				m->pos++;
				if (c == '"')
					break;
				if (c == '\\') {
					M_PEEK(m, c);
					if (!(c == '\t' || c == ' ' ||
					      (c >= 0x21 && c != 0x7f)))
						return M_BAD;
					m->pos++;
				} else if (!(c == '\t' || c == ' ' ||
				             c == 0x21 ||
				             (c >= 0x23 && c <= 0x5b) ||
				             (c >= 0x5d && c <= 0x7e) ||
				             c >= 0x80)) {
					m->pos--;
					return M_BAD;
				}
			}
		} else {
			if (!m_tchar(c))
				return M_BAD;
			while (m_tchar(c)) {
				m->pos++;
				M_PEEK(m, c);
			}
		}
	}
}

/* RFC 9110 §6.5.1: the name from line_start to pos (at its colon) is one
 * that must never be a trailer. */
static int
m_forbidden_trailer(const struct model *m)
{
	static const char *const names[] = {
	    "Content-Length", "Transfer-Encoding", "Host", "Connection",
	    "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection",
	    "Proxy-Authorization", "Proxy-Authenticate", NULL};
	size_t n = m->pos - m->line_start;

	for (const char *const *f = names; *f; f++)
		if (strlen(*f) == n &&
		    strncasecmp((const char *)m->p + m->line_start, *f, n) == 0)
			return 1;
	return 0;
}

/* trailer-section CRLF: field lines as in a head, at most 100, none of
 * them framing or routing. */
static int
m_trailers(struct model *m)
{
	for (unsigned lines = 0;; lines++) {
		uint8_t c;

		m->line_start = m->pos;
		M_PEEK(m, c);
		if (c == '\r')
			return m_crlf(m);
		if (lines + 1 > 100 || !m_tchar(c))
			return M_BAD;
		while (m_tchar(c)) {
			m->pos++;
			M_PEEK(m, c);
		}
		if (c != ':' || m_forbidden_trailer(m))
			return M_BAD;
		m->pos++;
		for (;;) {
			M_PEEK(m, c);
			if (c == '\r')
				break;
			if (!(c == ' ' || c == '\t' ||
			      (c >= 0x21 && c != 0x7f)))
				return M_BAD;
			m->pos++;
		}
		int r = m_crlf(m);
		if (r != M_OK)
			return r;
	}
}

static int
m_body(struct model *m)
{
	for (;;) {
		uint64_t size;
		int r = m_size_line(m, &size);

		if (r != M_OK)
			return r;
		if (size == 0)
			return m_trailers(m);
		if (m->n - m->pos < size) {
			m->data += m->n - m->pos;
			m->pos = m->n;
			return M_MORE;
		}
		m->pos += size;
		m->data += size;
		m->line_start = m->pos;
		r = m_crlf(m);
		if (r != M_OK)
			return r;
	}
}

static struct outcome
model(const uint8_t *body, size_t n, size_t max_line)
{
	struct model m = {body, n, 0, max_line, 0, 0};
	static const enum http_status st[] = {HTTP_OK, HTTP_INCOMPLETE,
	                                      HTTP_BAD_REQUEST};
	int r = m_body(&m);

	return (struct outcome){st[r], m.pos, m.data};
}

static void
same(struct outcome a, struct outcome b)
{
	FUZZ_CHECK(a.st == b.st);
	FUZZ_CHECK(a.used == b.used);
	FUZZ_CHECK(a.data == b.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *body = data + 5;
	size_t n, max_line, cuts[2];
	struct outcome whole, o;

	if (size < 5)
		return 0;
	n = size - 5;
	cuts[0] = (size_t)(data[0] | data[1] << 8) % (n + 1);
	cuts[1] = (size_t)(data[2] | data[3] << 8) % (n + 1);
	if (cuts[0] > cuts[1]) {
		size_t t = cuts[0];
		cuts[0] = cuts[1];
		cuts[1] = t;
	}
	max_line = data[4] ? data[4] : 8192;

	whole = scan(body, n, max_line, NULL, 0);
	same(whole, model(body, n, max_line));
	same(whole, scan(body, n, max_line, cuts, 1));
	same(whole, scan(body, n, max_line, cuts, 2));
	if (n <= 4096) {
		size_t *every = malloc((n ? n : 1) * sizeof(*every));

		if (!every)
			abort();
		for (size_t i = 0; i < n; i++)
			every[i] = i;
		/* A cut at 0 is an empty first piece: allowed too. */
		same(whole, scan(body, n, max_line, every, n));
		free(every);
	}

	/* Where the body ended, it ends on its own; where it broke, the
	 * bytes before are fine and the next one is not. */
	if (whole.st == HTTP_OK) {
		o = scan(body, whole.used, max_line, NULL, 0);
		same(whole, o);
	} else if (whole.st == HTTP_BAD_REQUEST) {
		o = scan(body, whole.used, max_line, NULL, 0);
		FUZZ_CHECK(o.st == HTTP_INCOMPLETE && o.used == whole.used);
		o = scan(body, whole.used + 1, max_line, NULL, 0);
		same(whole, o);
	}
	return 0;
}
