/*
 * tls: the server side of a TLS listener (clients use an https:// proxy
 * URL), and the names in a client certificate.
 *
 * A context is built per config snapshot, so a reload re-reads the
 * certificate, key and client CA (rotation is a SIGHUP).  Client
 * certificates are requested, not required: a client without one completes
 * the handshake and is answered at the HTTP level (no_identity); one whose
 * certificate does not chain to client_ca fails the handshake.  Sessions
 * resume by ticket (TLS 1.2 and 1.3), within one context: tickets from
 * before a reload are not taken.
 */
#ifndef EGRESSD_TLS_H
#define EGRESSD_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct tls_server;

/*
 * Build the context of the listener on address:port; NULL with the problem
 * in err.  Its sessions resume only on that listener while its client CAs
 * stay the same, and a resumed session keeps the certificate it was made
 * with (the client sends none again).
 */
struct tls_server *tls_server_new(const char *cert, const char *key,
                                  const char *client_ca, const char *address,
                                  unsigned port, char *err, size_t errlen);

/* A new SSL object for one accepted connection, or NULL. */
SSL *tls_server_ssl(struct tls_server *t);

void tls_server_free(struct tls_server *t);

/*
 * tls_cert_names of the verified client certificate of ssl (on a resumed
 * session, the certificate the session was made with); 0 when there is
 * none.
 */
int tls_peer_names(SSL *ssl, int (*fn)(const char *name, void *arg), void *arg);

/*
 * Call fn with each name of cert: when it has a subjectAltName, its SAN DNS
 * names, then SAN URIs; only when it has none, its subject CN.  Stops and
 * returns what fn returns when that is non-zero; returns 0 when no name made
 * fn say so.  cert stays the caller's.
 */
int tls_cert_names(X509 *cert, int (*fn)(const char *name, void *arg),
                   void *arg);

#endif
