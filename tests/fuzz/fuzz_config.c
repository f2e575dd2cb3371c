/*
 * fuzz_config: a config file's text through config_load_string, the path
 * config_load takes after reading the file.  A snapshot that loads must
 * hang together (listeners and identities point at its own policies) and
 * its policies must give verdicts that agree with their rules; a text that
 * does not load must say why.  Relative file names in the text
 * (credentials, certificates) are looked up from the current directory:
 * run.sh runs the fuzzer in an empty scratch directory.
 */
#include <arpa/inet.h>

#include "config.h"
#include "fuzz.h"
#include "http.h"

static const char *const names[] = {
    "api.anthropic.com", "git.corp.example", "x.y.example.com",
    "10.20.1.1",         "[2001:db8::1]",    "[::ffff:127.0.0.1]",
};
static const char *const addrs[] = {"10.20.1.1", "8.8.8.8", "127.0.0.1",
                                    "2001:4860::8888", "169.254.169.254"};
static const char *const methods[] = {"CONNECT", "GET"};
static const uint16_t ports[] = {443, 80};

static int
is_policy_of(const struct config *c, const struct policy *p)
{
	return p >= c->policies && p < c->policies + c->npolicies;
}

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
	for (size_t i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i], method) == 0)
			return 1;
	return r->nmethods == 0;
}

/* An allowing verdict names a rule of the policy that allows this. */
static void
check_allowed(const struct policy *p, const struct verdict *v,
              const char *method, const struct host *h, uint16_t port)
{
	const struct rule *r = v->rule;
	int host_ok = 0;

	FUZZ_CHECK(v->reason == REASON_ALLOWED);
	FUZZ_CHECK(r != NULL && r >= p->rules && r < p->rules + p->nrules);
	FUZZ_CHECK(rule_has_port(r, port));
	FUZZ_CHECK(rule_has_method(r, method));
	if (h->kind == HOST_NAME) {
		for (size_t i = 0; i < r->nhosts; i++)
			host_ok |= host_pattern_match(r->hosts[i], h->name);
	} else {
		host_ok = r->nhosts == 0 &&
		          netset_find(&r->networks, &h->addr) != NULL;
	}
	FUZZ_CHECK(host_ok);
}

static void
check_policy(const struct policy *p)
{
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		struct host h;

		FUZZ_CHECK(host_parse(names[n], strlen(names[n]), 1, &h) == 0);
		for (size_t m = 0; m < 2; m++) {
			for (size_t k = 0; k < 2; k++) {
				struct verdict v;
				int ok = policy_check_name(p, methods[m], &h,
				                           ports[k], &v);

				if (ok)
					check_allowed(p, &v, methods[m], &h,
					              ports[k]);
				else
					FUZZ_CHECK(v.reason != REASON_ALLOWED &&
					           v.rule == NULL);
				(void)policy_report_waives(p, &v);
				if (h.kind != HOST_NAME)
					continue;
				for (size_t a = 0;
				     a < sizeof(addrs) / sizeof(addrs[0]);
				     a++) {
					struct cidr cidr;
					struct verdict va;

					FUZZ_CHECK(cidr_parse(addrs[a], &cidr,
					                      NULL) == 0);
					if (!policy_check_addr(
					        p, methods[m], &h, ports[k],
					        &cidr.net, &va)) {
						FUZZ_CHECK(va.reason !=
						           REASON_ALLOWED);
						(void)policy_report_waives(p,
						                           &va);
						continue;
					}
					/* The second stage allows only what
					 * the first did. */
					FUZZ_CHECK(ok);
					check_allowed(p, &va, methods[m], &h,
					              ports[k]);
				}
			}
		}
	}
}

static void
check_config(struct config *c)
{
	FUZZ_CHECK(c->nlisteners >= 1);
	FUZZ_CHECK(strcmp(c->path, "fuzz.conf") == 0);
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *l = &c->listeners[i];

		FUZZ_CHECK(l->policy == NULL || is_policy_of(c, l->policy));
		FUZZ_CHECK(l->nidentify <= 3);
		FUZZ_CHECK(l->policy != NULL || l->nidentify > 0);
	}
	/* Every limit is as given: within range, never wrapped by being
	 * stored in a narrower type. */
	FUZZ_CHECK(c->workers >= 0 && c->resolver.timeout_ms > 0 &&
	           c->resolver.tries > 0 && c->resolver.cache_entries >= 0 &&
	           c->resolver.max_ttl_s >= 0);
	FUZZ_CHECK(c->limits.header_timeout_ms > 0 &&
	           c->limits.connect_timeout_ms > 0 &&
	           c->limits.idle_timeout_ms > 0 &&
	           c->limits.keepalive_timeout_ms > 0 &&
	           c->limits.drain_timeout_ms >= 0);
	FUZZ_CHECK(c->limits.max_request_line <= c->limits.max_header_bytes &&
	           c->limits.max_header_fields <= HTTP_MAX_FIELDS);
	for (size_t i = 0; i < c->nidentities; i++) {
		const struct identity *id = &c->identities[i];

		FUZZ_CHECK(is_policy_of(c, id->policy));
		FUZZ_CHECK(
		    id->limits.max_tunnels >= 0 && id->limits.per_second >= 0 &&
		    id->limits.burst >= 0 && id->limits.max_tunnel_ms >= 0);
		FUZZ_CHECK(id->limits.per_second == 0 || id->limits.burst > 0);
	}
	for (size_t i = 0; i < c->npolicies; i++) {
		FUZZ_CHECK(config_policy(c, c->policies[i].name) ==
		           &c->policies[i]);
		check_policy(&c->policies[i]);
	}
	FUZZ_CHECK(config_same_listeners(c, c));
	FUZZ_CHECK(config_ref(c) == c);
	config_unref(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct config *c;

	/* libconfig's parser is not what is under test; very large texts
	 * only slow the search down. */
	if (size > 65536)
		return 0;
	err[0] = '\0';
	c = config_load_string((const char *)data, size, "fuzz.conf", err,
	                       sizeof(err));
	if (!c) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	check_config(c);
	config_unref(c);
	return 0;
}
