/*
 * suggest: from watching to enforcing.  Reads a decision log written in
 * report mode and prints the rules that would have allowed what was
 * reported as would-deny, grouped by policy, with counts, ready to paste
 * into the config after review.
 */
#ifndef EGRESSD_SUGGEST_H
#define EGRESSD_SUGGEST_H

#include <stdio.h>

/*
 * Read the log at path ("-": stdin) and write the suggestions to out.
 * Lines that are not report-mode denials, or not egressd's JSON, are
 * skipped.  Returns 0, or -1 with a message on stderr when the file cannot
 * be read.
 */
int suggest_run(const char *path, FILE *out);

/*
 * Take the string value of key from one flat JSON object line into buf
 * (unescaped; \u00XX gives that byte).  Returns 1 when found, 0 when not,
 * -1 when the value is not a string.  Exposed for tests.
 */
int suggest_json_str(const char *line, const char *key, char *buf, size_t len);

/* The integer value of key, or -1 when absent or not an integer. */
long long suggest_json_int(const char *line, const char *key);

#endif
