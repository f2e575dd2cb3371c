/*
 * pool: the idle upstream connections of one event loop, kept after a
 * plain-HTTP response so that the next request to the same destination
 * skips the connect.
 *
 * A connection is filed under the destination's name, port and address
 * and the identity of the client whose request it carried; it is handed
 * only to a later request of the same identity, for the same name and
 * port, whose policy check allowed that very address.  Every request is
 * still decided on its own: the pool saves the handshake, never a check.
 * An idle connection that says anything (bytes, EOF, an error) is closed,
 * as is one idle longer than idle_ms or the oldest when max are kept.
 */
#ifndef EGRESSD_POOL_H
#define EGRESSD_POOL_H

#include <event2/bufferevent.h>
#include <stddef.h>
#include <stdint.h>

#include "netset.h"

struct pool;

struct pool_key {
	const char *host; /* normalised name or IP literal */
	uint16_t port;
	struct netaddr addr;  /* the address connected to */
	const char *identity; /* the identity's name, or NULL */
	/* The gateway route whose TLS connection this is, or NULL for the
	 * proxy's plain ones: never handed across. */
	const char *route;
};

/* NULL when out of memory. */
struct pool *pool_new(struct event_base *base, size_t max, int idle_ms);

/* Close every idle connection and free the pool (NULL is fine). */
void pool_free(struct pool *p);

/* Keep an idle connection (its input must be empty); the pool owns bev
 * from now on, and closes it when it cannot keep it. */
void pool_put(struct pool *p, struct bufferevent *bev,
              const struct pool_key *key);

/* An idle connection for key->host, key->port and key->identity to one
 * of the naddrs addresses (key->addr is ignored), or NULL.  *which is the
 * index of its address.  The caller owns the bufferevent; its callbacks
 * are cleared and reading is off. */
struct bufferevent *pool_take(struct pool *p, const struct pool_key *key,
                              const struct netaddr *addrs, size_t naddrs,
                              size_t *which);

/* Close every idle connection (draining, reload). */
void pool_clear(struct pool *p);

#endif
