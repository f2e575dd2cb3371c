/*
 * fuzz_policy: the decision (policy.c) for destinations the fuzzer makes up,
 * against a fixed config.  The input is "METHOD AUTHORITY [ADDRESS]": the
 * method and authority as a request names them, and optionally one address
 * the name resolved to.  Each verdict is compared with a model written from
 * the documented rules: a rule allows a name when one of its patterns
 * matches, an IP literal when it has networks and no hosts and one of them
 * holds it; then port and method; then each address must lie in the rule's
 * networks (special-purpose ones only in an unlocking network), or, without
 * networks, must not be special-purpose.
 */
#include "config.h"
#include "fuzz.h"

static const char conf[] =
    "listen = ( { address = \"127.0.0.1\"; port = 3128; policy = "
    "\"enforce\"; } );\n"
    "policies = (\n"
    "  { name = \"enforce\"; rules = (\n"
    "    { name = \"llm\"; hosts = [ \"api.anthropic.com\", "
    "\"*.openai.com\" ];\n"
    "      ports = [ 443 ]; methods = [ \"CONNECT\" ]; },\n"
    "    { name = \"git\"; hosts = [ \"git.corp.example\" ]; ports = [ 443, "
    "8443 ];\n"
    "      networks = [ \"10.20.0.0/16\", \"0.0.0.0/0\", \"fd00::/8\" ]; },\n"
    "    { name = \"web\"; hosts = [ \"*.example.com\", \"example.com\" ];\n"
    "      ports = [ 80, 443 ]; methods = [ \"GET\", \"HEAD\" ]; },\n"
    "    { name = \"ip\"; networks = [ \"203.0.113.0/24\", "
    "\"192.168.1.0/24\", \"2001:db8::/32\" ];\n"
    "      ports = [ 443 ]; },\n"
    "    { name = \"checked\"; hosts = [ \"*.sni.test\" ]; ports = [ 8443 ];\n"
    "      tls = \"require-sni-match\"; },\n"
    "    { name = \"unchecked\"; hosts = [ \"*.sni.test\", \"example.com\" ];\n"
    "      ports = [ 443, 8443 ]; tls = \"off\"; } ); },\n"
    "  { name = \"report\"; mode = \"report\"; rules = (\n"
    "    { hosts = [ \"*.a.b\" ]; ports = [ 1, 65535 ]; } ); }\n"
    ");\n";

static struct config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	cfg = config_load_string(conf, sizeof(conf) - 1, "policy.conf", err,
	                         sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return 0;
}

static int
model_matches(const struct rule *r, const char *method, const struct host *h,
              uint16_t port)
{
	int host = 0, has_port = 0, has_method = r->nmethods == 0;

	if (h->kind == HOST_NAME) {
		for (size_t i = 0; i < r->nhosts; i++)
			host |= host_pattern_match(r->hosts[i], h->name);
	} else if (r->nhosts == 0) {
		for (size_t i = 0; i < r->networks.n; i++)
			host |= cidr_contains(&r->networks.v[i], &h->addr);
	}
	for (size_t i = 0; i < r->nports; i++)
		has_port |= r->ports[i] == port;
	for (size_t i = 0; i < r->nmethods; i++)
		has_method |= strcmp(r->methods[i], method) == 0;
	/* Without methods, CONNECT only where the hello is checked. */
	if (r->nmethods == 0 && strcmp(method, "CONNECT") == 0)
		has_method = r->tls == RULE_TLS_REQUIRE_SNI ||
		             (r->tls == RULE_TLS_DEFAULT && port == 443 &&
		              r->nhosts > 0);
	return host && has_port && has_method;
}

static int
model_admits(const struct rule *r, const struct netaddr *a)
{
	int special = netset_special(a) != NULL;

	if (r->networks.n == 0)
		return !special;
	for (size_t i = 0; i < r->networks.n; i++)
		if (cidr_contains(&r->networks.v[i], a))
			return !special || r->network_unlocks[i];
	return 0;
}

static void
check(const struct policy *p, const char *method, const struct host *h,
      uint16_t port, const struct netaddr *a)
{
	const struct rule *first = NULL, *first_addr = NULL;
	struct verdict v;
	int ok;

	for (size_t i = p->nrules; i-- > 0;) {
		if (!model_matches(&p->rules[i], method, h, port))
			continue;
		first = &p->rules[i];
		if (a && model_admits(&p->rules[i], a))
			first_addr = &p->rules[i];
	}

	ok = policy_check_name(p, method, h, port, &v);
	if (h->kind == HOST_NAME) {
		FUZZ_CHECK(ok == (first != NULL));
		FUZZ_CHECK(v.rule == first);
	} else {
		/* An IP literal is its own address. */
		const struct rule *lit = NULL;

		for (size_t i = p->nrules; i-- > 0;)
			if (model_matches(&p->rules[i], method, h, port) &&
			    model_admits(&p->rules[i], &h->addr))
				lit = &p->rules[i];
		FUZZ_CHECK(ok == (lit != NULL));
		FUZZ_CHECK(v.rule == lit);
	}
	FUZZ_CHECK((v.reason == REASON_ALLOWED) == ok);
	if (!ok) {
		FUZZ_CHECK(reason_is_policy(v.reason));
		(void)policy_report_waives(p, &v);
	}
	if (!a || h->kind != HOST_NAME)
		return;

	ok = policy_check_addr(p, method, h, port, a, &v);
	FUZZ_CHECK(ok == (first_addr != NULL));
	FUZZ_CHECK(v.rule == first_addr);
	FUZZ_CHECK((v.reason == REASON_ALLOWED) == ok);
	if (!ok) {
		FUZZ_CHECK(reason_is_policy(v.reason));
		/* The address guard is never waived. */
		if (netset_special(a) && !first)
			FUZZ_CHECK(v.reason == REASON_ADDRESS_PROHIBITED);
		if (netset_special(a))
			FUZZ_CHECK(!policy_report_waives(p, &v));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size), *authority, *addr_text;
	struct host h;
	uint16_t port;
	struct cidr addr;
	int have_addr = 0;

	authority = strchr(s, ' ');
	if (!authority)
		goto out;
	*authority++ = '\0';
	addr_text = strchr(authority, ' ');
	if (addr_text) {
		*addr_text++ = '\0';
		have_addr = cidr_parse(addr_text, &addr, NULL) == 0 &&
		            addr.prefix == 128;
	}
	if (host_parse_authority(authority, strlen(authority), 80, &h, &port) !=
	    0)
		goto out;
	for (size_t i = 0; i < cfg->npolicies; i++) {
		check(&cfg->policies[i], s, &h, port,
		      have_addr ? &addr.net : NULL);
		if (!have_addr && h.kind == HOST_NAME) {
			static const char *const fixed[] = {
			    "10.20.3.4", "8.8.8.8", "127.0.0.1",
			    "fd00::1",   "::1",     "203.0.113.9"};
			for (size_t j = 0; j < 6; j++) {
				struct cidr c;

				FUZZ_CHECK(cidr_parse(fixed[j], &c, NULL) == 0);
				check(&cfg->policies[i], s, &h, port, &c.net);
			}
		}
	}
out:
	free(s);
	return 0;
}
