/* Unit tests for policy: the name stage, the address stage, report mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

/* Build a rule from NULL-terminated lists (ports: 0-terminated). */
static void
make_rule(struct rule *r, const char *name, const char *const *hosts,
          const uint16_t *ports, const char *const *methods,
          const char *const *networks)
{
	memset(r, 0, sizeof(*r));
	r->name = strdup(name);
	for (; hosts && *hosts; hosts++) {
		char norm[HOST_NAME_MAX_LEN + 3];
		const char *why;

		assert_int_equal(host_pattern_parse(*hosts, norm, &why), 0);
		r->hosts = realloc(r->hosts, (r->nhosts + 1) * sizeof(char *));
		r->hosts[r->nhosts++] = strdup(norm);
	}
	for (; ports && *ports; ports++) {
		r->ports =
		    realloc(r->ports, (r->nports + 1) * sizeof(uint16_t));
		r->ports[r->nports++] = *ports;
	}
	for (; methods && *methods; methods++) {
		r->methods =
		    realloc(r->methods, (r->nmethods + 1) * sizeof(char *));
		r->methods[r->nmethods++] = strdup(*methods);
	}
	for (; networks && *networks; networks++) {
		struct cidr c;
		const char *why;

		assert_int_equal(cidr_parse(*networks, &c, &why), 0);
		assert_int_equal(netset_add(&r->networks, &c), 0);
		r->network_unlocks = realloc(r->network_unlocks, r->networks.n);
		r->network_unlocks[r->networks.n - 1] =
		    (unsigned char)netset_cidr_is_special(&c);
	}
}

/*
 * The policy most tests use:
 *   llm:   api.example.com, *.llm.example  443  CONNECT only
 *   git:   git.corp.example                443  networks 10.20.0.0/16
 *   any:   open.example                    443  networks 0.0.0.0/0
 *   lit:   (no hosts)                      443  CONNECT, GET; networks
 * 203.0.113.0/24, 8.8.8.0/24 mixed: mixed.example                   443
 * networks 8.8.4.0/24
 */
static struct policy *
make_policy(enum policy_mode mode)
{
	static const char *const llm_hosts[] = {"api.example.com",
	                                        "*.llm.example", NULL};
	static const char *const git_hosts[] = {"git.corp.example", NULL};
	static const char *const open_hosts[] = {"open.example", NULL};
	static const char *const mixed_hosts[] = {"mixed.example", NULL};
	static const char *const connect[] = {"CONNECT", NULL};
	static const char *const connect_get[] = {"CONNECT", "GET", NULL};
	static const char *const git_nets[] = {"10.20.0.0/16", NULL};
	static const char *const all_nets[] = {"0.0.0.0/0", "::/0", NULL};
	static const char *const lit_nets[] = {"203.0.113.0/24", "8.8.8.0/24",
	                                       NULL};
	static const char *const mixed_nets[] = {"8.8.4.0/24", NULL};
	static const uint16_t https[] = {443, 0};
	struct policy *p = calloc(1, sizeof(*p));

	p->name = strdup("test");
	p->mode = mode;
	p->rules = calloc(5, sizeof(*p->rules));
	make_rule(&p->rules[0], "llm", llm_hosts, https, connect, NULL);
	make_rule(&p->rules[1], "git", git_hosts, https, NULL, git_nets);
	make_rule(&p->rules[2], "any", open_hosts, https, NULL, all_nets);
	make_rule(&p->rules[3], "lit", NULL, https, connect_get, lit_nets);
	make_rule(&p->rules[4], "mixed", mixed_hosts, https, NULL, mixed_nets);
	p->nrules = 5;
	return p;
}

static int
setup(void **state)
{
	*state = make_policy(POLICY_ENFORCE);
	return 0;
}

static int
teardown(void **state)
{
	policy_free(*state);
	free(*state);
	return 0;
}

static struct host
host_of(const char *s)
{
	struct host h;

	assert_int_equal(host_parse(s, strlen(s), 0, &h), 0);
	return h;
}

static struct netaddr
addr_of(const char *s)
{
	struct cidr c;
	const char *why;

	assert_int_equal(cidr_parse(s, &c, &why), 0);
	return c.net;
}

struct name_case {
	const char *method, *host;
	uint16_t port;
	enum reason want;
	const char *rule;
};

static void
test_name_stage(void **state)
{
	static const struct name_case cases[] = {
	    {"CONNECT", "api.example.com", 443, REASON_ALLOWED, "llm"},
	    {"CONNECT", "API.Example.COM.", 443, REASON_ALLOWED, "llm"},
	    {"CONNECT", "x.llm.example", 443, REASON_ALLOWED, "llm"},
	    {"CONNECT", "a.b.llm.example", 443, REASON_ALLOWED, "llm"},
	    /* "*.suffix" never matches the suffix itself. */
	    {"CONNECT", "llm.example", 443, REASON_HOST_NOT_ALLOWED, NULL},
	    {"CONNECT", "xllm.example", 443, REASON_HOST_NOT_ALLOWED, NULL},
	    /* No regular expressions: the dot is a dot. */
	    {"CONNECT", "apixexample.com", 443, REASON_HOST_NOT_ALLOWED, NULL},
	    {"CONNECT", "api.example.com.evil.example", 443,
	     REASON_HOST_NOT_ALLOWED, NULL},
	    {"CONNECT", "evil.example", 443, REASON_HOST_NOT_ALLOWED, NULL},
	    {"CONNECT", "api.example.com", 80, REASON_PORT_NOT_ALLOWED, NULL},
	    {"GET", "api.example.com", 443, REASON_METHOD_NOT_ALLOWED, NULL},
	    {"connect", "api.example.com", 443, REASON_METHOD_NOT_ALLOWED,
	     NULL},
	    {"GET", "git.corp.example", 443, REASON_ALLOWED, "git"},
	    /* A name rule never matches an IP literal... */
	    {"CONNECT", "10.20.0.7", 443, REASON_IP_LITERAL_NOT_ALLOWED, NULL},
	    /* ...but a networks-only rule does, inside its networks. */
	    {"CONNECT", "203.0.113.20", 443, REASON_ALLOWED, "lit"},
	    {"CONNECT", "8.8.8.8", 443, REASON_ALLOWED, "lit"},
	    {"CONNECT", "8.8.8.8", 8443, REASON_PORT_NOT_ALLOWED, NULL},
	    {"CONNECT", "9.9.9.9", 443, REASON_IP_LITERAL_NOT_ALLOWED, NULL},
	    {"CONNECT", "2001:4860::8888", 443, REASON_IP_LITERAL_NOT_ALLOWED,
	     NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct name_case *nc = &cases[i];
		struct host h = host_of(nc->host);
		struct verdict v;
		int allowed =
		    policy_check_name(*state, nc->method, &h, nc->port, &v);

		if (v.reason != nc->want)
			fail_msg("%s %s:%u: reason %s, want %s", nc->method,
			         nc->host, nc->port, reason_get(v.reason)->name,
			         reason_get(nc->want)->name);
		assert_int_equal(allowed, nc->want == REASON_ALLOWED);
		if (nc->rule)
			assert_string_equal(v.rule->name, nc->rule);
		else
			assert_null(v.rule);
	}
}

struct addr_case {
	const char *host, *addr;
	enum reason want;
	const char *range; /* expected v.range, or NULL */
};

static void
test_address_stage(void **state)
{
	static const struct addr_case cases[] = {
	    /* A hosts-only rule: public addresses only. */
	    {"api.example.com", "8.8.8.8", REASON_ALLOWED, NULL},
	    {"api.example.com", "2606:4700::1111", REASON_ALLOWED, NULL},
	    {"api.example.com", "127.0.0.1", REASON_ADDRESS_PROHIBITED,
	     "loopback"},
	    {"api.example.com", "10.0.0.5", REASON_ADDRESS_PROHIBITED,
	     "private"},
	    {"api.example.com", "169.254.169.254", REASON_ADDRESS_PROHIBITED,
	     "link-local"},
	    {"api.example.com", "::1", REASON_ADDRESS_PROHIBITED, "loopback"},
	    {"api.example.com", "::ffff:127.0.0.1", REASON_ADDRESS_PROHIBITED,
	     "loopback"},
	    {"api.example.com", "64:ff9b::a9fe:a9fe", REASON_ADDRESS_PROHIBITED,
	     NULL},
	    {"api.example.com", "fd00::1", REASON_ADDRESS_PROHIBITED, NULL},
	    /* Pinned to a private network: inside it only. */
	    {"git.corp.example", "10.20.0.7", REASON_ALLOWED, "private"},
	    {"git.corp.example", "10.21.0.7", REASON_ADDRESS_NOT_IN_NETWORKS,
	     "private"},
	    {"git.corp.example", "8.8.8.8", REASON_ADDRESS_NOT_IN_NETWORKS,
	     NULL},
	    {"git.corp.example", "127.0.0.1", REASON_ADDRESS_NOT_IN_NETWORKS,
	     "loopback"},
	    /* 0.0.0.0/0 pins nothing and unlocks nothing special. */
	    {"open.example", "8.8.8.8", REASON_ALLOWED, NULL},
	    {"open.example", "127.0.0.1", REASON_ADDRESS_PROHIBITED,
	     "loopback"},
	    {"open.example", "169.254.169.254", REASON_ADDRESS_PROHIBITED,
	     "link-local"},
	    /* A public pin. */
	    {"mixed.example", "8.8.4.4", REASON_ALLOWED, NULL},
	    {"mixed.example", "8.8.8.8", REASON_ADDRESS_NOT_IN_NETWORKS, NULL},
	    /* IP literals through the networks-only rule: 203.0.113.0/24 is
	     * documentation space, named explicitly, so it is unlocked. */
	    {"203.0.113.20", "203.0.113.20", REASON_ALLOWED, "documentation"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct addr_case *ac = &cases[i];
		struct host h = host_of(ac->host);
		struct netaddr a = addr_of(ac->addr);
		struct verdict v;
		int allowed =
		    policy_check_addr(*state, "CONNECT", &h, 443, &a, &v);

		if (v.reason != ac->want)
			fail_msg("%s at %s: reason %s, want %s", ac->host,
			         ac->addr, reason_get(v.reason)->name,
			         reason_get(ac->want)->name);
		assert_int_equal(allowed, ac->want == REASON_ALLOWED);
		if (ac->range)
			assert_string_equal(v.range, ac->range);
		if (allowed)
			assert_non_null(v.rule);
		else
			assert_null(v.rule);
	}
}

static void
test_ip_literal_special(void **state)
{
	struct host h = host_of("127.0.0.1");
	struct verdict v;

	/* Not inside any rule network, and special. */
	assert_false(policy_check_name(*state, "CONNECT", &h, 443, &v));
	assert_int_equal(v.reason, REASON_IP_LITERAL_NOT_ALLOWED);
	assert_string_equal(v.range, "loopback");
}

static void
test_report_mode(void **state)
{
	struct policy *p = make_policy(POLICY_REPORT);
	struct host evil = host_of("evil.example");
	struct host api = host_of("api.example.com");
	struct host git = host_of("git.corp.example");
	struct netaddr pub = addr_of("8.8.8.8"), lo = addr_of("127.0.0.1");
	struct verdict v;

	(void)state;
	/* Rule refusals are waived. */
	assert_false(policy_check_name(p, "CONNECT", &evil, 443, &v));
	assert_true(policy_report_waives(p, &v));
	assert_false(policy_check_addr(p, "CONNECT", &evil, 443, &pub, &v));
	assert_int_equal(v.reason, REASON_HOST_NOT_ALLOWED);
	assert_true(policy_report_waives(p, &v));
	assert_false(policy_check_addr(p, "CONNECT", &git, 443, &pub, &v));
	assert_int_equal(v.reason, REASON_ADDRESS_NOT_IN_NETWORKS);
	assert_true(policy_report_waives(p, &v));
	/* The special-purpose guard is not. */
	assert_false(policy_check_addr(p, "CONNECT", &evil, 443, &lo, &v));
	assert_int_equal(v.reason, REASON_ADDRESS_PROHIBITED);
	assert_false(policy_report_waives(p, &v));
	assert_false(policy_check_addr(p, "CONNECT", &api, 443, &lo, &v));
	assert_false(policy_report_waives(p, &v));
	/* Outside a pin and special-purpose: the pin is the reason, and the
	 * guard still stands. */
	assert_false(policy_check_addr(p, "CONNECT", &git, 443, &lo, &v));
	assert_int_equal(v.reason, REASON_ADDRESS_NOT_IN_NETWORKS);
	assert_string_equal(v.range, "loopback");
	assert_false(policy_report_waives(p, &v));
	/* Nor is an IP literal into special space. */
	struct host lit = host_of("10.0.0.5");
	assert_false(policy_check_name(p, "CONNECT", &lit, 443, &v));
	assert_false(policy_report_waives(p, &v));
	policy_free(p);
	free(p);
}

static void
test_enforce_waives_nothing(void **state)
{
	struct host evil = host_of("evil.example");
	struct verdict v;

	assert_false(policy_check_name(*state, "CONNECT", &evil, 443, &v));
	assert_false(policy_report_waives(*state, &v));
}

static void
test_first_rule_wins(void **state)
{
	static const char *const both[] = {"dup.example", NULL};
	static const uint16_t https[] = {443, 0};
	struct policy p = {0};
	struct host h = host_of("dup.example");
	struct verdict v;

	(void)state;
	p.name = strdup("p");
	p.rules = calloc(2, sizeof(*p.rules));
	make_rule(&p.rules[0], "first", both, https, NULL, NULL);
	make_rule(&p.rules[1], "second", both, https, NULL, NULL);
	p.nrules = 2;
	assert_true(policy_check_name(&p, "CONNECT", &h, 443, &v));
	assert_string_equal(v.rule->name, "first");
	policy_free(&p);
}

/*
 * A rule without methods allows CONNECT only where the tunnel's hello is
 * checked: a tunnel nobody looks into could carry a request for another site
 * behind the same address.  Listing CONNECT allows it anywhere.
 */
static void
test_connect_needs_check(void **state)
{
	static const char *const web[] = {"pub.example", NULL};
	static const char *const connect[] = {"CONNECT", NULL};
	static const char *const nets[] = {"203.0.113.0/24", NULL};
	static const uint16_t http[] = {80, 443, 0}, alt[] = {8080, 0};
	struct policy p = {0};
	struct host pub = host_of("pub.example");
	struct host lit = host_of("203.0.113.7");
	struct netaddr a = addr_of("8.8.8.8");
	struct verdict v;

	(void)state;
	p.name = strdup("p");
	p.rules = calloc(4, sizeof(*p.rules));
	make_rule(&p.rules[0], "web", web, http, NULL, NULL);
	make_rule(&p.rules[1], "web-off", web, alt, NULL, NULL);
	p.rules[1].tls = RULE_TLS_OFF;
	make_rule(&p.rules[2], "lit", NULL, http, NULL, nets);
	p.nrules = 3;
	/* Port 443 of a name rule: checked, so allowed. */
	assert_true(policy_check_name(&p, "CONNECT", &pub, 443, &v));
	assert_string_equal(v.rule->name, "web");
	assert_true(policy_check_addr(&p, "CONNECT", &pub, 443, &a, &v));
	/* Port 80: unchecked.  Plain HTTP there is still fine. */
	assert_false(policy_check_name(&p, "CONNECT", &pub, 80, &v));
	assert_int_equal(v.reason, REASON_CONNECT_UNCHECKED);
	assert_null(v.rule);
	assert_false(policy_check_addr(&p, "CONNECT", &pub, 80, &a, &v));
	assert_int_equal(v.reason, REASON_CONNECT_UNCHECKED);
	assert_true(policy_check_name(&p, "GET", &pub, 80, &v));
	/* tls = "off": unchecked on any port. */
	assert_false(policy_check_name(&p, "CONNECT", &pub, 8080, &v));
	assert_int_equal(v.reason, REASON_CONNECT_UNCHECKED);
	/* An IP literal is never checked. */
	assert_false(policy_check_name(&p, "CONNECT", &lit, 443, &v));
	assert_int_equal(v.reason, REASON_CONNECT_UNCHECKED);
	assert_true(policy_check_name(&p, "GET", &lit, 80, &v));
	/* tls = "require-sni-match" checks every port of the rule. */
	p.rules[1].tls = RULE_TLS_REQUIRE_SNI;
	assert_true(policy_check_name(&p, "CONNECT", &pub, 8080, &v));
	assert_string_equal(v.rule->name, "web-off");
	/* A later rule that names CONNECT allows it, unchecked. */
	make_rule(&p.rules[3], "explicit", web, http, connect, NULL);
	p.nrules = 4;
	assert_true(policy_check_name(&p, "CONNECT", &pub, 80, &v));
	assert_string_equal(v.rule->name, "explicit");
	policy_free(&p);
}

static void
test_empty_policy_denies(void **state)
{
	struct policy p = {0};
	struct host h = host_of("api.example.com");
	struct netaddr a = addr_of("8.8.8.8");
	struct verdict v;

	(void)state;
	assert_false(policy_check_name(&p, "CONNECT", &h, 443, &v));
	assert_int_equal(v.reason, REASON_HOST_NOT_ALLOWED);
	assert_false(policy_check_addr(&p, "CONNECT", &h, 443, &a, &v));
	assert_int_equal(v.reason, REASON_HOST_NOT_ALLOWED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_name_stage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_address_stage, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ip_literal_special, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_report_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enforce_waives_nothing, setup,
	                                    teardown),
	    cmocka_unit_test(test_first_rule_wins),
	    cmocka_unit_test(test_connect_needs_check),
	    cmocka_unit_test(test_empty_policy_denies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
