#include "pool.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "host.h"

/* Longest identity name kept (longer ones are never pooled). */
#define IDENTITY_MAX 128

struct entry {
	TAILQ_ENTRY(entry) link;
	struct pool *pool;
	struct bufferevent *bev;
	struct event *timer;
	char host[HOST_NAME_MAX_LEN + 1];
	uint16_t port;
	struct netaddr addr;
	char identity[IDENTITY_MAX + 1];
	int has_identity;
	char route[IDENTITY_MAX + 1]; /* "" for the proxy's */
};

struct pool {
	struct event_base *base;
	size_t max, n;
	int idle_ms;
	TAILQ_HEAD(entries, entry) idle; /* oldest first */
};

struct pool *
pool_new(struct event_base *base, size_t max, int idle_ms)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->base = base;
	p->max = max;
	p->idle_ms = idle_ms;
	TAILQ_INIT(&p->idle);
	return p;
}

/* Take e out of the pool; its connection is the caller's. */
static struct bufferevent *
unlink_entry(struct entry *e)
{
	struct bufferevent *bev = e->bev;

	TAILQ_REMOVE(&e->pool->idle, e, link);
	e->pool->n--;
	event_free(e->timer);
	free(e);
	return bev;
}

static void
drop(struct entry *e)
{
	bufferevent_free(unlink_entry(e));
}

void
pool_clear(struct pool *p)
{
	if (!p)
		return;
	while (!TAILQ_EMPTY(&p->idle))
		drop(TAILQ_FIRST(&p->idle));
}

void
pool_free(struct pool *p)
{
	pool_clear(p);
	free(p);
}

/* An idle connection has nothing to say: any byte, EOF or error ends it. */
static void
idle_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	drop(arg);
}

static void
idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	drop(arg);
}

static void
idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drop(arg);
}

void
pool_put(struct pool *p, struct bufferevent *bev, const struct pool_key *key)
{
	struct timeval tv = {p->idle_ms / 1000, (p->idle_ms % 1000) * 1000};
	struct entry *e;

	if (p->max == 0 || strlen(key->host) > HOST_NAME_MAX_LEN ||
	    (key->identity && strlen(key->identity) > IDENTITY_MAX) ||
	    (key->route && strlen(key->route) > IDENTITY_MAX) ||
	    evbuffer_get_length(bufferevent_get_input(bev)) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
	    !(e = calloc(1, sizeof(*e)))) {
		bufferevent_free(bev);
		return;
	}
	if (!(e->timer = evtimer_new(p->base, idle_timeout_cb, e))) {
		free(e);
		bufferevent_free(bev);
		return;
	}
	if (p->n == p->max)
		drop(TAILQ_FIRST(&p->idle));
	e->pool = p;
	e->bev = bev;
	strcpy(e->host, key->host);
	e->port = key->port;
	e->addr = key->addr;
	if (key->route)
		strcpy(e->route, key->route);
	if (key->identity) {
		strcpy(e->identity, key->identity);
		e->has_identity = 1;
	}
	TAILQ_INSERT_TAIL(&p->idle, e, link);
	p->n++;
	bufferevent_setcb(bev, idle_read_cb, NULL, idle_event_cb, e);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_enable(bev, EV_READ);
	evtimer_add(e->timer, &tv);
}

static int
same_identity(const struct entry *e, const char *identity)
{
	if (!identity)
		return !e->has_identity;
	return e->has_identity && strcmp(e->identity, identity) == 0;
}

struct bufferevent *
pool_take(struct pool *p, const struct pool_key *key,
          const struct netaddr *addrs, size_t naddrs, size_t *which)
{
	struct entry *e;

	if (!p)
		return NULL;
	/* The most recently used first: the least likely to be closed. */
	TAILQ_FOREACH_REVERSE(e, &p->idle, entries, link)
	{
		if (e->port != key->port || strcmp(e->host, key->host) != 0 ||
		    !same_identity(e, key->identity) ||
		    strcmp(e->route, key->route ? key->route : "") != 0)
			continue;
		for (size_t i = 0; i < naddrs; i++) {
			if (memcmp(&addrs[i], &e->addr, sizeof(e->addr)) != 0)
				continue;
			bufferevent_disable(e->bev, EV_READ);
			bufferevent_setcb(e->bev, NULL, NULL, NULL, NULL);
			*which = i;
			return unlink_entry(e);
		}
	}
	return NULL;
}
