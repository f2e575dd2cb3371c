#include "suggest.h"

#include <stdlib.h>
#include <string.h>

#include "host.h"

#define MAX_ENTRIES 4096

/* One destination reported as would-deny. */
struct entry {
	char policy[65];
	char host[HOST_NAME_MAX_LEN + 1];
	int ip; /* an IP literal: suggest networks, not hosts */
	long port;
	char method[33];
	unsigned long count;
	int done; /* already printed in a rule */
};

/* Find "key": at the top level of a flat object; returns the value's
 * first byte or NULL. */
static const char *
find_value(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line;
	int in_string = 0;

	for (; *p; p++) {
		if (in_string) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				in_string = 0;
			continue;
		}
		if (*p != '"')
			continue;
		/* A key starts here when it is followed by '":'. */
		if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '"' &&
		    p[2 + klen] == ':')
			return p + 3 + klen;
		in_string = 1;
	}
	return NULL;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
suggest_json_str(const char *line, const char *key, char *buf, size_t len)
{
	const char *p = find_value(line, key);
	size_t o = 0;

	if (!p)
		return 0;
	if (*p != '"')
		return -1;
	for (p++; *p && *p != '"'; p++) {
		char ch = *p;

		if (ch == '\\') {
			p++;
			if (*p == 'u' && p[1] == '0' && p[2] == '0' &&
			    hexval(p[3]) >= 0 && hexval(p[4]) >= 0) {
				ch = (char)(hexval(p[3]) * 16 + hexval(p[4]));
				p += 4;
			} else if (*p == '"' || *p == '\\' || *p == '/') {
				ch = *p;
			} else {
				return -1;
			}
		}
		if (o + 1 >= len)
			return -1;
		buf[o++] = ch;
	}
	if (*p != '"')
		return -1;
	buf[o] = '\0';
	return 1;
}

long long
suggest_json_int(const char *line, const char *key)
{
	const char *p = find_value(line, key);
	char *end;
	long long v;

	if (!p || *p < '0' || *p > '9')
		return -1;
	v = strtoll(p, &end, 10);
	return (*end == ',' || *end == '}') ? v : -1;
}

static int
cmp_entries(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->policy, y->policy);

	if (c)
		return c;
	if (x->ip != y->ip)
		return x->ip - y->ip;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if ((c = strcmp(x->method, y->method)))
		return c;
	return strcmp(x->host, y->host);
}

/* Print the rules of one policy: destinations sharing a port and method
 * become one rule. */
static void
print_policy(FILE *out, struct entry *e, size_t n, unsigned *rule_no)
{
	unsigned long total = 0;

	for (size_t i = 0; i < n; i++)
		total += e[i].count;
	fprintf(out,
	        "# policy \"%s\": %zu destination%s reported as would-deny "
	        "(%lu request%s).\n# Add the rules you want to its rules "
	        "list (a comma between them and rules already there), then "
	        "set mode = \"enforce\".\n",
	        e[0].policy, n, n == 1 ? "" : "s", total,
	        total == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		unsigned long count = 0;
		size_t j;

		if (e[i].done)
			continue;
		for (j = i;
		     j < n && e[j].ip == e[i].ip && e[j].port == e[i].port &&
		     strcmp(e[j].method, e[i].method) == 0;
		     j++)
			count += e[j].count;
		/* The counts go on a comment line of their own, so the rule
		 * can take a comma after it wherever it is pasted. */
		fprintf(out, "# suggested-%u: %lu request%s", ++*rule_no, count,
		        count == 1 ? "" : "s");
		for (size_t k = i; k < j && j - i > 1; k++)
			fprintf(out, "%s%s: %lu", k == i ? " (" : ", ",
			        e[k].host, e[k].count);
		fprintf(out, "%s\n{ name = \"suggested-%u\";\n  %s = [ ",
		        j - i > 1 ? ")" : "", *rule_no,
		        e[i].ip ? "networks" : "hosts");
		for (size_t k = i; k < j; k++) {
			fprintf(out, "%s\"%s\"", k > i ? ", " : "", e[k].host);
			e[k].done = 1;
		}
		/* Commas between rules only: libconfig refuses a trailing
		 * one. */
		fprintf(out,
		        " ];\n  ports = [ %ld ]; methods = [ \"%s\" ]; }%s\n",
		        e[i].port, e[i].method, j < n ? "," : "");
	}
	fputc('\n', out);
}

int
suggest_run(const char *path, FILE *out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	struct entry *entries;
	size_t n = 0, lines = 0, reports = 0, skipped = 0;
	unsigned rule_no = 0;
	char line[8192];

	if (!f) {
		perror(path);
		return -1;
	}
	if (!(entries = calloc(MAX_ENTRIES, sizeof(*entries)))) {
		if (f != stdin)
			fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		struct entry e = {0};
		char event[16], mode[16];
		struct host h;
		size_t i;

		lines++;
		if (suggest_json_str(line, "event", event, sizeof(event)) !=
		        1 ||
		    strcmp(event, "deny") != 0 ||
		    suggest_json_str(line, "mode", mode, sizeof(mode)) != 1 ||
		    strcmp(mode, "report") != 0)
			continue;
		reports++;
		if (suggest_json_str(line, "policy", e.policy,
		                     sizeof(e.policy)) != 1 ||
		    suggest_json_str(line, "host", e.host, sizeof(e.host)) !=
		        1 ||
		    suggest_json_str(line, "method", e.method,
		                     sizeof(e.method)) != 1 ||
		    (e.port = (long)suggest_json_int(line, "port")) <= 0 ||
		    e.port > 65535 ||
		    host_parse(e.host, strlen(e.host), 0, &h) < 0) {
			skipped++;
			continue;
		}
		/* Only names and addresses that are valid config text. */
		snprintf(e.host, sizeof(e.host), "%s", h.name);
		e.ip = h.kind != HOST_NAME;
		for (size_t k = 0; e.method[k]; k++)
			if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", e.method[k]))
				e.method[0] = '\0';
		if (!e.method[0]) {
			skipped++;
			continue;
		}
		for (i = 0; i < n; i++)
			if (cmp_entries(&entries[i], &e) == 0)
				break;
		if (i < n) {
			entries[i].count++;
		} else if (n < MAX_ENTRIES) {
			e.count = 1;
			entries[n++] = e;
		} else {
			skipped++;
		}
	}
	if (f != stdin)
		fclose(f);
	qsort(entries, n, sizeof(*entries), cmp_entries);
	fprintf(out,
	        "# egressd --suggest %s: %zu lines, %zu report-mode denials"
	        "%s\n\n",
	        path, lines, reports,
	        skipped ? " (some skipped: not a valid destination)" : "");
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n &&
		       strcmp(entries[j].policy, entries[i].policy) == 0)
			j++;
		print_policy(out, entries + i, j - i, &rule_no);
		i = j;
	}
	if (n == 0)
		fprintf(out, "# Nothing to suggest: no report-mode denials.\n");
	free(entries);
	return 0;
}
