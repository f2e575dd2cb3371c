/*
 * metrics: process-wide counters for /metrics, safe to bump from any worker
 * without a lock (relaxed atomics) and read by the admin endpoint.
 *
 * Labels are bounded by construction: decisions and reasons come from the
 * reason table, policies and gateway routes from the config (at most
 * METRICS_MAX_POLICIES and METRICS_MAX_ROUTES names over the process's
 * life, the rest counted as "other").  The requested host is never a
 * label.
 */
#ifndef EGRESSD_METRICS_H
#define EGRESSD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "reason.h"

#define METRICS_MAX_POLICIES 64
#define METRICS_MAX_ROUTES   64

enum metrics_hist {
	METRICS_DNS,     /* DNS lookup time, cache hits included */
	METRICS_CONNECT, /* upstream TCP connect time */
	METRICS_NHIST
};

/* Register a policy name (config load, any thread); returns its slot.
 * Names beyond METRICS_MAX_POLICIES share the last slot, "other". */
int metrics_policy_slot(const char *name);

/* The same for a gateway route's name. */
int metrics_route_slot(const char *name);

/* How a gateway request reached its origin. */
enum metrics_upstream {
	METRICS_UPSTREAM_NONE, /* it did not (refused, failed before) */
	METRICS_UPSTREAM_NEW,
	METRICS_UPSTREAM_RESUMED, /* a new connection, a resumed TLS session */
	METRICS_UPSTREAM_REUSED,  /* a kept connection */
};

/* A gateway request on the route in slot ended: its status (0: none was
 * sent), bytes each way, and its connection to the origin. */
void metrics_route(int slot, int status, uint64_t up, uint64_t down,
                   enum metrics_upstream u);

/* A request ended its decision with reason r under the policy in slot. */
void metrics_request(int slot, enum reason r, int report);

/* Connections accepted; tunnels and forwards in progress. */
void metrics_connection(void);
void metrics_active(int delta);

/* Bytes relayed, client → upstream and upstream → client. */
void metrics_bytes(uint64_t up, uint64_t down);

/* An observation in seconds. */
void metrics_observe(enum metrics_hist h, double seconds);

/* A reload: ok or failed; the generation grows on success. */
void metrics_reload(int ok);

/* Is the process ready (listeners bound, not draining)? */
void metrics_set_ready(int ready);
int metrics_ready(void);

/*
 * Write the Prometheus text exposition into buf (len bytes).  Returns the
 * length written, or 0 when it does not fit.
 */
size_t metrics_render(char *buf, size_t len, const char *version);

#endif
