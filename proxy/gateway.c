#include "gateway.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dial.h"
#include "gateway_git.h"
#include "log.h"
#include "origin.h"
#include "proxy.h"
#include "secret.h"
#include "tls.h"

/* The most a gateway token may be, decoded (a Basic value's password). */
#define TOKEN_MAX 512

static enum reason identify(struct conn *c);
static enum reason choose_route(struct conn *c, const struct route_target *t);
static enum reason set_destination(struct conn *c, const struct route_target *t,
                                   const char *rest, size_t rest_len);
static int admit_cb(struct conn *c, const struct netaddr *a, struct verdict *v);
static void connected_cb(struct conn *c);

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The client's path without its query, for the log: what was asked, even
 * when it is refused (log lines escape what they carry). */
static void
note_path(struct request *r)
{
	struct http_span t = r->req->target;
	const char *q = memchr(t.p, '?', t.len);
	size_t n = q ? (size_t)(q - t.p) : t.len;

	if (n > LOG_VALUE_MAX)
		n = LOG_VALUE_MAX;
	r->gateway_path = strndup(t.p, n);
}

void
gateway_request(struct conn *c)
{
	struct request *r = &c->r;
	struct route_target t;
	const char *rest;
	size_t rest_len;
	enum reason why;
	int idx;

	if (r->is_connect || r->req->target.len == 0 ||
	    r->req->target.p[0] != '/') {
		conn_fail(c, REASON_BAD_TARGET, NULL, NULL);
		return;
	}
	note_path(r);
	if (http_via_names(r->req, "egressd")) {
		conn_fail(c, REASON_LOOP_DETECTED, NULL, NULL);
		return;
	}
	/* Strict before anything matches: a path that would need cleaning
	 * is refused, never cleaned into one a rule allows. */
	if (route_target_parse(r->req->target.p, r->req->target.len, &t) < 0) {
		conn_fail(c, REASON_BAD_PATH, NULL, NULL);
		return;
	}
	if ((why = identify(c)) != REASON_ALLOWED ||
	    (r->identity && (why = identity_admit_request(
	                         r->identity, now_ns())) != REASON_ALLOWED)) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	idx = route_find(c->config->route_match, c->config->nroutes, &t, &rest,
	                 &rest_len);
	if (idx >= 0)
		r->route = &c->config->routes[idx];
	if ((why = choose_route(c, &t)) == REASON_ALLOWED) {
		if (r->route->git.on)
			why = gateway_git_decide(c, &t, rest, rest_len);
		else if (!route_allows(&r->route->match, r->method, rest,
		                       rest_len))
			why = REASON_PATH_NOT_ALLOWED;
	}
	if (why != REASON_ALLOWED) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	if ((why = set_destination(c, &t, rest, rest_len)) != REASON_ALLOWED) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	if (r->identity) {
		if ((why = identity_take_tunnel(r->identity)) !=
		    REASON_ALLOWED) {
			conn_fail(c, why, NULL, NULL);
			return;
		}
		r->tunnel_slot = 1;
	}
	dial_start(c, admit_cb, connected_cb);
}

/* The route found must be one the client's policy may use; one it may not
 * is answered as if there were none. */
static enum reason
choose_route(struct conn *c, const struct route_target *t)
{
	struct request *r = &c->r;

	(void)t;
	if (!r->route || !r->policy ||
	    !policy_allows_route(r->policy, r->route->name)) {
		r->route = NULL;
		return REASON_ROUTE_NOT_FOUND;
	}
	return REASON_ALLOWED;
}

/* "host" or "host:port" (443 left out), brackets around IPv6. */
static char *
authority_of(const struct host *h, uint16_t port)
{
	size_t need = strlen(h->name) + 10;
	char *s = malloc(need);
	int v6 = h->kind == HOST_IPV6;

	if (!s)
		return NULL;
	snprintf(s, need, "%s%s%s", v6 ? "[" : "", h->name, v6 ? "]" : "");
	if (port != 443)
		snprintf(s + strlen(s), need - strlen(s), ":%u", port);
	return s;
}

/* The origin, the target to send it and the Host; an IP-literal origin is
 * its own address, checked against the route's networks. */
static enum reason
set_destination(struct conn *c, const struct route_target *t, const char *rest,
                size_t rest_len)
{
	struct request *r = &c->r;
	const struct route *m = &r->route->match;
	char target[ROUTE_PATH_MAX * 2 + 16];
	int n;

	if (host_parse(m->host, strlen(m->host), 0, &r->host) < 0)
		return REASON_INTERNAL_ERROR;
	r->port = m->port;
	r->have_dest = 1;
	n = route_upstream_target(m, rest, rest_len, t, target, sizeof(target));
	if (n < 0)
		return REASON_URI_TOO_LONG;
	if (!(r->path = strdup(target)) ||
	    !(r->authority = authority_of(&r->host, r->port)))
		return REASON_INTERNAL_ERROR;
	if (r->host.kind != HOST_NAME) {
		struct verdict v;

		if (!policy_check_name(&r->route->guard, "GET", &r->host,
		                       r->port, &v))
			return v.reason;
		r->addr_rules[r->naddrs] = v.rule;
		r->addrs[r->naddrs++] = r->host.addr;
	}
	return REASON_ALLOWED;
}

/* --- who is asking ------------------------------------------------------- */

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

static const struct identity *
cert_identity_cb(void *arg)
{
	struct conn *c = arg;
	struct tls_match m = {c->config, NULL};
	SSL *ssl;

	if (!c->listener->tls ||
	    !(ssl = bufferevent_openssl_get_ssl(c->client_bev)))
		return NULL;
	tls_peer_names(ssl, tls_name_cb, &m);
	return m.found;
}

static enum reason
identify(struct conn *c)
{
	const struct http_field *key = http_field_get(c->r.req, "x-api-key");
	const struct http_field *authz =
	    http_field_get(c->r.req, "authorization");
	char token[TOKEN_MAX];
	int takes_token = 0, n;
	struct identity_claims claims = {
	    .source = &c->client_addr,
	    .by_cert = cert_identity_cb,
	    .arg = c,
	};
	const struct identity *id;
	enum reason why;

	for (size_t i = 0; i < c->listener->nidentify; i++)
		takes_token |= c->listener->identify[i] == IDENTIFY_TOKEN;
	if (takes_token) {
		char other[TOKEN_MAX];
		int m = 0;

		/* Both fields may carry a token; then they must agree: a client
		 * that sends a second credential beside its token is sending
		 * something it should not hold. */
		n = identity_gateway_token(key ? key->value.p : NULL,
		                           key ? key->value.len : 0, NULL, 0,
		                           token, sizeof(token));
		if (authz)
			m = identity_gateway_token(NULL, 0, authz->value.p,
			                           authz->value.len, other,
			                           sizeof(other));
		if (n > 0 && m > 0 &&
		    (n != m || CRYPTO_memcmp(token, other, (size_t)n) != 0))
			n = -1;
		else if (n == 0 && m != 0) {
			n = m;
			if (m > 0)
				memcpy(token, other, (size_t)m);
		}
		OPENSSL_cleanse(other, sizeof(other));
		if (n < 0) {
			OPENSSL_cleanse(token, sizeof(token));
			return REASON_TOKEN_FAILED;
		}
		if (n > 0) {
			claims.token = token;
			claims.token_len = (size_t)n;
		}
	}
	why = identity_identify(c->listener->identify, c->listener->nidentify,
	                        c->config->identities, c->config->nidentities,
	                        &claims, &id);
	OPENSSL_cleanse(token, sizeof(token));
	if (why == REASON_ALLOWED && id) {
		c->r.identity = id;
		c->r.policy = id->policy;
	}
	return why;
}

/* --- the origin ------------------------------------------------------------
 */

/* The route's address guard: what the proxy's rules get, with the route's
 * networks.  Never waived: a route has no report mode. */
static int
admit_cb(struct conn *c, const struct netaddr *a, struct verdict *v)
{
	return policy_check_addr(&c->r.route->guard, "GET", &c->r.host,
	                         c->r.port, a, v);
}

static void start_forward(struct conn *c);

static void
handshake_done_cb(void *arg, const struct origin_result *res)
{
	struct conn *c = arg;
	struct request *r = &c->r;
	struct verdict v = {res->reason, r->rule, NULL};

	c->handshake = NULL;
	event_del(c->timer);
	if (res->reason != REASON_ALLOWED) {
		snprintf(r->detail, sizeof(r->detail), "%s",
		         res->detail ? res->detail : "");
		conn_fail(c, res->reason, &v, &r->upstream);
		return;
	}
	c->up_bev = res->bev;
	r->tls_version = res->version;
	r->tls_resumed = res->resumed;
	start_forward(c);
}

static void
handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	origin_tls_cancel(c->handshake);
	c->handshake = NULL;
	snprintf(c->r.detail, sizeof(c->r.detail),
	         "no TLS handshake within connect_timeout_ms");
	conn_fail(c, REASON_CONNECT_TIMEOUT, NULL, &c->r.upstream);
}

static void
connected_cb(struct conn *c)
{
	struct request *r = &c->r;
	struct bufferevent *tcp = c->up_bev;
	SSL *ssl;

	if (r->reused) {
		if ((ssl = bufferevent_openssl_get_ssl(c->up_bev)))
			r->tls_version = SSL_get_version(ssl);
		start_forward(c);
		return;
	}
	c->up_bev = NULL;
	c->handshake = origin_tls_start(r->route->tls, tcp, r->host.name,
	                                handshake_done_cb, c);
	if (!c->handshake) {
		bufferevent_free(tcp);
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, &r->upstream);
		return;
	}
	conn_set_timer(c, handshake_timeout_cb,
	               c->config->limits.connect_timeout_ms);
}

/* --- the request -----------------------------------------------------------
 */

/* The value of the route's header: the secret as the scheme wants it.
 * Its length, or -1 when it does not fit. */
static int
inject_value(const struct config_route *rt, const struct secret_value *s,
             char *buf, size_t size)
{
	char plain[SECRET_MAX + 160];
	int n, len;

	switch (rt->inject_scheme) {
	case INJECT_PLAIN:
		n = snprintf(buf, size, "%.*s", (int)s->len, s->bytes);
		break;
	case INJECT_BEARER:
		n = snprintf(buf, size, "Bearer %.*s", (int)s->len, s->bytes);
		break;
	case INJECT_BASIC:
		len = snprintf(plain, sizeof(plain), "%s:%.*s", rt->inject_user,
		               (int)s->len, s->bytes);
		if (len < 0 || (size_t)len >= sizeof(plain) ||
		    size < 7 + 4 * ((size_t)len + 2) / 3 + 1) {
			OPENSSL_cleanse(plain, sizeof(plain));
			return -1;
		}
		memcpy(buf, "Basic ", 6);
		n = 6 + EVP_EncodeBlock((unsigned char *)buf + 6,
		                        (const unsigned char *)plain, len);
		OPENSSL_cleanse(plain, sizeof(plain));
		break;
	default:
		return -1;
	}
	return n < 0 || (size_t)n >= size ? -1 : n;
}

static int
location_cb(void *arg, const char *value, size_t len, char *buf, size_t size)
{
	struct conn *c = arg;

	return route_rewrite_location(&c->r.route->match, value, len, buf,
	                              size) == 1;
}

/*
 * Forward with the route's plan: whatever the client sent as a credential
 * (x-api-key, Authorization: its gateway token, or a key of its own) is
 * dropped, and the route's header carries the secret.  The value exists
 * only while forward_new writes the head, then it is wiped.
 */
static void
start_forward(struct conn *c)
{
	const struct config_route *rt = c->r.route;
	static const char *const drop[] = {"x-api-key", "authorization"};
	char value[SECRET_MAX * 2 + 200];
	const struct secret_value *s = NULL;
	struct forward_field add = {rt->inject_header, value};
	struct forward_plan plan = {drop, 2, &add, 0};
	struct proxy_hooks h = {.plan = &plan, .location = location_cb, .arg = c};

	if (rt->secret) {
		s = secret_get(rt->secret);
		if (inject_value(rt, s, value, sizeof(value)) < 0) {
			secret_put(s);
			conn_fail(c, REASON_INTERNAL_ERROR, NULL,
			          &c->r.upstream);
			return;
		}
		plan.nadd = 1;
	}
	gateway_git_hooks(c, &h);
	proxy_forward(c, &h);
	if (s) {
		OPENSSL_cleanse(value, sizeof(value));
		secret_put(s);
	}
}

/* --- the snapshot's files ----------------------------------------------------
 */

static void
close_routes(struct config *c)
{
	for (size_t i = 0; i < c->nroutes; i++) {
		origin_tls_free(c->routes[i].tls);
		secret_free(c->routes[i].secret);
		c->routes[i].tls = NULL;
		c->routes[i].secret = NULL;
	}
}

int
gateway_open(struct config *c, char *err, size_t errlen)
{
	char why[512];

	c->close_routes = close_routes;
	for (size_t i = 0; i < c->nroutes; i++) {
		struct config_route *r = &c->routes[i];

		if (!(r->tls = origin_tls_new(r->ca_file, why, sizeof(why)))) {
			snprintf(err, errlen, "%s:%d: route \"%s\": %s",
			         c->path, r->line, r->name, why);
			return -1;
		}
		if (r->secret_path &&
		    !(r->secret =
		          secret_load(r->secret_path, why, sizeof(why)))) {
			snprintf(err, errlen, "%s:%d: route \"%s\": %s",
			         c->path, r->line, r->name, why);
			return -1;
		}
	}
	return 0;
}

void
gateway_refresh(struct config *c)
{
	char why[512], msg[800];
	struct log_line l;

	for (size_t i = 0; i < c->nroutes; i++) {
		struct config_route *r = &c->routes[i];
		int rc;

		if (!r->secret)
			continue;
		rc = secret_refresh(r->secret, why, sizeof(why));
		if (rc == 0)
			continue;
		if (rc > 0)
			snprintf(msg, sizeof(msg),
			         "route \"%s\": the secret in %s changed; new "
			         "requests carry the new one",
			         r->name, r->secret_path);
		else
			snprintf(
			    msg, sizeof(msg),
			    "route \"%s\": %s; the old secret stays in use",
			    r->name, why);
		log_begin(&l, rc > 0 ? "secret" : "error");
		log_str(&l, "reason",
		        rc > 0 ? "secret_changed" : "secret_unreadable");
		log_str(&l, "route", r->name);
		log_str(&l, "message", msg);
		log_end(&l);
	}
}
