/*
 * admin: the admin listener, on the main thread's event loop.
 *
 *   /metrics  Prometheus text format (names prefixed egressd_)
 *   /healthz  200 while every worker's event loop is alive, else 503
 *   /readyz   200 while listeners are bound and egressd is not draining
 */
#ifndef EGRESSD_ADMIN_H
#define EGRESSD_ADMIN_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

struct admin;
struct worker;

/* Listen on address:port.  The workers array is borrowed for health
 * checks.  NULL with the problem in err. */
struct admin *admin_new(struct event_base *base, const char *address,
                        uint16_t port, struct worker *const *workers,
                        size_t nworkers, char *err, size_t errlen);

/* Stop listening and free. */
void admin_free(struct admin *a);

#endif
