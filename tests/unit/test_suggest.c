/* Unit tests for suggest: reading decision logs, proposing rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "suggest.h"

static void
test_json_fields(void **state)
{
	const char *line =
	    "{\"event\":\"deny\",\"host\":\"a\\\"b\\\\c\\u0041\","
	    "\"port\":443,\"message\":\"\\\"port\\\":1\","
	    "\"rule\":null}";
	char buf[64];

	(void)state;
	assert_int_equal(suggest_json_str(line, "event", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "deny");
	assert_int_equal(suggest_json_str(line, "host", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "a\"b\\cA");
	/* A key inside a string value is not a key. */
	assert_int_equal(suggest_json_int(line, "port"), 443);
	assert_int_equal(suggest_json_str(line, "rule", buf, sizeof(buf)), -1);
	assert_int_equal(suggest_json_str(line, "absent", buf, sizeof(buf)), 0);
	assert_int_equal(suggest_json_int(line, "host"), -1);
	/* Too long for the buffer. */
	assert_int_equal(suggest_json_str(line, "event", buf, 3), -1);
}

static char *
run_on(const char *log)
{
	char in[64], outp[64];
	FILE *f, *out;
	static char result[8192];
	size_t n;

	snprintf(in, sizeof(in), "/tmp/egressd-test-suggest-%d.log",
	         (int)getpid());
	snprintf(outp, sizeof(outp), "/tmp/egressd-test-suggest-%d.out",
	         (int)getpid());
	f = fopen(in, "w");
	fputs(log, f);
	fclose(f);
	out = fopen(outp, "w+");
	assert_int_equal(suggest_run(in, out), 0);
	rewind(out);
	n = fread(result, 1, sizeof(result) - 1, out);
	result[n] = '\0';
	fclose(out);
	unlink(in);
	unlink(outp);
	return result;
}

#define DENY(pol, mode, method, host, port)                                    \
	"{\"ts\":\"x\",\"event\":\"deny\",\"policy\":\"" pol                   \
	"\",\"mode\":\"" mode "\",\"method\":\"" method "\",\"host\":\"" host  \
	"\",\"port\":" port ",\"reason\":\"host_not_allowed\"}\n"

static void
test_rules_grouped_by_policy_with_counts(void **state)
{
	char *out = run_on(
	    DENY("aider", "report", "CONNECT", "pypi.org", "443") DENY(
	        "aider", "report", "CONNECT", "files.example",
	        "443") DENY("aider", "report", "CONNECT", "pypi.org", "443")
	        DENY("aider", "enforce", "CONNECT", "enforced.example", "443")
	            DENY("ci", "report", "GET", "deb.example", "80")
	                DENY("ci", "report", "CONNECT", "203.0.113.7", "22")
	                    DENY("ci", "report", "CONNECT", "bad host",
	                         "443") "garbage\n");

	(void)state;
	assert_non_null(strstr(out, "# policy \"aider\": 2 destinations"));
	assert_non_null(strstr(out, "# suggested-1: 3 requests "
	                            "(files.example: 1, pypi.org: 2)\n"
	                            "{ name = \"suggested-1\";\n"
	                            "  hosts = [ \"files.example\", "
	                            "\"pypi.org\" ];\n  ports = [ 443 ]; "
	                            "methods = [ \"CONNECT\" ]; }\n"));
	/* Enforced refusals are not suggestions. */
	assert_null(strstr(out, "enforced.example"));
	assert_non_null(strstr(out, "hosts = [ \"deb.example\" ];\n  ports = "
	                            "[ 80 ]; methods = [ \"GET\" ];"));
	assert_non_null(strstr(out, "networks = [ \"203.0.113.7\" ];"));
	/* Invalid destinations never become config text. */
	assert_null(strstr(out, "bad host"));
	assert_non_null(strstr(out, "some skipped"));
}

static void
test_nothing_to_suggest(void **state)
{
	char *out = run_on("{\"event\":\"allow\"}\n");

	(void)state;
	assert_non_null(strstr(out, "Nothing to suggest"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_fields),
	    cmocka_unit_test(test_rules_grouped_by_policy_with_counts),
	    cmocka_unit_test(test_nothing_to_suggest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
