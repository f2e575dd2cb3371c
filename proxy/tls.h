/*
 * tls: the server side of a TLS listener (clients use an https:// proxy
 * URL), and the names in a client certificate.
 *
 * A context is built per config snapshot, so a reload re-reads the
 * certificate, key and client CA (rotation is a SIGHUP).  Client
 * certificates are requested, not required: a client without one completes
 * the handshake and is answered at the HTTP level (no_identity); one whose
 * certificate does not chain to client_ca fails the handshake.
 */
#ifndef EGRESSD_TLS_H
#define EGRESSD_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct tls_server;

/* Build a context; NULL with the problem in err. */
struct tls_server *tls_server_new(const char *cert, const char *key,
                                  const char *client_ca, char *err,
                                  size_t errlen);

/* A new SSL object for one accepted connection, or NULL. */
SSL *tls_server_ssl(struct tls_server *t);

void tls_server_free(struct tls_server *t);

/*
 * Call fn with each name of the verified client certificate of ssl: its SAN
 * DNS names, then SAN URIs, then the subject CN.  Stops and returns what fn
 * returns when that is non-zero; returns 0 when there is no verified
 * certificate or no name made fn say so.
 */
int tls_peer_names(SSL *ssl, int (*fn)(const char *name, void *arg), void *arg);

#endif
