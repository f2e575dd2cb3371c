#include "watch_view.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* snprintf that cuts without a word: every cut here is meant. */
static void fmt(char *buf, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static void
fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, size, f, ap);
	va_end(ap);
}

/* Copy src into dst, cut to fit. */
static void
copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void
watch_view_init(struct watch_view *v)
{
	memset(v, 0, sizeof(*v));
}

int
watch_ts_valid(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
		                    : s[i] != shape[i])
			return 0;
	if (s[i] == '.') {
		size_t d = 0;

		for (i++; isdigit((unsigned char)s[i]) && d < 9; i++, d++)
			;
		if (d == 0)
			return 0;
	}
	return s[i] == 'Z' && s[i + 1] == '\0';
}

/* "HH:MM:SS" of a log time, or "--:--:--". */
static const char *
clock_of(const char *ts)
{
	static _Thread_local char buf[9];

	if (!watch_ts_valid(ts))
		return "--:--:--";
	memcpy(buf, ts + 11, 8);
	buf[8] = '\0';
	return buf;
}

/* Where the request went, for a person: "host:port", "route /path", or
 * "route repo (service)". */
static void
dest_of(const struct watch_line *l, char *buf, size_t size)
{
	if (l->repo[0])
		fmt(buf, size, "%s %s (%s)", l->route, l->repo,
		         l->service[0] ? l->service : "git");
	else if (l->route[0] || l->gateway_path[0])
		fmt(buf, size, "%s%s%s", l->route, l->route[0] ? " " : "",
		         l->gateway_path);
	else if (l->host[0] && l->port)
		fmt(buf, size, "%s:%lld", l->host, l->port);
	else if (l->host[0])
		fmt(buf, size, "%s", l->host);
	else
		fmt(buf, size, "-");
}

/* Append s to buf as one shell word in single quotes. */
static void
shell_word(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);
	char clean[WATCH_FIELD_MAX];

	watch_sanitize(s, clean, sizeof(clean));
	if (n + 3 >= size)
		return;
	buf[n++] = '\'';
	for (const char *p = clean; *p && n + 6 < size; p++) {
		if (*p == '\'') {
			memcpy(buf + n, "'\\''", 4);
			n += 4;
		} else {
			buf[n++] = *p;
		}
	}
	buf[n++] = '\'';
	buf[n] = '\0';
}

static void
append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

/* The --explain command that reproduces the decision. */
static void
explain_of(const struct watch_line *l, char *buf, size_t size)
{
	char target[WATCH_FIELD_MAX + 80];

	fmt(buf, size, "egressd --explain ");
	if (l->gateway_path[0]) {
		shell_word(buf, size, l->gateway_path);
	} else if (l->host[0] && strcmp(l->method, "CONNECT") != 0 &&
	           l->method[0]) {
		fmt(target, sizeof(target), "http://%s:%lld%s", l->host,
		         l->port ? l->port : 80, l->path);
		shell_word(buf, size, target);
	} else {
		fmt(target, sizeof(target), "%s:%lld", l->host,
		         l->port ? l->port : 443);
		shell_word(buf, size, target);
	}
	if (l->method[0] && strcmp(l->method, "CONNECT") != 0) {
		append(buf, size, " --method ");
		shell_word(buf, size, l->method);
	}
	if (l->policy[0]) {
		append(buf, size, " --policy ");
		shell_word(buf, size, l->policy);
	}
}

size_t
watch_plain_line(const struct watch_line *l, char *buf, size_t size)
{
	char dest[WATCH_FIELD_MAX * 2], raw[WATCH_FIELD_MAX * 3];
	int n;

	dest_of(l, dest, sizeof(dest));
	n = snprintf(raw, sizeof(raw), "%s %s %s %s %s%s%s", clock_of(l->ts),
	             l->identity[0] ? l->identity : "-",
	             l->reason[0] ? l->reason : "-",
	             l->method[0] ? l->method : "-", dest,
	             strcmp(l->mode, "report") == 0 ? " (report mode)" : "",
	             l->ref[0] ? " ref " : "");
	if (n > 0 && l->ref[0])
		append(raw, sizeof(raw), "%s", l->ref);
	watch_sanitize(raw, buf, size);
	return strlen(buf);
}

static int
same(const struct watch_group *g, const struct watch_line *l,
     const char *dest)
{
	return strncmp(g->identity, l->identity, sizeof(g->identity) - 1) ==
	           0 &&
	       strncmp(g->policy, l->policy, sizeof(g->policy) - 1) == 0 &&
	       strncmp(g->reason, l->reason, sizeof(g->reason) - 1) == 0 &&
	       strncmp(g->dest, dest, sizeof(g->dest) - 1) == 0;
}

static struct watch_group *
group_for(struct watch_view *v, const struct watch_line *l, const char *dest,
          long long now)
{
	struct watch_group *g = NULL;

	for (size_t i = 0; i < v->ngroups; i++)
		if (same(&v->groups[i], l, dest))
			return &v->groups[i];
	if (v->ngroups < WATCH_GROUPS_MAX) {
		g = &v->groups[v->ngroups++];
	} else {
		/* Full: the group seen least recently makes room. */
		g = &v->groups[0];
		for (size_t i = 1; i < v->ngroups; i++)
			if (v->groups[i].last < g->last)
				g = &v->groups[i];
		v->evicted++;
	}
	memset(g, 0, sizeof(*g));
	copy(g->identity, sizeof(g->identity), l->identity);
	copy(g->policy, sizeof(g->policy), l->policy);
	copy(g->reason, sizeof(g->reason), l->reason);
	copy(g->dest, sizeof(g->dest), dest);
	g->first = now;
	copy(g->first_ts, sizeof(g->first_ts), l->ts);
	explain_of(l, g->explain, sizeof(g->explain));
	return g;
}

/* Count an allowed request in the second now. */
static void
count_allow(struct watch_view *v, long long now)
{
	size_t i = (size_t)(now % 10);

	if (v->ring_sec[i] != now) {
		v->ring_sec[i] = now;
		v->allow_ring[i] = 0;
	}
	v->allow_ring[i]++;
}

double
watch_view_allow_rate(const struct watch_view *v, long long now)
{
	unsigned long long sum = 0;

	for (size_t i = 0; i < 10; i++)
		if (v->ring_sec[i] > now - 10 && v->ring_sec[i] <= now)
			sum += v->allow_ring[i];
	return (double)sum / 10.0;
}

struct watch_group *
watch_view_add(struct watch_view *v, const struct watch_line *l,
               long long now)
{
	char dest[sizeof(((struct watch_group *)0)->dest)];
	struct watch_group *g;

	v->lines++;
	switch (l->event) {
	case WATCH_ALLOW:
		v->allow++;
		count_allow(v, now);
		return NULL;
	case WATCH_ERROR:
		v->errors++;
		return NULL;
	case WATCH_DENY:
		break;
	default:
		return NULL;
	}
	v->deny++;
	dest_of(l, dest, sizeof(dest));
	g = group_for(v, l, dest, now);
	g->count++;
	g->last = now;
	g->changed = 1;
	g->resolved = 0;
	copy(g->last_ts, sizeof(g->last_ts), l->ts);
	watch_plain_line(l, g->sample, sizeof(g->sample));
	watch_plain_line(l, v->recent[v->nrecent % WATCH_RECENT],
	                 sizeof(v->recent[0]));
	v->nrecent++;
	return g;
}

void
watch_view_skip(struct watch_view *v)
{
	v->skipped++;
}

/* --- the screen ------------------------------------------------------------ */

struct out {
	char *buf;
	size_t size, n;
	int width;
};

/* One row: sanitized, cut at width columns, "\n". */
static void
row(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
row(struct out *o, const char *fmt, ...)
{
	char raw[1024], clean[1024];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	watch_sanitize(raw, clean, sizeof(clean));
	len = strlen(clean);
	if (o->width > 0 && len > (size_t)o->width)
		len = (size_t)o->width;
	if (o->n + len + 2 > o->size)
		return;
	memcpy(o->buf + o->n, clean, len);
	o->n += len;
	o->buf[o->n++] = '\n';
	o->buf[o->n] = '\0';
}

/* Is a more recent than b?  By the log's times (RFC 3339 sorts as text),
 * else by when watch saw them. */
static int
newer(const struct watch_group *a, const struct watch_group *b)
{
	if (watch_ts_valid(a->last_ts) && watch_ts_valid(b->last_ts)) {
		int c = strcmp(a->last_ts, b->last_ts);

		if (c != 0)
			return c > 0;
	}
	return a->last > b->last;
}

/* Groups by last time, most recent first (insertion order breaks ties). */
static size_t
order(const struct watch_view *v, const struct watch_group **out)
{
	size_t n = v->ngroups;

	for (size_t i = 0; i < n; i++)
		out[i] = &v->groups[i];
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && newer(out[j], out[j - 1]); j--) {
			const struct watch_group *t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

size_t
watch_view_render(const struct watch_view *v, const char *source, int width,
                  int height, long long now, char *buf, size_t size)
{
	struct out o = {buf, size, 0, width};
	const struct watch_group *sorted[WATCH_GROUPS_MAX];
	size_t n = order(v, sorted), recent, rows, shown;
	int dw = width - 55; /* what the other columns leave */

	if (size)
		buf[0] = '\0';
	if (dw < 10)
		dw = 10;
	if (height < 8)
		height = 8;
	row(&o, "egressd watch  %s  allow %.1f/s  denied %llu in %zu groups%s",
	    source, watch_view_allow_rate(v, now), v->deny, v->ngroups,
	    v->skipped ? "" : "");
	if (v->skipped || v->evicted)
		row(&o, "skipped %llu lines that were not decision-log lines; "
		        "%llu old groups dropped",
		    v->skipped, v->evicted);
	else
		row(&o, " ");
	row(&o, "%6s %-9s %-14s %-22s %s", "COUNT", "LAST", "IDENTITY",
	    "REASON", "DESTINATION");
	/* The groups get what the recent lines do not need. */
	recent = v->nrecent < WATCH_RECENT ? v->nrecent : WATCH_RECENT;
	if (recent > (size_t)height / 3)
		recent = (size_t)height / 3;
	rows = (size_t)height - 5 - recent;
	shown = n < rows ? n : rows;
	for (size_t i = 0; i < shown; i++) {
		const struct watch_group *g = sorted[i];

		row(&o, "%6llu %-9s %-14.14s %-22.22s %.*s", g->count,
		    clock_of(g->last_ts),
		    g->identity[0] ? g->identity : "-", g->reason, dw,
		    g->dest);
	}
	if (n > shown)
		row(&o, "       ... %zu more groups", n - shown);
	row(&o, "last denials:");
	for (size_t i = 0; i < recent; i++)
		row(&o, "  %s",
		    v->recent[(v->nrecent - recent + i) % WATCH_RECENT]);
	return o.n;
}

size_t
watch_view_summary(const struct watch_view *v, char *buf, size_t size)
{
	struct out o = {buf, size, 0, 0};
	const struct watch_group *sorted[WATCH_GROUPS_MAX];
	size_t n = order(v, sorted);

	if (size)
		buf[0] = '\0';
	row(&o,
	    "%llu lines: %llu allowed, %llu denied in %zu groups, %llu "
	    "errors, %llu skipped",
	    v->lines, v->allow, v->deny, v->ngroups, v->errors, v->skipped);
	for (size_t i = 0; i < n; i++) {
		const struct watch_group *g = sorted[i];

		row(&o, "%6llu  %s  %s  %s  policy %s  (%s .. %s)", g->count,
		    g->identity[0] ? g->identity : "-", g->reason, g->dest,
		    g->policy[0] ? g->policy : "-", clock_of(g->first_ts),
		    clock_of(g->last_ts));
		row(&o, "        %s", g->explain);
	}
	return o.n;
}

/* --- Alertmanager -------------------------------------------------------- */

/* s as the inside of a JSON string, sanitized first. */
static void
json_str(struct out *o, const char *s)
{
	char clean[1024];

	watch_sanitize(s, clean, sizeof(clean));
	for (const char *p = clean; *p; p++) {
		if (o->n + 3 > o->size) {
			o->n = o->size; /* overflow: the caller sees 0 */
			return;
		}
		if (*p == '"' || *p == '\\')
			o->buf[o->n++] = '\\';
		o->buf[o->n++] = *p;
	}
}

static void
raw(struct out *o, const char *s)
{
	size_t len = strlen(s);

	if (o->n + len + 1 > o->size) {
		o->n = o->size;
		return;
	}
	memcpy(o->buf + o->n, s, len);
	o->n += len;
}

static void
rfc3339(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t
watch_alert_json(const struct watch_group *g, long long ends_at, char *buf,
                 size_t size)
{
	struct out o = {buf, size, 0, 0};
	char ends[40], summary[600];
	const char *labels[][2] = {
	    {"identity", g->identity[0] ? g->identity : "-"},
	    {"policy", g->policy[0] ? g->policy : "-"},
	    {"reason", g->reason},
	    {"destination", g->dest},
	};

	rfc3339(ends_at, ends, sizeof(ends));
	fmt(summary, sizeof(summary),
	         "egressd denied %llu request%s: %s to %s (%s)", g->count,
	         g->count == 1 ? "" : "s", g->identity[0] ? g->identity : "-",
	         g->dest, g->reason);
	raw(&o, "{\"labels\":{\"alertname\":\"EgressdDenial\","
	        "\"severity\":\"warning\"");
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		raw(&o, ",\"");
		raw(&o, labels[i][0]);
		raw(&o, "\":\"");
		json_str(&o, labels[i][1]);
		raw(&o, "\"");
	}
	raw(&o, "},\"annotations\":{\"summary\":\"");
	json_str(&o, summary);
	raw(&o, "\",\"sample\":\"");
	json_str(&o, g->sample);
	raw(&o, "\",\"explain\":\"");
	json_str(&o, g->explain);
	raw(&o, "\"}");
	if (watch_ts_valid(g->first_ts)) {
		raw(&o, ",\"startsAt\":\"");
		raw(&o, g->first_ts);
		raw(&o, "\"");
	}
	raw(&o, ",\"endsAt\":\"");
	raw(&o, ends);
	raw(&o, "\"}");
	if (o.n >= size)
		return 0;
	buf[o.n] = '\0';
	return o.n;
}
