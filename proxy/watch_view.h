/*
 * watch_view: what `egressd watch` knows about the log it reads, and how it
 * shows it.  No I/O.
 *
 * Denials are grouped by identity, policy, reason and destination (a host
 * and port, a gateway route and path, or a git repository), each group with
 * its count, first and last time, a sample line and the --explain command
 * that reproduces the decision.  Allowed requests are only counted (a rate
 * over the last 10 s).  At most WATCH_GROUPS_MAX groups: a new one evicts
 * the group seen least recently, and the eviction is counted.
 *
 * Every string from the log is sanitized (watch_sanitize) before it reaches
 * a screen, a plain line or an alert, and quoted before it reaches a shell
 * command that a person may paste.
 */
#ifndef EGRESSD_WATCH_VIEW_H
#define EGRESSD_WATCH_VIEW_H

#include <stddef.h>

#include "watch_line.h"

#define WATCH_GROUPS_MAX 256
#define WATCH_RECENT     8

struct watch_group {
	char identity[64];
	char policy[64];
	char reason[64];
	char dest[200];
	char first_ts[40], last_ts[40]; /* the log's times, RFC 3339 */
	char sample[400];               /* the last denial, one plain line */
	char explain[700];              /* egressd --explain ..., quoted */
	unsigned long long count;
	long long first, last; /* the watcher's clock, seconds */
	/* Alerting (watch.c): when it was last sent, and whether as
	 * resolved; changed is set by a new denial. */
	long long posted;
	int resolved;
	int changed;
};

struct watch_view {
	struct watch_group groups[WATCH_GROUPS_MAX];
	size_t ngroups;
	unsigned long long lines, allow, deny, errors, skipped, evicted;
	char recent[WATCH_RECENT][200]; /* the last denials, plain lines */
	size_t nrecent;                 /* how many were ever added */
	unsigned allow_ring[10];        /* allows in the second ... */
	long long ring_sec[10];         /* ... ring_sec[s % 10] = s */
};

void watch_view_init(struct watch_view *v);

/* Count a parsed line seen at now (seconds).  A denial's group, or NULL. */
struct watch_group *watch_view_add(struct watch_view *v,
                                   const struct watch_line *l, long long now);

/* A line that was not a decision-log line. */
void watch_view_skip(struct watch_view *v);

/* Allowed requests a second over the last 10 s, as of now. */
double watch_view_allow_rate(const struct watch_view *v, long long now);

/* One denial as a plain line: "TIME IDENTITY REASON METHOD DEST", sanitized,
 * at most size - 1 bytes.  Its length. */
size_t watch_plain_line(const struct watch_line *l, char *buf, size_t size);

/*
 * The terminal screen: a header, the groups (most recent first) and the
 * last denials, in at most width columns and height rows, each row ending
 * in "\n" (no escape sequences: the caller clears the screen).  Its length;
 * cut to what fits in size.
 */
size_t watch_view_render(const struct watch_view *v, const char *source,
                         int width, int height, long long now, char *buf,
                         size_t size);

/* The summary printed at the end (--once): totals, then every group. */
size_t watch_view_summary(const struct watch_view *v, char *buf, size_t size);

/*
 * One alert for Alertmanager's POST /api/v2/alerts (an element of its JSON
 * array): labels alertname EgressdDenial, identity, policy, reason,
 * destination, severity; annotations summary, sample and explain;
 * startsAt the group's first time, endsAt ends_at (seconds since the
 * epoch).  Its length, or 0 when it does not fit.
 */
size_t watch_alert_json(const struct watch_group *g, long long ends_at,
                        char *buf, size_t size);

/* Is s an RFC 3339 UTC time as egressd writes it
 * ("2026-12-03T23:17:28.098Z", the fraction optional)?  1 or 0. */
int watch_ts_valid(const char *s);

#endif
