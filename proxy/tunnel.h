/*
 * tunnel: the byte relay behind an established CONNECT.
 *
 * Bytes are moved between the client and the upstream as they arrive; when
 * buffer_bytes wait unsent on one side, reading from the other stops until
 * half of them have gone (a slow reader never makes egressd buffer without
 * bound).  An EOF from one side is passed on as a half-close (shutdown of
 * the write side) once everything before it has been delivered.  The tunnel
 * ends when both sides have closed, on an error, or after idle_ms without a
 * byte in either direction.
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

/*
 * Start relaying.  The tunnel takes ownership of both bufferevents (freed,
 * and their sockets closed, by tunnel_free).  Bytes already waiting in the
 * client's input are sent upstream first.  Returns NULL when out of memory
 * (the bufferevents are then still the caller's).
 */
struct tunnel *tunnel_new(struct bufferevent *client,
                          struct bufferevent *upstream, size_t buffer_bytes,
                          int idle_ms, tunnel_done_cb done, void *arg);

/* End the tunnel once max_bytes have been relayed in both directions
 * together (REASON_LIMIT_BYTES) or after max_ms (REASON_LIMIT_LIFETIME);
 * 0 means no limit. */
void tunnel_set_limits(struct tunnel *t, uint64_t max_bytes, int max_ms);

/* Bytes relayed so far: client → upstream, and upstream → client. */
uint64_t tunnel_bytes_up(const struct tunnel *t);
uint64_t tunnel_bytes_down(const struct tunnel *t);

/* Stop and free everything; safe from inside the done callback. */
void tunnel_free(struct tunnel *t);

#endif
