/*
 * conn: one client connection, from accept to close.
 *
 *   read head ─► parse ─► check name/port/method ─► resolve ─► check each
 *   address ─► connect (next address on failure) ─► 200 ─► tunnel ─► close
 *
 * Every refusal is answered from the reason table, then the connection is
 * closed once the answer has drained.  Every connection writes one decision
 * line and one close line.  A connection holds a reference to the config
 * snapshot it started with; reloads never change it under its feet.
 */
#ifndef EGRESSD_CONN_H
#define EGRESSD_CONN_H

#include <event2/event.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "resolve.h"

struct conn;
struct pool;

/* What the connections of one event loop share. */
struct conn_env {
	struct event_base *base;
	struct resolver *resolver;
	struct config *config; /* current snapshot; new connections ref it */
	struct pool *pool;     /* idle upstream connections, or NULL */
	size_t active;
	int draining;
	/* Called when the last connection closes while draining. */
	void (*on_drained)(struct conn_env *env);
	TAILQ_HEAD(conn_list, conn) conns;
};

/* Set up an env; it borrows base and resolver and takes a reference to
 * config. */
void conn_env_init(struct conn_env *env, struct event_base *base,
                   struct resolver *resolver, struct config *config);

/* Make a new snapshot current for connections accepted from now on. */
void conn_env_set_config(struct conn_env *env, struct config *config);

/* Drop the env's config reference (after every connection closed). */
void conn_env_clear(struct conn_env *env);

/*
 * Take over an accepted socket that came in on listener number `listener`
 * of the current snapshot.  The socket is closed on failure.
 */
void conn_accept(struct conn_env *env, evutil_socket_t fd,
                 const struct sockaddr *sa, socklen_t salen, size_t listener);

/* Draining: close the connections that are waiting for a request and have
 * received none of it (idle keep-alive clients); the rest may finish. */
void conn_close_idle(struct conn_env *env);

/* Close every connection now (drain deadline), logging `why`. */
void conn_close_all(struct conn_env *env, enum reason why);

#endif
