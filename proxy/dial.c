#include "dial.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/bufferevent.h>
#include <string.h>

#include "config.h"
#include "metrics.h"
#include "pool.h"

static void resolved_cb(enum resolve_status status, const struct netaddr *addrs,
                        size_t naddrs, void *arg);
static void connect_next(struct conn *c);

void
dial_start(struct conn *c, dial_admit_fn admit, dial_connected_fn connected)
{
	struct request *r = &c->r;

	c->admit = admit;
	c->connected = connected;
	if (r->host.kind != HOST_NAME) {
		connect_next(c);
		return;
	}
	c->state = CONN_RESOLVING;
	clock_gettime(CLOCK_MONOTONIC, &r->dns_started);
	c->query =
	    resolve_start(c->env->resolver, r->host.name, resolved_cb, c);
	if (!c->query)
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
}

/* Every address is checked; only those that pass are connected to. */
static void
resolved_cb(enum resolve_status status, const struct netaddr *addrs,
            size_t naddrs, void *arg)
{
	static const enum reason failed[] = {
	    [RESOLVE_NXDOMAIN] = REASON_DNS_NXDOMAIN,
	    [RESOLVE_NO_ADDRESS] = REASON_DNS_NO_ADDRESS,
	    [RESOLVE_TIMEOUT] = REASON_DNS_TIMEOUT,
	    [RESOLVE_ERROR] = REASON_DNS_ERROR,
	};
	struct conn *c = arg;
	struct request *r = &c->r;
	struct verdict refused = {REASON_ADDRESS_PROHIBITED, NULL, NULL};
	const struct netaddr *refused_addr = NULL;

	c->query = NULL;
	metrics_observe(METRICS_DNS, request_seconds_since(&r->dns_started));
	if (status != RESOLVE_OK) {
		conn_fail(c, failed[status], NULL, NULL);
		return;
	}
	for (size_t i = 0; i < naddrs; i++) {
		struct verdict v;

		if (!c->admit(c, &addrs[i], &v)) {
			if (!refused_addr) {
				refused = v;
				refused_addr = &addrs[i];
			}
			continue;
		}
		r->addr_rules[r->naddrs] = v.rule;
		r->addrs[r->naddrs++] = addrs[i];
	}
	if (r->naddrs == 0) {
		conn_fail(c, refused.reason, &refused, refused_addr);
		return;
	}
	connect_next(c);
}

/* May this request go on an idle upstream connection?  Only one that can
 * be sent again on a new connection if the idle one turns out closed: an
 * idempotent method without a body (RFC 9110 §9.2.2, RFC 9112 §9.3.1). */
static int
may_reuse(const struct request *r)
{
	static const char *const idempotent[] = {
	    "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", NULL};

	if (r->is_connect)
		return 0;
	/* A gateway's origin is the same few hosts, each request a new TLS
	 * handshake without the pool: every request may take a kept
	 * connection.  One that turns out closed is tried again only when
	 * the request can be sent again (proxy_may_retry). */
	if (r->route)
		return 1;
	if (r->body.kind != HTTP_BODY_NONE)
		return 0;
	for (const char *const *m = idempotent; *m; m++)
		if (strcmp(r->method, *m) == 0)
			return 1;
	return 0;
}

/* Where the current request goes, and for whom: what a pooled upstream
 * connection must match. */
static void
pool_key_of(const struct request *r, struct pool_key *key)
{
	key->host = r->host.name;
	key->port = r->port;
	key->addr = r->upstream;
	key->identity = r->identity ? r->identity->name : NULL;
	key->route = r->route ? r->route->name : NULL;
}

/* Small writes (a response's last segment, an SSE event) go out at once
 * instead of waiting on the peer's delayed ACK. */
static void
no_delay(evutil_socket_t fd)
{
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
connected(struct conn *c)
{
	struct request *r = &c->r;

	if (!r->reused) {
		no_delay(bufferevent_getfd(c->up_bev));
		metrics_observe(METRICS_CONNECT,
		                request_seconds_since(&r->connect_started));
	}
	event_del(c->timer);
	r->upstream = r->addrs[r->next_addr - 1];
	r->upstream_known = 1;
	/* Another rule than the name check's may have admitted this address:
	 * its tls setting and its name apply. */
	r->rule = r->addr_rules[r->next_addr - 1];
	c->connected(c);
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		connected(c);
		return;
	}
	c->r.connect_error = reason_of_connect_error(EVUTIL_SOCKET_ERROR());
	bufferevent_free(c->up_bev);
	c->up_bev = NULL;
	connect_next(c);
}

static void
connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	c->r.connect_error = REASON_CONNECT_TIMEOUT;
	bufferevent_free(c->up_bev);
	c->up_bev = NULL;
	connect_next(c);
}

/* Try the next address that passed the policy: never re-resolve between
 * the check and the connect. */
static void
connect_next(struct conn *c)
{
	struct request *r = &c->r;

	c->state = CONN_CONNECTING;
	if (!r->no_pool && r->next_addr == 0 && may_reuse(r)) {
		struct pool_key key;
		size_t which;

		pool_key_of(r, &key);
		c->up_bev =
		    pool_take(c->env->pool, &key, r->addrs, r->naddrs, &which);
		if (c->up_bev) {
			r->reused = 1;
			r->next_addr = which + 1;
			connected(c);
			return;
		}
	}
	while (r->next_addr < r->naddrs) {
		const struct netaddr *a = &r->addrs[r->next_addr++];
		struct sockaddr_storage ss;
		socklen_t len = netaddr_to_sockaddr(a, r->port, &ss);

		c->up_bev = bufferevent_socket_new(c->env->base, -1,
		                                   BEV_OPT_CLOSE_ON_FREE);
		if (!c->up_bev) {
			r->connect_error = REASON_INTERNAL_ERROR;
			continue;
		}
		bufferevent_setcb(c->up_bev, NULL, NULL, up_event_cb, c);
		clock_gettime(CLOCK_MONOTONIC, &r->connect_started);
		if (bufferevent_socket_connect(
		        c->up_bev, (struct sockaddr *)&ss, (int)len) < 0) {
			r->connect_error =
			    reason_of_connect_error(EVUTIL_SOCKET_ERROR());
			bufferevent_free(c->up_bev);
			c->up_bev = NULL;
			continue;
		}
		conn_set_timer(c, connect_timeout_cb,
		               c->config->limits.connect_timeout_ms);
		return;
	}
	conn_fail(c, r->connect_error, NULL,
	          r->naddrs ? &r->addrs[r->naddrs - 1] : NULL);
}

void
dial_again(struct conn *c)
{
	conn_free_upstream(c);
	c->r.reused = 0;
	c->r.no_pool = 1;
	c->r.next_addr = 0;
	connect_next(c);
}

void
dial_keep(struct conn *c)
{
	struct pool_key key;

	if (!c->up_bev || c->env->draining)
		return;
	pool_key_of(&c->r, &key);
	pool_put(c->env->pool, c->up_bev, &key);
	c->up_bev = NULL;
}
