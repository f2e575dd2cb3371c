#include "resolve.h"

#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "host.h"

/* A socket c-ares asked us to watch. */
struct watch {
	ares_socket_t fd;
	struct event *ev;
	struct watch *next;
};

struct cache_entry {
	char name[HOST_NAME_MAX_LEN + 1];
	struct netaddr addrs[RESOLVE_MAX_ADDRS];
	size_t naddrs;
	time_t expires; /* CLOCK_MONOTONIC seconds */
	struct cache_entry *hnext;
	TAILQ_ENTRY(cache_entry) lru;
};

struct resolve_query {
	struct resolver *r;
	char name[HOST_NAME_MAX_LEN + 1];
	resolve_cb cb; /* NULL once cancelled */
	void *arg;
	struct event *deliver;
	enum resolve_status status;
	struct netaddr addrs[RESOLVE_MAX_ADDRS];
	size_t naddrs;
	int in_ares; /* c-ares still owns a callback for it */
	TAILQ_ENTRY(resolve_query) link;
};

struct resolver {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct watch *watches;
	int max_ttl_s;
	size_t cache_max, cache_n, nbuckets;
	struct cache_entry **buckets;
	TAILQ_HEAD(cache_lru_head, cache_entry) lru;
	TAILQ_HEAD(, resolve_query) queries;
};

static time_t
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static size_t
hash_name(const char *s)
{
	size_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct cache_entry **
cache_slot(struct resolver *r, const char *name)
{
	struct cache_entry **pp = &r->buckets[hash_name(name) % r->nbuckets];

	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void
cache_remove(struct resolver *r, struct cache_entry *e)
{
	struct cache_entry **pp = cache_slot(r, e->name);

	*pp = e->hnext;
	TAILQ_REMOVE(&r->lru, e, lru);
	r->cache_n--;
	free(e);
}

static const struct cache_entry *
cache_get(struct resolver *r, const char *name)
{
	struct cache_entry *e;

	if (r->cache_max == 0 || !(e = *cache_slot(r, name)))
		return NULL;
	if (e->expires <= now_s()) {
		cache_remove(r, e);
		return NULL;
	}
	TAILQ_REMOVE(&r->lru, e, lru);
	TAILQ_INSERT_HEAD(&r->lru, e, lru);
	return e;
}

static void
cache_put(struct resolver *r, const char *name, const struct netaddr *addrs,
          size_t n, long ttl)
{
	struct cache_entry *e, **pp;

	if (r->cache_max == 0 || ttl <= 0)
		return;
	if (ttl > r->max_ttl_s)
		ttl = r->max_ttl_s;
	pp = cache_slot(r, name);
	if (*pp)
		cache_remove(r, *pp);
	if (r->cache_n >= r->cache_max)
		cache_remove(r, TAILQ_LAST(&r->lru, cache_lru_head));
	if (!(e = calloc(1, sizeof(*e))))
		return;
	snprintf(e->name, sizeof(e->name), "%s", name);
	memcpy(e->addrs, addrs, n * sizeof(*addrs));
	e->naddrs = n;
	e->expires = now_s() + ttl;
	pp = cache_slot(r, name);
	*pp = e;
	TAILQ_INSERT_HEAD(&r->lru, e, lru);
	r->cache_n++;
}

static void
query_free(struct resolve_query *q)
{
	TAILQ_REMOVE(&q->r->queries, q, link);
	event_free(q->deliver);
	free(q);
}

/* Runs from the event loop, so callers never see a callback from inside
 * resolve_start. */
static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_query *q = arg;

	(void)fd;
	(void)what;
	if (q->cb)
		q->cb(q->status, q->addrs, q->naddrs, q->arg);
	query_free(q);
}

static void
rearm_timer(struct resolver *r)
{
	struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);

	if (tvp)
		evtimer_add(r->timer, tvp);
	else
		evtimer_del(r->timer);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;

	(void)fd;
	(void)what;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(r);
}

static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;

	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(r);
}

/* ARES_OPT_SOCK_STATE_CB: keep one event per socket c-ares uses. */
static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct watch **pp = &r->watches, *w;

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	w = *pp;
	if (!readable && !writable) {
		if (w) {
			*pp = w->next;
			event_free(w->ev);
			free(w);
		}
		return;
	}
	if (!w) {
		if (!(w = calloc(1, sizeof(*w))))
			return; /* The query will time out. */
		w->fd = fd;
		w->next = r->watches;
		r->watches = w;
	} else {
		event_free(w->ev);
	}
	w->ev = event_new(r->base, fd,
	                  EV_PERSIST | (readable ? EV_READ : 0) |
	                      (writable ? EV_WRITE : 0),
	                  watch_cb, r);
	if (w->ev)
		event_add(w->ev, NULL);
}

static enum resolve_status
map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return RESOLVE_OK;
	case ARES_ENOTFOUND:
		return RESOLVE_NXDOMAIN;
	case ARES_ENODATA:
		return RESOLVE_NO_ADDRESS;
	case ARES_ETIMEOUT:
		return RESOLVE_TIMEOUT;
	default:
		return RESOLVE_ERROR;
	}
}

static void
addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct resolve_query *q = arg;
	long ttl = -1;

	(void)timeouts;
	q->in_ares = 0;
	if (status == ARES_EDESTRUCTION) {
		/* resolver_free is tearing the channel down. */
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	q->status = map_status(status);
	for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n;
	     n = n->ai_next) {
		struct netaddr a;
		int dup = 0;

		if (netaddr_from_sockaddr(&a, n->ai_addr) < 0)
			continue;
		for (size_t i = 0; i < q->naddrs; i++)
			dup |= memcmp(&q->addrs[i], &a, sizeof(a)) == 0;
		if (dup || q->naddrs == RESOLVE_MAX_ADDRS)
			continue;
		q->addrs[q->naddrs++] = a;
		if (ttl < 0 || n->ai_ttl < ttl)
			ttl = n->ai_ttl;
	}
	if (res)
		ares_freeaddrinfo(res);
	if (q->status == RESOLVE_OK && q->naddrs == 0)
		q->status = RESOLVE_NO_ADDRESS;
	if (q->status == RESOLVE_OK)
		cache_put(q->r, q->name, q->addrs, q->naddrs, ttl);
	event_active(q->deliver, EV_TIMEOUT, 1);
}

int
resolve_library_init(void)
{
	return ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS ? 0 : -1;
}

struct resolver *
resolver_new(struct event_base *base, const struct config_resolver *conf,
             char *err, size_t errlen)
{
	struct ares_options opts;
	struct resolver *r;
	int rc;

	if (!(r = calloc(1, sizeof(*r))))
		goto nomem;
	r->base = base;
	r->max_ttl_s = conf->max_ttl_s;
	r->cache_max = (size_t)conf->cache_entries;
	r->nbuckets = r->cache_max ? r->cache_max : 1;
	TAILQ_INIT(&r->lru);
	TAILQ_INIT(&r->queries);
	if (!(r->buckets = calloc(r->nbuckets, sizeof(*r->buckets))) ||
	    !(r->timer = evtimer_new(base, timer_cb, r)))
		goto nomem;

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state_cb;
	opts.sock_state_cb_data = r;
	opts.timeout = conf->timeout_ms;
	opts.tries = conf->tries;
	/* DNS only, names as given: the policy decided on this exact name. */
	opts.lookups = (char *)"b";
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	rc = ares_init_options(&r->channel, &opts,
	                       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
	                           ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
	                           ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		free(r->buckets);
		event_free(r->timer);
		free(r);
		return NULL;
	}
	if (conf->nservers > 0) {
		char csv[1024] = "";
		size_t off = 0;

		for (size_t i = 0; i < conf->nservers; i++)
			off += (size_t)snprintf(csv + off, sizeof(csv) - off,
			                        "%s%s", i ? "," : "",
			                        conf->servers[i]);
		if (off >= sizeof(csv) ||
		    (rc = ares_set_servers_ports_csv(r->channel, csv)) !=
		        ARES_SUCCESS) {
			snprintf(err, errlen, "resolver: servers: %s",
			         off >= sizeof(csv) ? "too many"
			                            : ares_strerror(rc));
			resolver_free(r);
			return NULL;
		}
	}
	return r;
nomem:
	snprintf(err, errlen, "resolver: out of memory");
	if (r) {
		free(r->buckets);
		free(r);
	}
	return NULL;
}

void
resolver_free(struct resolver *r)
{
	struct resolve_query *q;

	if (!r)
		return;
	ares_destroy(r->channel);
	while ((q = TAILQ_FIRST(&r->queries)))
		query_free(q);
	while (!TAILQ_EMPTY(&r->lru))
		cache_remove(r, TAILQ_FIRST(&r->lru));
	while (r->watches) {
		struct watch *w = r->watches;

		r->watches = w->next;
		event_free(w->ev);
		free(w);
	}
	event_free(r->timer);
	free(r->buckets);
	free(r);
}

struct resolve_query *
resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *arg)
{
	struct ares_addrinfo_hints hints;
	const struct cache_entry *e;
	struct resolve_query *q;

	if (!(q = calloc(1, sizeof(*q))))
		return NULL;
	if (!(q->deliver = event_new(r->base, -1, 0, deliver_cb, q))) {
		free(q);
		return NULL;
	}
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->name, sizeof(q->name), "%s", name);
	TAILQ_INSERT_TAIL(&r->queries, q, link);

	if ((e = cache_get(r, name))) {
		q->status = RESOLVE_OK;
		memcpy(q->addrs, e->addrs, e->naddrs * sizeof(*e->addrs));
		q->naddrs = e->naddrs;
		event_active(q->deliver, EV_TIMEOUT, 1);
		return q;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NOSORT;
	q->in_ares = 1;
	ares_getaddrinfo(r->channel, name, NULL, &hints, addrinfo_cb, q);
	rearm_timer(r);
	return q;
}

void
resolve_cancel(struct resolve_query *q)
{
	if (!q)
		return;
	q->cb = NULL;
	/* A query that c-ares still holds is freed when its answer arrives;
	 * one that is only waiting for delivery is freed now. */
	if (!q->in_ares)
		query_free(q);
}

const char *
resolve_status_str(enum resolve_status s)
{
	switch (s) {
	case RESOLVE_OK:
		return "ok";
	case RESOLVE_NXDOMAIN:
		return "NXDOMAIN";
	case RESOLVE_NO_ADDRESS:
		return "no address";
	case RESOLVE_ERROR:
		return "error";
	case RESOLVE_TIMEOUT:
		return "timeout";
	}
	return "?";
}
