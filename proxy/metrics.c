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

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char names[METRICS_MAX_POLICIES][65];
static atomic_int npolicies;

static atomic_ullong requests[METRICS_MAX_POLICIES][REASON_COUNT][2];
static atomic_ullong connections, bytes_up, bytes_down;
static atomic_llong active;
static atomic_ullong reloads_ok, reloads_failed, generation = 1;
static atomic_int ready;
static struct hist hists[METRICS_NHIST];

int
metrics_policy_slot(const char *name)
{
	int n, slot = METRICS_MAX_POLICIES - 1;

	pthread_mutex_lock(&names_lock);
	n = atomic_load(&npolicies);
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0) {
			slot = i;
			goto out;
		}
	if (n < METRICS_MAX_POLICIES - 1) {
		snprintf(names[n], sizeof(names[n]), "%s", name);
		atomic_store(&npolicies, n + 1);
		slot = n;
	}
out:
	pthread_mutex_unlock(&names_lock);
	return slot;
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
	int n = atomic_load(&npolicies);

	put(&o,
	    "# HELP egressd_build_info Version of the running egressd.\n"
	    "# TYPE egressd_build_info gauge\n"
	    "egressd_build_info{version=\"%s\"} 1\n",
	    version);
	put(&o, "# HELP egressd_requests_total Requests by decision, reason "
	        "and policy.\n# TYPE egressd_requests_total counter\n");
	for (int p = 0; p < METRICS_MAX_POLICIES; p++) {
		const char *pname = p < n ? names[p] : "other";

		if (p >= n && p != METRICS_MAX_POLICIES - 1)
			continue;
		for (int r = 0; r < REASON_COUNT; r++)
			for (int rep = 0; rep < 2; rep++) {
				unsigned long long v =
				    get(&requests[p][r][rep]);

				if (v == 0)
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
