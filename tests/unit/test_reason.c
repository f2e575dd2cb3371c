/* Unit tests for reason: the table, and the mappings from a head's and a
 * connect's failure to their entries. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "reason.h"

/* Every entry has a log name, unique; a status has its phrase, its
 * Proxy-Status type and the sentence a client reads. */
static void
test_table(void **state)
{
	(void)state;
	for (int r = 0; r < REASON_COUNT; r++) {
		const struct reason_info *ri = reason_get((enum reason)r);

		assert_non_null(ri->name);
		for (int s = 0; s < r; s++)
			if (strcmp(reason_get((enum reason)s)->name,
			           ri->name) == 0)
				fail_msg("%s: two entries", ri->name);
		if (ri->status == 0)
			continue;
		assert_non_null(ri->phrase);
		assert_non_null(ri->text);
		if (r != REASON_ALLOWED)
			assert_non_null(ri->proxy_status);
	}
	assert_true(reason_is_denial(REASON_CONNECT_UNCHECKED));
	assert_true(reason_is_policy(REASON_CONNECT_UNCHECKED));
	assert_true(reason_is_denial(REASON_AUTH_FAILED));
	assert_false(reason_is_policy(REASON_AUTH_FAILED));
	assert_false(reason_is_policy(REASON_NO_IDENTITY));
	assert_false(reason_is_denial(REASON_DNS_NXDOMAIN));
	assert_true(reason_is_policy(REASON_ADDRESS_NOT_IN_NETWORKS));
	/* The gateway's refusals are denials, never report-mode ones. */
	assert_true(reason_is_denial(REASON_TOKEN_REQUIRED));
	assert_true(reason_is_denial(REASON_PATH_NOT_ALLOWED));
	assert_false(reason_is_policy(REASON_PATH_NOT_ALLOWED));
	assert_false(reason_is_policy(REASON_ROUTE_NOT_FOUND));
	assert_false(reason_is_policy(REASON_REF_NOT_ALLOWED));
	assert_false(reason_is_denial(REASON_BAD_PATH));
}

static void
test_of_head(void **state)
{
	(void)state;
	assert_int_equal(reason_of_head(HTTP_URI_TOO_LONG),
	                 REASON_URI_TOO_LONG);
	assert_int_equal(reason_get(reason_of_head(HTTP_URI_TOO_LONG))->status,
	                 414);
	assert_int_equal(reason_of_head(HTTP_FIELDS_TOO_LARGE),
	                 REASON_HEADER_TOO_LARGE);
	assert_int_equal(
	    reason_get(reason_of_head(HTTP_FIELDS_TOO_LARGE))->status, 431);
	assert_int_equal(reason_of_head(HTTP_BAD_VERSION), REASON_BAD_VERSION);
	assert_int_equal(reason_get(reason_of_head(HTTP_BAD_VERSION))->status,
	                 505);
	assert_int_equal(reason_of_head(HTTP_BAD_REQUEST),
	                 REASON_MALFORMED_REQUEST);
	assert_int_equal(reason_get(reason_of_head(HTTP_BAD_REQUEST))->status,
	                 400);
}

static void
test_of_connect_error(void **state)
{
	static const struct {
		int err;
		enum reason want;
		int status;
	} cases[] = {
	    {ECONNREFUSED, REASON_CONNECT_REFUSED, 502},
	    {ETIMEDOUT, REASON_CONNECT_TIMEOUT, 504},
	    {EHOSTUNREACH, REASON_CONNECT_ERROR, 502},
	    {ENETUNREACH, REASON_CONNECT_ERROR, 502},
	    {ECONNRESET, REASON_CONNECT_ERROR, 502},
	    /* egressd's own shortage, not the destination's fault */
	    {EMFILE, REASON_INTERNAL_ERROR, 500},
	    {ENFILE, REASON_INTERNAL_ERROR, 500},
	    {ENOBUFS, REASON_INTERNAL_ERROR, 500},
	    {ENOMEM, REASON_INTERNAL_ERROR, 500},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum reason r = reason_of_connect_error(cases[i].err);

		if (r != cases[i].want)
			fail_msg("%s: %s", strerror(cases[i].err),
			         reason_get(r)->name);
		assert_int_equal(reason_get(r)->status, cases[i].status);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_of_head),
	    cmocka_unit_test(test_of_connect_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
