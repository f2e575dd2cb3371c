/*
 * clienthello: the server name from a TLS ClientHello.  No I/O.
 */
#include "clienthello.h"

#include <stdint.h>
#include <string.h>

#define RECORD_HEADER          5
#define CONTENT_HANDSHAKE      22
#define HANDSHAKE_CLIENT_HELLO 1
#define EXT_SERVER_NAME        0
#define NAME_TYPE_HOST_NAME    0
#define SESSION_ID_MAX         32
#define SNI_MAX                255

/*
 * The handshake bytes of the ClientHello, read in order across the record
 * headers between them.  Each read either takes its bytes or fails with the
 * status that clienthello_parse returns; CLIENTHELLO_OK from a read means
 * only "got them".
 */
struct reader {
	const unsigned char *buf;
	size_t len;     /* bytes received */
	size_t max;     /* bytes the ClientHello may occupy */
	size_t pos;     /* the next byte of buf */
	size_t frag;    /* handshake bytes left in the current record */
	size_t records; /* records begun */
	size_t left;    /* bytes left in the handshake message */
};

/* May the bytes of buf up to end (exclusive) be read?  Past max, no
 * answer but TOO_LARGE can come; before it, the bytes may yet arrive. */
static enum clienthello_status
reader_need(const struct reader *r, size_t end)
{
	if (end > r->max)
		return CLIENTHELLO_TOO_LARGE;
	if (end > r->len)
		return CLIENTHELLO_NEED_MORE;
	return CLIENTHELLO_OK;
}

/*
 * The header of the next record, one byte at a time: the type and version
 * bytes each decide alone.  The first record is what tells TLS from other
 * protocols; a bad later record is a broken ClientHello.
 */
static enum clienthello_status
reader_record(struct reader *r)
{
	enum clienthello_status bad =
	    r->records == 0 ? CLIENTHELLO_NOT_TLS : CLIENTHELLO_MALFORMED;
	unsigned char h[RECORD_HEADER];
	size_t length;

	for (size_t i = 0; i < RECORD_HEADER; i++) {
		enum clienthello_status st = reader_need(r, r->pos + i + 1);

		if (st != CLIENTHELLO_OK)
			return st;
		h[i] = r->buf[r->pos + i];
		/* RFC 8446 §5.1: handshake messages are not interleaved with
		 * other record types, so every record is a handshake one. */
		if (i == 0 && h[0] != CONTENT_HANDSHAKE)
			return bad;
		/* legacy_record_version: 0x0301 from most clients, 0x0303 or
		 * 0x0300 from some (RFC 5246 App. E.1). */
		if ((i == 1 && h[1] != 3) || (i == 2 && h[2] > 4))
			return bad;
	}
	length = (size_t)h[3] << 8 | h[4];
	/* RFC 8446 §5.1: no empty handshake fragments, at most 2^14. */
	if (length == 0 || length > CLIENTHELLO_RECORD_MAX)
		return CLIENTHELLO_MALFORMED;
	r->pos += RECORD_HEADER;
	r->frag = length;
	r->records++;
	return CLIENTHELLO_OK;
}

/* Take n handshake bytes into dst (NULL: skip them). */
static enum clienthello_status
reader_take(struct reader *r, unsigned char *dst, size_t n)
{
	while (n > 0) {
		enum clienthello_status st;
		size_t k;

		if (r->frag == 0 && (st = reader_record(r)) != CLIENTHELLO_OK)
			return st;
		k = n < r->frag ? n : r->frag;
		if ((st = reader_need(r, r->pos + k)) != CLIENTHELLO_OK)
			return st;
		if (dst != NULL) {
			memcpy(dst, r->buf + r->pos, k);
			dst += k;
		}
		r->pos += k;
		r->frag -= k;
		n -= k;
	}
	return CLIENTHELLO_OK;
}

/* Take n bytes of the handshake message: malformed when it has fewer. */
static enum clienthello_status
hello_take(struct reader *r, unsigned char *dst, size_t n)
{
	if (n > r->left)
		return CLIENTHELLO_MALFORMED;
	r->left -= n;
	return reader_take(r, dst, n);
}

/* A big-endian integer of n (1..3) bytes of the message. */
static enum clienthello_status
hello_uint(struct reader *r, size_t n, size_t *v)
{
	unsigned char b[3];
	enum clienthello_status st = hello_take(r, b, n);

	*v = 0;
	if (st == CLIENTHELLO_OK)
		for (size_t i = 0; i < n; i++)
			*v = *v << 8 | b[i];
	return st;
}

/*
 * Could n more handshake bytes fit before max?  They fill what is left of
 * the current record, then records of at most 2^14 bytes with a header
 * each: fewer record bytes than that are impossible.
 */
static int
reader_fits(const struct reader *r, size_t n)
{
	size_t room = r->max - r->pos, rest, records;

	if (n <= r->frag)
		return n <= room;
	rest = n - r->frag;
	records = (rest + CLIENTHELLO_RECORD_MAX - 1) / CLIENTHELLO_RECORD_MAX;
	return n + records * RECORD_HEADER <= room;
}

#define TAKE(expr)                                                             \
	do {                                                                   \
		enum clienthello_status st_ = (expr);                          \
		if (st_ != CLIENTHELLO_OK)                                     \
			return st_;                                            \
	} while (0)

/* RFC 6066 §3: a ServerNameList of exactly one host_name. */
static enum clienthello_status
hello_server_name(struct reader *r, size_t ext_len, struct clienthello *ch)
{
	unsigned char name[SNI_MAX];
	size_t list, type, n;

	if (ext_len < 2)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_uint(r, 2, &list));
	if (list != ext_len - 2 || list < 3)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_uint(r, 1, &type));
	if (type != NAME_TYPE_HOST_NAME)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_uint(r, 2, &n));
	/* The one entry fills the list: a second one, of any type, is not
	 * allowed. */
	if (n != list - 3 || n == 0 || n > SNI_MAX)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_take(r, name, n));
	/* Visible ASCII only: no NUL, no controls, no spaces, no raw UTF-8
	 * (internationalised names travel as A-labels). */
	for (size_t i = 0; i < n; i++)
		if (name[i] < 0x21 || name[i] > 0x7e)
			return CLIENTHELLO_MALFORMED;
	memcpy(ch->sni, name, n);
	ch->sni[n] = '\0';
	ch->sni_len = n;
	ch->has_sni = 1;
	return CLIENTHELLO_OK;
}

/* The extensions block, which fills the rest of the message. */
static enum clienthello_status
hello_extensions(struct reader *r, struct clienthello *ch)
{
	/* One bit for each of the 2^16 extension types. */
	unsigned char seen[65536 / 8];
	size_t total;

	TAKE(hello_uint(r, 2, &total));
	if (total != r->left)
		return CLIENTHELLO_MALFORMED;
	memset(seen, 0, sizeof(seen));
	while (r->left > 0) {
		size_t type, len, end;

		TAKE(hello_uint(r, 2, &type));
		TAKE(hello_uint(r, 2, &len));
		if (len > r->left)
			return CLIENTHELLO_MALFORMED;
		/* RFC 8446 §4.2: no two extensions of the same type. */
		if (seen[type / 8] & 1u << (type % 8))
			return CLIENTHELLO_MALFORMED;
		seen[type / 8] |= (unsigned char)(1u << (type % 8));
		end = r->left - len;
		if (type == EXT_SERVER_NAME)
			TAKE(hello_server_name(r, len, ch));
		else
			TAKE(hello_take(r, NULL, len));
		/* What an extension's parser took is exactly the extension. */
		if (r->left != end)
			return CLIENTHELLO_MALFORMED;
	}
	return CLIENTHELLO_OK;
}

/* RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2, whose layout it keeps). */
static enum clienthello_status
hello(struct reader *r, struct clienthello *ch)
{
	unsigned char type, length[3];
	size_t n;

	TAKE(reader_take(r, &type, 1));
	if (type != HANDSHAKE_CLIENT_HELLO)
		return CLIENTHELLO_MALFORMED;
	TAKE(reader_take(r, length, 3));
	r->left = (size_t)length[0] << 16 | (size_t)length[1] << 8 | length[2];
	if (!reader_fits(r, r->left))
		return CLIENTHELLO_TOO_LARGE;

	/* legacy_version (not checked: servers negotiate down from any),
	 * random. */
	TAKE(hello_take(r, NULL, 2 + 32));
	TAKE(hello_uint(r, 1, &n));
	if (n > SESSION_ID_MAX)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_take(r, NULL, n));
	TAKE(hello_uint(r, 2, &n));
	if (n < 2 || n % 2 != 0)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_take(r, NULL, n));
	TAKE(hello_uint(r, 1, &n));
	if (n < 1)
		return CLIENTHELLO_MALFORMED;
	TAKE(hello_take(r, NULL, n));
	/* Extensions may be absent altogether (RFC 5246 §7.4.1.2). */
	if (r->left == 0)
		return CLIENTHELLO_OK;
	return hello_extensions(r, ch);
}

enum clienthello_status
clienthello_parse(const unsigned char *buf, size_t len, size_t max,
                  struct clienthello *out)
{
	struct reader r = {buf, len, max, 0, 0, 0, 0};
	enum clienthello_status st;

	memset(out, 0, sizeof(*out));
	st = hello(&r, out);
	if (st == CLIENTHELLO_OK)
		out->bytes = r.pos;
	else
		memset(out, 0, sizeof(*out));
	return st;
}

const char *
clienthello_status_text(enum clienthello_status st)
{
	switch (st) {
	case CLIENTHELLO_NEED_MORE:
		return "need_more";
	case CLIENTHELLO_OK:
		return "ok";
	case CLIENTHELLO_NOT_TLS:
		return "not_tls";
	case CLIENTHELLO_MALFORMED:
		return "malformed";
	case CLIENTHELLO_TOO_LARGE:
		return "too_large";
	}
	return "unknown";
}

int
clienthello_sni_matches(const struct clienthello *ch, const struct host *host)
{
	struct host sni;

	if (!ch->has_sni || host->kind != HOST_NAME)
		return 0;
	if (host_parse(ch->sni, ch->sni_len, 1, &sni) != 0 ||
	    sni.kind != HOST_NAME)
		return 0;
	return strcmp(sni.name, host->name) == 0;
}
