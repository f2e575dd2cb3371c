/* Unit tests for tls: the names of a client certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* An unsigned certificate with subject CN cn (none when NULL) and
 * subjectAltName san in openssl's config syntax (none when NULL): names are
 * all tls_cert_names reads. */
static X509 *
cert_with(const char *cn, const char *san)
{
	X509 *x = X509_new();

	assert_non_null(x);
	if (cn)
		assert_int_equal(X509_NAME_add_entry_by_NID(
		                     X509_get_subject_name(x), NID_commonName,
		                     MBSTRING_ASC, (const unsigned char *)cn,
		                     -1, -1, 0),
		                 1);
	if (san) {
		X509_EXTENSION *e =
		    X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);

		assert_non_null(e);
		assert_int_equal(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	return x;
}

struct seen {
	char names[8][64];
	int n;
	int stop_at; /* the 1-based call that returns non-zero, 0: none */
};

static int
collect(const char *name, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
	return s->n == s->stop_at ? 7 : 0;
}

/* The names tls_cert_names gives, joined by spaces. */
static const char *
names_of(const char *cn, const char *san)
{
	static char out[512];
	struct seen s = {.n = 0};
	X509 *x = cert_with(cn, san);

	assert_int_equal(tls_cert_names(x, collect, &s), 0);
	X509_free(x);
	out[0] = '\0';
	for (int i = 0; i < s.n; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
		         i ? " " : "", s.names[i]);
	return out;
}

static void
test_san_dns_then_uri_never_cn(void **state)
{
	(void)state;
	assert_string_equal(names_of("agent2",
	                             "URI:spiffe://c/ns/a/sa/b,DNS:a.example,"
	                             "email:x@example.test,DNS:b.example"),
	                    "a.example b.example spiffe://c/ns/a/sa/b");
	assert_string_equal(names_of("agent2", "DNS:unknown-name.example"),
	                    "unknown-name.example");
	assert_string_equal(names_of("agent2", "URI:spiffe://c/x"),
	                    "spiffe://c/x");
}

static void
test_cn_only_without_san(void **state)
{
	(void)state;
	assert_string_equal(names_of("agent2", NULL), "agent2");
	assert_string_equal(names_of(NULL, NULL), "");
	/* SANs of other kinds are SANs: the CN is not looked at. */
	assert_string_equal(names_of("agent2", "IP:127.0.0.9"), "");
	assert_string_equal(names_of("agent2", "email:agent2@example.test"),
	                    "");
}

static void
test_stops_when_fn_says_so(void **state)
{
	struct seen s = {.n = 0, .stop_at = 2};
	X509 *x = cert_with("agent2", "DNS:a.example,DNS:b.example,URI:u:x");

	(void)state;
	assert_int_equal(tls_cert_names(x, collect, &s), 7);
	assert_int_equal(s.n, 2);
	X509_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_san_dns_then_uri_never_cn),
	    cmocka_unit_test(test_cn_only_without_san),
	    cmocka_unit_test(test_stops_when_fn_says_so),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
