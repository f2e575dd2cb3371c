/*
 * fuzz_clienthello: the ClientHello parser (clienthello.c) on a tunnel's
 * first bytes.  The first six bytes of the input are not data: a record size
 * (16 bits, little-endian, 1 + value mod 2^14), a cut point (16 bits, taken
 * modulo the data length) and max (16 bits; 0 for egressd's 16 KiB).  The
 * rest is read two ways:
 *
 * - as the bytes a client sent (records and all).  A prefix answers
 *   NEED_MORE until the byte that decides, then the same as the whole (the
 *   same hello, for OK).  An OK hello parses the same with max exactly the
 *   bytes it occupies and is TOO_LARGE with one less; no answer but
 *   TOO_LARGE changes without a cap.  Without a cap, the answer agrees with
 *   a second reading written from RFC 8446 §5.1, §4.1.2 and RFC 6066 §3:
 *   the records taken apart first, then the whole message span by span.
 * - as a handshake message, put into records of the given size and of one
 *   byte: the answer, the name and where the hello ends do not depend on the
 *   framing, and agree with the second reading of the message.
 *
 * Whatever the answer, sni_len == strlen(sni), a name is 1..255 bytes of
 * visible ASCII, and nothing is reported but for an OK.  The name matches a
 * CONNECT host as clienthello.h says.
 */
#include "clienthello.h"
#include "fuzz.h"

#define MAX_DEFAULT 16384
#define UNLIMITED   SIZE_MAX

/*
 * The name against CONNECT hosts: a fixed one, which it matches exactly when
 * it is that name but for case and one trailing dot; and itself, parsed as
 * a CONNECT host would be, which it matches exactly when that is a name.
 */
static void
check_match(const struct clienthello *ch)
{
	static const char fixed[] = "api.example.test";
	struct host h;
	size_t n = ch->sni_len;
	int want = 0;

	if (n > 0 && ch->sni[n - 1] == '.')
		n--;
	if (n == strlen(fixed)) {
		want = 1;
		for (size_t i = 0; i < n; i++)
			if ((ch->sni[i] | 0x20) != fixed[i])
				want = 0;
	}
	if (host_parse(fixed, strlen(fixed), 1, &h) != 0)
		abort();
	FUZZ_CHECK(clienthello_sni_matches(ch, &h) == want);
	if (ch->has_sni && host_parse(ch->sni, ch->sni_len, 1, &h) == 0)
		FUZZ_CHECK(clienthello_sni_matches(ch, &h) ==
		           (h.kind == HOST_NAME));
}

static enum clienthello_status
parse(const uint8_t *p, size_t n, size_t max, struct clienthello *ch)
{
	unsigned char *copy = (unsigned char *)fuzz_dup(p, n);
	enum clienthello_status st = clienthello_parse(copy, n, max, ch);

	free(copy);
	FUZZ_CHECK(st >= CLIENTHELLO_NEED_MORE && st <= CLIENTHELLO_TOO_LARGE);
	FUZZ_CHECK(ch->sni_len == strlen(ch->sni));
	if (st != CLIENTHELLO_OK) {
		FUZZ_CHECK(!ch->has_sni && ch->sni_len == 0 && ch->bytes == 0);
		return st;
	}
	FUZZ_CHECK(ch->bytes <= n && ch->bytes <= max);
	/* A record header, a handshake header and the smallest body. */
	FUZZ_CHECK(ch->bytes >= 5 + 4 + 2 + 32 + 1 + 2 + 2 + 1 + 1);
	FUZZ_CHECK(ch->has_sni == (ch->sni_len > 0));
	FUZZ_CHECK(ch->sni_len <= 255);
	for (size_t i = 0; i < ch->sni_len; i++)
		FUZZ_CHECK(ch->sni[i] >= 0x21 && ch->sni[i] <= 0x7e);
	check_match(ch);
	return st;
}

static void
same(const struct clienthello *a, const struct clienthello *b)
{
	FUZZ_CHECK(a->has_sni == b->has_sni);
	FUZZ_CHECK(a->sni_len == b->sni_len);
	FUZZ_CHECK(strcmp(a->sni, b->sni) == 0);
	FUZZ_CHECK(a->bytes == b->bytes);
}

/* ---- a second reading ---- */

/*
 * The second reading: a message in one piece (m bytes of it here, of a
 * declared hs_len; the rest may not have come), taken apart span by span.
 * Each span knows its declared end and how much of it is here; a length
 * that overruns its span is malformed, one that runs past the bytes needs
 * more.
 */
struct span {
	const uint8_t *p;
	size_t len;   /* declared */
	size_t avail; /* here: <= len */
};

enum { M_OK, M_MORE, M_BAD };

/* Take k bytes off the front of s into *out. */
static int
span_take(struct span *s, size_t k, struct span *out)
{
	if (k > s->len)
		return M_BAD;
	if (k > s->avail)
		return M_MORE;
	out->p = s->p;
	out->len = out->avail = k;
	s->p += k;
	s->len -= k;
	s->avail -= k;
	return M_OK;
}

static int
span_int(struct span *s, size_t k, size_t *v)
{
	struct span t;
	int r = span_take(s, k, &t);

	*v = 0;
	for (size_t i = 0; r == M_OK && i < k; i++)
		*v = *v << 8 | t.p[i];
	return r;
}

/* A span of k declared bytes off the front, perhaps not all here yet. */
static int
span_sub(struct span *s, size_t k, struct span *out)
{
	size_t here;

	if (k > s->len)
		return M_BAD;
	here = k < s->avail ? k : s->avail;
	out->p = s->p;
	out->len = k;
	out->avail = here;
	s->p += here;
	s->len -= k;
	s->avail -= here;
	return M_OK;
}

#define M(expr)                                                                \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ != M_OK)                                                \
			return r_;                                             \
	} while (0)

static int
m_server_name(struct span ext, struct clienthello *ch)
{
	struct span list, name;
	size_t list_len, type, name_len;

	M(span_int(&ext, 2, &list_len));
	M(span_sub(&ext, list_len, &list));
	if (ext.len != 0)
		return M_BAD;
	/* Exactly one entry: a host_name. */
	M(span_int(&list, 1, &type));
	if (type != 0)
		return M_BAD;
	M(span_int(&list, 2, &name_len));
	M(span_sub(&list, name_len, &name));
	if (list.len != 0 || name_len == 0 || name_len > 255)
		return M_BAD;
	if (name.avail < name.len)
		return M_MORE;
	for (size_t i = 0; i < name_len; i++)
		if (name.p[i] <= 0x20 || name.p[i] >= 0x7f)
			return M_BAD;
	memcpy(ch->sni, name.p, name_len);
	ch->sni[name_len] = '\0';
	ch->sni_len = name_len;
	ch->has_sni = 1;
	return M_OK;
}

static int
m_hello(const uint8_t *hs, size_t m, struct clienthello *ch)
{
	struct span all = {hs, SIZE_MAX, m}, body, ignored, exts;
	size_t type, len, n, exts_len;

	M(span_int(&all, 1, &type));
	if (type != 1)
		return M_BAD;
	M(span_int(&all, 3, &len));
	M(span_sub(&all, len, &body));
	M(span_take(&body, 2 + 32, &ignored));
	M(span_int(&body, 1, &n));
	if (n > 32)
		return M_BAD;
	M(span_take(&body, n, &ignored));
	M(span_int(&body, 2, &n));
	if (n == 0 || n % 2 == 1)
		return M_BAD;
	M(span_take(&body, n, &ignored));
	M(span_int(&body, 1, &n));
	if (n == 0)
		return M_BAD;
	M(span_take(&body, n, &ignored));
	if (body.len == 0)
		return M_OK;
	M(span_int(&body, 2, &exts_len));
	if (exts_len != body.len)
		return M_BAD;
	M(span_sub(&body, exts_len, &exts));
	/* Each extension against every one before it: no type twice. */
	const uint8_t *first = exts.p;
	while (exts.len > 0) {
		struct span ext;
		size_t ext_type, ext_len;

		M(span_int(&exts, 2, &ext_type));
		M(span_int(&exts, 2, &ext_len));
		for (const uint8_t *q = first; q < exts.p - 4;) {
			if ((size_t)(q[0] << 8 | q[1]) == ext_type)
				return M_BAD;
			q += 4 + (size_t)(q[2] << 8 | q[3]);
		}
		M(span_sub(&exts, ext_len, &ext));
		if (ext_type == 0)
			M(m_server_name(ext, ch));
		else if (ext.avail < ext.len)
			return M_MORE;
	}
	return M_OK;
}

/*
 * The records of a stream, read apart from the message: each header checked
 * as RFC 8446 §5.1 says, the payloads joined until they hold the message its
 * header announces, which m_hello then reads.  *end gets the offset of the
 * message's last byte + 1 when it is all there.
 */
enum { M_NOT_TLS = M_BAD + 1 };

static int
m_stream(const uint8_t *p, size_t n, struct clienthello *ch, size_t *end)
{
	uint8_t *hs = malloc(n ? n : 1);
	size_t pos = 0, have = 0, want = SIZE_MAX;
	int first = 1, r;

	if (hs == NULL)
		abort();
	while (have < want) {
		size_t len, k;

		if (pos == n) {
			r = M_MORE;
			goto done;
		}
		if (p[pos] != 22 || (n - pos >= 2 && p[pos + 1] != 3) ||
		    (n - pos >= 3 && p[pos + 2] > 4)) {
			r = first ? M_NOT_TLS : M_BAD;
			goto done;
		}
		if (n - pos < 5) {
			r = M_MORE;
			goto done;
		}
		len = (size_t)p[pos + 3] << 8 | p[pos + 4];
		if (len == 0 || len > 16384) {
			r = M_BAD;
			goto done;
		}
		pos += 5;
		k = len < n - pos ? len : n - pos;
		memcpy(hs + have, p + pos, k);
		have += k;
		pos += k;
		/* The message may end inside this record: *end is where. */
		if (have >= 4) {
			want = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 |
			            hs[3]);
			if (have >= want)
				*end = pos - (have - want);
		}
		first = 0;
	}
	r = m_hello(hs, want, ch);
done:
	if (r == M_MORE && have > 0)
		r = m_hello(hs, have < want ? have : want, ch) == M_BAD
		        ? M_BAD
		        : M_MORE;
	free(hs);
	return r;
}

/* ---- the bytes as a client sent them ---- */

/* A prefix of n bytes against the whole's answer. */
static enum clienthello_status
check_prefix(const uint8_t *p, size_t n, size_t max,
             enum clienthello_status whole, const struct clienthello *ch)
{
	struct clienthello pre;
	enum clienthello_status st = parse(p, n, max, &pre);

	if (whole == CLIENTHELLO_OK && n < ch->bytes)
		FUZZ_CHECK(st == CLIENTHELLO_NEED_MORE);
	else if (st != CLIENTHELLO_NEED_MORE)
		FUZZ_CHECK(st == whole);
	if (st == CLIENTHELLO_OK)
		same(&pre, ch);
	return st;
}

/*
 * Without a cap, the parser and the second reading agree: a stream with a
 * whole ClientHello in good records is OK or malformed alike, with the same
 * name and end; a bad record or a non-handshake start is malformed or not
 * TLS; a stream that runs out may be malformed already (when the second
 * reading says so it must be), or need more.
 */
static void
model_stream(const uint8_t *p, size_t n, enum clienthello_status st,
             const struct clienthello *ch)
{
	struct clienthello model;
	size_t end = 0;
	int r;

	memset(&model, 0, sizeof(model));
	r = m_stream(p, n, &model, &end);
	switch (r) {
	case M_OK:
		FUZZ_CHECK(st == CLIENTHELLO_OK);
		FUZZ_CHECK(ch->bytes == end);
		FUZZ_CHECK(model.has_sni == ch->has_sni);
		FUZZ_CHECK(strcmp(model.sni, ch->sni) == 0);
		break;
	case M_NOT_TLS:
		FUZZ_CHECK(st == CLIENTHELLO_NOT_TLS);
		break;
	case M_BAD:
		FUZZ_CHECK(st == CLIENTHELLO_MALFORMED);
		break;
	default:
		FUZZ_CHECK(st == CLIENTHELLO_NEED_MORE ||
		           st == CLIENTHELLO_MALFORMED);
	}
}

static void
stream(const uint8_t *p, size_t n, size_t cut, size_t max)
{
	struct clienthello ch, other;
	enum clienthello_status st = parse(p, n, max, &ch), unl;

	/* Prefixes: every one for a short input, else the cut, and the
	 * first decided one found by bisection (the answers are NEED_MORE
	 * up to some length, then the whole's). */
	if (n <= 256) {
		for (size_t i = 0; i < n; i++)
			check_prefix(p, i, max, st, &ch);
	} else {
		check_prefix(p, cut, max, st, &ch);
	}
	if (st != CLIENTHELLO_NEED_MORE) {
		size_t lo = 0, hi = n; /* lo undecided, hi decided */

		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (check_prefix(p, mid, max, st, &ch) ==
			    CLIENTHELLO_NEED_MORE)
				lo = mid;
			else
				hi = mid;
		}
		FUZZ_CHECK(check_prefix(p, lo, max, st, &ch) ==
		           CLIENTHELLO_NEED_MORE);
		FUZZ_CHECK(check_prefix(p, hi, max, st, &ch) == st);
		if (st == CLIENTHELLO_OK)
			FUZZ_CHECK(hi == ch.bytes);
	}

	/* Without a cap, the answer is the same unless it was TOO_LARGE;
	 * and a hello that parses takes exactly its bytes of cap. */
	unl = parse(p, n, UNLIMITED, &other);
	FUZZ_CHECK(unl != CLIENTHELLO_TOO_LARGE);
	model_stream(p, n, unl, &other);
	if (st != CLIENTHELLO_TOO_LARGE) {
		FUZZ_CHECK(unl == st);
		if (st == CLIENTHELLO_OK)
			same(&ch, &other);
	} else if (unl == CLIENTHELLO_OK) {
		FUZZ_CHECK(other.bytes > max);
	}
	if (unl == CLIENTHELLO_OK) {
		FUZZ_CHECK(parse(p, n, other.bytes, &ch) == CLIENTHELLO_OK);
		same(&ch, &other);
		FUZZ_CHECK(parse(p, n, other.bytes - 1, &ch) ==
		           CLIENTHELLO_TOO_LARGE);
	}
}

/* ---- the bytes as a handshake message ---- */

/* Put hs into records of at most size bytes (version 0x0301).  The caller
 * frees the result; *out_n gets its length. */
static uint8_t *
frame(const uint8_t *hs, size_t n, size_t size, size_t *out_n)
{
	uint8_t *r = malloc(n + 5 * (n / size + 1));
	size_t o = 0;

	if (r == NULL)
		abort();
	for (size_t off = 0; off < n; off += size) {
		size_t k = n - off < size ? n - off : size;

		r[o++] = 22;
		r[o++] = 3;
		r[o++] = 1;
		r[o++] = (uint8_t)(k >> 8);
		r[o++] = (uint8_t)k;
		memcpy(r + o, hs + off, k);
		o += k;
	}
	*out_n = o;
	return r;
}

static void
message(const uint8_t *hs, size_t n, size_t size)
{
	struct clienthello ch, other, model;
	enum clienthello_status st;
	uint8_t *r;
	size_t rn, hs_len = 0, m;
	int want;

	r = frame(hs, n, size, &rn);
	st = parse(r, rn, UNLIMITED, &ch);
	free(r);
	/* Valid records: whatever is wrong is in the message. */
	FUZZ_CHECK(st != CLIENTHELLO_NOT_TLS && st != CLIENTHELLO_TOO_LARGE);
	if (n >= 4)
		hs_len = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
	if (st == CLIENTHELLO_OK) {
		size_t records = (hs_len + size - 1) / size;

		FUZZ_CHECK(n >= hs_len);
		FUZZ_CHECK(ch.bytes == hs_len + 5 * records);
	}

	/* One byte a record (for the shorter ones). */
	if (n <= 4096) {
		r = frame(hs, n, 1, &rn);
		FUZZ_CHECK(parse(r, rn, UNLIMITED, &other) == st);
		free(r);
		if (st == CLIENTHELLO_OK) {
			FUZZ_CHECK(other.bytes == 6 * hs_len);
			other.bytes = ch.bytes;
			same(&ch, &other);
		}
	}

	/* The second reading: on the whole message, OK or malformed alike;
	 * on a part of it, malformed or needing more as the parser says. */
	memset(&model, 0, sizeof(model));
	m = n >= 4 && n > hs_len ? hs_len : n;
	want = m_hello(hs, m, &model);
	if (n >= 4 && n >= hs_len) {
		FUZZ_CHECK(want != M_MORE);
		FUZZ_CHECK(st == (want == M_OK ? CLIENTHELLO_OK
		                               : CLIENTHELLO_MALFORMED));
	} else {
		FUZZ_CHECK(st == CLIENTHELLO_NEED_MORE ||
		           st == CLIENTHELLO_MALFORMED);
		if (want == M_BAD)
			FUZZ_CHECK(st == CLIENTHELLO_MALFORMED);
	}
	if (st == CLIENTHELLO_OK) {
		FUZZ_CHECK(model.has_sni == ch.has_sni);
		FUZZ_CHECK(strcmp(model.sni, ch.sni) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 6;
	size_t n, record, cut, max;

	if (size < 6)
		return 0;
	n = size - 6;
	record = 1 + (size_t)(data[0] | data[1] << 8) % CLIENTHELLO_RECORD_MAX;
	cut = (size_t)(data[2] | data[3] << 8) % (n + 1);
	max = (size_t)(data[4] | data[5] << 8);
	if (max == 0)
		max = MAX_DEFAULT;

	stream(p, n, cut, max);
	message(p, n, record);
	return 0;
}
