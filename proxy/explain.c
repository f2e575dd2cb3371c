#include "explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gitpkt.h"
#include "host.h"
#include "policy.h"
#include "reason.h"
#include "route.h"

/* --- --explain ----------------------------------------------------------- */

/* "https://host[:port]/path", "http://...", or "host:port". */
static int
parse_explain_target(const char *s, struct host *h, uint16_t *port)
{
	uint16_t def = 0;
	size_t len;

	if (strncasecmp(s, "https://", 8) == 0) {
		s += 8;
		def = 443;
	} else if (strncasecmp(s, "http://", 7) == 0) {
		s += 7;
		def = 80;
	}
	len = def ? strcspn(s, "/?#") : strlen(s);
	return host_parse_authority(s, len, def, h, port);
}

static void
print_addresses(const struct rule *r)
{
	char buf[NETADDR_STRLEN];

	if (r->networks.n == 0) {
		printf("addresses: any address that is not special-purpose "
		       "(checked after DNS)\n");
		return;
	}
	printf("addresses: must lie in");
	for (size_t i = 0; i < r->networks.n; i++)
		printf("%s %s", i ? "," : "", cidr_str(&r->networks.v[i], buf));
	printf(" (checked after DNS)\n");
}

/* A git route's decision (gateway_git.c's, before a push's refs), and
 * with --ref the verdict on one ref of a push.  0 allowed, 1 refused. */
static int
explain_git(const struct config_route *r, const char *method,
            const struct route_target *t, const char *rest, size_t rest_len,
            const char *ref)
{
	struct gitpkt_request q;
	const struct route_git *g = &r->git;
	struct gitpkt_ref_rules rules = {(const char *const *)g->refs,
	                                 g->nrefs, g->allow_delete,
	                                 g->allow_tags};
	struct gitpkt_command cmd = {0};
	char text[512], why[GITPKT_REASON_MAX];
	enum gitpkt_verdict v;
	int ok;

	if (rest_len == 0) {
		rest = "/";
		rest_len = 1;
	}
	if (gitpkt_classify(method, rest, rest_len, t->query, t->query_len,
	                    &q) == GITPKT_OTHER) {
		ok = r->match.nrules > 0 &&
		     route_allows(&r->match, method, rest, rest_len);
		printf("git: not a fetch or push (smart HTTP); %s\n",
		       ok ? "an allow rule names it" : "no allow rule names it");
		if (!ok)
			printf("verdict: deny\nreason: %s\n",
			       reason_get(REASON_PATH_NOT_ALLOWED)->name);
		return ok ? 0 : 1;
	}
	printf("git: repository %.*s, %s (%s)\n", (int)q.repo_len, q.repo,
	       gitpkt_service_name(q.service),
	       q.service == GITPKT_UPLOAD_PACK ? "clone, fetch" : "push");
	if (!gitpkt_repo_match_any(q.service == GITPKT_UPLOAD_PACK
	                               ? (const char *const *)g->fetch
	                               : (const char *const *)g->push,
	                           q.service == GITPKT_UPLOAD_PACK ? g->nfetch
	                                                           : g->npush,
	                           q.repo, q.repo_len)) {
		gitpkt_repo_refusal(q.service, q.repo, q.repo_len, text,
		                    sizeof(text));
		printf("verdict: deny\nreason: %s\ngit shows: %s",
		       reason_get(REASON_REPO_NOT_ALLOWED)->name, text);
		return 1;
	}
	if (q.service != GITPKT_RECEIVE_PACK || !ref) {
		if (q.service == GITPKT_RECEIVE_PACK)
			printf("refs: each ref of a push is judged on its own "
			       "(--ref REF, or --ref :REF for a delete)\n");
		return 0;
	}
	/* A ref as a push names it: an update (or a tag's creation), or
	 * ":REF", a delete. */
	cmd.deletes = ref[0] == ':';
	cmd.ref = ref + cmd.deletes;
	cmd.ref_len = strlen(cmd.ref);
	cmd.creates = !cmd.deletes && strncmp(cmd.ref, "refs/tags/", 10) == 0;
	if (!gitpkt_ref_valid(cmd.ref, cmd.ref_len)) {
		printf("ref: %s: not a ref name git would send\nverdict: "
		       "deny\nreason: %s\n",
		       cmd.ref, reason_get(REASON_BAD_PKT_LINE)->name);
		return 1;
	}
	v = gitpkt_ref_check(&rules, &cmd);
	printf("ref: %s (%s): %s", cmd.ref,
	       cmd.deletes ? "delete" : cmd.creates ? "create" : "update",
	       v == GITPKT_REF_OK ? "allow\n" : "deny: ");
	if (v != GITPKT_REF_OK)
		printf("egress policy: %s\nverdict: deny\nreason: %s\n",
		       gitpkt_ref_reason(v, &rules, why, sizeof(why)),
		       reason_get(REASON_REF_NOT_ALLOWED)->name);
	return v == GITPKT_REF_OK ? 0 : 1;
}

/* A gateway path: which route takes it, and whether its rules allow the
 * method (what the gateway decides before it dials the origin). */
static int
explain_gateway(const struct config *c, const char *path, const char *method,
                const struct policy *p, const char *ref)
{
	struct route_target t;
	const struct config_route *r;
	const char *rest;
	size_t rest_len;
	char up[ROUTE_PATH_MAX * 2 + 16];
	int i;

	printf("gateway path: %s (%s)\n", path, method);
	printf("policy: %s\n", p->name);
	if (route_target_parse(path, strlen(path), &t) < 0) {
		printf("verdict: deny\nreason: %s\n",
		       reason_get(REASON_BAD_PATH)->name);
		return 1;
	}
	i = route_find(c->route_match, c->nroutes, &t, &rest, &rest_len);
	r = i >= 0 ? &c->routes[i] : NULL;
	if (!r || !policy_allows_route(p, r->name)) {
		printf("verdict: deny\nroute: %s%s\nreason: %s\n",
		       r ? r->name : "-",
		       r ? " (not in the policy's routes)" : "",
		       reason_get(REASON_ROUTE_NOT_FOUND)->name);
		return 1;
	}
	printf("route: %s\n", r->name);
	if (r->git.on) {
		if (explain_git(r, method, &t, rest, rest_len, ref))
			return 1;
	} else if (!route_allows(&r->match, method, rest, rest_len)) {
		printf("verdict: deny\nreason: %s\n",
		       reason_get(REASON_PATH_NOT_ALLOWED)->name);
		return 1;
	}
	route_upstream_target(&r->match, rest, rest_len, &t, up, sizeof(up));
	printf("verdict: allow\n");
	printf("upstream: https://%s%s%s:%u%s\n",
	       strchr(r->match.host, ':') ? "[" : "", r->match.host,
	       strchr(r->match.host, ':') ? "]" : "", r->match.port, up);
	printf("credential: %s\n", r->inject_header ? r->inject_header
	                                            : "none added");
	print_addresses(&r->guard.rules[0]);
	return 0;
}

/* "http://ADDRESS:PORT/path" of a gateway listener: its path; anything
 * else as it is. */
static const char *
gateway_path_of(const struct config *c, const char *url)
{
	const char *auth, *slash;
	struct host h;
	uint16_t port;

	if (strncasecmp(url, "http://", 7) != 0)
		return url;
	auth = url + 7;
	slash = strchr(auth, '/');
	if (!slash || host_parse_authority(auth, (size_t)(slash - auth), 80,
	                                   &h, &port) < 0 ||
	    h.kind == HOST_NAME)
		return url;
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *l = &c->listeners[i];

		if (l->gateway && l->port == port &&
		    strcmp(l->address, h.name) == 0)
			return slash;
	}
	return url;
}

/* --service: the repository's info/refs request for the service, from a
 * gateway path or URL that names the repository; NULL when malformed. */
static char *
git_target(const char *target, const char *service)
{
	const char *path = target;
	char *out;
	size_t n;

	if (strcmp(service, "git-upload-pack") != 0 &&
	    strcmp(service, "git-receive-pack") != 0)
		return NULL;
	if (strncasecmp(path, "http://", 7) == 0 ||
	    strncasecmp(path, "https://", 8) == 0)
		path = strchr(strstr(path, "//") + 2, '/');
	if (!path || path[0] != '/' || strpbrk(path, "?#"))
		return NULL;
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (!(out = malloc(n + 64)))
		return NULL;
	snprintf(out, n + 64, "%.*s/info/refs?service=%s", (int)n, path,
	         service);
	return out;
}

int
explain(const struct config *c, const struct explain_args *a)
{
	const char *policy_name = a->policy, *target = a->target;
	const char *method = a->method ? a->method : "CONNECT";
	const struct policy *p = policy_name ? config_policy(c, policy_name)
	                                     : c->listeners[0].policy;
	struct verdict v;
	struct host h;
	uint16_t port;
	int allowed;

	if (!p && !policy_name && c->npolicies == 1)
		p = &c->policies[0];
	if (!p) {
		fprintf(stderr,
		        policy_name
		            ? "egressd: --policy: no policy is named \"%s\"\n"
		            : "egressd: --explain: name a policy (--policy)\n",
		        policy_name);
		return 2;
	}
	if (a->service) {
		char *git = git_target(target, a->service);
		int rc;

		if (!git) {
			fprintf(stderr,
			        "egressd: --service: want git-upload-pack or "
			        "git-receive-pack, and --explain the "
			        "repository's gateway path or URL "
			        "(/git/org/repo.git)\n");
			return 2;
		}
		rc = explain_gateway(c, git, "GET", p, a->ref);
		free(git);
		return rc;
	}
	/* A URL of a gateway listener (what the agent's base URL names) is
	 * that listener's path. */
	if (target[0] != '/')
		target = gateway_path_of(c, target);
	if (target[0] == '/')
		return explain_gateway(
		    c, target, strcmp(method, "CONNECT") == 0 ? "GET" : method,
		    p, a->ref);
	if (parse_explain_target(target, &h, &port) < 0) {
		fprintf(stderr,
		        "egressd: --explain: \"%s\": malformed destination "
		        "(want HOST:PORT or a http(s) URL; names must be LDH, "
		        "IP addresses strict)\n",
		        target);
		return 2;
	}
	allowed = policy_check_name(p, method, &h, port, &v);
	printf("destination: %s%s%s:%u (%s)\n", h.kind == HOST_IPV6 ? "[" : "",
	       h.name, h.kind == HOST_IPV6 ? "]" : "", port, method);
	printf("policy: %s (%s)\n", p->name,
	       p->mode == POLICY_REPORT ? "report" : "enforce");
	printf("verdict: %s\n", allowed ? "allow" : "deny");
	printf("rule: %s\n", v.rule ? v.rule->name : "-");
	printf("reason: %s\n", reason_get(v.reason)->name);
	if (v.range)
		printf("range: %s\n", v.range);
	if (allowed && h.kind == HOST_NAME)
		print_addresses(v.rule);
	if (allowed && strcmp(method, "CONNECT") == 0) {
		if (h.kind == HOST_NAME && rule_requires_sni(v.rule, port))
			printf("tunnel: hello checked: it must open with a TLS "
			       "ClientHello whose SNI names %s\n",
			       h.name);
		else
			printf("tunnel: not checked: the rule lists CONNECT, "
			       "so the bytes pass as the client sends them\n");
	} else if (v.reason == REASON_CONNECT_UNCHECKED) {
		printf("tunnel: refused: the hello is not checked here and no "
		       "rule lists CONNECT; use plain HTTP (an http:// URL) or "
		       "add CONNECT to the rule's methods\n");
	}
	if (!allowed && policy_report_waives(p, &v))
		printf("mode: report: this would be logged, not refused\n");
	return allowed ? 0 : 1;
}

