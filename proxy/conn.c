#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "http.h"
#include "log.h"
#include "policy.h"
#include "reason.h"
#include "tunnel.h"

/* After an error answer: how long to wait for it to drain and for the
 * client to close, and how much of what it still sends to discard. */
#define LINGER_MS        2000
#define LINGER_MAX_BYTES (256 * 1024)

enum conn_state {
	CONN_HEAD,       /* reading the request head */
	CONN_RESOLVING,  /* waiting for DNS */
	CONN_CONNECTING, /* connecting to addrs[next_addr - 1] */
	CONN_TUNNEL,     /* relaying */
	CONN_REPLYING,   /* an error answer is draining */
	CONN_CLOSED,
};

struct conn {
	struct conn_env *env;
	TAILQ_ENTRY(conn) link;
	unsigned long long id;
	enum conn_state state;
	struct timespec started;

	struct config *config; /* the snapshot this connection started with */
	const struct config_listener *listener;
	const struct policy *policy;
	char client[NETADDR_STRLEN + 8];
	char listen_addr[NETADDR_STRLEN + 8];

	struct bufferevent *client_bev; /* owned until the tunnel takes it */
	struct bufferevent *up_bev;
	struct event *timer; /* head, connect and linger timeouts */
	struct resolve_query *query;
	struct tunnel *tunnel;

	/* The request. */
	char *head;
	struct http_request req;
	char method[33];
	/* The request line as sent, kept for logs even when it is malformed. */
	char raw_host[LOG_VALUE_MAX + 1];
	size_t raw_host_len;
	int have_dest;
	struct host host;
	uint16_t port;

	/* Addresses that passed the policy, in the order to try them. */
	struct netaddr addrs[RESOLVE_MAX_ADDRS];
	size_t naddrs, next_addr;
	const struct rule *rule;
	enum reason connect_error;

	/* The outcome, for the close line. */
	int status;
	enum reason reason;
	int upstream_known;
	struct netaddr upstream;
	uint64_t bytes_up, bytes_down;
	size_t discarded;
};

static void conn_close(struct conn *c);

/* Point the connection's one timer at a new job. */
static void
set_timer(struct conn *c, event_callback_fn cb, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_del(c->timer);
	event_assign(c->timer, c->env->base, -1, 0, cb, c);
	evtimer_add(c->timer, &tv);
}
static void conn_fail(struct conn *c, enum reason why, const struct verdict *v,
                      const struct netaddr *addr);

/* --- logging ------------------------------------------------------------ */

/* The fields every line of a connection carries.  mode is the policy's,
 * unless a deny line says how that refusal was applied. */
static void
log_conn(struct log_line *l, const struct conn *c, const char *event,
         const char *mode)
{
	log_begin(l, event);
	log_int(l, "conn", (long long)c->id);
	log_str(l, "client", c->client);
	log_str(l, "listener", c->listen_addr);
	log_str(l, "identity", NULL);
	log_str(l, "policy", c->policy->name);
	if (!mode)
		mode = c->policy->mode == POLICY_REPORT ? "report" : "enforce";
	log_str(l, "mode", mode);
	if (c->method[0])
		log_str(l, "method", c->method);
	if (c->have_dest) {
		log_str(l, "host", c->host.name);
		log_int(l, "port", c->port);
	} else if (c->raw_host_len) {
		log_strn(l, "host", c->raw_host, c->raw_host_len);
	}
}

/*
 * Keep the method and the host of a request line for the log, however
 * malformed: hostile input is exactly what the log must show.  The host is
 * the request-target without a trailing ":digits".
 */
static void
note_request_line(struct conn *c, const char *p, size_t len)
{
	size_t end = 0, sp1, sp2, colon;

	while (end < len && end < 16384 && p[end] != '\r' && p[end] != '\n')
		end++;
	for (sp1 = 0; sp1 < end && p[sp1] != ' '; sp1++)
		;
	if (sp1 == end)
		return;
	if (!c->method[0] && sp1 > 0 && sp1 < sizeof(c->method)) {
		memcpy(c->method, p, sp1);
		c->method[sp1] = '\0';
		/* The log escapes it; keep it printable here too. */
		for (size_t i = 0; i < sp1; i++)
			if ((unsigned char)c->method[i] <= ' ' ||
			    (unsigned char)c->method[i] >= 0x7f)
				c->method[i] = '?';
	}
	for (sp2 = sp1 + 1; sp2 < end && p[sp2] != ' '; sp2++)
		;
	colon = sp2;
	while (colon > sp1 + 1 && p[colon - 1] >= '0' && p[colon - 1] <= '9')
		colon--;
	if (colon < sp2 && colon > sp1 + 1 && p[colon - 1] == ':')
		sp2 = colon - 1;
	c->raw_host_len = sp2 - sp1 - 1;
	if (c->raw_host_len > LOG_VALUE_MAX)
		c->raw_host_len = LOG_VALUE_MAX;
	memcpy(c->raw_host, p + sp1 + 1, c->raw_host_len);
}

static void
log_addr(struct log_line *l, const char *key, const struct netaddr *a)
{
	char buf[NETADDR_STRLEN];

	log_str(l, key, netaddr_str(a, buf));
}

/*
 * The decision line: allow, deny or error.  A deny line's mode says how the
 * refusal was applied: "report" when report mode let the request go on,
 * "enforce" when it was refused (the address guard, even in a report-mode
 * policy).
 */
static void
log_decision(const struct conn *c, enum reason why, const struct verdict *v,
             const struct netaddr *addr, int report)
{
	const struct reason_info *ri = reason_get(why);
	int deny = reason_is_denial(why);
	struct log_line l;

	log_conn(&l, c,
	         why == REASON_ALLOWED ? "allow"
	         : deny                ? "deny"
	                               : "error",
	         deny ? (report ? "report" : "enforce") : NULL);
	if (addr)
		log_addr(&l, "addr", addr);
	if (v && v->range)
		log_str(&l, "range", v->range);
	if (v && v->rule)
		log_str(&l, "rule", v->rule->name);
	else if (why == REASON_ALLOWED && c->rule)
		log_str(&l, "rule", c->rule->name);
	else
		log_str(&l, "rule", NULL);
	log_str(&l, "reason", ri->name);
	if (report)
		log_str(&l, "message", "report mode: not enforced");
	else
		log_int(&l, "status", ri->status);
	log_end(&l);
}

static long long
elapsed_ms(const struct conn *c)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - c->started.tv_sec) * 1000LL +
	       (now.tv_nsec - c->started.tv_nsec) / 1000000;
}

static void
log_close(const struct conn *c)
{
	struct log_line l;

	log_conn(&l, c, "close", NULL);
	if (c->upstream_known)
		log_addr(&l, "addr", &c->upstream);
	if (c->rule && c->status == 200)
		log_str(&l, "rule", c->rule->name);
	log_str(&l, "reason", reason_get(c->reason)->name);
	if (c->status)
		log_int(&l, "status", c->status);
	log_int(&l, "bytes_up", (long long)c->bytes_up);
	log_int(&l, "bytes_down", (long long)c->bytes_down);
	log_int(&l, "duration_ms", elapsed_ms(c));
	log_end(&l);
}

/* --- answers ------------------------------------------------------------ */

/* Write the error answer for `why` to the client. */
static void
write_answer(struct conn *c, enum reason why, const struct verdict *v,
             const struct netaddr *addr)
{
	const struct reason_info *ri = reason_get(why);
	struct evbuffer *out = bufferevent_get_output(c->client_bev);
	char dest[HOST_NAME_MAX_LEN + 16] = "(unknown)";
	char body[2048], abuf[NETADDR_STRLEN];
	int n;

	if (c->have_dest)
		snprintf(dest, sizeof(dest), "%s%s%s:%u",
		         c->host.kind == HOST_IPV6 ? "[" : "", c->host.name,
		         c->host.kind == HOST_IPV6 ? "]" : "", c->port);
	if (reason_is_denial(why)) {
		n = snprintf(
		    body, sizeof(body),
		    "egressd refused this request.\n\n"
		    "  destination: %s (%s)\n"
		    "  policy:      %s\n"
		    "  reason:      %s: %s\n"
		    "%s%s%s%s%s"
		    "\nThis block is deliberate: this environment may only "
		    "reach the destinations\nits operator allowed. Do not "
		    "try to work around it (other hosts, IP addresses,\n"
		    "ports or tools). If the task needs this destination, "
		    "ask the operator to\nadd it to the egress policy.\n",
		    dest, c->method, c->policy->name, ri->name, ri->text,
		    addr ? "  address:     " : "",
		    addr ? netaddr_str(addr, abuf) : "",
		    addr && v && v->range ? " (" : "",
		    addr && v && v->range ? v->range : "",
		    addr ? (v && v->range ? ")\n" : "\n") : "");
	} else {
		n = snprintf(body, sizeof(body),
		             "egressd could not complete this request.\n\n"
		             "  destination: %s\n"
		             "  reason:      %s: %s\n",
		             dest, ri->name, ri->text);
	}
	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)strlen(body);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", ri->status, ri->phrase);
	/* RFC 9209 §2: the proxy names itself, then the error type. */
	evbuffer_add_printf(out, "Proxy-Status: egressd; error=%s",
	                    ri->proxy_status);
	if (why == REASON_DNS_NXDOMAIN)
		evbuffer_add_printf(out, "; rcode=\"NXDOMAIN\"");
	if (c->have_dest)
		evbuffer_add_printf(out, "; details=\"%s: %s\"", ri->name,
		                    dest);
	else
		evbuffer_add_printf(out, "; details=\"%s\"", ri->name);
	evbuffer_add_printf(out,
	                    "\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                    "Content-Length: %d\r\nConnection: close\r\n\r\n",
	                    n);
	evbuffer_add(out, body, (size_t)n);
}

static void
linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_close(arg);
}

/* Whatever the client sends after a refusal is read and thrown away (never
 * forwarded): closing with unread input would reset the connection and
 * could destroy the answer before the client reads it. */
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

/* Log the decision, answer, and close once the answer has drained. */
static void
conn_fail(struct conn *c, enum reason why, const struct verdict *v,
          const struct netaddr *addr)
{
	log_decision(c, why, v, addr, 0);
	c->status = reason_get(why)->status;
	c->reason = why;
	if (addr) {
		c->upstream = *addr;
		c->upstream_known = 1;
	}
	resolve_cancel(c->query);
	c->query = NULL;
	if (c->up_bev) {
		bufferevent_free(c->up_bev);
		c->up_bev = NULL;
	}
	c->state = CONN_REPLYING;
	write_answer(c, why, v, addr);
	bufferevent_setcb(c->client_bev, linger_read_cb, linger_write_cb,
	                  linger_event_cb, c);
	bufferevent_setwatermark(c->client_bev, EV_READ, 0, 0);
	bufferevent_setwatermark(c->client_bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->client_bev, NULL, NULL);
	bufferevent_enable(c->client_bev, EV_READ | EV_WRITE);
	set_timer(c, linger_timeout_cb, LINGER_MS);
	/* Bytes already read after the head are dropped, never forwarded. */
	linger_read_cb(c->client_bev, c);
}

/* --- the tunnel ---------------------------------------------------------- */

static void
tunnel_done(void *arg, enum reason why)
{
	struct conn *c = arg;

	c->reason = why;
	conn_close(c);
}

static void
start_tunnel(struct conn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	const struct config_limits *lim = &c->config->limits;

	evtimer_del(c->timer);
	c->upstream = c->addrs[c->next_addr - 1];
	c->upstream_known = 1;
	c->status = 200;
	c->reason = REASON_ALLOWED;
	log_decision(c, REASON_ALLOWED, NULL, &c->upstream, 0);
	bufferevent_write(c->client_bev, ok, sizeof(ok) - 1);
	c->tunnel = tunnel_new(c->client_bev, c->up_bev, lim->buffer_bytes,
	                       lim->idle_timeout_ms, tunnel_done, c);
	if (!c->tunnel) {
		c->reason = REASON_INTERNAL_ERROR;
		conn_close(c);
		return;
	}
	c->client_bev = c->up_bev = NULL;
	c->state = CONN_TUNNEL;
}

/* --- connecting ---------------------------------------------------------- */

static void connect_next(struct conn *c);

static enum reason
connect_reason(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return REASON_CONNECT_REFUSED;
	case ETIMEDOUT:
		return REASON_CONNECT_TIMEOUT;
	default:
		return REASON_CONNECT_ERROR;
	}
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		start_tunnel(c);
		return;
	}
	c->connect_error = connect_reason(EVUTIL_SOCKET_ERROR());
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
	c->connect_error = REASON_CONNECT_TIMEOUT;
	bufferevent_free(c->up_bev);
	c->up_bev = NULL;
	connect_next(c);
}

/* Try the next address that passed the policy: never re-resolve between
 * the check and the connect. */
static void
connect_next(struct conn *c)
{
	c->state = CONN_CONNECTING;
	while (c->next_addr < c->naddrs) {
		const struct netaddr *a = &c->addrs[c->next_addr++];
		struct sockaddr_storage ss;
		socklen_t len = netaddr_to_sockaddr(a, c->port, &ss);

		c->up_bev = bufferevent_socket_new(c->env->base, -1,
		                                   BEV_OPT_CLOSE_ON_FREE);
		if (!c->up_bev) {
			c->connect_error = REASON_INTERNAL_ERROR;
			continue;
		}
		bufferevent_setcb(c->up_bev, NULL, NULL, up_event_cb, c);
		if (bufferevent_socket_connect(
		        c->up_bev, (struct sockaddr *)&ss, (int)len) < 0) {
			c->connect_error =
			    connect_reason(EVUTIL_SOCKET_ERROR());
			bufferevent_free(c->up_bev);
			c->up_bev = NULL;
			continue;
		}
		set_timer(c, connect_timeout_cb,
		          c->config->limits.connect_timeout_ms);
		return;
	}
	conn_fail(c, c->connect_error, NULL,
	          c->naddrs ? &c->addrs[c->naddrs - 1] : NULL);
}

/* --- resolving ----------------------------------------------------------- */

static void
resolved(enum resolve_status status, const struct netaddr *addrs, size_t naddrs,
         void *arg)
{
	struct conn *c = arg;
	struct verdict refused = {REASON_ADDRESS_PROHIBITED, NULL, NULL};
	const struct netaddr *refused_addr = NULL;

	c->query = NULL;
	switch (status) {
	case RESOLVE_OK:
		break;
	case RESOLVE_NXDOMAIN:
		conn_fail(c, REASON_DNS_NXDOMAIN, NULL, NULL);
		return;
	case RESOLVE_NO_ADDRESS:
		conn_fail(c, REASON_DNS_NO_ADDRESS, NULL, NULL);
		return;
	case RESOLVE_TIMEOUT:
		conn_fail(c, REASON_DNS_TIMEOUT, NULL, NULL);
		return;
	case RESOLVE_ERROR:
		conn_fail(c, REASON_DNS_ERROR, NULL, NULL);
		return;
	}
	/* Every address is checked; only those that pass are connected to. */
	for (size_t i = 0; i < naddrs; i++) {
		struct verdict v;

		if (policy_check_addr(c->policy, c->method, &c->host, c->port,
		                      &addrs[i], &v)) {
			if (!c->rule)
				c->rule = v.rule;
		} else if (policy_report_waives(c->policy, &v)) {
			log_decision(c, v.reason, &v, &addrs[i], 1);
		} else {
			if (!refused_addr) {
				refused = v;
				refused_addr = &addrs[i];
			}
			continue;
		}
		c->addrs[c->naddrs++] = addrs[i];
	}
	if (c->naddrs == 0) {
		conn_fail(c, refused.reason, &refused, refused_addr);
		return;
	}
	connect_next(c);
}

/* --- the request --------------------------------------------------------- */

static enum reason
head_reason(enum http_status st)
{
	switch (st) {
	case HTTP_URI_TOO_LONG:
		return REASON_URI_TOO_LONG;
	case HTTP_FIELDS_TOO_LARGE:
		return REASON_HEADER_TOO_LARGE;
	case HTTP_BAD_VERSION:
		return REASON_BAD_VERSION;
	default:
		return REASON_MALFORMED_REQUEST;
	}
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

static void
handle_request(struct conn *c, size_t head_len)
{
	struct http_limits hl;
	struct verdict v;
	enum http_status st;

	http_limits_of(c, &hl);
	st = http_parse_request(c->head, head_len, &hl, &c->req);
	if (c->req.method.len > 0 && c->req.method.len < sizeof(c->method)) {
		memcpy(c->method, c->req.method.p, c->req.method.len);
		c->method[c->req.method.len] = '\0';
	}
	if (st != HTTP_OK) {
		conn_fail(c, head_reason(st), NULL, NULL);
		return;
	}
	if (!http_span_eq(c->req.method, "CONNECT")) {
		conn_fail(c, REASON_METHOD_NOT_SUPPORTED, NULL, NULL);
		return;
	}
	/* RFC 9110 §9.3.6: CONNECT's target is authority-form, host:port. */
	if (host_parse_authority(c->req.target.p, c->req.target.len, 0,
	                         &c->host, &c->port) < 0) {
		conn_fail(c, REASON_MALFORMED_HOST, NULL, NULL);
		return;
	}
	c->have_dest = 1;
	/* Decide before resolving: a refused name is never sent to DNS. */
	if (!policy_check_name(c->policy, c->method, &c->host, c->port, &v)) {
		if (!policy_report_waives(c->policy, &v)) {
			conn_fail(c, v.reason, &v,
			          c->host.kind == HOST_NAME ? NULL
			                                    : &c->host.addr);
			return;
		}
		log_decision(c, v.reason, &v,
		             c->host.kind == HOST_NAME ? NULL : &c->host.addr,
		             1);
	}
	c->rule = v.rule;
	if (c->host.kind != HOST_NAME) {
		c->addrs[c->naddrs++] = c->host.addr;
		connect_next(c);
		return;
	}
	c->state = CONN_RESOLVING;
	c->query = resolve_start(c->env->resolver, c->host.name, resolved, c);
	if (!c->query)
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
}

static void
head_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), head_len = 0;
	struct http_limits hl;
	enum http_status st;
	const char *p;

	http_limits_of(c, &hl);
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	st = http_head_end(p, len, &hl, &head_len);
	if (st == HTTP_INCOMPLETE)
		return;
	evtimer_del(c->timer);
	note_request_line(c, p, len);
	if (st != HTTP_OK) {
		conn_fail(c, head_reason(st), NULL, NULL);
		return;
	}
	if (!(c->head = malloc(head_len))) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	memcpy(c->head, p, head_len);
	evbuffer_drain(in, head_len);
	/* Nothing more is read until the request is decided: bytes after the
	 * head reach the upstream only through an established tunnel. */
	bufferevent_disable(bev, EV_READ);
	handle_request(c, head_len);
}

static void
head_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	(void)what;
	c->reason = REASON_CLIENT_CLOSED;
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
	note_request_line(c, (const char *)evbuffer_pullup(in, (ev_ssize_t)len),
	                  len);
	conn_fail(c, REASON_HEADER_TIMEOUT, NULL, NULL);
}

/* --- life and death ------------------------------------------------------ */

static void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	struct netaddr a;
	char abuf[NETADDR_STRLEN];
	uint16_t port;

	if (netaddr_from_sockaddr(&a, sa) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	memcpy(&ss, sa,
	       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
	                                : sizeof(struct sockaddr_in6));
	port = sa->sa_family == AF_INET
	           ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
	           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
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

	(void)salen;
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->env = env;
	c->id = ++env->next_id;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->config = config_ref(env->config);
	c->listener = &c->config->listeners[listener];
	c->policy = c->listener->policy;
	c->reason = REASON_CLIENT_CLOSED;
	sockaddr_text(sa, c->client, sizeof(c->client));
	snprintf(c->listen_addr, sizeof(c->listen_addr),
	         strchr(c->listener->address, ':') ? "[%s]:%u" : "%s:%u",
	         c->listener->address, c->listener->port);
	c->client_bev =
	    bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(env->base, head_timeout_cb, c);
	if (c->timer)
		event_del(c->timer);
	TAILQ_INSERT_TAIL(&env->conns, c, link);
	env->active++;
	if (!c->client_bev || !c->timer) {
		if (!c->client_bev)
			evutil_closesocket(fd);
		c->reason = REASON_INTERNAL_ERROR;
		conn_close(c);
		return;
	}
	bufferevent_setcb(c->client_bev, head_read_cb, NULL, head_event_cb, c);
	/* Read at most one byte past the head limit: enough to know. */
	bufferevent_setwatermark(c->client_bev, EV_READ, 0,
	                         lim->max_header_bytes + 1);
	bufferevent_enable(c->client_bev, EV_READ | EV_WRITE);
	set_timer(c, head_timeout_cb, lim->header_timeout_ms);
}

static void
conn_close(struct conn *c)
{
	struct conn_env *env = c->env;

	if (c->state == CONN_CLOSED)
		return;
	c->state = CONN_CLOSED;
	if (c->tunnel) {
		c->bytes_up = tunnel_bytes_up(c->tunnel);
		c->bytes_down = tunnel_bytes_down(c->tunnel);
	}
	log_close(c);
	resolve_cancel(c->query);
	tunnel_free(c->tunnel);
	if (c->client_bev)
		bufferevent_free(c->client_bev);
	if (c->up_bev)
		bufferevent_free(c->up_bev);
	if (c->timer)
		event_free(c->timer);
	free(c->head);
	config_unref(c->config);
	TAILQ_REMOVE(&env->conns, c, link);
	free(c);
	if (--env->active == 0 && env->draining && env->on_drained)
		env->on_drained(env);
}

void
conn_close_all(struct conn_env *env, enum reason why)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&env->conns))) {
		c->reason = why;
		conn_close(c);
	}
}

void
conn_env_init(struct conn_env *env, struct event_base *base,
              struct resolver *resolver, struct config *config)
{
	memset(env, 0, sizeof(*env));
	env->base = base;
	env->resolver = resolver;
	env->config = config_ref(config);
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
}
