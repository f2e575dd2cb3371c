/*
 * Unit tests for clienthello: the ClientHellos of real clients (captured by
 * tests/unit/data/clienthello/capture.py) cut at every byte and re-framed
 * into other record sizes, hand-built malformations of each kind, and the
 * SNI against the CONNECT host.
 *
 * The vectors are read from tests/unit/data/clienthello/, relative to the
 * top of the tree (where `make unit` runs the tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"

#define NELEM(a)  (sizeof(a) / sizeof((a)[0]))
#define DATA_DIR  "tests/unit/data/clienthello/"
#define MAX_16K   16384
#define BIG       (1u << 20)
#define HELLO_MAX (1u << 16)

/* ---- helpers ---- */

/* Parse a copy of exactly len bytes, so that AddressSanitizer sees any read
 * past len. */
static enum clienthello_status
parse(const unsigned char *p, size_t len, size_t max, struct clienthello *ch)
{
	unsigned char *copy = malloc(len ? len : 1);
	enum clienthello_status st;

	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	st = clienthello_parse(copy, len, max, ch);
	free(copy);
	if (st == CLIENTHELLO_OK) {
		assert_int_equal(ch->sni_len, strlen(ch->sni));
		assert_true(ch->bytes <= len && ch->bytes <= max);
		assert_true(ch->has_sni || ch->sni_len == 0);
	} else {
		assert_int_equal(ch->has_sni, 0);
		assert_int_equal(ch->sni_len, 0);
		assert_int_equal(ch->bytes, 0);
	}
	return st;
}

static void
expect_what(const char *what, const unsigned char *p, size_t len, size_t max,
            enum clienthello_status want)
{
	struct clienthello ch;
	enum clienthello_status st = parse(p, len, max, &ch);

	if (st != want)
		fail_msg("%s: %zu bytes, max %zu: %s, want %s", what, len, max,
		         clienthello_status_text(st),
		         clienthello_status_text(want));
}

#define expect(p, len, max, want) expect_what(#p, p, len, max, want)

struct bytes {
	unsigned char *p;
	size_t n;
};

static struct bytes
load(const char *name)
{
	char path[256];
	struct bytes b;
	FILE *f;
	long size;

	snprintf(path, sizeof(path), DATA_DIR "%s.bin", name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: cannot open (run from the top of the tree)",
		         path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size > 0);
	rewind(f);
	b.n = (size_t)size;
	b.p = malloc(b.n);
	assert_non_null(b.p);
	assert_int_equal(fread(b.p, 1, b.n, f), b.n);
	fclose(f);
	return b;
}

/* The handshake message carried by the records of b (test-side reading,
 * trusting the captured framing). */
static struct bytes
handshake_of(struct bytes b)
{
	struct bytes hs = {malloc(b.n), 0};
	size_t pos = 0, want = SIZE_MAX;

	assert_non_null(hs.p);
	while (hs.n < want) {
		size_t len;

		assert_true(pos + 5 <= b.n);
		assert_int_equal(b.p[pos], 22);
		len = (size_t)b.p[pos + 3] << 8 | b.p[pos + 4];
		assert_true(pos + 5 + len <= b.n);
		memcpy(hs.p + hs.n, b.p + pos + 5, len);
		hs.n += len;
		pos += 5 + len;
		if (want == SIZE_MAX && hs.n >= 4)
			want = 4 + ((size_t)hs.p[1] << 16 |
			            (size_t)hs.p[2] << 8 | hs.p[3]);
	}
	hs.n = want; /* a record may hold more than the hello */
	return hs;
}

/*
 * Put a handshake message into records of at most size bytes, with the
 * given legacy_record_version.  Returns the record bytes written to out
 * (which has room for them: n + 5 * (n / size + 1)).
 */
static size_t
frame(const unsigned char *hs, size_t n, size_t size, unsigned version,
      unsigned char *out)
{
	size_t o = 0;

	for (size_t off = 0; off < n; off += size) {
		size_t k = n - off < size ? n - off : size;

		out[o++] = 22;
		out[o++] = (unsigned char)(version >> 8);
		out[o++] = (unsigned char)version;
		out[o++] = (unsigned char)(k >> 8);
		out[o++] = (unsigned char)k;
		memcpy(out + o, hs + off, k);
		o += k;
	}
	return o;
}

static unsigned char *
frame_alloc(size_t n, size_t size)
{
	unsigned char *p = malloc(n + 5 * (n / size + 1));

	assert_non_null(p);
	return p;
}

static void
same(const struct clienthello *a, const struct clienthello *b)
{
	assert_int_equal(a->has_sni, b->has_sni);
	assert_string_equal(a->sni, b->sni);
	assert_int_equal(a->sni_len, b->sni_len);
	assert_int_equal(a->bytes, b->bytes);
}

/* Every proper prefix of a complete ClientHello of n bytes needs more, and
 * the whole gives the same answer as from a longer buffer. */
static void
check_prefixes(const unsigned char *p, size_t n, size_t max,
               const struct clienthello *want)
{
	struct clienthello ch;

	for (size_t i = 0; i < n; i++) {
		enum clienthello_status st = parse(p, i, max, &ch);

		if (st != CLIENTHELLO_NEED_MORE)
			fail_msg("prefix of %zu of %zu bytes: %s", i, n,
			         clienthello_status_text(st));
	}
	assert_int_equal(parse(p, n, max, &ch), CLIENTHELLO_OK);
	same(&ch, want);
}

/* Insert k bytes at offset at of the n bytes of p (which has room). */
static size_t
insert(unsigned char *p, size_t n, size_t at, const char *bytes, size_t k)
{
	if (at > n)
		abort();
	memmove(p + at + k, p + at, n - at);
	memcpy(p + at, bytes, k);
	return n + k;
}

/* ---- real clients ---- */

struct vector {
	const char *name;
	const char *sni; /* NULL: none sent */
	size_t records;  /* records the client used */
};

static const struct vector vectors[] = {
    {"openssl-tls13-sni", "api.example.test", 1},
    {"openssl-tls12-sni", "git.example.test", 1},
    {"openssl-mixedcase-dot", "Api.Example.TEST.", 1},
    {"openssl-nosni", NULL, 1},
    {"openssl-bugs-padding", "pad.example.test", 1},
    {"openssl-large-10k", "big.example.test", 1},
    {"openssl-large-20k", "huge.example.test", 2},
    {"openssl-frag512", "frag.example.test", 5},
    {"curl-tls13", "api.example.test", 1},
    {"curl-tls12", "git.example.test", 1},
    {"curl-ip-nosni", NULL, 1},
    {"python-tls13", "pypi.example.test", 1},
    {"python-tls12", "pypi.example.test", 1},
    {"python-nosni", NULL, 1},
    {"wget-gnutls-connect", "files.example.test", 1},
    {"java-jsse", "java.example.test", 1},
};

/* Each vector whole, and cut at every byte. */
static void
test_real_clients(void **state)
{
	(void)state;
	for (size_t v = 0; v < NELEM(vectors); v++) {
		struct bytes b = load(vectors[v].name);
		struct bytes hs = handshake_of(b);
		struct clienthello ch;
		size_t max = b.n > MAX_16K ? BIG : MAX_16K;

		assert_int_equal(parse(b.p, b.n, max, &ch), CLIENTHELLO_OK);
		/* The clients send the hello alone, in whole records. */
		assert_int_equal(ch.bytes, b.n);
		assert_int_equal(b.n, hs.n + 5 * vectors[v].records);
		if (vectors[v].sni != NULL) {
			assert_int_equal(ch.has_sni, 1);
			assert_string_equal(ch.sni, vectors[v].sni);
		} else {
			assert_int_equal(ch.has_sni, 0);
			assert_string_equal(ch.sni, "");
		}
		check_prefixes(b.p, b.n, max, &ch);
		free(hs.p);
		free(b.p);
	}
}

/* The same handshake message in records of other sizes (down to one byte
 * a record), and in records of every version a client may use. */
static void
test_reframed(void **state)
{
	static const size_t sizes[] = {1,  2,   3,   4,    5,     7,
	                               64, 100, 511, 4096, 16383, 16384};
	static const unsigned versions[] = {0x0300, 0x0301, 0x0302, 0x0303,
	                                    0x0304};

	(void)state;
	for (size_t v = 0; v < NELEM(vectors); v++) {
		struct bytes b = load(vectors[v].name);
		struct bytes hs = handshake_of(b);
		struct clienthello want, ch;

		assert_int_equal(parse(b.p, b.n, BIG, &want), CLIENTHELLO_OK);
		for (size_t s = 0; s < NELEM(sizes); s++) {
			unsigned char *r = frame_alloc(hs.n, sizes[s]);
			size_t n = frame(hs.p, hs.n, sizes[s],
			                 versions[s % NELEM(versions)], r);

			assert_int_equal(parse(r, n, BIG, &ch), CLIENTHELLO_OK);
			assert_int_equal(ch.bytes, n);
			assert_int_equal(ch.has_sni, want.has_sni);
			assert_string_equal(ch.sni, want.sni);
			/* Cut at every byte, for the small hellos. */
			if (hs.n < 1024 && sizes[s] <= 100)
				check_prefixes(r, n, BIG, &ch);
			free(r);
		}
		free(hs.p);
		free(b.p);
	}
}

/* What follows the hello (in its record or after it) is not looked at. */
static void
test_trailing_bytes(void **state)
{
	struct bytes b = load("curl-tls13");
	struct bytes hs = handshake_of(b);
	unsigned char *r = malloc(hs.n + 200);
	struct clienthello ch;
	size_t n;

	(void)state;
	assert_non_null(r);
	/* Junk in the same record: the record says 100 more bytes than the
	 * hello, and they have not all arrived. */
	n = frame(hs.p, hs.n, MAX_16K, 0x0301, r);
	r[3] = (unsigned char)((hs.n + 100) >> 8);
	r[4] = (unsigned char)(hs.n + 100);
	memset(r + n, 0xff, 50);
	assert_int_equal(parse(r, n + 50, MAX_16K, &ch), CLIENTHELLO_OK);
	assert_int_equal(ch.bytes, n);
	assert_string_equal(ch.sni, "api.example.test");

	/* A record of another type after the hello (early data). */
	n = frame(hs.p, hs.n, MAX_16K, 0x0301, r);
	memcpy(r + n, "\x17\x03\x03\x00\x05hello", 10);
	assert_int_equal(parse(r, n + 10, MAX_16K, &ch), CLIENTHELLO_OK);
	assert_int_equal(ch.bytes, n);
	/* ... and a change_cipher_spec, as TLS 1.3 middlebox mode sends. */
	memcpy(r + n, "\x14\x03\x03\x00\x01\x01", 6);
	assert_int_equal(parse(r, n + 6, MAX_16K, &ch), CLIENTHELLO_OK);
	assert_int_equal(ch.bytes, n);
	/* Trailing bytes well past max do not matter either. */
	assert_int_equal(parse(r, n + 6, n, &ch), CLIENTHELLO_OK);
	free(r);
	free(hs.p);
	free(b.p);
}

/* ---- the size cap ---- */

static void
test_too_large(void **state)
{
	struct bytes b = load("openssl-large-20k");
	struct clienthello ch;

	(void)state;
	/* The handshake length (bytes 6..8) already shows it: 20420 bytes
	 * of hello do not fit 16 KiB, whatever follows. */
	for (size_t i = 0; i < 9; i++)
		expect(b.p, i, MAX_16K, CLIENTHELLO_NEED_MORE);
	for (size_t i = 9; i <= b.n; i += 97)
		expect(b.p, i, MAX_16K, CLIENTHELLO_TOO_LARGE);
	expect(b.p, b.n, MAX_16K, CLIENTHELLO_TOO_LARGE);
	/* Exactly at the cap it fits; a byte less and it does not. */
	expect(b.p, b.n, b.n, CLIENTHELLO_OK);
	expect(b.p, b.n, b.n - 1, CLIENTHELLO_TOO_LARGE);
	expect(b.p, b.n - 1, b.n - 1, CLIENTHELLO_TOO_LARGE);
	expect(b.p, 9, b.n - 1, CLIENTHELLO_TOO_LARGE);
	assert_int_equal(parse(b.p, b.n, b.n, &ch), CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "huge.example.test");
	free(b.p);

	/* At the cap, for each client. */
	for (size_t v = 0; v < NELEM(vectors); v++) {
		b = load(vectors[v].name);
		expect(b.p, b.n, b.n, CLIENTHELLO_OK);
		expect(b.p, b.n, b.n - 1, CLIENTHELLO_TOO_LARGE);
		free(b.p);
	}
	/* A max of 0 fits nothing (not even the first byte's verdict). */
	expect((const unsigned char *)"\x16", 1, 0, CLIENTHELLO_TOO_LARGE);
	expect((const unsigned char *)"", 0, 0, CLIENTHELLO_TOO_LARGE);
}

/* Small records: the handshake length fits the cap, the framing does not.
 * That shows only once the cap's worth of bytes has arrived. */
static void
test_too_large_by_framing(void **state)
{
	struct bytes b = load("openssl-tls12-sni");
	struct bytes hs = handshake_of(b);
	unsigned char *r = frame_alloc(hs.n, 10);
	size_t n = frame(hs.p, hs.n, 10, 0x0301, r);
	size_t max = hs.n + 5 * 3; /* room for 3 headers: fits at 16K */

	(void)state;
	size_t first = SIZE_MAX;

	(void)state;
	assert_true(n > max);
	expect(r, n, n, CLIENTHELLO_OK);
	expect(r, n, n - 1, CLIENTHELLO_TOO_LARGE);
	/* Prefixes need more until the read that would cross max, which
	 * is within one record (of 10 bytes) before it. */
	for (size_t i = 0; i <= n; i++) {
		struct clienthello ch;
		enum clienthello_status st = parse(r, i, max, &ch);

		if (st == CLIENTHELLO_NEED_MORE && first == SIZE_MAX)
			continue;
		assert_int_equal(st, CLIENTHELLO_TOO_LARGE);
		if (first == SIZE_MAX)
			first = i;
	}
	assert_true(first + 10 >= max && first <= max);
	free(r);
	free(hs.p);
	free(b.p);
}

/* ---- not TLS ---- */

static void
test_not_tls(void **state)
{
	static const struct {
		const char *what;
		const char *p;
		size_t n;
	} t[] = {
	    {"HTTP request", "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n", 0},
	    {"one letter", "G", 0},
	    {"CONNECT in the tunnel", "CONNECT a:443 HTTP/1.1\r\n\r\n", 0},
	    {"SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", 0},
	    /* SSLv2-compatible CLIENT-HELLO: 2-byte length with the high
	     * bit set, msg type 1, version 3.1. */
	    {"SSLv2 hello", "\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10", 11},
	    {"SSLv2 first byte", "\x80", 1},
	    {"alert record", "\x15\x03\x01\x00\x02\x02\x28", 7},
	    {"change_cipher_spec", "\x14\x03\x03\x00\x01\x01", 6},
	    {"application data", "\x17\x03\x03\x00\x05hello", 10},
	    {"heartbeat", "\x18\x03\x03\x00\x01\x01", 6},
	    {"record version 2.0", "\x16\x02\x00\x00\x30", 5},
	    {"record version 4.1", "\x16\x04\x01\x00\x30", 5},
	    {"record version 3.5", "\x16\x03\x05\x00\x30", 5},
	    {"record version 3.255", "\x16\x03\xff", 3},
	    {"DTLS version", "\x16\xfe\xfd\x00\x00", 5},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		const unsigned char *p = (const unsigned char *)t[i].p;
		size_t n = t[i].n ? t[i].n : strlen(t[i].p);

		expect_what(t[i].what, p, n, MAX_16K, CLIENTHELLO_NOT_TLS);
	}
	/* The byte that decides is enough; the ones before it are not. */
	expect((const unsigned char *)"", 0, MAX_16K, CLIENTHELLO_NEED_MORE);
	struct clienthello ch;
	assert_int_equal(clienthello_parse(NULL, 0, MAX_16K, &ch),
	                 CLIENTHELLO_NEED_MORE);
	expect((const unsigned char *)"\x16", 1, MAX_16K,
	       CLIENTHELLO_NEED_MORE);
	expect((const unsigned char *)"\x16\x03", 2, MAX_16K,
	       CLIENTHELLO_NEED_MORE);
	expect((const unsigned char *)"\x16\x03\x01\x02", 4, MAX_16K,
	       CLIENTHELLO_NEED_MORE);
	expect((const unsigned char *)"\x16\x05", 2, MAX_16K,
	       CLIENTHELLO_NOT_TLS);
	/* The verdict of the first byte does not wait for the cap. */
	expect((const unsigned char *)"GET / HTTP/1.1\r\n", 16, 1,
	       CLIENTHELLO_NOT_TLS);
}

/* ---- malformations ---- */

/*
 * A minimal ClientHello, built by hand: legacy_version 3.3, a zero random,
 * a 32-byte session_id, two cipher suites, the null compression method, then
 * the extensions given (ext_len bytes; none at all when ext is NULL).
 * Offsets into it below.  Returns its length.
 */
enum {
	HS_TYPE = 0,
	HS_LEN = 1,
	HS_SID_LEN = 38,
	HS_CS_LEN = 71,
	HS_COMP_LEN = 77,
	HS_EXT_LEN = 79,
	HS_EXTS = 81,
};

static size_t
build_hello(unsigned char *hs, const void *ext, size_t ext_len)
{
	size_t n = 4, body;

	memset(hs, 0, HS_EXTS);
	hs[HS_TYPE] = 1;
	hs[4] = 3;
	hs[5] = 3;
	n = 6 + 32;
	hs[n++] = 32;
	memset(hs + n, 0xab, 32);
	n += 32;
	hs[n++] = 0;
	hs[n++] = 4;
	memcpy(hs + n, "\x13\x01\x13\x02", 4);
	n += 4;
	hs[n++] = 1;
	hs[n++] = 0;
	if (ext != NULL) {
		hs[n++] = (unsigned char)(ext_len >> 8);
		hs[n++] = (unsigned char)ext_len;
		memcpy(hs + n, ext, ext_len);
		n += ext_len;
	}
	body = n - 4;
	hs[HS_LEN] = (unsigned char)(body >> 16);
	hs[HS_LEN + 1] = (unsigned char)(body >> 8);
	hs[HS_LEN + 2] = (unsigned char)body;
	return n;
}

/* A server_name extension for name (n bytes), as a client sends it. */
static size_t
build_sni(unsigned char *e, const char *name, size_t n)
{
	e[0] = 0;
	e[1] = 0;
	e[2] = (unsigned char)((n + 5) >> 8);
	e[3] = (unsigned char)(n + 5);
	e[4] = (unsigned char)((n + 3) >> 8);
	e[5] = (unsigned char)(n + 3);
	e[6] = 0;
	e[7] = (unsigned char)(n >> 8);
	e[8] = (unsigned char)n;
	memcpy(e + 9, name, n);
	return n + 9;
}

/* Frame hs in one record and parse it, whole and cut at every byte. */
static enum clienthello_status
parse_hello(const unsigned char *hs, size_t n, struct clienthello *ch)
{
	unsigned char *r = frame_alloc(n, MAX_16K);
	size_t rn = frame(hs, n, MAX_16K, 0x0301, r);
	enum clienthello_status st = parse(r, rn, MAX_16K, ch);

	/* Prefixes never contradict the whole: they need more, or (once the
	 * deciding byte is in) say the same. */
	for (size_t i = 0; i < rn; i++) {
		struct clienthello pre;
		enum clienthello_status s = parse(r, i, MAX_16K, &pre);

		if (s != CLIENTHELLO_NEED_MORE && s != st)
			fail_msg("prefix of %zu of %zu bytes: %s, whole: %s", i,
			         rn, clienthello_status_text(s),
			         clienthello_status_text(st));
		if (st == CLIENTHELLO_OK && s != CLIENTHELLO_NEED_MORE)
			fail_msg("prefix of %zu of an OK hello: %s", i,
			         clienthello_status_text(s));
	}
	free(r);
	return st;
}

static enum clienthello_status
parse_exts(const void *ext, size_t ext_len, struct clienthello *ch)
{
	unsigned char hs[HS_EXTS + 2048];

	assert_true(ext_len <= 2048);
	return parse_hello(hs, build_hello(hs, ext, ext_len), ch);
}

static void
test_built_hello(void **state)
{
	unsigned char hs[HS_EXTS + 600], e[600];
	struct clienthello ch;
	size_t n, en;

	(void)state;
	/* No extensions at all: a valid (old-style) hello without SNI. */
	n = build_hello(hs, NULL, 0);
	assert_int_equal(parse_hello(hs, n, &ch), CLIENTHELLO_OK);
	assert_int_equal(ch.has_sni, 0);
	assert_int_equal(ch.bytes, n + 5);
	/* An empty extensions block. */
	assert_int_equal(parse_exts("", 0, &ch), CLIENTHELLO_OK);
	assert_int_equal(ch.has_sni, 0);
	/* SNI alone; a one-byte name; the longest name. */
	en = build_sni(e, "example.test", 12);
	assert_int_equal(parse_exts(e, en, &ch), CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "example.test");
	assert_int_equal(parse_exts(e, build_sni(e, "x", 1), &ch),
	                 CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "x");
	char name[256];
	memset(name, 'a', 255);
	name[255] = '\0';
	assert_int_equal(parse_exts(e, build_sni(e, name, 255), &ch),
	                 CLIENTHELLO_OK);
	assert_int_equal(ch.sni_len, 255);
	assert_string_equal(ch.sni, name);
	/* Printable but odd names are the matcher's business, not ours. */
	assert_int_equal(parse_exts(e, build_sni(e, "*.a~b_c!", 8), &ch),
	                 CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "*.a~b_c!");
	/* SNI after other extensions, and two different GREASE types. */
	static const unsigned char grease[] = {
	    0x0a, 0x0a, 0, 0, 0x00, 0x17, 0, 0, 0x1a, 0x1a, 0, 1, 0};
	memcpy(e, grease, sizeof(grease));
	en = sizeof(grease) + build_sni(e + sizeof(grease), "g.test", 6);
	assert_int_equal(parse_exts(e, en, &ch), CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "g.test");
	/* An empty session_id (TLS 1.2 clients send one). */
	n = build_hello(hs, e, en);
	hs[HS_SID_LEN] = 0;
	/* Through a copy: valgrind takes glibc's fortified memmove for a
	 * memcpy and reports the overlap. */
	{
		unsigned char tail[sizeof(hs)];

		memcpy(tail, hs + HS_SID_LEN + 33, n - HS_SID_LEN - 33);
		memcpy(hs + HS_SID_LEN + 1, tail, n - HS_SID_LEN - 33);
	}
	n -= 32;
	hs[HS_LEN + 1] = (unsigned char)((n - 4) >> 8);
	hs[HS_LEN + 2] = (unsigned char)(n - 4);
	assert_int_equal(parse_hello(hs, n, &ch), CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "g.test");
}

/* The fields before the extensions. */
static void
test_malformed_fields(void **state)
{
	unsigned char hs[HS_EXTS + 64], e[64];
	struct clienthello ch;
	size_t en = build_sni(e, "a.test", 6), n;

	(void)state;
#define BAD(stmt)                                                              \
	do {                                                                   \
		n = build_hello(hs, e, en);                                    \
		stmt;                                                          \
		if (parse_hello(hs, n, &ch) != CLIENTHELLO_MALFORMED)          \
			fail_msg("%s: not malformed", #stmt);                  \
	} while (0)
	BAD(hs[HS_TYPE] = 2);  /* ServerHello */
	BAD(hs[HS_TYPE] = 0);  /* HelloRequest */
	BAD(hs[HS_TYPE] = 11); /* Certificate */
	BAD(hs[HS_SID_LEN] = 33);
	BAD(hs[HS_SID_LEN] = 255);
	BAD(hs[HS_CS_LEN + 1] = 0); /* no cipher suites */
	BAD(hs[HS_CS_LEN + 1] = 3); /* an odd length */
	BAD(hs[HS_CS_LEN] = 0xff);  /* past the message */
	BAD(hs[HS_COMP_LEN] = 0);   /* no compression method */
	BAD(hs[HS_COMP_LEN] = 200); /* past the message */
	/* A 33-byte session_id, with every length around it right. */
	BAD(n = insert(hs, n, HS_SID_LEN + 1, "\xab", 1); hs[HS_SID_LEN]++;
	    hs[HS_LEN + 2]++);
	/* The extensions block longer or shorter than the rest. */
	BAD(hs[HS_EXT_LEN + 1]++);
	BAD(hs[HS_EXT_LEN + 1]--);
	BAD(hs[HS_EXT_LEN] = 0xff);
	/* The message ends inside a field. */
	BAD(hs[HS_LEN + 2] = 20; n = 24);
	BAD(hs[HS_LEN + 2] = HS_SID_LEN - 4 + 10; n = HS_SID_LEN + 10);
	/* One byte after the compression methods: no room for a length. */
	BAD(hs[HS_LEN + 2] = HS_EXT_LEN + 1 - 4; n = HS_EXT_LEN + 1);
	/* An extension header cut by the end of the block. */
	BAD(hs[HS_EXT_LEN + 1] += 2; hs[HS_LEN + 2] += 2; hs[n++] = 0;
	    hs[n++] = 0x10);
	/* An extension longer than the block. */
	BAD(hs[HS_EXTS + 3] = 0xff);
	/* The message ends inside the server_name extension. */
	BAD(hs[HS_EXT_LEN + 1] -= 2; hs[HS_LEN + 2] -= 2; n -= 2);
#undef BAD
}

/* Duplicate extension types (RFC 8446 §4.2). */
static void
test_duplicate_extensions(void **state)
{
	unsigned char e[128];
	struct clienthello ch;
	size_t en;

	(void)state;
	/* supported_groups twice, SNI once. */
	static const unsigned char groups2[] = {0, 0x0a, 0, 4, 0, 2, 0, 0x1d,
	                                        0, 0x0a, 0, 4, 0, 2, 0, 0x17};
	memcpy(e, groups2, sizeof(groups2));
	en = sizeof(groups2) + build_sni(e + sizeof(groups2), "a.test", 6);
	assert_int_equal(parse_exts(e, en, &ch), CLIENTHELLO_MALFORMED);
	/* The same GREASE value twice. */
	static const unsigned char grease2[] = {0x2a, 0x2a, 0, 0, 0x2a,
	                                        0x2a, 0,    1, 0};
	assert_int_equal(parse_exts(grease2, sizeof(grease2), &ch),
	                 CLIENTHELLO_MALFORMED);
	/* Two server_name extensions, naming the same host or not. */
	en = build_sni(e, "a.test", 6);
	en += build_sni(e + en, "a.test", 6);
	assert_int_equal(parse_exts(e, en, &ch), CLIENTHELLO_MALFORMED);
	en = build_sni(e, "a.test", 6);
	en += build_sni(e + en, "b.test", 6);
	assert_int_equal(parse_exts(e, en, &ch), CLIENTHELLO_MALFORMED);
	/* Extension type 0xffff twice (the top bit of the table). */
	static const unsigned char top2[] = {0xff, 0xff, 0, 0,
	                                     0xff, 0xff, 0, 0};
	assert_int_equal(parse_exts(top2, sizeof(top2), &ch),
	                 CLIENTHELLO_MALFORMED);
	static const unsigned char top1[] = {0xff, 0xff, 0, 0,
	                                     0xff, 0xfe, 0, 0};
	assert_int_equal(parse_exts(top1, sizeof(top1), &ch), CLIENTHELLO_OK);
}

/* The server_name extension itself (RFC 6066 §3). */
static void
test_malformed_server_name(void **state)
{
	static const struct {
		const char *what;
		const char *ext;
		size_t n;
	} t[] = {
	    {"empty extension", "\0\0\0\0", 4},
	    {"one byte", "\0\0\0\1\0", 5},
	    {"empty list", "\0\0\0\2\0\0", 6},
	    {"list shorter than the extension",
	     "\0\0\0\x0b\0\x08\0\0\x06"
	     "a.test",
	     15},
	    {"list longer than the extension",
	     "\0\0\0\x0b\0\x0a\0\0\x06"
	     "a.test",
	     15},
	    {"name longer than the list",
	     "\0\0\0\x0b\0\x09\0\0\x07"
	     "a.test",
	     15},
	    {"name shorter than the list",
	     "\0\0\0\x0b\0\x09\0\0\x05"
	     "a.test",
	     15},
	    {"list too short for an entry", "\0\0\0\x04\0\x02\0\0", 8},
	    {"name_type 1",
	     "\0\0\0\x0b\0\x09\1\0\x06"
	     "a.test",
	     15},
	    {"name_type 255",
	     "\0\0\0\x0b\0\x09\xff\0\x06"
	     "a.test",
	     15},
	    {"empty name", "\0\0\0\x05\0\x03\0\0\0", 9},
	    {"two host_names",
	     "\0\0\0\x14\0\x12\0\0\x06"
	     "a.test"
	     "\0\0\x06"
	     "b.test",
	     24},
	    {"the same host_name twice",
	     "\0\0\0\x14\0\x12\0\0\x06"
	     "a.test"
	     "\0\0\x06"
	     "a.test",
	     24},
	    {"host_name then another type",
	     "\0\0\0\x14\0\x12\0\0\x06"
	     "a.test"
	     "\1\0\x06"
	     "b.test",
	     24},
	    {"NUL in the name",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a\0test",
	     15},
	    {"NUL at the end",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a.tes\0",
	     15},
	    {"space",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a test",
	     15},
	    {"tab",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a\ttest",
	     15},
	    {"CR LF",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a.t\r\nt",
	     15},
	    {"DEL",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "a.tes\x7f",
	     15},
	    {"raw UTF-8",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "\xc3\xbc"
	     "test",
	     15},
	    {"0xff",
	     "\0\0\0\x0b\0\x09\0\0\x06"
	     "\xff.test",
	     15},
	};
	unsigned char e[300 + 9];
	struct clienthello ch;
	char name[256];

	(void)state;
	for (size_t i = 0; i < NELEM(t); i++) {
		if (parse_exts(t[i].ext, t[i].n, &ch) != CLIENTHELLO_MALFORMED)
			fail_msg("%s: not malformed", t[i].what);
	}
	/* 256 bytes: longer than any DNS name. */
	memset(name, 'a', sizeof(name));
	assert_int_equal(parse_exts(e, build_sni(e, name, 256), &ch),
	                 CLIENTHELLO_MALFORMED);
}

/* Records: bad lengths, and what may not come between the hello's records. */
static void
test_malformed_records(void **state)
{
	struct bytes b = load("openssl-tls12-sni");
	struct bytes hs = handshake_of(b);
	unsigned char *r = frame_alloc(hs.n + 100, 50);
	size_t n;

	(void)state;
#define BAD(stmt, want)                                                        \
	do {                                                                   \
		n = frame(hs.p, hs.n, 50, 0x0301, r);                          \
		stmt;                                                          \
		expect_what(#stmt, r, n, MAX_16K, want);                       \
	} while (0)
	/* The first record. */
	BAD(r[3] = 0; r[4] = 0, CLIENTHELLO_MALFORMED);
	BAD(r[3] = 0x40; r[4] = 0x01, CLIENTHELLO_MALFORMED);
	BAD(r[3] = 0xff; r[4] = 0xff, CLIENTHELLO_MALFORMED);
	/* An empty handshake record before the hello (RFC 8446 §5.1). */
	BAD(n = insert(r, n, 0, "\x16\x03\x01\x00\x00", 5),
	    CLIENTHELLO_MALFORMED);
	BAD(r[0] = 23, CLIENTHELLO_NOT_TLS);
	/* The second record (at 55). */
	BAD(r[55] = 23, CLIENTHELLO_MALFORMED);
	BAD(r[55] = 21, CLIENTHELLO_MALFORMED);
	BAD(r[55] = 20, CLIENTHELLO_MALFORMED);
	BAD(r[56] = 2, CLIENTHELLO_MALFORMED);
	BAD(r[57] = 5, CLIENTHELLO_MALFORMED);
	BAD(r[58] = 0; r[59] = 0, CLIENTHELLO_MALFORMED);
	BAD(r[58] = 0x40; r[59] = 0x01, CLIENTHELLO_MALFORMED);
	/* An empty handshake record between two of the hello's. */
	BAD(n = insert(r, n, 55, "\x16\x03\x01\x00\x00", 5),
	    CLIENTHELLO_MALFORMED);
	/* A change_cipher_spec record slipped in between. */
	BAD(n = insert(r, n, 55, "\x14\x03\x01\x00\x01\x01", 6),
	    CLIENTHELLO_MALFORMED);
	/* Records of mixed legacy versions are fine. */
	BAD(r[57] = 3; r[112] = 0, CLIENTHELLO_OK);
#undef BAD
	free(r);
	free(hs.p);
	free(b.p);
}

/* ---- SNI against the CONNECT host ---- */

static int
matches(const char *sni, const char *connect_host)
{
	struct clienthello ch;
	struct host h;

	memset(&ch, 0, sizeof(ch));
	if (sni != NULL) {
		ch.has_sni = 1;
		ch.sni_len = strlen(sni);
		memcpy(ch.sni, sni, ch.sni_len + 1);
	}
	assert_int_equal(host_parse(connect_host, strlen(connect_host), 1, &h),
	                 0);
	return clienthello_sni_matches(&ch, &h);
}

static void
test_sni_matches(void **state)
{
	(void)state;
	assert_int_equal(matches("api.example.test", "api.example.test"), 1);
	assert_int_equal(matches("API.Example.Test", "api.example.test"), 1);
	assert_int_equal(matches("api.example.test", "API.EXAMPLE.TEST"), 1);
	assert_int_equal(matches("api.example.test.", "api.example.test"), 1);
	assert_int_equal(matches("api.example.test", "api.example.test."), 1);
	assert_int_equal(matches("api.example.test..", "api.example.test"), 0);
	assert_int_equal(matches("x.api.example.test", "api.example.test"), 0);
	assert_int_equal(matches("example.test", "api.example.test"), 0);
	assert_int_equal(matches("api.example.tes", "api.example.test"), 0);
	assert_int_equal(matches("evil.test", "api.example.test"), 0);
	assert_int_equal(matches(NULL, "api.example.test"), 0);
	/* A wildcard is not special on either side. */
	assert_int_equal(matches("*.example.test", "api.example.test"), 0);
	assert_int_equal(matches("*", "api.example.test"), 0);
	/* IP literals in SNI are not allowed (RFC 6066 §3). */
	assert_int_equal(matches("127.0.0.1", "127.0.0.1"), 0);
	assert_int_equal(matches("::1", "[::1]"), 0);
	assert_int_equal(matches("[::1]", "[::1]"), 0);
	assert_int_equal(matches("10.0.0.1", "api.example.test"), 0);
	/* Nor are names the CONNECT parser would refuse. */
	assert_int_equal(matches("api_x.example.test", "api.example.test"), 0);
	assert_int_equal(matches("api.example.test:443", "api.example.test"),
	                 0);
}

/* The names real clients sent, against their CONNECT hosts. */
static void
test_sni_matches_real(void **state)
{
	struct bytes b = load("openssl-mixedcase-dot");
	struct clienthello ch;
	struct host h;

	(void)state;
	assert_int_equal(parse(b.p, b.n, MAX_16K, &ch), CLIENTHELLO_OK);
	assert_string_equal(ch.sni, "Api.Example.TEST.");
	assert_int_equal(host_parse("api.example.test", 16, 1, &h), 0);
	assert_int_equal(clienthello_sni_matches(&ch, &h), 1);
	assert_int_equal(host_parse("api.example.tes", 15, 1, &h), 0);
	assert_int_equal(clienthello_sni_matches(&ch, &h), 0);
	free(b.p);

	b = load("curl-ip-nosni");
	assert_int_equal(parse(b.p, b.n, MAX_16K, &ch), CLIENTHELLO_OK);
	assert_int_equal(host_parse("127.0.0.1", 9, 1, &h), 0);
	assert_int_equal(clienthello_sni_matches(&ch, &h), 0);
	free(b.p);
}

static void
test_status_text(void **state)
{
	(void)state;
	assert_string_equal(clienthello_status_text(CLIENTHELLO_NEED_MORE),
	                    "need_more");
	assert_string_equal(clienthello_status_text(CLIENTHELLO_OK), "ok");
	assert_string_equal(clienthello_status_text(CLIENTHELLO_NOT_TLS),
	                    "not_tls");
	assert_string_equal(clienthello_status_text(CLIENTHELLO_MALFORMED),
	                    "malformed");
	assert_string_equal(clienthello_status_text(CLIENTHELLO_TOO_LARGE),
	                    "too_large");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_clients),
	    cmocka_unit_test(test_reframed),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_too_large_by_framing),
	    cmocka_unit_test(test_not_tls),
	    cmocka_unit_test(test_built_hello),
	    cmocka_unit_test(test_malformed_fields),
	    cmocka_unit_test(test_duplicate_extensions),
	    cmocka_unit_test(test_malformed_server_name),
	    cmocka_unit_test(test_malformed_records),
	    cmocka_unit_test(test_sni_matches),
	    cmocka_unit_test(test_sni_matches_real),
	    cmocka_unit_test(test_status_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
