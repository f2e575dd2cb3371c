/*
 * worker: one thread, one event loop, one resolver, its own listening
 * sockets (SO_REUSEPORT: the kernel spreads new connections over the
 * workers), and the connections it accepted.  Nothing on the request path
 * is shared with other workers but the read-only config snapshot and the
 * metrics counters.
 */
#ifndef EGRESSD_WORKER_H
#define EGRESSD_WORKER_H

#include <stddef.h>

#include "config.h"

struct worker;

/*
 * Create worker `index` for snapshot c: its event loop, resolver and
 * listeners, bound but not yet accepting.  Returns NULL with the problem in
 * err.
 */
struct worker *worker_new(int index, struct config *c, char *err,
                          size_t errlen);

/* Start the thread; it accepts from here on.  0 or -1. */
int worker_start(struct worker *w);

/* From another thread: connections accepted from now on use c. */
void worker_set_config(struct worker *w, struct config *c);

/* From another thread: wait until the worker uses c for new requests, at
 * most timeout_ms.  0, or -1 on timeout. */
int worker_wait_config(struct worker *w, const struct config *c,
                       int timeout_ms);

/* From another thread: stop accepting, close idle connections, and let the
 * thread end once the rest have finished. */
void worker_drain(struct worker *w);

/* From another thread: close every connection now and end the thread. */
void worker_stop(struct worker *w);

/* Has the thread ended (its loop exited)?  1 or 0. */
int worker_done(const struct worker *w);

/* Seconds since the worker's loop last ran its heartbeat timer. */
double worker_silence(const struct worker *w);

/* Connections open in this worker. */
size_t worker_active(const struct worker *w);

/* Join the thread (if started) and free everything. */
void worker_free(struct worker *w);

#endif
