/*
 * tunnel: the byte relay behind an established CONNECT.
 *
 * Bytes are moved between the client and the upstream as they arrive; when
 * buffer_bytes wait unsent on one side, reading from the other stops until
 * they have gone (a slow reader never makes egressd buffer without bound).
 * An EOF from one side is passed on as a half-close (shutdown of the write
 * side) once everything before it has been delivered.  The tunnel ends when
 * both sides have closed, on an error, or after idle_ms without a byte in
 * either direction.
 *
 * Between two plain sockets, small exchanges are copied through one buffer
 * per thread and written on at once; a direction whose read fills that
 * buffer is a stream, and from then on its bytes never enter egressd's
 * memory: they move with splice(2) through a pipe taken from a per-thread
 * pool while they are in flight.  A client on a TLS listener is relayed
 * through its bufferevent instead.
 *
 * A hello check holds the client's first bytes until a callback has judged
 * them (the TLS ClientHello's SNI, see conn.c); only then are they sent on,
 * unchanged.
 */
#ifndef EGRESSD_TUNNEL_H
#define EGRESSD_TUNNEL_H

#include <event2/bufferevent.h>
#include <stdint.h>

#include "reason.h"

struct tunnel;

/* Called once, as the last thing the tunnel does in that callback; the
 * receiver then calls tunnel_free. */
typedef void (*tunnel_done_cb)(void *arg, enum reason why);

/* Judge the client's first len bytes: 1 pass them on, 0 read more, -1
 * refuse the tunnel with *why.  When final no more bytes will come
 * (TUNNEL_HELLO_TIMEOUT: the client's time is up; TUNNEL_HELLO_EOF: it
 * closed): the answer must be 1 or -1. */
enum { TUNNEL_HELLO_TIMEOUT = 1, TUNNEL_HELLO_EOF = 2 };
typedef int (*tunnel_hello_cb)(void *arg, const unsigned char *buf, size_t len,
                               int final, enum reason *why);

struct tunnel_opts {
	size_t buffer_bytes;
	int idle_ms;
	tunnel_done_cb done;
	tunnel_hello_cb hello; /* NULL: no check */
	size_t hello_max;      /* bytes the check may hold */
	int hello_ms;          /* time the client has to send them */
	const void *refusal;   /* sent to the client when the check refuses */
	size_t refusal_len;
	void *arg;
};

/*
 * Start relaying.  The tunnel takes ownership of both bufferevents and
 * their sockets (closed by tunnel_free).  Bytes still waiting in their
 * buffers are relayed first.  Returns NULL when out of memory (the
 * bufferevents are then still the caller's).
 */
struct tunnel *tunnel_new(struct bufferevent *client,
                          struct bufferevent *upstream,
                          const struct tunnel_opts *opts);

/* End the tunnel once max_bytes have been relayed in both directions
 * together (REASON_LIMIT_BYTES) or after max_ms (REASON_LIMIT_LIFETIME);
 * 0 means no limit. */
void tunnel_set_limits(struct tunnel *t, uint64_t max_bytes, int max_ms);

/* Bytes relayed so far: client → upstream, and upstream → client. */
uint64_t tunnel_bytes_up(const struct tunnel *t);
uint64_t tunnel_bytes_down(const struct tunnel *t);

/* Stop and free everything; safe from inside the done callback. */
void tunnel_free(struct tunnel *t);

/* Close the calling thread's idle pipes (a worker's last act). */
void tunnel_pool_clear(void);

#endif
