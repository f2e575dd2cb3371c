/*
 * watch_line: one line of egressd's decision log (docs/log.md), read back
 * by `egressd watch`.  No I/O.
 *
 * The log is untrusted input here: it may come from another egressd, a
 * `kubectl logs` stream with other lines mixed in, or a file someone wrote
 * into.  The parser takes one JSON object of scalar values (nested values
 * of unknown keys are skipped, to a bounded depth), copies the fields watch
 * shows, and refuses everything else: not JSON, a known field of an
 * unexpected type, a control byte inside a string, more than one object.
 * Strings are decoded (escapes, \u sequences as UTF-8) and cut at
 * WATCH_FIELD_MAX - 1 bytes; what they hold is still unsafe to print
 * (watch_sanitize).
 */
#ifndef EGRESSD_WATCH_LINE_H
#define EGRESSD_WATCH_LINE_H

#include <stddef.h>

#define WATCH_FIELD_MAX 256

enum watch_event {
	WATCH_OTHER, /* an event watch does not count (start, reload, ...) */
	WATCH_ALLOW,
	WATCH_DENY,
	WATCH_ERROR,
	WATCH_CLOSE,
	WATCH_GIT_REF,
};

struct watch_line {
	enum watch_event event;
	char ts[40];
	char identity[WATCH_FIELD_MAX]; /* "" for null or absent */
	char policy[WATCH_FIELD_MAX];
	char mode[16];
	char reason[64];
	char method[32];
	char host[WATCH_FIELD_MAX];
	long long port; /* 0: absent */
	char path[WATCH_FIELD_MAX];
	char route[WATCH_FIELD_MAX];
	char gateway_path[WATCH_FIELD_MAX];
	char repo[WATCH_FIELD_MAX];
	char service[32];
	char ref[WATCH_FIELD_MAX];
	char client[64];
	long long status; /* 0: absent */
};

/* Parse len bytes (one line, without its newline).  0 and *out filled, or
 * -1 when it is not a decision-log line as described above. */
int watch_line_parse(const char *s, size_t len, struct watch_line *out);

/*
 * Copy s for a terminal: printable ASCII as it is, every other byte
 * (controls, escape sequences, DEL, bytes of multi-byte characters, which
 * could be C1 controls) as '?'.  Writes at most size bytes, NUL-terminated;
 * returns out.
 */
char *watch_sanitize(const char *s, char *out, size_t size);

#endif
