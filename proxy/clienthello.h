/*
 * clienthello: read the server name (SNI) from the first bytes a client sends
 * into a tunnel, without terminating TLS.  No I/O, no allocation.
 *
 * The caller keeps every byte received since the tunnel opened and calls
 * clienthello_parse on all of them (from the start) each time more arrive,
 * until the answer is no longer CLIENTHELLO_NEED_MORE.  The bytes are then
 * forwarded unchanged.
 *
 * The parser reads the bytes in order and answers at the first byte that
 * decides: the answer for a buffer never contradicts the answer for any
 * longer buffer with the same start (a prefix says NEED_MORE or the same
 * thing).  What it checks:
 *
 * - Records (RFC 8446 §5.1): content type 22 (handshake), legacy record
 *   version 0x0300..0x0304 (clients send 0x0301, some 0x0303; RFC 5246
 *   App. E.1 allows 0x0300), length 1..16384.  When the first record is not
 *   that (another content type, an SSLv2-style hello with its high bit set,
 *   HTTP text, a version outside 3.0..3.4) the answer is CLIENTHELLO_NOT_TLS;
 *   a bad length on the first record, or anything wrong with a later record
 *   while the ClientHello is still incomplete (including a record of another
 *   type: handshake messages must not be interleaved), is
 *   CLIENTHELLO_MALFORMED.
 * - The handshake message (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): type 1,
 *   spread over as many records as it takes; legacy_version (not checked),
 *   random, session_id of at most 32 bytes, cipher_suites of an even length
 *   of at least 2, at least one compression method, then either nothing or
 *   an extensions block that fills the rest of the message exactly.  Each
 *   extension must fit; an extension type seen twice is malformed (RFC 8446
 *   §4.2).
 * - server_name (RFC 6066 §3): the list fills the extension exactly and holds
 *   exactly one entry, of name_type host_name, 1..255 bytes of visible ASCII
 *   (0x21..0x7e).  Anything else is malformed.
 *
 * Bytes after the ClientHello (the rest of its last record, later records)
 * are not looked at.
 */
#ifndef EGRESSD_CLIENTHELLO_H
#define EGRESSD_CLIENTHELLO_H

#include <stddef.h>

#include "host.h"

/* The largest record payload (2^14, RFC 8446 §5.1). */
#define CLIENTHELLO_RECORD_MAX 16384

enum clienthello_status {
	CLIENTHELLO_NEED_MORE, /* a valid prefix: read more bytes */
	CLIENTHELLO_OK,        /* a complete ClientHello was parsed */
	CLIENTHELLO_NOT_TLS,   /* the first bytes are not a TLS handshake
	                          record (SSLv2-style hellos, HTTP text,
	                          another record type) */
	CLIENTHELLO_MALFORMED, /* TLS framing, but the records or the
	                          ClientHello are broken */
	CLIENTHELLO_TOO_LARGE, /* the ClientHello would need more than max
	                          bytes of records */
};

struct clienthello {
	int has_sni;   /* a server_name extension with a host_name entry */
	char sni[256]; /* that name, NUL-terminated, as sent (not normalised) */
	size_t sni_len;
	size_t bytes; /* record bytes the ClientHello occupied, from the start
	                 of buf to its last byte (headers included) */
};

/*
 * Parse the ClientHello at the start of buf (len bytes: everything received
 * so far).  Only the first max bytes are ever looked at: when the ClientHello
 * needs a byte at or past offset max, the answer is CLIENTHELLO_TOO_LARGE (as
 * soon as the handshake length shows it cannot fit, or once that byte is
 * needed).  *out is filled when the answer is CLIENTHELLO_OK and zeroed
 * otherwise.  Never reads buf past len (buf may be NULL when len is 0);
 * allocates nothing, and uses about 8 KiB of stack (a bit for each
 * extension type).
 */
enum clienthello_status clienthello_parse(const unsigned char *buf, size_t len,
                                          size_t max, struct clienthello *out);

/* A short lowercase token for logs ("need_more", "ok", "not_tls",
 * "malformed", "too_large"); never NULL. */
const char *clienthello_status_text(enum clienthello_status st);

/*
 * Does the SNI name the CONNECT host?  The SNI is normalised as a CONNECT
 * host is (host_parse: case, one trailing dot) and must be a DNS name (RFC
 * 6066 §3 does not allow IP literals) equal to host->name, which must be a
 * name too.  A "*" in the SNI is not special: it never parses as a name.
 * Returns 1 or 0 (0 also when ch has no SNI).
 */
int clienthello_sni_matches(const struct clienthello *ch,
                            const struct host *host);

#endif
