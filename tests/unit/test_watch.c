/* watch_line and watch_view: the decision log read back, as untrusted
 * input, grouped, shown in 80 columns and posted to Alertmanager. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch_line.h"
#include "watch_view.h"

static const char deny_line[] =
    "{\"ts\":\"2026-12-03T23:17:28.098Z\",\"event\":\"deny\",\"conn\":7,"
    "\"client\":\"127.0.0.1:51234\",\"listener\":\"127.0.0.1:3128\","
    "\"identity\":\"aider\",\"policy\":\"aider\",\"mode\":\"enforce\","
    "\"method\":\"CONNECT\",\"host\":\"pypi.org\",\"port\":443,"
    "\"rule\":null,\"reason\":\"host_not_allowed\",\"status\":403}";

static void
test_parse_a_real_line(void **state)
{
	struct watch_line l;

	(void)state;
	assert_int_equal(watch_line_parse(deny_line, strlen(deny_line), &l), 0);
	assert_int_equal(l.event, WATCH_DENY);
	assert_string_equal(l.ts, "2026-12-03T23:17:28.098Z");
	assert_string_equal(l.identity, "aider");
	assert_string_equal(l.reason, "host_not_allowed");
	assert_string_equal(l.host, "pypi.org");
	assert_int_equal(l.port, 443);
	assert_int_equal(l.status, 403);
	assert_string_equal(l.client, "127.0.0.1:51234");
}

static void
test_parse_refuses_what_is_not_a_log_line(void **state)
{
	static const char *const bad[] = {
	    "",
	    "garbage",
	    "{",
	    "{}",                                /* no event */
	    "{\"event\":\"deny\"",               /* unterminated */
	    "{\"event\":\"deny\"} {}",           /* two objects */
	    "{\"event\":\"deny\",\"host\":5}",   /* a known field's type */
	    "{\"event\":\"deny\",\"port\":\"443\"}",
	    "{\"event\":\"deny\",\"port\":4.5}",
	    "{\"event\":\"deny\",\"port\":99999999999999999999999}",
	    "{\"event\":\"deny\",\"host\":\"a\x01b\"}", /* raw control */
	    "{\"event\":\"deny\",\"host\":\"\\x\"}",    /* bad escape */
	    "{\"event\":\"deny\",\"host\":\"\\ud800\"}", /* lone surrogate */
	    "{\"event\":\"deny\",\"x\":[[[[[[[[[[[1]]]]]]]]]]]}", /* deep */
	    "{\"event\":\"deny\",}",
	    "{\"event\":\"deny\" \"host\":\"a\"}",
	    "[\"event\",\"deny\"]",
	    "{\"event\":deny}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct watch_line l;

		if (watch_line_parse(bad[i], strlen(bad[i]), &l) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void
test_parse_skips_unknown_values_and_decodes_strings(void **state)
{
	static const char s[] =
	    "{\"event\":\"allow\",\"extra\":{\"a\":[1,2.5e3,true,null,"
	    "\"x\"]},\"host\":\"caf\\u00e9\\ud83d\\ude00\\n\",\"port\":80}";
	struct watch_line l;

	(void)state;
	assert_int_equal(watch_line_parse(s, strlen(s), &l), 0);
	assert_int_equal(l.event, WATCH_ALLOW);
	assert_string_equal(l.host, "caf\xc3\xa9\xf0\x9f\x98\x80\n");
	assert_int_equal(l.port, 80);
}

static void
test_long_strings_are_cut(void **state)
{
	char line[4096];
	struct watch_line l;

	(void)state;
	memset(line, 0, sizeof(line));
	strcpy(line, "{\"event\":\"deny\",\"host\":\"");
	memset(line + strlen(line), 'a', 1000);
	strcat(line, "\"}");
	assert_int_equal(watch_line_parse(line, strlen(line), &l), 0);
	assert_int_equal(strlen(l.host), WATCH_FIELD_MAX - 1);
}

static void
test_sanitize_neutralises_terminal_sequences(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(watch_sanitize("x\x1b]0;pwn\x07.test", out,
	                                   sizeof(out)),
	                    "x?]0;pwn?.test");
	/* C1 controls come as two UTF-8 bytes: both replaced. */
	assert_string_equal(watch_sanitize("a\xc2\x9b" "2Jb\x7f", out,
	                                   sizeof(out)),
	                    "a??2Jb?");
	assert_string_equal(watch_sanitize("abcdef", out, 4), "abc");
}

static struct watch_line
line_of(const char *json)
{
	struct watch_line l;

	assert_int_equal(watch_line_parse(json, strlen(json), &l), 0);
	return l;
}

static void
test_denials_group_by_identity_reason_and_destination(void **state)
{
	static struct watch_view v;
	struct watch_line l = line_of(deny_line);
	struct watch_group *g, *g2;

	(void)state;
	watch_view_init(&v);
	g = watch_view_add(&v, &l, 100);
	assert_non_null(g);
	assert_ptr_equal(watch_view_add(&v, &l, 105), g);
	assert_int_equal(g->count, 2);
	assert_int_equal(g->first, 100);
	assert_int_equal(g->last, 105);
	assert_string_equal(g->dest, "pypi.org:443");
	assert_string_equal(g->explain,
	                    "egressd --explain 'pypi.org:443' --policy 'aider'");
	strcpy(l.host, "files.pythonhosted.org");
	g2 = watch_view_add(&v, &l, 106);
	assert_ptr_not_equal(g2, g);
	assert_int_equal(v.ngroups, 2);
	l = line_of("{\"event\":\"allow\",\"host\":\"api.example\",\"port\":443}");
	assert_null(watch_view_add(&v, &l, 106));
	assert_int_equal(v.allow, 1);
	assert_int_equal(v.deny, 3);
}

static void
test_gateway_and_git_destinations_and_explain(void **state)
{
	static struct watch_view v;
	struct watch_line l = line_of(
	    "{\"ts\":\"2026-12-03T23:17:28Z\",\"event\":\"deny\","
	    "\"identity\":\"agent\",\"policy\":\"p'q\",\"route\":\"git\","
	    "\"method\":\"GET\",\"gateway_path\":\"/git/secret.git/info/refs\","
	    "\"repo\":\"secret\",\"service\":\"git-upload-pack\","
	    "\"reason\":\"repo_not_allowed\"}");
	struct watch_group *g;

	(void)state;
	watch_view_init(&v);
	g = watch_view_add(&v, &l, 1);
	assert_string_equal(g->dest, "git secret (git-upload-pack)");
	/* Quoted for a shell, the quote in the policy name too. */
	assert_string_equal(g->explain,
	                    "egressd --explain '/git/secret.git/info/refs' "
	                    "--method 'GET' --policy 'p'\\''q'");
}

static void
test_a_full_table_evicts_the_least_recent_group(void **state)
{
	static struct watch_view v;
	struct watch_line l = line_of(deny_line);

	(void)state;
	watch_view_init(&v);
	for (int i = 0; i < WATCH_GROUPS_MAX + 5; i++) {
		snprintf(l.host, sizeof(l.host), "h%d.example", i);
		assert_non_null(watch_view_add(&v, &l, 1000 + i));
	}
	assert_int_equal(v.ngroups, WATCH_GROUPS_MAX);
	assert_int_equal(v.evicted, 5);
	for (size_t i = 0; i < v.ngroups; i++)
		assert_true(v.groups[i].last >= 1005);
}

static void
test_render_fits_80_columns_and_shows_no_escape(void **state)
{
	static struct watch_view v;
	static char screen[65536];
	struct watch_line l = line_of(deny_line);
	size_t n, rows = 0;

	(void)state;
	watch_view_init(&v);
	for (int i = 0; i < 40; i++) {
		snprintf(l.host, sizeof(l.host),
		         "a-very-long-host-name-number-%d.\x1b[31mred.example",
		         i);
		watch_view_add(&v, &l, 2000 + i);
	}
	n = watch_view_render(&v, "decisions.log", 80, 24, 2040, screen,
	                      sizeof(screen));
	assert_true(n > 0);
	for (char *p = screen, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		assert_true(nl - p <= 80);
		for (char *q = p; q < nl; q++)
			assert_true(*q >= 0x20 && *q < 0x7f);
		rows++;
	}
	assert_true(rows <= 24);
	assert_non_null(strstr(screen, "denied 40 in 40 groups"));
	assert_non_null(strstr(screen, "more groups"));
	/* The most recent group first. */
	assert_non_null(strstr(screen, "number-39."));
}

static void
test_alert_json(void **state)
{
	static struct watch_view v;
	struct watch_line l = line_of(deny_line);
	struct watch_group *g;
	char buf[2048];

	(void)state;
	watch_view_init(&v);
	strcpy(l.identity, "ai\"der\\");
	g = watch_view_add(&v, &l, 1);
	assert_true(watch_alert_json(g, 1764800000, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"alertname\":\"EgressdDenial\""));
	assert_non_null(strstr(buf, "\"identity\":\"ai\\\"der\\\\\""));
	assert_non_null(strstr(buf, "\"reason\":\"host_not_allowed\""));
	assert_non_null(strstr(buf, "\"destination\":\"pypi.org:443\""));
	assert_non_null(strstr(buf, "\"startsAt\":\"2026-12-03T23:17:28.098Z\""));
	assert_non_null(strstr(buf, "\"endsAt\":\"2025-12-03T22:13:20Z\""));
	assert_non_null(strstr(buf, "\"explain\":\"egressd --explain"));
	/* Too small: nothing. */
	assert_int_equal(watch_alert_json(g, 1, buf, 100), 0);
}

static void
test_ts_valid(void **state)
{
	(void)state;
	assert_true(watch_ts_valid("2026-12-03T23:17:28.098Z"));
	assert_true(watch_ts_valid("2026-12-03T23:17:28Z"));
	assert_false(watch_ts_valid("2026-12-03T23:17:28.Z"));
	assert_false(watch_ts_valid("2026-12-03 23:17:28Z"));
	assert_false(watch_ts_valid("2026-12-03T23:17:28.098Z\""));
	assert_false(watch_ts_valid(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_a_real_line),
	    cmocka_unit_test(test_parse_refuses_what_is_not_a_log_line),
	    cmocka_unit_test(test_parse_skips_unknown_values_and_decodes_strings),
	    cmocka_unit_test(test_long_strings_are_cut),
	    cmocka_unit_test(test_sanitize_neutralises_terminal_sequences),
	    cmocka_unit_test(test_denials_group_by_identity_reason_and_destination),
	    cmocka_unit_test(test_gateway_and_git_destinations_and_explain),
	    cmocka_unit_test(test_a_full_table_evicts_the_least_recent_group),
	    cmocka_unit_test(test_render_fits_80_columns_and_shows_no_escape),
	    cmocka_unit_test(test_alert_json),
	    cmocka_unit_test(test_ts_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
