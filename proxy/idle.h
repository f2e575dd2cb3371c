/*
 * idle: the idle timeout of a relay (a tunnel, a forwarded request).
 *
 * Activity only notes the time, which is cheap enough for every read.  The
 * timer is armed once for the whole limit; when it fires it looks at how
 * long it has really been quiet, and either reports expiry or waits for
 * the rest.
 */
#ifndef EGRESSD_IDLE_H
#define EGRESSD_IDLE_H

#include <event2/event.h>
#include <sys/time.h>

typedef void (*idle_expired_cb)(void *arg);

struct idle {
	struct event *ev;
	struct event_base *base;
	struct timeval last, limit;
	idle_expired_cb expired;
	void *arg;
};

/* Arm it: after ms milliseconds without idle_touch, expired(arg) is called
 * once.  0, or -1 when out of memory (nothing to free then). */
int idle_start(struct idle *it, struct event_base *base, int ms,
               idle_expired_cb expired, void *arg);

/* Something happened now. */
void idle_touch(struct idle *it);

/* Disarm: expired will not be called. */
void idle_stop(struct idle *it);

/* Free what idle_start took (a zeroed struct is fine too). */
void idle_free(struct idle *it);

#endif
