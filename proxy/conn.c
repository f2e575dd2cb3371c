#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clienthello.h"
#include "forward.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "pool.h"
#include "reason.h"
#include "tls.h"
#include "tunnel.h"

/* After an error answer, or a response that ends the connection: how long
 * to wait for it to drain and for the client to close, and how much of
 * what the client still sends to discard. */
#define LINGER_MS        2000
#define LINGER_MAX_BYTES (256 * 1024)

/* The most of a tunnel's first bytes the hello check holds: the largest
 * ClientHellos seen (every group and a long ALPN list) are about 20 KB. */
#define HELLO_MAX (32 * 1024)

/* Idle upstream connections kept per event loop, and for how long: less
 * than the 5 s that common servers keep an idle connection. */
#define POOL_MAX     256
#define POOL_IDLE_MS 4000

enum conn_state {
	CONN_HEAD,       /* waiting for (the rest of) a request head */
	CONN_RESOLVING,  /* waiting for DNS */
	CONN_CONNECTING, /* connecting to r.addrs[r.next_addr - 1] */
	CONN_TUNNEL,     /* relaying a CONNECT tunnel */
	CONN_FORWARD,    /* forwarding a plain-HTTP request */
	CONN_LINGER,     /* the last answer is draining; then close */
	CONN_CLOSED,
};

/* One request: reset before the next on a keep-alive connection. */
struct request {
	struct timespec started;
	int begun;  /* a byte of its head has arrived */
	int logged; /* its close line is written */
	/* The head as it arrives: each read's bytes are scanned once, from
	 * where the scan stopped, and moved here out of the input buffer. */
	char *head;
	size_t head_len, head_cap;
	struct http_head_scan scan;
	struct http_request *req; /* parsed head; freed once relaying */
	char method[33];
	/* The request-target's host as sent, kept for logs even when
	 * malformed (see note_request_line). */
	char raw_host[LOG_VALUE_MAX + 1];
	size_t raw_host_len;
	int have_dest;
	int is_connect;
	struct host host;
	uint16_t port;
	char *path;      /* plain HTTP: the origin-form target */
	char *authority; /* plain HTTP: the Host to send */
	struct http_body body;
	int client_close;

	/* Addresses that passed the policy, in the order to try them, and
	 * the rule that admitted each (NULL where report mode waived). */
	struct netaddr addrs[RESOLVE_MAX_ADDRS];
	const struct rule *addr_rules[RESOLVE_MAX_ADDRS];
	size_t naddrs, next_addr;
	/* The rule that governs: the name check's until an address is
	 * chosen, then the one that admitted that address. */
	const struct rule *rule;
	enum reason connect_error;

	struct timespec dns_started, connect_started;
	int reused;  /* on an idle upstream connection from the pool */
	int no_pool; /* a reused connection failed: connect afresh */
	int in_progress; /* counted in egressd_active_requests */

	/* Who asked, and so which policy applies; NULL until known. */
	const struct identity *identity;
	const struct policy *policy;
	int tunnel_slot; /* holds one of the identity's tunnel slots */

	/* The SNI of the tunnel's ClientHello, once the hello check read it. */
	char sni[256];
	int hello_pending; /* the decision line waits for the hello check */

	/* The outcome, for the close line. */
	int status;
	enum reason reason;
	int upstream_known;
	struct netaddr upstream;
	uint64_t bytes_up, bytes_down;
};

struct conn {
	struct conn_env *env;
	TAILQ_ENTRY(conn) link;
	unsigned long long id;
	enum conn_state state;
	unsigned nrequests; /* requests completed on this connection */

	struct config *config; /* the snapshot this connection started with */
	const struct config_listener *listener;
	size_t listener_index;
	struct netaddr client_addr;
	char client[NETADDR_STRLEN + 8];
	char listen_addr[NETADDR_STRLEN + 8];

	struct bufferevent *client_bev; /* owned until a tunnel takes it */
	struct bufferevent *up_bev;
	struct event *timer; /* head, connect and linger timeouts */
	struct resolve_query *query;
	struct tunnel *tunnel;
	struct forward *forward;
	size_t discarded;

	struct request r;
};

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

static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, enum reason why, const struct verdict *v,
                      const struct netaddr *addr);
static void wait_request(struct conn *c);
static void request_drop_head(struct conn *c);
static void head_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void connect_next(struct conn *c);
static void pool_key_of(const struct conn *c, struct pool_key *key);
static int may_reuse(const struct conn *c);
static int may_retry(const struct conn *c, const struct forward_result *res);

/* Point the connection's one timer at a new job. */
static void
set_timer(struct conn *c, event_callback_fn cb, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_del(c->timer);
	event_assign(c->timer, c->env->base, -1, 0, cb, c);
	evtimer_add(c->timer, &tv);
}

/* --- logging ------------------------------------------------------------ */

/* The fields every line of a request carries.  mode is the policy's,
 * unless a deny line says how that refusal was applied. */
static void
log_conn(struct log_line *l, const struct conn *c, const char *event,
         const char *mode)
{
	const struct request *r = &c->r;

	log_begin(l, event);
	log_int(l, "conn", (long long)c->id);
	log_str(l, "client", c->client);
	log_str(l, "listener", c->listen_addr);
	log_str(l, "identity", r->identity ? r->identity->name : NULL);
	log_str(l, "policy", r->policy ? r->policy->name : NULL);
	if (!mode && r->policy)
		mode = r->policy->mode == POLICY_REPORT ? "report" : "enforce";
	if (mode)
		log_str(l, "mode", mode);
	if (r->method[0])
		log_str(l, "method", r->method);
	if (r->have_dest) {
		log_str(l, "host", r->host.name);
		log_int(l, "port", r->port);
		/* The query stays out of the log: it often carries keys. */
		if (r->path)
			log_strn(l, "path", r->path, strcspn(r->path, "?"));
	} else if (r->raw_host_len) {
		log_strn(l, "host", r->raw_host, r->raw_host_len);
	}
	if (r->sni[0])
		log_str(l, "sni", r->sni);
}

/*
 * Keep the method and the host of a request line for the log, however
 * malformed: hostile input is exactly what the log must show.  Of the
 * request-target only what names the host is kept: a credential or a query
 * string in it must never reach the log.
 */
static void
note_request_line(struct conn *c, const char *p, size_t len)
{
	struct request *r = &c->r;
	size_t end = 0, sp1, sp2;
	struct http_span host;

	while (end < len && end < 16384 && p[end] != '\r' && p[end] != '\n')
		end++;
	for (sp1 = 0; sp1 < end && p[sp1] != ' '; sp1++)
		;
	if (sp1 == end)
		return;
	if (!r->method[0] && sp1 > 0 && sp1 < sizeof(r->method)) {
		memcpy(r->method, p, sp1);
		r->method[sp1] = '\0';
		/* The log escapes it; keep it printable here too. */
		for (size_t i = 0; i < sp1; i++)
			if ((unsigned char)r->method[i] <= ' ' ||
			    (unsigned char)r->method[i] >= 0x7f)
				r->method[i] = '?';
	}
	for (sp2 = sp1 + 1; sp2 < end && p[sp2] != ' '; sp2++)
		;
	host = http_target_host(
	    (struct http_span){p + sp1 + 1, sp2 - sp1 - 1});
	r->raw_host_len = host.len > LOG_VALUE_MAX ? LOG_VALUE_MAX : host.len;
	memcpy(r->raw_host, host.p, r->raw_host_len);
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

	metrics_request(c->r.policy ? c->r.policy->metrics_slot : -1, why,
	                report);
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
	else if (why == REASON_ALLOWED && c->r.rule)
		log_str(&l, "rule", c->r.rule->name);
	else
		log_str(&l, "rule", NULL);
	log_str(&l, "reason", ri->name);
	/* A refusal after the 200 (the hello check) has no status of its
	 * own. */
	if (report)
		log_str(&l, "message", "report mode: not enforced");
	else if (why == REASON_ALLOWED ? c->r.is_connect
	                               : c->state != CONN_TUNNEL)
		log_int(&l, "status", ri->status);
	log_end(&l);
}

static double
elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static long long
elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000LL +
	       (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void
release_slot(struct conn *c)
{
	if (c->r.tunnel_slot) {
		identity_release_tunnel(c->r.identity);
		c->r.tunnel_slot = 0;
	}
}

/* The close line of the current request. */
static void
log_close(struct conn *c)
{
	const struct request *r = &c->r;
	struct log_line l;

	if (r->logged)
		return;
	c->r.logged = 1;
	release_slot(c);
	if (r->in_progress) {
		/* Relayed bytes only; egressd's own answers are not traffic. */
		metrics_bytes(r->bytes_up, r->bytes_down);
		c->r.in_progress = 0;
		metrics_active(-1);
	}
	log_conn(&l, c, "close", NULL);
	if (r->upstream_known)
		log_addr(&l, "addr", &r->upstream);
	if (r->rule && r->status >= 100 && r->status < 400 &&
	    !reason_is_denial(r->reason))
		log_str(&l, "rule", r->rule->name);
	log_str(&l, "reason", reason_get(r->reason)->name);
	if (r->status)
		log_int(&l, "status", r->status);
	log_int(&l, "bytes_up", (long long)r->bytes_up);
	log_int(&l, "bytes_down", (long long)r->bytes_down);
	log_int(&l, "duration_ms", elapsed_ms(&r->started));
	log_end(&l);
}

/* --- answers ------------------------------------------------------------ */

static void
dest_text(const struct request *r, char *buf, size_t len)
{
	if (r->have_dest)
		snprintf(buf, len, "%s%s%s:%u",
		         r->host.kind == HOST_IPV6 ? "[" : "", r->host.name,
		         r->host.kind == HOST_IPV6 ? "]" : "", r->port);
	else
		snprintf(buf, len, "(unknown)");
}

/* Write the error answer for `why` to the client. */
static void
write_answer(struct conn *c, enum reason why, const struct verdict *v,
             const struct netaddr *addr)
{
	const struct reason_info *ri = reason_get(why);
	struct evbuffer *out = bufferevent_get_output(c->client_bev);
	char dest[HOST_NAME_MAX_LEN + 16];
	char body[2048], abuf[NETADDR_STRLEN];
	/* The output may still hold an earlier response of this connection. */
	size_t before = evbuffer_get_length(out);
	int n;

	dest_text(&c->r, dest, sizeof(dest));
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
		    dest, c->r.method,
		    c->r.policy ? c->r.policy->name : "(none)", ri->name,
		    ri->text, addr ? "  address:     " : "",
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
	if (c->r.have_dest)
		evbuffer_add_printf(out, "; details=\"%s: %s\"", ri->name,
		                    dest);
	else
		evbuffer_add_printf(out, "; details=\"%s\"", ri->name);
	if (ri->status == 407)
		/* RFC 9110 §11.7.1: say which schemes will do. */
		evbuffer_add_printf(out, "\r\nProxy-Authenticate: Basic "
		                         "realm=\"egressd\", Bearer "
		                         "realm=\"egressd\"");
	evbuffer_add_printf(out,
	                    "\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                    "Content-Length: %d\r\nConnection: close\r\n\r\n",
	                    n);
	evbuffer_add(out, body, (size_t)n);
	c->r.bytes_down += evbuffer_get_length(out) - before;
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
	set_timer(c, linger_timeout_cb, LINGER_MS);
	if (evbuffer_get_length(bufferevent_get_output(c->client_bev)) == 0)
		linger_write_cb(c->client_bev, c);
	/* Bytes already read after the head are dropped, never forwarded. */
	linger_read_cb(c->client_bev, c);
}

static void
free_upstream(struct conn *c)
{
	forward_free(c->forward);
	c->forward = NULL;
	if (c->up_bev)
		bufferevent_free(c->up_bev);
	c->up_bev = NULL;
}

/* Log the decision, answer, and close once the answer has drained. */
static void
conn_fail(struct conn *c, enum reason why, const struct verdict *v,
          const struct netaddr *addr)
{
	log_decision(c, why, v, addr, 0);
	c->r.status = reason_get(why)->status;
	c->r.reason = why;
	if (addr) {
		c->r.upstream = *addr;
		c->r.upstream_known = 1;
	}
	resolve_cancel(c->query);
	c->query = NULL;
	free_upstream(c);
	write_answer(c, why, v, addr);
	linger(c);
}

/* --- the tunnel and the forward ------------------------------------------ */

static void
tunnel_done(void *arg, enum reason why)
{
	struct conn *c = arg;

	c->r.reason = why;
	conn_close(c);
}

/*
 * The hello check: the tunnel's first bytes must be a TLS ClientHello whose
 * SNI names the CONNECT host.  The decision line waits for it: allow once
 * the hello passes, deny (no status: the 200 is sent) when it does not.  A
 * report-mode policy logs the refusal and lets the tunnel go on.
 */
static int
hello_cb(void *arg, const unsigned char *buf, size_t len, int final,
         enum reason *why)
{
	struct conn *c = arg;
	struct clienthello ch;
	enum clienthello_status st = clienthello_parse(buf, len, HELLO_MAX, &ch);
	struct verdict v = {REASON_ALLOWED, c->r.rule, NULL};

	if (st == CLIENTHELLO_NEED_MORE && !final)
		return 0;
	c->r.hello_pending = 0;
	if (final == TUNNEL_HELLO_EOF && len == 0) {
		/* Closed before a byte: nothing to judge, nothing went. */
		log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
		return 1;
	}
	switch (st) {
	case CLIENTHELLO_OK:
		if (ch.has_sni)
			snprintf(c->r.sni, sizeof(c->r.sni), "%s", ch.sni);
		v.reason = !ch.has_sni ? REASON_SNI_MISSING
		           : clienthello_sni_matches(&ch, &c->r.host)
		               ? REASON_ALLOWED
		               : REASON_SNI_MISMATCH;
		break;
	case CLIENTHELLO_NEED_MORE:
		v.reason = final == TUNNEL_HELLO_TIMEOUT ? REASON_HELLO_TIMEOUT
		                                         : REASON_NOT_TLS;
		break;
	default:
		v.reason = REASON_NOT_TLS;
		break;
	}
	if (v.reason != REASON_ALLOWED) {
		int report = c->r.policy && c->r.policy->mode == POLICY_REPORT;

		log_decision(c, v.reason, &v, &c->r.upstream, report);
		if (!report) {
			*why = v.reason;
			return -1;
		}
	}
	log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
	return 1;
}

static void
start_tunnel(struct conn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	/* A fatal access_denied alert: the client's TLS stack says why. */
	static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00,
	                                      0x02, 0x02, 0x31};
	const struct config_limits *lim = &c->config->limits;
	int check = c->r.rule && c->r.host.kind == HOST_NAME &&
	            rule_requires_sni(c->r.rule, c->r.port);
	struct tunnel_opts opts = {
	    .buffer_bytes = lim->buffer_bytes,
	    .idle_ms = lim->idle_timeout_ms,
	    .done = tunnel_done,
	    .hello = check ? hello_cb : NULL,
	    .hello_max = HELLO_MAX,
	    .hello_ms = lim->header_timeout_ms,
	    .refusal = alert,
	    .refusal_len = sizeof(alert),
	    .arg = c,
	};

	c->r.status = 200;
	c->r.reason = REASON_ALLOWED;
	c->r.in_progress = 1;
	metrics_active(1);
	if (!check)
		log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
	c->r.hello_pending = check;
	/* The hello check logs from the tunnel: the state says so. */
	c->state = CONN_TUNNEL;
	bufferevent_write(c->client_bev, ok, sizeof(ok) - 1);
	c->tunnel = tunnel_new(c->client_bev, c->up_bev, &opts);
	if (!c->tunnel) {
		c->r.reason = REASON_INTERNAL_ERROR;
		conn_close(c);
		return;
	}
	if (c->r.identity)
		tunnel_set_limits(c->tunnel,
		                  c->r.identity->limits.max_tunnel_bytes,
		                  c->r.identity->limits.max_tunnel_ms);
	c->client_bev = c->up_bev = NULL;
	c->state = CONN_TUNNEL;
	request_drop_head(c);
}

/* The head and its parse are needed until relaying starts; an idle tunnel
 * should not carry them. */
static void
request_drop_head(struct conn *c)
{
	free(c->r.head);
	free(c->r.req);
	c->r.head = NULL;
	c->r.head_len = c->r.head_cap = 0;
	c->r.req = NULL;
}

static void
request_reset(struct conn *c)
{
	free(c->r.req);
	free(c->r.head);
	free(c->r.path);
	free(c->r.authority);
	memset(&c->r, 0, sizeof(c->r));
	clock_gettime(CLOCK_MONOTONIC, &c->r.started);
	c->r.reason = REASON_CLIENT_CLOSED;
	/* A listener without identify knows the policy before any request. */
	c->r.policy = c->listener->policy;
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

static void
forward_done(void *arg, const struct forward_result *result)
{
	struct conn *c = arg;
	/* The result lives in the forward, which free_upstream frees. */
	struct forward_result copy = *result, *res = &copy;

	if (may_retry(c, res)) {
		/* The upstream closed the idle connection as it was reused. */
		free_upstream(c);
		c->r.reused = 0;
		c->r.no_pool = 1;
		c->r.next_addr = 0;
		connect_next(c);
		return;
	}
	c->r.bytes_up = res->bytes_up;
	c->r.bytes_down = res->bytes_down;
	if (res->keep_upstream && c->up_bev && !c->env->draining) {
		struct pool_key key;

		pool_key_of(c, &key);
		pool_put(c->env->pool, c->up_bev, &key);
		c->up_bev = NULL;
	}
	if (res->status == 0 && reason_get(res->reason)->status != 0) {
		/* Nothing reached the client yet: it can still be told. */
		conn_fail(c, res->reason, NULL, &c->r.upstream);
		return;
	}
	if (res->status == 0) {
		c->r.reason = res->reason;
		conn_close(c);
		return;
	}
	c->r.status = res->status;
	c->r.reason = res->reason;
	log_close(c);
	free_upstream(c);
	c->nrequests++;
	if (!res->keep_client || c->env->draining) {
		linger(c);
		return;
	}
	request_reset(c);
	wait_request(c);
}

static void
start_forward(struct conn *c)
{
	struct forward_request fr = {
	    .method = c->r.method,
	    .req = c->r.req,
	    .path = {c->r.path, strlen(c->r.path)},
	    .authority = c->r.authority,
	    .body = c->r.body,
	    .client_close = c->r.client_close,
	    .keep_upstream = c->env->pool != NULL,
	};

	/* A retry on a new connection is the same request, decided once. */
	if (!c->r.in_progress) {
		log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
		c->r.in_progress = 1;
		metrics_active(1);
	}
	c->state = CONN_FORWARD;
	c->forward = forward_new(c->client_bev, c->up_bev, &fr,
	                         &c->config->limits, forward_done, c);
	if (!c->forward) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	/* forward_new wrote the upstream head: the client's is done with,
	 * unless a reused connection may fail and the request be sent again. */
	if (!c->r.reused)
		request_drop_head(c);
}

/* May this request go on an idle upstream connection?  Only one that can
 * be sent again on a new connection if the idle one turns out closed: an
 * idempotent method without a body (RFC 9110 §9.2.2, RFC 9112 §9.3.1). */
static int
may_reuse(const struct conn *c)
{
	static const char *const idempotent[] = {"GET",   "HEAD", "OPTIONS",
	                                         "TRACE", "PUT",  "DELETE",
	                                         NULL};

	if (c->r.is_connect || c->r.body.kind != HTTP_BODY_NONE)
		return 0;
	for (const char *const *m = idempotent; *m; m++)
		if (strcmp(c->r.method, *m) == 0)
			return 1;
	return 0;
}

/* A reused connection that ended before a byte of answer came was closed
 * by the upstream as it was reused: send the request again on a new one. */
static int
may_retry(const struct conn *c, const struct forward_result *res)
{
	return c->r.reused && res->status == 0 && res->upstream_silent &&
	       c->r.req != NULL;
}

/* --- connecting ---------------------------------------------------------- */

/* Where the current request goes, and for whom: what a pooled upstream
 * connection must match. */
static void
pool_key_of(const struct conn *c, struct pool_key *key)
{
	key->host = c->r.host.name;
	key->port = c->r.port;
	key->addr = c->r.upstream;
	key->identity = c->r.identity ? c->r.identity->name : NULL;
}

static enum reason
connect_reason(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return REASON_CONNECT_REFUSED;
	case ETIMEDOUT:
		return REASON_CONNECT_TIMEOUT;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		/* No socket for the upstream: egressd's shortage, not the
		 * destination's fault. */
		return REASON_INTERNAL_ERROR;
	default:
		return REASON_CONNECT_ERROR;
	}
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
	if (!c->r.reused) {
		no_delay(bufferevent_getfd(c->up_bev));
		metrics_observe(METRICS_CONNECT,
		                elapsed_s(&c->r.connect_started));
	}
	event_del(c->timer);
	c->r.upstream = c->r.addrs[c->r.next_addr - 1];
	c->r.upstream_known = 1;
	/* Another rule than the name check's may have admitted this address:
	 * its tls setting and its name apply. */
	c->r.rule = c->r.addr_rules[c->r.next_addr - 1];
	if (c->r.is_connect)
		start_tunnel(c);
	else
		start_forward(c);
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
	c->r.connect_error = connect_reason(EVUTIL_SOCKET_ERROR());
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
	if (!r->no_pool && r->next_addr == 0 && may_reuse(c)) {
		struct pool_key key;
		size_t which;

		pool_key_of(c, &key);
		c->up_bev = pool_take(c->env->pool, &key, r->addrs, r->naddrs,
		                      &which);
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
			    connect_reason(EVUTIL_SOCKET_ERROR());
			bufferevent_free(c->up_bev);
			c->up_bev = NULL;
			continue;
		}
		set_timer(c, connect_timeout_cb,
		          c->config->limits.connect_timeout_ms);
		return;
	}
	conn_fail(c, r->connect_error, NULL,
	          r->naddrs ? &r->addrs[r->naddrs - 1] : NULL);
}

/* --- resolving ----------------------------------------------------------- */

static void
resolved(enum resolve_status status, const struct netaddr *addrs, size_t naddrs,
         void *arg)
{
	struct conn *c = arg;
	struct request *r = &c->r;
	struct verdict refused = {REASON_ADDRESS_PROHIBITED, NULL, NULL};
	const struct netaddr *refused_addr = NULL;

	c->query = NULL;
	metrics_observe(METRICS_DNS, elapsed_s(&r->dns_started));
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

		if (policy_check_addr(r->policy, r->method, &r->host, r->port,
		                      &addrs[i], &v)) {
			r->addr_rules[r->naddrs] = v.rule;
		} else if (policy_report_waives(r->policy, &v)) {
			r->addr_rules[r->naddrs] = NULL;
			log_decision(c, v.reason, &v, &addrs[i], 1);
		} else {
			if (!refused_addr) {
				refused = v;
				refused_addr = &addrs[i];
			}
			continue;
		}
		r->addrs[r->naddrs++] = addrs[i];
	}
	if (r->naddrs == 0) {
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

/* Does a Via field already name egressd as a recipient?  Then the request
 * has looped back (RFC 9110 §7.6.3). */
static int
via_has_us(const struct http_request *req)
{
	for (size_t i = 0; i < req->nfields; i++) {
		struct http_span rest = req->fields[i].value, item;

		if (!http_span_ieq(req->fields[i].name, "via"))
			continue;
		while (http_list_next(&rest, &item)) {
			const char *sp = memchr(item.p, ' ', item.len);
			struct http_span by;

			if (!sp)
				continue;
			by.p = sp + 1;
			by.len = item.len - (size_t)(by.p - item.p);
			/* received-by may be followed by a comment. */
			for (size_t j = 0; j < by.len; j++)
				if (by.p[j] == ' ') {
					by.len = j;
					break;
				}
			if (http_span_ieq(by, "egressd"))
				return 1;
		}
	}
	return 0;
}

/*
 * An absolute-form http:// target (RFC 9112 §3.2.2): route by its authority
 * only; keep its path and query as the origin-form target to send.
 * REASON_ALLOWED, or why not.
 */
static enum reason
parse_absolute(struct request *r)
{
	struct http_span t = r->req->target;
	const char *auth, *end, *stop;
	int need;

	if (t.len < 7 || strncasecmp(t.p, "http://", 7) != 0)
		return REASON_BAD_TARGET;
	/* A fragment is never part of a request-target (RFC 9112 §3.2). */
	if (memchr(t.p, '#', t.len))
		return REASON_BAD_TARGET;
	auth = t.p + 7;
	end = t.p + t.len;
	for (stop = auth; stop < end && *stop != '/' && *stop != '?'; stop++)
		;
	if (host_parse_authority(auth, (size_t)(stop - auth), 80, &r->host,
	                         &r->port) < 0)
		return REASON_MALFORMED_HOST;
	r->have_dest = 1;
	need = (int)(end - stop) + 2;
	if (!(r->path = malloc((size_t)need)))
		return REASON_INTERNAL_ERROR;
	snprintf(r->path, (size_t)need, "%s%.*s", *stop == '/' ? "" : "/",
	         (int)(end - stop), stop);
	need = (int)strlen(r->host.name) + 10;
	if (!(r->authority = malloc((size_t)need)))
		return REASON_INTERNAL_ERROR;
	snprintf(r->authority, (size_t)need, "%s%s%s",
	         r->host.kind == HOST_IPV6 ? "[" : "", r->host.name,
	         r->host.kind == HOST_IPV6 ? "]" : "");
	if (r->port != 80)
		snprintf(r->authority + strlen(r->authority),
		         (size_t)need - strlen(r->authority), ":%u", r->port);
	return REASON_ALLOWED;
}

struct tls_match {
	const struct config *config;
	const struct identity *found;
};

static int
tls_name_cb(const char *name, void *arg)
{
	struct tls_match *m = arg;

	m->found = identity_by_tls_name(m->config->identities,
	                                m->config->nidentities, name);
	return m->found != NULL;
}

/* The identity a verified client certificate names, or NULL. */
static const struct identity *
tls_identity(struct conn *c)
{
	struct tls_match m = {c->config, NULL};
	SSL *ssl;

	if (!c->listener->tls ||
	    !(ssl = bufferevent_openssl_get_ssl(c->client_bev)))
		return NULL;
	tls_peer_names(ssl, tls_name_cb, &m);
	return m.found;
}

/*
 * Who is asking?  With identify on the listener, the identity chooses the
 * policy: the first of the listener's methods, in its order, that names
 * one.  Proxy-Authorization, when sent to a listener that takes it, is
 * checked first whatever the order: wrong credentials are refused, never
 * passed over.  REASON_ALLOWED, or why not.
 */
static enum reason
identify(struct conn *c)
{
	const struct config_listener *l = c->listener;
	const struct config *cf = c->config;
	struct request *r = &c->r;
	const struct identity *id = NULL, *by_auth = NULL;
	const struct http_field *pa;
	int asked_auth = 0;

	if (l->nidentify == 0)
		return REASON_ALLOWED;
	for (size_t i = 0; i < l->nidentify; i++)
		asked_auth |= l->identify[i] == IDENTIFY_PROXY_AUTH;
	if (asked_auth &&
	    (pa = http_field_get(r->req, "proxy-authorization")) &&
	    !(by_auth = identity_by_credentials(cf->identities, cf->nidentities,
	                                        pa->value.p, pa->value.len)))
		return REASON_AUTH_FAILED;
	for (size_t i = 0; i < l->nidentify && !id; i++) {
		switch (l->identify[i]) {
		case IDENTIFY_PROXY_AUTH:
			id = by_auth;
			break;
		case IDENTIFY_SOURCE:
			id = identity_by_source(cf->identities, cf->nidentities,
			                        &c->client_addr);
			break;
		case IDENTIFY_TLS_CERT:
			id = tls_identity(c);
			break;
		}
	}
	if (!id)
		return asked_auth ? REASON_AUTH_REQUIRED : REASON_NO_IDENTITY;
	r->identity = id;
	r->policy = id->policy;
	return REASON_ALLOWED;
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
handle_request(struct conn *c, size_t head_len)
{
	struct request *r = &c->r;
	struct http_limits hl;
	struct verdict v;
	enum http_status st;
	enum reason why;
	size_t nhost = 0;

	take_current_config(c);
	http_limits_of(c, &hl);
	if (!(r->req = malloc(sizeof(*r->req)))) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	st = http_parse_request(r->head, head_len, &hl, r->req);
	if (r->req->method.len > 0 && r->req->method.len < sizeof(r->method)) {
		memcpy(r->method, r->req->method.p, r->req->method.len);
		r->method[r->req->method.len] = '\0';
	}
	if (st != HTTP_OK) {
		conn_fail(c, head_reason(st), NULL, NULL);
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
	if (r->is_connect) {
		/* RFC 9110 §9.3.6: authority-form, host:port, no content. */
		if (host_parse_authority(r->req->target.p, r->req->target.len,
		                         0, &r->host, &r->port) < 0) {
			conn_fail(
			    c,
			    memchr(r->req->target.p, '/', r->req->target.len)
			        ? REASON_BAD_TARGET
			        : REASON_MALFORMED_HOST,
			    NULL, NULL);
			return;
		}
		r->have_dest = 1;
		if (r->body.kind != HTTP_BODY_NONE) {
			conn_fail(c, REASON_BAD_FRAMING, NULL, NULL);
			return;
		}
	} else if ((why = parse_absolute(r)) != REASON_ALLOWED) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	if (via_has_us(r->req)) {
		conn_fail(c, REASON_LOOP_DETECTED, NULL, NULL);
		return;
	}
	if ((why = identify(c)) != REASON_ALLOWED ||
	    (r->identity && (why = identity_admit_request(
	                         r->identity, now_ns())) != REASON_ALLOWED)) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	/* Decide before resolving: a refused name is never sent to DNS. */
	if (!policy_check_name(r->policy, r->method, &r->host, r->port, &v)) {
		const struct netaddr *lit =
		    r->host.kind == HOST_NAME ? NULL : &r->host.addr;

		if (!policy_report_waives(r->policy, &v)) {
			conn_fail(c, v.reason, &v, lit);
			return;
		}
		log_decision(c, v.reason, &v, lit, 1);
	}
	r->rule = v.rule;
	if (r->identity) {
		if ((why = identity_take_tunnel(r->identity)) !=
		    REASON_ALLOWED) {
			conn_fail(c, why, NULL, NULL);
			return;
		}
		r->tunnel_slot = 1;
	}
	if (r->host.kind != HOST_NAME) {
		r->addr_rules[r->naddrs] = v.rule;
		r->addrs[r->naddrs++] = r->host.addr;
		connect_next(c);
		return;
	}
	c->state = CONN_RESOLVING;
	clock_gettime(CLOCK_MONOTONIC, &r->dns_started);
	c->query = resolve_start(c->env->resolver, r->host.name, resolved, c);
	if (!c->query)
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
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
			set_timer(c, head_timeout_cb,
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
	note_request_line(c, r->head, r->head_len);
	if (st != HTTP_OK) {
		conn_fail(c, head_reason(st), NULL, NULL);
		return;
	}
	/* Nothing more is read until the request is decided: bytes after the
	 * head reach the upstream only through an established tunnel or as
	 * the body of an allowed request. */
	bufferevent_disable(bev, EV_READ);
	handle_request(c, r->head_len);
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
		note_request_line(c, c->r.head, c->r.head_len);
	else
		note_request_line(
		    c, (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len);
	conn_fail(c, REASON_HEADER_TIMEOUT, NULL, NULL);
}

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
	set_timer(c, head_timeout_cb,
	          c->nrequests ? lim->keepalive_timeout_ms
	                       : lim->header_timeout_ms);
	/* A pipelined request may already be waiting. */
	if (evbuffer_get_length(bufferevent_get_input(c->client_bev)) > 0)
		bufferevent_trigger(c->client_bev, EV_READ,
		                    BEV_TRIG_IGNORE_WATERMARKS |
		                        BEV_TRIG_DEFER_CALLBACKS);
}

/* --- life and death ------------------------------------------------------ */

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
	request_reset(c);
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

static void
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
		log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
	}
	/* A request in progress gets its close line; so does a connection
	 * that never sent one.  An idle kept-alive connection has said all. */
	if (c->r.begun || c->nrequests == 0 || c->state != CONN_HEAD)
		log_close(c);
	c->state = CONN_CLOSED;
	release_slot(c);
	atomic_fetch_sub(&total_conns, 1);
	atomic_fetch_sub(&client_conns[client_slot(&c->client_addr)], 1);
	resolve_cancel(c->query);
	tunnel_free(c->tunnel);
	free_upstream(c);
	if (c->client_bev)
		bufferevent_free(c->client_bev);
	if (c->timer)
		event_free(c->timer);
	free(c->r.head);
	free(c->r.req);
	free(c->r.path);
	free(c->r.authority);
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
	env->pool = pool_new(base, POOL_MAX, POOL_IDLE_MS);
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
