#include "proxy.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answer.h"
#include "clienthello.h"
#include "dial.h"
#include "forward.h"
#include "metrics.h"
#include "tls.h"
#include "tunnel.h"

/* The most of a tunnel's first bytes the hello check holds: the largest
 * ClientHellos seen (every group and a long ALPN list) are about 20 KB. */
#define HELLO_MAX (32 * 1024)

static enum reason parse_target(struct request *r);
static enum reason identify(struct conn *c);
static int admit_cb(struct conn *c, const struct netaddr *a, struct verdict *v);
static void connected_cb(struct conn *c);
static void start_tunnel(struct conn *c);

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
proxy_request(struct conn *c)
{
	struct request *r = &c->r;
	struct verdict v;
	enum reason why;

	if ((why = parse_target(r)) != REASON_ALLOWED) {
		conn_fail(c, why, NULL, NULL);
		return;
	}
	if (http_via_names(r->req, "egressd")) {
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
		request_log_decision(c, v.reason, &v, lit, 1);
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
	/* An IP literal is its own address, checked by the name check. */
	if (r->host.kind != HOST_NAME) {
		r->addr_rules[r->naddrs] = v.rule;
		r->addrs[r->naddrs++] = r->host.addr;
	}
	dial_start(c, admit_cb, connected_cb);
}

/* The origin-form target to send for what follows the authority: "/"
 * first when it does not start with one.  malloc'd; NULL when out of
 * memory. */
static char *
origin_form(struct http_span rest)
{
	int slash = !(rest.len && rest.p[0] == '/');
	char *s = malloc(rest.len + 2);

	if (s)
		snprintf(s, rest.len + 2, "%s%.*s", slash ? "/" : "",
		         (int)rest.len, rest.p);
	return s;
}

/* The Host to send: the name, or the bracketed IPv6 literal, with the port
 * unless it is 80.  malloc'd; NULL when out of memory. */
static char *
authority_of(const struct host *h, uint16_t port)
{
	size_t need = strlen(h->name) + 10;
	char *s = malloc(need);
	int v6 = h->kind == HOST_IPV6;

	if (!s)
		return NULL;
	if (port != 80)
		snprintf(s, need, "%s%s%s:%u", v6 ? "[" : "", h->name,
		         v6 ? "]" : "", port);
	else
		snprintf(s, need, "%s%s%s", v6 ? "[" : "", h->name,
		         v6 ? "]" : "");
	return s;
}

/*
 * The destination: CONNECT's authority-form host:port (RFC 9110 §9.3.6, no
 * content), or an absolute-form http:// target, routed by its authority
 * only; its path and query become the origin-form target to send, and the
 * authority the Host.  REASON_ALLOWED, or why not.
 */
static enum reason
parse_target(struct request *r)
{
	struct http_span t = r->req->target, rest;

	if (r->is_connect) {
		if (host_parse_authority(t.p, t.len, 0, &r->host, &r->port) < 0)
			return memchr(t.p, '/', t.len) ? REASON_BAD_TARGET
			                               : REASON_MALFORMED_HOST;
		r->have_dest = 1;
		return r->body.kind == HTTP_BODY_NONE ? REASON_ALLOWED
		                                      : REASON_BAD_FRAMING;
	}
	switch (http_absolute_target(t, &r->host, &r->port, &rest)) {
	case HTTP_TARGET_OK:
		break;
	case HTTP_TARGET_NOT_HTTP:
		return REASON_BAD_TARGET;
	case HTTP_TARGET_BAD_HOST:
		return REASON_MALFORMED_HOST;
	}
	r->have_dest = 1;
	if (!(r->path = origin_form(rest)) ||
	    !(r->authority = authority_of(&r->host, r->port)))
		return REASON_INTERNAL_ERROR;
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

/* The identity a verified client certificate names, or NULL. */
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

/* With identify on the listener, the identity chooses the policy
 * (identity_identify says how).  REASON_ALLOWED, or why not. */
static enum reason
identify(struct conn *c)
{
	const struct http_field *pa =
	    http_field_get(c->r.req, "proxy-authorization");
	struct identity_claims claims = {
	    .credentials = pa ? pa->value.p : NULL,
	    .credentials_len = pa ? pa->value.len : 0,
	    .source = &c->client_addr,
	    .by_cert = cert_identity_cb,
	    .arg = c,
	};
	const struct identity *id;
	enum reason why = identity_identify(
	    c->listener->identify, c->listener->nidentify,
	    c->config->identities, c->config->nidentities, &claims, &id);

	if (why == REASON_ALLOWED && id) {
		c->r.identity = id;
		c->r.policy = id->policy;
	}
	return why;
}

/* --- dialled -------------------------------------------------------------- */

/* The policy's address check: a refusal that report mode waives is logged
 * and the address is tried, governed by no rule. */
static int
admit_cb(struct conn *c, const struct netaddr *a, struct verdict *v)
{
	struct request *r = &c->r;

	if (policy_check_addr(r->policy, r->method, &r->host, r->port, a, v))
		return 1;
	if (!policy_report_waives(r->policy, v))
		return 0;
	request_log_decision(c, v->reason, v, a, 1);
	v->rule = NULL;
	return 1;
}

static void
connected_cb(struct conn *c)
{
	if (c->r.is_connect)
		start_tunnel(c);
	else
		proxy_forward(c, NULL);
}

/* --- the tunnel ----------------------------------------------------------- */

static void
tunnel_end_cb(void *arg, enum reason why)
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
	enum clienthello_status st =
	    clienthello_parse(buf, len, HELLO_MAX, &ch);
	struct verdict v = {REASON_ALLOWED, c->r.rule, NULL};

	if (st == CLIENTHELLO_NEED_MORE && !final)
		return 0;
	c->r.hello_pending = 0;
	if (final == TUNNEL_HELLO_EOF && len == 0) {
		/* Closed before a byte: nothing to judge, nothing went. */
		request_log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream,
		                     0);
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

		request_log_decision(c, v.reason, &v, &c->r.upstream, report);
		if (!report) {
			*why = v.reason;
			return -1;
		}
	}
	request_log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
	return 1;
}

static void
start_tunnel(struct conn *c)
{
	/* A fatal access_denied alert: the client's TLS stack says why. */
	static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00,
	                                      0x02, 0x02, 0x31};
	const struct config_limits *lim = &c->config->limits;
	int check = c->r.rule && c->r.host.kind == HOST_NAME &&
	            rule_requires_sni(c->r.rule, c->r.port);
	struct tunnel_opts opts = {
	    .buffer_bytes = lim->buffer_bytes,
	    .idle_ms = lim->idle_timeout_ms,
	    .done = tunnel_end_cb,
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
		request_log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream,
		                     0);
	c->r.hello_pending = check;
	/* The hello check logs from the tunnel: the state says so. */
	c->state = CONN_TUNNEL;
	c->r.tunnel_open = 1;
	answer_established(bufferevent_get_output(c->client_bev));
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
	request_drop_head(&c->r);
}

/* --- the forward ---------------------------------------------------------- */

/* A reused connection that ended before a byte of answer came was closed
 * by the upstream as it was reused: send the request again on a new one,
 * if it has no body (a body's bytes went to the closed connection; only
 * the gateway reuses connections for such requests). */
static int
may_retry(const struct request *r, const struct forward_result *res)
{
	return r->reused && res->status == 0 && res->upstream_silent &&
	       r->req != NULL && r->body.kind == HTTP_BODY_NONE;
}

static void
forward_end_cb(void *arg, const struct forward_result *result)
{
	struct conn *c = arg;
	/* The result lives in the forward, which conn_free_upstream frees. */
	struct forward_result res = *result;

	if (may_retry(&c->r, &res)) {
		dial_again(c);
		return;
	}
	c->r.bytes_up = res.bytes_up;
	c->r.bytes_down = res.bytes_down;
	if (res.keep_upstream)
		dial_keep(c);
	if (res.status == 0 && reason_get(res.reason)->status != 0) {
		/* Nothing reached the client yet: it can still be told. */
		conn_fail(c, res.reason, NULL, &c->r.upstream);
		return;
	}
	c->r.reason = res.reason;
	if (res.status == 0) {
		conn_close(c);
		return;
	}
	c->r.status = res.status;
	conn_request_done(c, res.keep_client);
}

void
proxy_allowed(struct conn *c)
{
	/* A retry on a new connection is the same request, decided once. */
	if (c->r.in_progress)
		return;
	request_log_decision(c, REASON_ALLOWED, NULL, &c->r.upstream, 0);
	c->r.in_progress = 1;
	metrics_active(1);
}

void
proxy_forward(struct conn *c, const struct proxy_hooks *h)
{
	static const struct proxy_hooks none;
	struct forward_request fr;

	if (!h)
		h = &none;
	fr = (struct forward_request){
	    .method = c->r.method,
	    .req = c->r.req,
	    .path = {c->r.path, strlen(c->r.path)},
	    .authority = c->r.authority,
	    .body = c->r.body,
	    .client_close = c->r.client_close,
	    .keep_upstream = c->env->pool != NULL,
	    .plan = h->plan,
	    .inspect = h->inspect,
	    .inspect_max = h->inspect_max,
	    .inspect_arg = h->arg,
	    .location = h->location,
	    .location_arg = h->arg,
	};
	if (!h->inspect)
		proxy_allowed(c);
	c->state = CONN_FORWARD;
	c->forward = forward_new(c->client_bev, c->up_bev, &fr,
	                         &c->config->limits, forward_end_cb, c);
	if (!c->forward) {
		conn_fail(c, REASON_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	/* forward_new wrote the upstream head: the client's is done with,
	 * unless a reused connection may fail and the request be sent again. */
	if (!c->r.reused)
		request_drop_head(&c->r);
}
