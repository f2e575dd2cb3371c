#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "gitpkt.h"
#include "metrics.h"

void
request_init(struct request *r, const struct policy *policy)
{
	memset(r, 0, sizeof(*r));
	clock_gettime(CLOCK_MONOTONIC, &r->started);
	r->reason = REASON_CLIENT_CLOSED;
	r->policy = policy;
}

void
request_free(struct request *r)
{
	free(r->req);
	free(r->head);
	free(r->path);
	free(r->authority);
	free(r->gateway_path);
	free(r->git_repo);
	free(r->reply);
	gitpkt_push_free(r->git_push);
	r->req = NULL;
	r->head = r->path = r->authority = r->gateway_path = NULL;
	r->git_repo = r->reply = NULL;
	r->git_push = NULL;
}

void
request_drop_head(struct request *r)
{
	free(r->head);
	free(r->req);
	r->head = NULL;
	r->head_len = r->head_cap = 0;
	r->req = NULL;
}

void
request_note_line(struct request *r, const char *p, size_t len)
{
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
	host = http_target_host((struct http_span){p + sp1 + 1, sp2 - sp1 - 1});
	r->raw_host_len = host.len > LOG_VALUE_MAX ? LOG_VALUE_MAX : host.len;
	memcpy(r->raw_host, host.p, r->raw_host_len);
}

void
request_release_slot(struct request *r)
{
	if (r->tunnel_slot) {
		identity_release_tunnel(r->identity);
		r->tunnel_slot = 0;
	}
}

double
request_seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	       (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

long long
request_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000LL +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* --- the log lines -------------------------------------------------------- */

static void log_request(struct log_line *l, const struct conn *c,
                        const char *event, const char *mode);

void
request_log_begin(struct log_line *l, const struct conn *c, const char *event)
{
	log_request(l, c, event, NULL);
}

/* The fields every line of a request carries.  mode is the policy's,
 * unless a deny line says how that refusal was applied. */
static void
log_request(struct log_line *l, const struct conn *c, const char *event,
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
	if (r->route)
		log_str(l, "route", r->route->name);
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
	/* A gateway request's path as the client sent it, without its
	 * query, also when refused (bad_path: exactly what to look at). */
	if (r->gateway_path)
		log_str(l, "gateway_path", r->gateway_path);
	if (r->git_repo) {
		log_str(l, "repo", r->git_repo);
		log_str(l, "service", r->git_service);
	}
	if (r->sni[0])
		log_str(l, "sni", r->sni);
}

static void
log_addr(struct log_line *l, const char *key, const struct netaddr *a)
{
	char buf[NETADDR_STRLEN];

	log_str(l, key, netaddr_str(a, buf));
}

/*
 * Does the decision line carry a status?  An allowed CONNECT is answered
 * 200 now; an allowed plain-HTTP request's status is the upstream's, on
 * the close line.  A refusal has its answer's, unless the tunnel's 200 went
 * out before it (the hello check).
 */
static int
decision_has_status(const struct request *r, enum reason why)
{
	if (why == REASON_ALLOWED)
		return r->is_connect;
	return !r->tunnel_open;
}

void
request_log_decision(const struct conn *c, enum reason why,
                     const struct verdict *v, const struct netaddr *addr,
                     int report)
{
	const struct reason_info *ri = reason_get(why);
	int deny = reason_is_denial(why);
	struct log_line l;

	metrics_request(c->r.policy ? c->r.policy->metrics_slot : -1, why,
	                report);
	log_request(&l, c,
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
	if (c->r.detail[0])
		log_str(&l, "detail", c->r.detail);
	if (report)
		log_str(&l, "message", "report mode: not enforced");
	else if (decision_has_status(&c->r, why))
		log_int(&l, "status",
		        c->r.reply ? c->r.reply_status : ri->status);
	log_end(&l);
}

void
request_log_close(struct conn *c)
{
	struct request *r = &c->r;
	struct log_line l;
	int relayed = r->in_progress;

	if (r->logged)
		return;
	r->logged = 1;
	request_release_slot(r);
	if (r->in_progress) {
		/* Relayed bytes only; egressd's own answers are not traffic. */
		metrics_bytes(r->bytes_up, r->bytes_down);
		r->in_progress = 0;
		metrics_active(-1);
	}
	if (r->route)
		metrics_route(r->route->metrics_slot, r->status,
		              relayed ? r->bytes_up : 0,
		              relayed ? r->bytes_down : 0,
		              !r->tls_version  ? METRICS_UPSTREAM_NONE
		              : r->reused      ? METRICS_UPSTREAM_REUSED
		              : r->tls_resumed ? METRICS_UPSTREAM_RESUMED
		                               : METRICS_UPSTREAM_NEW);
	log_request(&l, c, "close", NULL);
	if (r->upstream_known)
		log_addr(&l, "addr", &r->upstream);
	if (r->rule && r->status >= 100 && r->status < 400 &&
	    !reason_is_denial(r->reason))
		log_str(&l, "rule", r->rule->name);
	log_str(&l, "reason", reason_get(r->reason)->name);
	if (r->status)
		log_int(&l, "status", r->status);
	if (r->tls_version) {
		log_str(&l, "tls", r->tls_version);
		log_str(&l, "upstream_conn",
		        r->reused        ? "reused"
		        : r->tls_resumed ? "resumed"
		                         : "new");
	}
	log_int(&l, "bytes_up", (long long)r->bytes_up);
	log_int(&l, "bytes_down", (long long)r->bytes_down);
	log_int(&l, "duration_ms", request_ms_since(&r->started));
	log_end(&l);
}
