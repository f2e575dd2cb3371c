#include "policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
rule_has_port(const struct rule *r, uint16_t port)
{
	for (size_t i = 0; i < r->nports; i++)
		if (r->ports[i] == port)
			return 1;
	return 0;
}

static int
rule_has_method(const struct rule *r, const char *method)
{
	if (r->nmethods == 0)
		return 1;
	/* RFC 9110 §9.1: methods are case-sensitive. */
	for (size_t i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i], method) == 0)
			return 1;
	return 0;
}

static int
rule_has_host(const struct rule *r, const char *name)
{
	for (size_t i = 0; i < r->nhosts; i++)
		if (host_pattern_match(r->hosts[i], name))
			return 1;
	return 0;
}

/*
 * Does the rule admit this address?  REASON_ALLOWED, or why not; *range is
 * set for special-purpose addresses.
 */
static enum reason
rule_admits(const struct rule *r, const struct netaddr *a, const char **range)
{
	const char *special = netset_special(a);

	*range = special;
	if (r->networks.n == 0)
		return special ? REASON_ADDRESS_PROHIBITED : REASON_ALLOWED;
	for (size_t i = 0; i < r->networks.n; i++) {
		if (!cidr_contains(&r->networks.v[i], a))
			continue;
		if (special && !r->network_unlocks[i])
			return REASON_ADDRESS_PROHIBITED;
		return REASON_ALLOWED;
	}
	/* Outside the pin: that is the reason, special-purpose or not (the
	 * range, when set, still keeps report mode from waiving it). */
	return REASON_ADDRESS_NOT_IN_NETWORKS;
}

/*
 * Does the rule allow the destination by name, port and method?  The
 * candidate's progress is kept in *best so that a refusal names the closest
 * miss: host, then port, then method.
 */
static int
rule_matches(const struct rule *r, const char *method, const struct host *h,
             uint16_t port, enum reason *best)
{
	if (h->kind == HOST_NAME) {
		if (!rule_has_host(r, h->name))
			return 0;
	} else if (r->nhosts > 0 || r->networks.n == 0 ||
	           !netset_find(&r->networks, &h->addr)) {
		return 0;
	}
	if (!rule_has_port(r, port)) {
		if (*best == REASON_HOST_NOT_ALLOWED ||
		    *best == REASON_IP_LITERAL_NOT_ALLOWED)
			*best = REASON_PORT_NOT_ALLOWED;
		return 0;
	}
	if (!rule_has_method(r, method)) {
		*best = REASON_METHOD_NOT_ALLOWED;
		return 0;
	}
	/* A tunnel nobody looks into can carry any request to the address:
	 * one for another site behind a shared front end, with the Host the
	 * forwarder would have rewritten.  A rule that does not name CONNECT
	 * allows it only where the hello check runs. */
	if (r->nmethods == 0 && strcmp(method, "CONNECT") == 0 &&
	    !rule_requires_sni(r, port)) {
		*best = REASON_CONNECT_UNCHECKED;
		return 0;
	}
	return 1;
}

static enum reason
no_match_reason(const struct host *h)
{
	return h->kind == HOST_NAME ? REASON_HOST_NOT_ALLOWED
	                            : REASON_IP_LITERAL_NOT_ALLOWED;
}

int
policy_check_addr(const struct policy *p, const char *method,
                  const struct host *h, uint16_t port, const struct netaddr *a,
                  struct verdict *v)
{
	enum reason best = no_match_reason(h);
	enum reason addr_reason = REASON_COUNT;
	const char *addr_range = NULL;

	for (size_t i = 0; i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];
		const char *range;
		enum reason why;

		if (!rule_matches(r, method, h, port, &best))
			continue;
		why = rule_admits(r, a, &range);
		if (why == REASON_ALLOWED) {
			*v = (struct verdict){REASON_ALLOWED, r, range};
			return 1;
		}
		/* The first matching rule's reason stands.  Its range, set for
		 * any special-purpose address, keeps report mode from waiving
		 * the guard whatever the reason. */
		if (addr_reason == REASON_COUNT) {
			addr_reason = why;
			addr_range = range;
		}
	}
	if (addr_reason == REASON_COUNT) {
		/* No rule allows the destination.  An IP literal says so; a
		 * name that reached this stage (report mode) and resolved to a
		 * special-purpose address meets the guard. */
		addr_range = netset_special(a);
		addr_reason = best;
		if (h->kind == HOST_NAME && addr_range)
			addr_reason = REASON_ADDRESS_PROHIBITED;
	}
	*v = (struct verdict){addr_reason, NULL, addr_range};
	return 0;
}

int
policy_check_name(const struct policy *p, const char *method,
                  const struct host *h, uint16_t port, struct verdict *v)
{
	enum reason best = no_match_reason(h);

	if (h->kind != HOST_NAME)
		return policy_check_addr(p, method, h, port, &h->addr, v);
	for (size_t i = 0; i < p->nrules; i++) {
		if (rule_matches(&p->rules[i], method, h, port, &best)) {
			*v = (struct verdict){REASON_ALLOWED, &p->rules[i],
			                      NULL};
			return 1;
		}
	}
	*v = (struct verdict){best, NULL, NULL};
	return 0;
}

int
policy_report_waives(const struct policy *p, const struct verdict *v)
{
	return p->mode == POLICY_REPORT && reason_is_policy(v->reason) &&
	       v->reason != REASON_ADDRESS_PROHIBITED && v->range == NULL;
}

void
policy_rule_free(struct rule *r)
{
	free(r->name);
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->ports);
	for (size_t i = 0; i < r->nmethods; i++)
		free(r->methods[i]);
	free(r->methods);
	netset_free(&r->networks);
	free(r->network_unlocks);
	memset(r, 0, sizeof(*r));
}

void
policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->nrules; i++)
		policy_rule_free(&p->rules[i]);
	free(p->rules);
	for (size_t i = 0; i < p->nroutes; i++)
		free(p->routes[i]);
	free(p->routes);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

int
policy_allows_route(const struct policy *p, const char *route)
{
	for (size_t i = 0; i < p->nroutes; i++)
		if (strcmp(p->routes[i], route) == 0)
			return 1;
	return 0;
}

int
rule_requires_sni(const struct rule *r, uint16_t port)
{
	switch (r->tls) {
	case RULE_TLS_REQUIRE_SNI:
		return 1;
	case RULE_TLS_OFF:
		return 0;
	case RULE_TLS_DEFAULT:
		break;
	}
	return port == 443 && r->nhosts > 0;
}
