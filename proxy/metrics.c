#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Histogram bounds in seconds; the last bucket is +Inf. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct hist {
	atomic_ullong buckets[NBOUNDS + 1];
	atomic_ullong micros; /* sum, in microseconds */
};

/* Names registered for a label, each in a slot of its own; the last
 * slot is "other", shared by the names that came too late. */
struct names {
	pthread_mutex_t lock;
	char v[METRICS_MAX_POLICIES][65];
	atomic_int n;
};

_Static_assert(METRICS_MAX_ROUTES == METRICS_MAX_POLICIES,
               "struct names holds both");

static struct names policies = {.lock = PTHREAD_MUTEX_INITIALIZER};
static struct names routes = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Per route: responses by status class (0: none, 1xx..5xx), bytes each
 * way, and connections to the origin by kind. */
static atomic_ullong route_codes[METRICS_MAX_ROUTES][6];
static atomic_ullong route_bytes[METRICS_MAX_ROUTES][2];
static atomic_ullong route_conns[METRICS_MAX_ROUTES][4];

static atomic_ullong requests[METRICS_MAX_POLICIES][REASON_COUNT][2];
static atomic_ullong connections, bytes_up, bytes_down;
static atomic_llong active;
static atomic_ullong reloads_ok, reloads_failed, generation = 1;
static atomic_int ready;
static struct hist hists[METRICS_NHIST];

static int
names_slot(struct names *t, const char *name)
{
	int n, slot = METRICS_MAX_POLICIES - 1;

	/* A name "other" is the last slot's: one series, never two with
	 * the same labels. */
	if (strcmp(name, "other") == 0)
		return slot;
	pthread_mutex_lock(&t->lock);
	n = atomic_load(&t->n);
	for (int i = 0; i < n; i++)
		if (strcmp(t->v[i], name) == 0) {
			slot = i;
			goto out;
		}
	if (n < METRICS_MAX_POLICIES - 1) {
		snprintf(t->v[n], sizeof(t->v[n]), "%s", name);
		atomic_store(&t->n, n + 1);
		slot = n;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return slot;
}

/* The name in slot, or NULL when the slot is unused. */
static const char *
names_get(struct names *t, int slot)
{
	int n = atomic_load(&t->n);

	if (slot < n)
		return t->v[slot];
	return slot == METRICS_MAX_POLICIES - 1 ? "other" : NULL;
}

int
metrics_policy_slot(const char *name)
{
	return names_slot(&policies, name);
}

int
metrics_route_slot(const char *name)
{
	return names_slot(&routes, name);
}

void
metrics_route(int slot, int status, uint64_t up, uint64_t down,
              enum metrics_upstream u)
{
	int code = status >= 100 && status < 600 ? status / 100 : 0;

	if (slot < 0 || slot >= METRICS_MAX_ROUTES)
		slot = METRICS_MAX_ROUTES - 1;
	atomic_fetch_add_explicit(&route_codes[slot][code], 1,
	                          memory_order_relaxed);
	atomic_fetch_add_explicit(&route_bytes[slot][0], up,
	                          memory_order_relaxed);
	atomic_fetch_add_explicit(&route_bytes[slot][1], down,
	                          memory_order_relaxed);
	if (u != METRICS_UPSTREAM_NONE)
		atomic_fetch_add_explicit(&route_conns[slot][u], 1,
		                          memory_order_relaxed);
}

void
metrics_request(int slot, enum reason r, int report)
{
	if (slot < 0 || slot >= METRICS_MAX_POLICIES)
		slot = METRICS_MAX_POLICIES - 1;
	atomic_fetch_add_explicit(&requests[slot][r][report != 0], 1,
	                          memory_order_relaxed);
}

void
metrics_connection(void)
{
	atomic_fetch_add_explicit(&connections, 1, memory_order_relaxed);
}

void
metrics_active(int delta)
{
	atomic_fetch_add_explicit(&active, delta, memory_order_relaxed);
}

void
metrics_bytes(uint64_t up, uint64_t down)
{
	atomic_fetch_add_explicit(&bytes_up, up, memory_order_relaxed);
	atomic_fetch_add_explicit(&bytes_down, down, memory_order_relaxed);
}

void
metrics_observe(enum metrics_hist h, double seconds)
{
	size_t i = 0;

	while (i < NBOUNDS && seconds > bounds[i])
		i++;
	atomic_fetch_add_explicit(&hists[h].buckets[i], 1,
	                          memory_order_relaxed);
	atomic_fetch_add_explicit(&hists[h].micros,
	                          (unsigned long long)(seconds * 1e6),
	                          memory_order_relaxed);
}

void
metrics_reload(int ok)
{
	if (ok) {
		atomic_fetch_add(&reloads_ok, 1);
		atomic_fetch_add(&generation, 1);
	} else {
		atomic_fetch_add(&reloads_failed, 1);
	}
}

void
metrics_set_ready(int r)
{
	atomic_store(&ready, r);
}

int
metrics_ready(void)
{
	return atomic_load(&ready);
}

/* An appender that stops, and remembers, when the buffer is full. */
struct out {
	char *buf;
	size_t len, off;
	int full;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->off)
		o->full = 1;
	else
		o->off += (size_t)n;
}

static unsigned long long
get(atomic_ullong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void
render_hist(struct out *o, const char *name, const char *help, struct hist *h)
{
	unsigned long long cum = 0;

	put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i <= NBOUNDS; i++) {
		cum += get(&h->buckets[i]);
		if (i < NBOUNDS)
			put(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
			    cum);
		else
			put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
	}
	put(o, "%s_sum %.6f\n%s_count %llu\n", name,
	    (double)get(&h->micros) / 1e6, name, cum);
}

/* The gateway's families; a route appears once it has a request. */
static void
render_routes(struct out *o)
{
	static const char *const codes[] = {"none", "1xx", "2xx",
	                                    "3xx",  "4xx", "5xx"};
	static const char *const conns[] = {"", "new", "resumed", "reused"};

	put(o, "# HELP egressd_route_requests_total Gateway requests by "
	       "route and the class of the status sent (none: no answer).\n"
	       "# TYPE egressd_route_requests_total counter\n");
	for (int r = 0; r < METRICS_MAX_ROUTES; r++)
		for (int c = 0; c < 6; c++) {
			unsigned long long v = get(&route_codes[r][c]);

			if (v && names_get(&routes, r))
				put(o,
				    "egressd_route_requests_total{route=\"%s\","
				    "code=\"%s\"} %llu\n",
				    names_get(&routes, r), codes[c], v);
		}
	put(o, "# HELP egressd_route_bytes_total Gateway bytes by route and "
	       "direction (up: to the origin).\n"
	       "# TYPE egressd_route_bytes_total counter\n");
	for (int r = 0; r < METRICS_MAX_ROUTES; r++)
		if (get(&route_codes[r][0]) + get(&route_codes[r][1]) +
		        get(&route_codes[r][2]) + get(&route_codes[r][3]) +
		        get(&route_codes[r][4]) + get(&route_codes[r][5]) >
		    0 && names_get(&routes, r))
			put(o,
			    "egressd_route_bytes_total{route=\"%s\","
			    "direction=\"up\"} %llu\n"
			    "egressd_route_bytes_total{route=\"%s\","
			    "direction=\"down\"} %llu\n",
			    names_get(&routes, r), get(&route_bytes[r][0]),
			    names_get(&routes, r), get(&route_bytes[r][1]));
	put(o, "# HELP egressd_route_upstream_requests_total Gateway "
	       "requests by route and how they reached the origin: a new TLS "
	       "connection, one that resumed a session, or a kept one.\n"
	       "# TYPE egressd_route_upstream_requests_total counter\n");
	for (int r = 0; r < METRICS_MAX_ROUTES; r++)
		for (int c = 1; c < 4; c++) {
			unsigned long long v = get(&route_conns[r][c]);

			if (v && names_get(&routes, r))
				put(o,
				    "egressd_route_upstream_requests_total{"
				    "route=\"%s\",conn=\"%s\"} %llu\n",
				    names_get(&routes, r), conns[c], v);
		}
}

static const char *
decision_of(enum reason r, int report)
{
	if (report)
		return "report";
	if (r == REASON_ALLOWED)
		return "allow";
	return reason_is_denial(r) ? "deny" : "error";
}

size_t
metrics_render(char *buf, size_t len, const char *version)
{
	struct out o = {buf, len, 0, 0};

	put(&o,
	    "# HELP egressd_build_info Version of the running egressd.\n"
	    "# TYPE egressd_build_info gauge\n"
	    "egressd_build_info{version=\"%s\"} 1\n",
	    version);
	put(&o, "# HELP egressd_requests_total Requests by decision, reason "
	        "and policy.\n# TYPE egressd_requests_total counter\n");
	for (int p = 0; p < METRICS_MAX_POLICIES; p++) {
		const char *pname = names_get(&policies, p);

		if (!pname)
			continue;
		for (int r = 0; r < REASON_COUNT; r++)
			for (int rep = 0; rep < 2; rep++) {
				unsigned long long v =
				    get(&requests[p][r][rep]);

				/* Denials start at 0: rate() and increase()
				 * see the first one only when the series was
				 * there before it (a single denial must
				 * fire EgressdRequestDenied). */
				if (v == 0 &&
				    (rep || !reason_is_denial((enum reason)r)))
					continue;
				put(&o,
				    "egressd_requests_total{decision=\"%s\","
				    "reason=\"%s\",policy=\"%s\"} %llu\n",
				    decision_of((enum reason)r, rep),
				    reason_get((enum reason)r)->name, pname, v);
			}
	}
	put(&o,
	    "# HELP egressd_connections_total Client connections "
	    "accepted.\n# TYPE egressd_connections_total counter\n"
	    "egressd_connections_total %llu\n",
	    get(&connections));
	put(&o,
	    "# HELP egressd_active_requests Tunnels and forwarded requests "
	    "in progress.\n# TYPE egressd_active_requests gauge\n"
	    "egressd_active_requests %lld\n",
	    (long long)atomic_load_explicit(&active, memory_order_relaxed));
	put(&o,
	    "# HELP egressd_bytes_total Bytes relayed, by direction.\n"
	    "# TYPE egressd_bytes_total counter\n"
	    "egressd_bytes_total{direction=\"up\"} %llu\n"
	    "egressd_bytes_total{direction=\"down\"} %llu\n",
	    get(&bytes_up), get(&bytes_down));
	render_routes(&o);
	render_hist(&o, "egressd_dns_duration_seconds",
	            "Time to resolve an allowed name.", &hists[METRICS_DNS]);
	render_hist(&o, "egressd_connect_duration_seconds",
	            "Time to connect to an upstream address.",
	            &hists[METRICS_CONNECT]);
	put(&o,
	    "# HELP egressd_reloads_total Configuration reloads, by "
	    "result.\n# TYPE egressd_reloads_total counter\n"
	    "egressd_reloads_total{result=\"ok\"} %llu\n"
	    "egressd_reloads_total{result=\"failed\"} %llu\n",
	    get(&reloads_ok), get(&reloads_failed));
	put(&o,
	    "# HELP egressd_config_generation Configuration generation "
	    "in use (1 at start, one more per reload).\n"
	    "# TYPE egressd_config_generation gauge\n"
	    "egressd_config_generation %llu\n",
	    get(&generation));
	put(&o,
	    "# HELP egressd_ready Whether egressd accepts new "
	    "connections.\n# TYPE egressd_ready gauge\negressd_ready %d\n",
	    metrics_ready());
	return o.full ? 0 : o.off;
}
