/* Unit tests for log: JSON escaping of hostile strings, and whole lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static void
test_escape(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	    {"plain.example", 13, "plain.example"},
	    {"a\"b", 3, "a\\\"b"},
	    {"a\\b", 3, "a\\\\b"},
	    {"line\r\nbreak", 11, "line\\u000d\\u000abreak"},
	    {"nul\0x", 5, "nul\\u0000x"},
	    {"\x7f", 1, "\\u007f"},
	    {"caf\xc3\xa9", 5, "caf\\u00c3\\u00a9"},
	    {"\xff\xfe", 2, "\\u00ff\\u00fe"},
	    {"", 0, ""},
	};
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_escape(out, sizeof(out), cases[i].in, cases[i].len);
		assert_string_equal(out, cases[i].want);
	}
}

static void
test_escape_cuts_whole_escapes(void **state)
{
	char out[8];

	(void)state;
	/* "ab" fits, "\u0001" (6 bytes) would not: cut before it. */
	assert_int_equal(log_escape(out, sizeof(out), "ab\x01", 3), 2);
	assert_string_equal(out, "ab");
}

static void
test_line(void **state)
{
	char path[64], err[128], buf[LOG_LINE_MAX * 2];
	struct log_line l;
	FILE *f;
	size_t n;
	char long_value[LOG_VALUE_MAX + 100];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/egressd-test-log-%d", (int)getpid());
	unlink(path);
	assert_int_equal(log_open(path, err, sizeof(err)), 0);
	log_begin(&l, "deny");
	log_str(&l, "host", "x\"y");
	log_str(&l, "rule", NULL);
	log_int(&l, "port", 443);
	log_end(&l);
	memset(long_value, 'a', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	log_begin(&l, "error");
	log_str(&l, "host", long_value);
	log_end(&l);
	assert_int_equal(log_open("-", err, sizeof(err)), 0);

	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	unlink(path);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\",\"event\":\"deny\",\"host\":\"x\\\"y\","
	                            "\"rule\":null,\"port\":443}\n"));
	assert_memory_equal(buf, "{\"ts\":\"20", 9);
	/* The long value is cut and says so. */
	assert_non_null(strstr(buf, "aaa...\"}\n"));
	assert_null(strstr(buf, "aaaa...aaaa"));
}

static void
test_open_failure(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(log_open("/nonexistent/dir/x.log", err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "/nonexistent/dir/x.log"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_escape_cuts_whole_escapes),
	    cmocka_unit_test(test_line),
	    cmocka_unit_test(test_open_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
