/*
 * conn: one client connection, from accept to close, and what the modules
 * of the request path share.  A request passes through, in order:
 *
 *   conn     accept (caps), read and parse the head (limits, timeouts)
 *   proxy    the target, loop check, identify, check name/port/method
 *   dial     resolve, admit each address, connect (next address on
 *            failure) or take a pooled upstream connection
 *   proxy    CONNECT: 200 and tunnel (the hello check); plain HTTP: forward
 *   request  the decision line, then the close line
 *   conn     the next request on a kept-alive connection, or close
 *
 * Every refusal leaves through conn_fail: the decision line, the answer from
 * the reason table (answer), then the close once it has drained.  A
 * connection holds a reference to the config snapshot it started with;
 * reloads never change it under its feet.
 */
#ifndef EGRESSD_CONN_H
#define EGRESSD_CONN_H

#include <event2/event.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "policy.h"
#include "request.h"
#include "resolve.h"

struct pool;
struct tunnel;
struct forward;
struct bufferevent;
struct origin_handshake;

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

enum conn_state {
	CONN_HEAD,       /* waiting for (the rest of) a request head */
	CONN_RESOLVING,  /* waiting for DNS */
	CONN_CONNECTING, /* connecting to r.addrs[r.next_addr - 1] */
	CONN_TUNNEL,     /* relaying a CONNECT tunnel */
	CONN_FORWARD,    /* forwarding a plain-HTTP request */
	CONN_LINGER,     /* the last answer is draining; then close */
	CONN_CLOSED,
};

struct conn {
	struct conn_env *env;
	TAILQ_ENTRY(conn) link;
	unsigned long long id;
	enum conn_state state;
	unsigned nrequests; /* requests completed on this connection */

	struct config *config; /* the snapshot this connection started with */
	const struct config_listener *listener;
	size_t listener_index;
	struct netaddr client_addr;
	char client[NETADDR_STRLEN + 8];
	char listen_addr[NETADDR_STRLEN + 8];

	struct bufferevent *client_bev; /* owned until a tunnel takes it */
	struct bufferevent *up_bev;
	struct event *timer; /* head, connect and linger timeouts */
	struct resolve_query *query;
	struct tunnel *tunnel;
	struct forward *forward;
	struct origin_handshake
	    *handshake; /* the gateway's TLS to its origin */
	size_t discarded;
	/* The dial of the current request (dial.h). */
	int (*admit)(struct conn *c, const struct netaddr *a,
	             struct verdict *v);
	void (*connected)(struct conn *c);

	struct request r;
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

/*
 * Refuse or fail the current request: its decision line, the answer from
 * the reason table (with the verdict and the address when given), then the
 * close once the answer has drained.  Every failure leaves through here.
 */
void conn_fail(struct conn *c, enum reason why, const struct verdict *v,
               const struct netaddr *addr);

/* Close now: the close line if due, every resource freed, c too.
 * Idempotent; not from a callback that uses c afterwards. */
void conn_close(struct conn *c);

/* The current request is done (its status and reason set): its close line,
 * then the next request on this connection when keep is 1, else close once
 * what was written has drained. */
void conn_request_done(struct conn *c, int keep);

/* Free the upstream connection and a forward on it, if any. */
void conn_free_upstream(struct conn *c);

/* Point the connection's one timer at a new job, ms from now. */
void conn_set_timer(struct conn *c, event_callback_fn cb, int ms);

#endif
