/*
 * origin: egressd's own TLS to an origin the gateway forwards to (issue 12).
 * One context per route: the trust it verifies with (the system store or a
 * CA file), TLS 1.2 at least, ALPN http/1.1, and the last session, so that
 * a new connection resumes instead of paying a full handshake.  Each
 * connection verifies the certificate against the origin's name (or IP
 * address) and sends the name as SNI.  A failed verification is an error
 * that names why; there is no fallback.
 */
#ifndef EGRESSD_ORIGIN_H
#define EGRESSD_ORIGIN_H

#include <event2/bufferevent.h>
#include <stddef.h>

#include "reason.h"

struct origin_tls;

/* A context that trusts ca_file (PEM), or the system store when NULL.
 * NULL with the problem in err. */
struct origin_tls *origin_tls_new(const char *ca_file, char *err,
                                  size_t errlen);

/* Free the context (NULL is fine); connections made with it keep what
 * they use. */
void origin_tls_free(struct origin_tls *t);

/* How the handshake ended, for done: REASON_ALLOWED with the TLS
 * bufferevent, or REASON_TLS_CERTIFICATE_ERROR / REASON_TLS_ERROR with
 * NULL and a short detail for the log (the verification error, or
 * OpenSSL's reason). */
struct origin_result {
	enum reason reason;
	struct bufferevent *bev; /* owned by the callee of done */
	const char *detail;      /* valid during the call only */
	int resumed;             /* the session was resumed */
	const char *version;     /* "TLSv1.3"...: static */
};

typedef void (*origin_done_cb)(void *arg, const struct origin_result *r);

struct origin_handshake;

/*
 * Start TLS to host (a normalised name or an IP literal) over tcp, a
 * connected socket bufferevent, which the TLS bufferevent takes over (and
 * frees when it is freed).  done is called once, from the event loop,
 * never from inside this call; the handshake is freed after it.  The
 * caller bounds the time with its own timer and origin_tls_cancel.
 * Returns the handshake, or NULL when out of memory (tcp is then still
 * the caller's).
 */
struct origin_handshake *origin_tls_start(struct origin_tls *t,
                                          struct bufferevent *tcp,
                                          const char *host, origin_done_cb done,
                                          void *arg);

/* Give up a handshake before done: its connection is closed, done is
 * never called. */
void origin_tls_cancel(struct origin_handshake *h);

#endif
