/*
 * fuzz_watch_line: one line of a decision log as `egressd watch` reads it
 * (untrusted: whatever a log stream carries).  The parser never reads past
 * the line; an accepted line goes into a view, whose screen, plain line and
 * alert hold printable ASCII only (every terminal escape neutralised) and
 * whose screen fits its columns.
 */
#include "fuzz.h"
#include "watch_line.h"
#include "watch_view.h"

static int
printable(const char *s, size_t n, int newlines)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 0x20 && s[i] < 0x7f) || (newlines && s[i] == '\n')))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct watch_view v;
	static char screen[32768];
	char *line = fuzz_dup(data, size), plain[512], alert[2048];
	struct watch_line l;
	struct watch_group *g;
	size_t n;

	if (watch_line_parse(line, size, &l) < 0) {
		free(line);
		return 0;
	}
	FUZZ_CHECK(strlen(l.host) < WATCH_FIELD_MAX);
	watch_view_init(&v);
	g = watch_view_add(&v, &l, 1000);
	FUZZ_CHECK((g != NULL) == (l.event == WATCH_DENY));
	n = watch_plain_line(&l, plain, sizeof(plain));
	FUZZ_CHECK(n < sizeof(plain) && printable(plain, n, 0));
	n = watch_view_render(&v, "fuzz", 60, 12, 1000, screen, sizeof(screen));
	FUZZ_CHECK(printable(screen, n, 1));
	for (char *p = screen, *nl; (nl = strchr(p, '\n')); p = nl + 1)
		FUZZ_CHECK(nl - p <= 60);
	if (g) {
		n = watch_alert_json(g, 2000000000, alert, sizeof(alert));
		FUZZ_CHECK(n > 0 && printable(alert, n, 0));
		FUZZ_CHECK(alert[0] == '{' && alert[n - 1] == '}');
	}
	free(line);
	return 0;
}
