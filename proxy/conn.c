#include "conn.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "forward.h"
#include "metrics.h"
#include "gateway.h"
#include "origin.h"
#include "pool.h"
#include "proxy.h"
#include "tls.h"
#include "tunnel.h"

/* After an error answer, or a response that ends the connection: how long
 * to wait for it to drain and for the client to close, and how much of
 * what the client still sends to discard. */
#define LINGER_MS        2000
#define LINGER_MAX_BYTES (256 * 1024)

/* Idle upstream connections kept per event loop, and for how long: less
 * than the 5 s that common servers keep an idle connection. */
#define UPSTREAM_POOL_MAX     256
#define UPSTREAM_POOL_IDLE_MS 4000

static atomic_ullong next_conn_id;

/*
 * Connection caps shared by all workers: a total, and per client address
 * in a table of counters indexed by a hash of the address.  Two clients
 * whose addresses share a slot share its budget, which errs on the side
 * of refusing.
 */
#define CLIENT_SLOTS 65536
static atomic_int total_conns;
static atomic_int client_conns[CLIENT_SLOTS];

static unsigned
client_slot(const struct netaddr *a)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(a->b); i++)
		h = (h ^ a->b[i]) * 16777619u;
	return h % CLIENT_SLOTS;
}

static void wait_request(struct conn *c);
static void http_limits_of(const struct conn *c, struct http_limits *hl);
static void head_read_cb(struct bufferevent *bev, void *arg);
static void head_event_cb(struct bufferevent *bev, short what, void *arg);
static void head_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void parse_request(struct conn *c);
static void linger(struct conn *c);

/* --- accepting ----------------------------------------------------------- */

static void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	struct netaddr a;
	char abuf[NETADDR_STRLEN];
	uint16_t port;

	if (netaddr_from_sockaddr(&a, sa) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		port = ntohs(sin.sin_port);
	} else {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		port = ntohs(sin6.sin6_port);
	}
	if (netaddr_is_v4(&a))
		snprintf(buf, len, "%s:%u", netaddr_str(&a, abuf), port);
	else
		snprintf(buf, len, "[%s]:%u", netaddr_str(&a, abuf), port);
}

void
conn_accept(struct conn_env *env, evutil_socket_t fd, const struct sockaddr *sa,
            socklen_t salen, size_t listener)
{
	const struct config_limits *lim = &env->config->limits;
	struct conn *c = calloc(1, sizeof(*c));
	int total, per_client;

	(void)salen;
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	metrics_connection();
	c->env = env;
	/* Numbered across all workers, so a number names one connection. */
	c->id =
	    atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed) +
	    1;
	c->config = config_ref(env->config);
	c->listener = &c->config->listeners[listener];
	c->listener_index = listener;
	if (netaddr_from_sockaddr(&c->client_addr, sa) < 0)
		memset(&c->client_addr, 0, sizeof(c->client_addr));
	/* Counted before anything can fail: conn_close uncounts. */
	total = atomic_fetch_add(&total_conns, 1);
	per_client =
	    atomic_fetch_add(&client_conns[client_slot(&c->client_addr)], 1);
	request_init(&c->r, c->listener->policy);
	sockaddr_text(sa, c->client, sizeof(c->client));
	snprintf(c->listen_addr, sizeof(c->listen_addr),
	         strchr(c->listener->address, ':') ? "[%s]:%u" : "%s:%u",
	         c->listener->address, c->listener->port);
	if (c->listener->tls) {
		/* An https:// proxy URL: TLS first, then the same HTTP. */
		SSL *ssl = tls_server_ssl(c->listener->tls);

		c->client_bev =
		    ssl ? bufferevent_openssl_socket_new(
		              env->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		              BEV_OPT_CLOSE_ON_FREE)
		        : NULL;
		if (c->client_bev)
			bufferevent_openssl_set_allow_dirty_shutdown(
			    c->client_bev, 1);
		else if (ssl)
			SSL_free(ssl);
	} else {
		c->client_bev = bufferevent_socket_new(env->base, fd,
		                                       BEV_OPT_CLOSE_ON_FREE);
	}
	c->timer = evtimer_new(env->base, head_timeout_cb, c);
	TAILQ_INSERT_TAIL(&env->conns, c, link);
	env->active++;
	if (!c->client_bev || !c->timer) {
		if (!c->client_bev)
			evutil_closesocket(fd);
		c->r.reason = REASON_INTERNAL_ERROR;
		conn_close(c);
		return;
	}
	/* Over a cap: answer at once, read nothing. */
	if (total >= lim->max_connections ||
	    (lim->max_connections_per_client > 0 &&
	     per_client >= lim->max_connections_per_client)) {
		conn_fail(c, REASON_TOO_MANY_CONNECTIONS, NULL, NULL);
		return;
	}
	wait_request(c);
}

/* --- the head --------------------------------------------------------------
 */

/* Wait for the next request head: the first one within header_timeout_ms,
 * a later one on a kept-alive connection within keepalive_timeout_ms. */
static void
wait_request(struct conn *c)
{
	const struct config_limits *lim = &c->config->limits;

	c->state = CONN_HEAD;
	bufferevent_setcb(c->client_bev, head_read_cb, NULL, head_event_cb, c);
	bufferevent_set_timeouts(c->client_bev, NULL, NULL);
	/* Read at most one byte past the head limit: enough to know. */
	bufferevent_setwatermark(c->client_bev, EV_READ, 0,
	                         lim->max_header_bytes + 1);
	bufferevent_setwatermark(c->client_bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->client_bev, EV_READ | EV_WRITE);
	conn_set_timer(c, head_timeout_cb,
	               c->nrequests ? lim->keepalive_timeout_ms
	                            : lim->header_timeout_ms);
	/* A pipelined request may already be waiting. */
	if (evbuffer_get_length(bufferevent_get_input(c->client_bev)) > 0)
		bufferevent_trigger(c->client_bev, EV_READ,
		                    BEV_TRIG_IGNORE_WATERMARKS |
		                        BEV_TRIG_DEFER_CALLBACKS);
}

/* Room in the head buffer for len bytes, growing it by doubling. */
static int
head_reserve(struct request *r, size_t len, size_t max)
{
	size_t cap = r->head_cap ? r->head_cap : 1024;
	char *p;

	if (len <= r->head_cap)
		return 0;
	while (cap < len)
		cap *= 2;
	if (cap > max)
		cap = max;
	if (!(p = realloc(r->head, cap)))
		return -1;
	r->head = p;
	r->head_cap = cap;
	return 0;
}

static void
head_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct request *r = &c->r;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in), used = 0;
	struct http_limits hl;
	enum http_status st;
	const char *p;

	if (n == 0)
		return;
	if (!r->begun) {
		/* The first byte of a request: from here the head timeout. */
		r->begun = 1;
		clock_gettime(CLOCK_MONOTONIC, &r->started);
		http_head_scan_init(&r->scan);
		if (c->nrequests > 0)
			conn_set_timer(c, head_timeout_cb,
			               c->config->limits.header_timeout_ms);
	}
	http_limits_of(c, &hl);
	/*
	 * The input holds only what arrived since the last read: the head
	 * so far has been moved out of it, and its scan goes on from where
	 * it stopped, so a head trickled a byte at a time costs no more
	 * than one sent at once.  The scanner decides within max_head
	 * bytes: no more is ever taken.
	 */
	if (n > hl.max_head - r->head_len)
		n = hl.max_head - r->head_len;
	if (!(p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n))) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	st = http_head_scan(&r->scan, p, n, &hl, &used);
	/* What follows the head (a body, the next request) stays in the
	 * input, in order, for the tunnel or the forward.  After an error,
	 * the bytes are kept for the log's request line. */
	if (st == HTTP_OK)
		n = used;
	if (head_reserve(r, r->head_len + n, hl.max_head) < 0) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	memcpy(r->head + r->head_len, p, n);
	r->head_len += n;
	evbuffer_drain(in, n);
	if (st == HTTP_INCOMPLETE)
		return;
	event_del(c->timer);
	request_note_line(r, r->head, r->head_len);
	if (st != HTTP_OK) {
		conn_fail(c, reason_of_head(st), NULL, NULL);
		return;
	}
	/* Nothing more is read until the request is decided: bytes after the
	 * head reach the upstream only through an established tunnel or as
	 * the body of an allowed request. */
	bufferevent_disable(bev, EV_READ);
	parse_request(c);
}

static void
head_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	/* A TLS listener's handshake is done: the head comes next. */
	if (what == BEV_EVENT_CONNECTED)
		return;
	c->r.reason = REASON_CLIENT_CLOSED;
	conn_close(c);
}

static void
head_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->client_bev);
	size_t len = evbuffer_get_length(in);

	(void)fd;
	(void)what;
	if (len == 0 && c->r.head_len == 0 && c->nrequests > 0) {
		/* An idle keep-alive connection: close it quietly. */
		c->r.reason = REASON_IDLE_TIMEOUT;
		conn_close(c);
		return;
	}
	/* The head so far has left the input buffer; a request line not
	 * read yet is still there. */
	if (c->r.head_len > 0)
		request_note_line(&c->r, c->r.head, c->r.head_len);
	else
		request_note_line(
		    &c->r, (const char *)evbuffer_pullup(in, (ev_ssize_t)len),
		    len);
	conn_fail(c, REASON_HEADER_TIMEOUT, NULL, NULL);
}

static void
http_limits_of(const struct conn *c, struct http_limits *hl)
{
	const struct config_limits *lim = &c->config->limits;

	hl->max_request_line = lim->max_request_line;
	hl->max_field_line = lim->max_header_bytes;
	hl->max_fields = lim->max_header_fields;
	hl->max_head = lim->max_header_bytes;
}

/* Each request is a new decision: a kept-alive connection takes the
 * snapshot a reload made current.  Reloads keep the listeners, so the
 * listener's index still names the same one. */
static void
take_current_config(struct conn *c)
{
	if (c->config == c->env->config)
		return;
	config_unref(c->config);
	c->config = config_ref(c->env->config);
	c->listener = &c->config->listeners[c->listener_index];
	c->r.policy = c->listener->policy;
}

/* Parse the whole head, check what every request must be, and hand it on
 * by the listener's kind. */
static void
parse_request(struct conn *c)
{
	struct request *r = &c->r;
	struct http_limits hl;
	enum http_status st;
	size_t nhost = 0;

	take_current_config(c);
	http_limits_of(c, &hl);
	if (!(r->req = malloc(sizeof(*r->req)))) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	st = http_parse_request(r->head, r->head_len, &hl, r->req);
	if (r->req->method.len > 0 && r->req->method.len < sizeof(r->method)) {
		memcpy(r->method, r->req->method.p, r->req->method.len);
		r->method[r->req->method.len] = '\0';
	}
	if (st != HTTP_OK) {
		conn_fail(c, reason_of_head(st), NULL, NULL);
		return;
	}
	/* RFC 9112 §3.2: more than one Host is a bad request, whatever a
	 * proxy does with it. */
	for (size_t i = 0; i < r->req->nfields; i++)
		nhost += http_span_ieq(r->req->fields[i].name, "host");
	if (nhost > 1) {
		conn_fail(c, REASON_MALFORMED_REQUEST, NULL, NULL);
		return;
	}
	if (http_request_body(r->req, &r->body) != HTTP_OK) {
		conn_fail(c, REASON_BAD_FRAMING, NULL, NULL);
		return;
	}
	r->client_close = r->req->version_minor == 0 ||
	                  http_fields_has_token(r->req->fields, r->req->nfields,
	                                        "connection", "close");
	r->is_connect = http_span_eq(r->req->method, "CONNECT");
	if (c->listener->gateway)
		gateway_request(c);
	else
		proxy_request(c);
}

/* --- the end of a request and of the connection ----------------------------
 */

void
conn_request_done(struct conn *c, int keep)
{
	request_log_close(c);
	conn_free_upstream(c);
	c->nrequests++;
	if (!keep || c->env->draining) {
		linger(c);
		return;
	}
	request_free(&c->r);
	request_init(&c->r, c->listener->policy);
	wait_request(c);
}

void
conn_fail(struct conn *c, enum reason why, const struct verdict *v,
          const struct netaddr *addr)
{
	request_log_decision(c, why, v, addr, 0);
	c->r.status = c->r.reply ? c->r.reply_status : reason_get(why)->status;
	c->r.reason = why;
	if (addr) {
		c->r.upstream = *addr;
		c->r.upstream_known = 1;
	}
	resolve_cancel(c->query);
	c->query = NULL;
	conn_free_upstream(c);
	c->r.bytes_down += answer_write(bufferevent_get_output(c->client_bev),
	                                &c->r, why, v, addr);
	linger(c);
}

static void
linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_close(arg);
}

/* Whatever the client sends after the last answer is read and thrown away
 * (never forwarded): closing with unread input would reset the connection
 * and could destroy the answer before the client reads it. */
static void
linger_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->discarded += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->discarded > LINGER_MAX_BYTES)
		conn_close(c);
}

static void
linger_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	/* The answer is out: half-close, then wait for the client's EOF. */
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void
linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_close(arg); /* EOF or error: the client is done. */
}

/* Let what was written to the client drain, then close. */
static void
linger(struct conn *c)
{
	c->state = CONN_LINGER;
	bufferevent_setcb(c->client_bev, linger_read_cb, linger_write_cb,
	                  linger_event_cb, c);
	bufferevent_setwatermark(c->client_bev, EV_READ, 0, 0);
	bufferevent_setwatermark(c->client_bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->client_bev, NULL, NULL);
	bufferevent_enable(c->client_bev, EV_READ | EV_WRITE);
	conn_set_timer(c, linger_timeout_cb, LINGER_MS);
	if (evbuffer_get_length(bufferevent_get_output(c->client_bev)) == 0)
		linger_write_cb(c->client_bev, c);
	/* Bytes already read after the head are dropped, never forwarded. */
	linger_read_cb(c->client_bev, c);
}

void
conn_free_upstream(struct conn *c)
{
	forward_free(c->forward);
	c->forward = NULL;
	if (c->handshake)
		origin_tls_cancel(c->handshake);
	c->handshake = NULL;
	if (c->up_bev)
		bufferevent_free(c->up_bev);
	c->up_bev = NULL;
}

void
conn_set_timer(struct conn *c, event_callback_fn cb, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_del(c->timer);
	event_assign(c->timer, c->env->base, -1, 0, cb, c);
	evtimer_add(c->timer, &tv);
}

void
conn_close(struct conn *c)
{
	struct conn_env *env = c->env;

	if (c->state == CONN_CLOSED)
		return;
	if (c->tunnel) {
		c->r.bytes_up = tunnel_bytes_up(c->tunnel);
		c->r.bytes_down = tunnel_bytes_down(c->tunnel);
	}
	/* Ended (closed, idle, shut down) before the hello was judged: the
	 * policy's decision stands, and nothing went through. */
	if (c->r.hello_pending) {
		c->r.hello_pending = 0;
		request_log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream,
		                     0);
	}
	/* A request in progress gets its close line; so does a connection
	 * that never sent one.  An idle kept-alive connection has said all. */
	if (c->r.begun || c->nrequests == 0 || c->state != CONN_HEAD)
		request_log_close(c);
	c->state = CONN_CLOSED;
	request_release_slot(&c->r);
	atomic_fetch_sub(&total_conns, 1);
	atomic_fetch_sub(&client_conns[client_slot(&c->client_addr)], 1);
	resolve_cancel(c->query);
	tunnel_free(c->tunnel);
	conn_free_upstream(c);
	if (c->client_bev)
		bufferevent_free(c->client_bev);
	if (c->timer)
		event_free(c->timer);
	request_free(&c->r);
	config_unref(c->config);
	TAILQ_REMOVE(&env->conns, c, link);
	free(c);
	if (--env->active == 0 && env->draining && env->on_drained)
		env->on_drained(env);
}

void
conn_close_idle(struct conn_env *env)
{
	struct conn *c, *next;

	pool_clear(env->pool);
	for (c = TAILQ_FIRST(&env->conns); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CONN_HEAD && !c->r.begun &&
		    evbuffer_get_length(bufferevent_get_input(c->client_bev)) ==
		        0) {
			c->r.reason = REASON_SHUTDOWN;
			conn_close(c);
		}
	}
}

void
conn_close_all(struct conn_env *env, enum reason why)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&env->conns))) {
		c->r.reason = why;
		conn_close(c);
	}
	pool_clear(env->pool);
}

void
conn_env_init(struct conn_env *env, struct event_base *base,
              struct resolver *resolver, struct config *config)
{
	memset(env, 0, sizeof(*env));
	env->base = base;
	env->resolver = resolver;
	env->config = config_ref(config);
	/* Without a pool (out of memory) every request connects. */
	env->pool = pool_new(base, UPSTREAM_POOL_MAX, UPSTREAM_POOL_IDLE_MS);
	TAILQ_INIT(&env->conns);
}

void
conn_env_set_config(struct conn_env *env, struct config *config)
{
	struct config *old = env->config;

	env->config = config_ref(config);
	config_unref(old);
}

void
conn_env_clear(struct conn_env *env)
{
	config_unref(env->config);
	env->config = NULL;
	pool_free(env->pool);
	env->pool = NULL;
}
