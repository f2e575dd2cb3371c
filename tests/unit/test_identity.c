/* Unit tests for identity: credentials, sources, TLS names, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "identity.h"

static void
add_cred(struct identity *id, const char *name, enum credential_kind kind,
         const char *secret)
{
	char line[256], *n;
	const char *why = NULL;
	struct credential c;

	assert_int_equal(identity_format_credential(name, kind, secret,
	                                            strlen(secret), line,
	                                            sizeof(line)),
	                 0);
	assert_int_equal(identity_parse_credential(line, &n, &c, &why), 0);
	assert_string_equal(n, name);
	id->creds = realloc(id->creds, (id->ncreds + 1) * sizeof(c));
	id->creds[id->ncreds++] = c;
}

static struct identity ids[3];

static int
setup(void **state)
{
	struct cidr c;
	const char *why;

	(void)state;
	memset(ids, 0, sizeof(ids));
	ids[0].name = strdup("agent-1");
	add_cred(&ids[0], "agent-1", CREDENTIAL_BASIC, "s3cret");
	ids[1].name = strdup("agent-2");
	add_cred(&ids[1], "agent-2", CREDENTIAL_BEARER, "tok-123");
	ids[2].name = strdup("pod");
	assert_int_equal(cidr_parse("10.1.0.0/16", &c, &why), 0);
	netset_add(&ids[2].sources, &c);
	ids[2].tls_names = calloc(1, sizeof(char *));
	ids[2].tls_names[ids[2].ntls_names++] = strdup("pod.agents.example");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		identity_free(&ids[i]);
	return 0;
}

static const struct identity *
by_auth(const char *value)
{
	return identity_by_credentials(ids, 3, value, strlen(value));
}

static void
test_basic(void **state)
{
	(void)state;
	/* base64("agent-1:s3cret") */
	assert_ptr_equal(by_auth("Basic YWdlbnQtMTpzM2NyZXQ="), &ids[0]);
	assert_ptr_equal(by_auth("basic YWdlbnQtMTpzM2NyZXQ="), &ids[0]);
	/* agent-1:wrong */
	assert_null(by_auth("Basic YWdlbnQtMTp3cm9uZw=="));
	/* agent-2:s3cret: right password, wrong user */
	assert_null(by_auth("Basic YWdlbnQtMjpzM2NyZXQ="));
	/* agent-1 without a colon */
	assert_null(by_auth("Basic YWdlbnQtMQ=="));
	/* Not base64, bad padding, empty. */
	assert_null(by_auth("Basic !!!!"));
	assert_null(by_auth("Basic YWdlbnQtMTpzM2NyZXQ"));
	assert_null(by_auth("Basic ="));
	assert_null(by_auth("Basic "));
	/* A bearer credential is not a password. */
	assert_null(
	    by_auth("Basic YWdlbnQtMjp0b2stMTIz")); /* agent-2:tok-123 */
}

static void
test_bearer(void **state)
{
	(void)state;
	assert_ptr_equal(by_auth("Bearer tok-123"), &ids[1]);
	assert_null(by_auth("Bearer tok-1234"));
	assert_null(by_auth("Bearer tok-12"));
	assert_null(by_auth("Bearer "));
	/* A password is not a bearer token. */
	assert_null(by_auth("Bearer s3cret"));
	assert_null(by_auth("Digest tok-123"));
	assert_null(by_auth(""));
}

static void
test_source_and_tls(void **state)
{
	struct cidr c;
	const char *why;

	(void)state;
	assert_int_equal(cidr_parse("10.1.2.3", &c, &why), 0);
	assert_ptr_equal(identity_by_source(ids, 3, &c.net), &ids[2]);
	assert_int_equal(cidr_parse("10.2.0.1", &c, &why), 0);
	assert_null(identity_by_source(ids, 3, &c.net));
	assert_ptr_equal(identity_by_tls_name(ids, 3, "POD.agents.example"),
	                 &ids[2]);
	assert_null(identity_by_tls_name(ids, 3, "pod.agents.example.evil"));
}

static void
test_parse_credential_lines(void **state)
{
	char ok[] =
	    "a basic 00112233445566778899aabbccddeeff "
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	    "eeff\n";
	char comment[] = "  # a comment\n";
	char blank[] = "\n";
	char short_salt[] = "a basic 0011 "
	                    "00112233445566778899aabbccddeeff0011223344556677"
	                    "8899aabbccddeeff";
	char bad_kind[] = "a digest 00112233445566778899aabbccddeeff "
	                  "00112233445566778899aabbccddeeff00112233445566778899"
	                  "aabbccddeeff";
	char few[] = "a basic";
	char *name;
	struct credential c;
	const char *why = NULL;

	(void)state;
	assert_int_equal(identity_parse_credential(ok, &name, &c, &why), 0);
	assert_string_equal(name, "a");
	assert_int_equal(c.kind, CREDENTIAL_BASIC);
	assert_int_equal(c.salt[15], 0xff);
	assert_int_equal(identity_parse_credential(comment, &name, &c, &why),
	                 1);
	assert_int_equal(identity_parse_credential(blank, &name, &c, &why), 1);
	assert_int_equal(identity_parse_credential(short_salt, &name, &c, &why),
	                 -1);
	assert_non_null(strstr(why, "salt"));
	assert_int_equal(identity_parse_credential(bad_kind, &name, &c, &why),
	                 -1);
	assert_int_equal(identity_parse_credential(few, &name, &c, &why), -1);
}

static void
test_salts_differ(void **state)
{
	char a[256], b[256];

	(void)state;
	identity_format_credential("x", CREDENTIAL_BEARER, "same", 4, a,
	                           sizeof(a));
	identity_format_credential("x", CREDENTIAL_BEARER, "same", 4, b,
	                           sizeof(b));
	assert_string_not_equal(a, b);
}

static void
test_rate_limit(void **state)
{
	struct identity id = {0};
	long long t = 1000000000LL, second = 1000000000LL;
	int allowed = 0;

	(void)state;
	id.state = identity_state_for("rate-test");
	id.limits.per_second = 10;
	id.limits.burst = 5;
	/* A burst of 5 at once, then refused. */
	for (int i = 0; i < 20; i++)
		allowed += identity_admit_request(&id, t) == REASON_ALLOWED;
	assert_int_equal(allowed, 5);
	assert_int_equal(identity_admit_request(&id, t), REASON_LIMIT_RATE);
	/* A second later, 10 more have been earned, but at most the burst
	 * can be used at once. */
	allowed = 0;
	for (int i = 0; i < 20; i++)
		allowed +=
		    identity_admit_request(&id, t + second) == REASON_ALLOWED;
	assert_int_equal(allowed, 5);
	/* Spread over 10 s at the rate: all allowed. */
	allowed = 0;
	for (int i = 0; i < 100; i++)
		allowed += identity_admit_request(&id, t + 2 * second +
		                                           i * second / 10) ==
		           REASON_ALLOWED;
	assert_int_equal(allowed, 100);
	/* No limit set: always allowed. */
	id.limits.per_second = 0;
	assert_int_equal(identity_admit_request(&id, t), REASON_ALLOWED);
}

static void
test_tunnel_slots(void **state)
{
	struct identity id = {0};

	(void)state;
	id.state = identity_state_for("slot-test");
	id.limits.max_tunnels = 2;
	assert_int_equal(identity_take_tunnel(&id), REASON_ALLOWED);
	assert_int_equal(identity_take_tunnel(&id), REASON_ALLOWED);
	assert_int_equal(identity_take_tunnel(&id), REASON_LIMIT_TUNNELS);
	identity_release_tunnel(&id);
	assert_int_equal(identity_take_tunnel(&id), REASON_ALLOWED);
	identity_release_tunnel(&id);
	identity_release_tunnel(&id);
	/* The registry keeps one state per name. */
	assert_ptr_equal(identity_state_for("slot-test"), id.state);
	assert_int_equal(atomic_load(&id.state->tunnels), 0);
}

/* identity_identify: the listener's order, and credentials checked first. */
static const struct identity *cert_named;
static int cert_asked;

static const struct identity *
fake_cert(void *arg)
{
	(void)arg;
	cert_asked++;
	return cert_named;
}

static void
test_identify(void **state)
{
	static const enum identify_method auth_first[] = {IDENTIFY_PROXY_AUTH,
	                                                  IDENTIFY_SOURCE};
	static const enum identify_method cert_first[] = {IDENTIFY_TLS_CERT,
	                                                  IDENTIFY_PROXY_AUTH};
	static const enum identify_method source_only[] = {IDENTIFY_SOURCE};
	static const char good[] = "Basic YWdlbnQtMTpzM2NyZXQ=";
	static const char wrong[] = "Bearer not-a-token";
	struct cidr pod, other;
	const char *why;
	const struct identity *id = &ids[0];
	struct identity_claims cl = {.by_cert = fake_cert};

	(void)state;
	assert_int_equal(cidr_parse("10.1.2.3", &pod, &why), 0);
	assert_int_equal(cidr_parse("192.0.2.1", &other, &why), 0);
	cl.source = &pod.net;
	/* No methods: nobody to name, and nothing refused. */
	assert_int_equal(identity_identify(NULL, 0, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_null(id);
	/* In order: no credentials, so the source names "pod". */
	assert_int_equal(identity_identify(auth_first, 2, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[2]);
	/* Good credentials come first in this order. */
	cl.credentials = good;
	cl.credentials_len = strlen(good);
	assert_int_equal(identity_identify(auth_first, 2, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[0]);
	/* A certificate first names its holder, good credentials or not. */
	cert_named = &ids[1];
	assert_int_equal(identity_identify(cert_first, 2, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[1]);
	/* Wrong credentials are refused whatever else names the client:
	 * before the certificate is even asked. */
	cl.credentials = wrong;
	cl.credentials_len = strlen(wrong);
	cert_asked = 0;
	assert_int_equal(identity_identify(cert_first, 2, ids, 3, &cl, &id),
	                 REASON_AUTH_FAILED);
	assert_null(id);
	assert_int_equal(cert_asked, 0);
	assert_int_equal(identity_identify(auth_first, 2, ids, 3, &cl, &id),
	                 REASON_AUTH_FAILED);
	/* ...unless the listener does not take credentials: they are not
	 * looked at. */
	assert_int_equal(identity_identify(source_only, 1, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[2]);
	/* Nobody named: 407 where credentials would do, else 403. */
	cl.credentials = NULL;
	cl.source = &other.net;
	cert_named = NULL;
	assert_int_equal(identity_identify(cert_first, 2, ids, 3, &cl, &id),
	                 REASON_AUTH_REQUIRED);
	assert_int_equal(identity_identify(source_only, 1, ids, 3, &cl, &id),
	                 REASON_NO_IDENTITY);
	assert_null(id);
}

/* Where a gateway token comes from: x-api-key first, then Authorization's
 * Bearer token or its Basic password (git's). */
static void
test_gateway_token(void **state)
{
	char buf[64];
	static const char basic[] =
	    "Basic YWdlbnQ6dG9rLTEyMw=="; /* agent:tok-123 */

	(void)state;
	assert_int_equal(identity_gateway_token(NULL, 0, NULL, 0, buf, 64), 0);
	assert_int_equal(
	    identity_gateway_token("tok-123", 7, "Bearer x", 8, buf, 64), 7);
	assert_memory_equal(buf, "tok-123", 7);
	assert_int_equal(
	    identity_gateway_token(NULL, 0, "Bearer  tok-123", 15, buf, 64), 7);
	assert_memory_equal(buf, "tok-123", 7);
	assert_int_equal(
	    identity_gateway_token(NULL, 0, basic, strlen(basic), buf, 64), 7);
	assert_memory_equal(buf, "tok-123", 7);
	/* Another scheme, bad base64, no password, too long: no token. */
	assert_int_equal(
	    identity_gateway_token(NULL, 0, "Digest x", 8, buf, 64), -1);
	assert_int_equal(
	    identity_gateway_token(NULL, 0, "Basic !!!!", 10, buf, 64), -1);
	assert_int_equal(
	    identity_gateway_token(NULL, 0, "Basic YWdlbnQ6", 14, buf, 64), -1);
	assert_int_equal(
	    identity_gateway_token("0123456789", 10, NULL, 0, buf, 4), -1);
	assert_int_equal(identity_gateway_token("", 0, NULL, 0, buf, 64), -1);
}

/* A token names the identity whose bearer line it is; a wrong one is
 * refused, never passed over for the source. */
static void
test_identify_token(void **state)
{
	static const enum identify_method order[] = {IDENTIFY_TOKEN,
	                                             IDENTIFY_SOURCE};
	static const enum identify_method token_only[] = {IDENTIFY_TOKEN};
	struct cidr pod;
	const char *why;
	const struct identity *id;
	struct identity_claims cl = {0};

	(void)state;
	assert_int_equal(cidr_parse("10.1.2.3", &pod, &why), 0);
	cl.source = &pod.net;
	assert_int_equal(identity_identify(order, 2, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[2]);
	cl.token = "tok-123";
	cl.token_len = 7;
	assert_int_equal(identity_identify(order, 2, ids, 3, &cl, &id),
	                 REASON_ALLOWED);
	assert_ptr_equal(id, &ids[1]);
	/* A Basic credential's secret is no gateway token. */
	cl.token = "s3cret";
	cl.token_len = 6;
	assert_int_equal(identity_identify(order, 2, ids, 3, &cl, &id),
	                 REASON_TOKEN_FAILED);
	assert_null(id);
	cl.token = NULL;
	assert_int_equal(identity_identify(token_only, 1, ids, 3, &cl, &id),
	                 REASON_TOKEN_REQUIRED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_bearer),
	    cmocka_unit_test(test_source_and_tls),
	    cmocka_unit_test(test_parse_credential_lines),
	    cmocka_unit_test(test_salts_differ),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_tunnel_slots),
	    cmocka_unit_test(test_identify),
	    cmocka_unit_test(test_gateway_token),
	    cmocka_unit_test(test_identify_token),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
