/*
 * policy: the pure decision.  Given a destination (method, host, port) and,
 * after resolution, each address, say whether a policy allows it, which rule
 * did, and why not otherwise.  No I/O; the structures are built by config and
 * are immutable once built.
 */
#ifndef EGRESSD_POLICY_H
#define EGRESSD_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "netset.h"
#include "reason.h"

enum policy_mode {
	POLICY_ENFORCE,
	POLICY_REPORT,
};

/* The hello check on CONNECT tunnels a rule allows (config key "tls"). */
enum rule_tls {
	RULE_TLS_DEFAULT,     /* require-sni-match on port 443 of a name rule */
	RULE_TLS_REQUIRE_SNI, /* "require-sni-match": on every port */
	RULE_TLS_OFF,         /* "off": the tunnel's bytes are not looked at */
};

struct rule {
	char *name;
	int line;     /* in the config file, for messages */
	char **hosts; /* normalised patterns */
	size_t nhosts;
	uint16_t *ports;
	size_t nports;
	char **methods; /* none means any method */
	size_t nmethods;
	struct netset networks;
	/* Per network: does it lie wholly in special-purpose space, and so
	 * unlock the special-purpose addresses inside it? */
	unsigned char *network_unlocks;
	enum rule_tls tls;
};

struct policy {
	char *name;
	enum policy_mode mode;
	int metrics_slot; /* see metrics_policy_slot */
	struct rule *rules;
	size_t nrules;
	/* The gateway routes its identities may use, by name (config checks
	 * that each exists). */
	char **routes;
	size_t nroutes;
};

struct verdict {
	enum reason reason;      /* REASON_ALLOWED or a refusal */
	const struct rule *rule; /* the rule that allowed, else NULL */
	const char *range; /* special-purpose range of a refused address */
};

/*
 * First stage, before any DNS: does a rule allow this method, host and port?
 * A rule without methods allows CONNECT only where rule_requires_sni says
 * the tunnel's hello is checked (REASON_CONNECT_UNCHECKED otherwise).
 * For a name, the rules with a matching host pattern; for an IP literal, the
 * rules with networks and no hosts, and the literal's address is checked as
 * policy_check_addr would.  Fills *v (rule is the first allowing rule).
 * Returns 1 when allowed, 0 when refused.
 */
int policy_check_name(const struct policy *p, const char *method,
                      const struct host *h, uint16_t port, struct verdict *v);

/*
 * Second stage, for each resolved address of a name: is there a rule that
 * allows the name, port and method and admits this address?  A rule without
 * networks admits any address that is not special-purpose; a rule with
 * networks admits addresses inside them, special-purpose ones only when the
 * containing network lies wholly in special-purpose space.  When no rule
 * allows the name at all, the reason is the first stage's, except that a
 * special-purpose address is always REASON_ADDRESS_PROHIBITED (report mode
 * relies on this: it waives policy refusals, never the address guard).
 * Returns 1 when allowed, 0 when refused.
 */
int policy_check_addr(const struct policy *p, const char *method,
                      const struct host *h, uint16_t port,
                      const struct netaddr *a, struct verdict *v);

/*
 * In report mode, may this refusal go ahead?  Everything the rules decide is
 * waived; the built-in address guard is not: a refusal that involves a
 * special-purpose address (v->range set) stands.  1 or 0.
 */
int policy_report_waives(const struct policy *p, const struct verdict *v);

/* Must a CONNECT tunnel to port, allowed by rule r, open with a TLS
 * ClientHello whose SNI names the CONNECT host?  1 or 0. */
int rule_requires_sni(const struct rule *r, uint16_t port);

/* Does the policy let its clients use the gateway route of this name?
 * 1 or 0. */
int policy_allows_route(const struct policy *p, const char *route);

/* Free what a rule or a policy owns (not the struct itself). */
void policy_rule_free(struct rule *r);
void policy_free(struct policy *p);

#endif
