/*
 * log: the JSON-lines decision log.  One object a line, written with a single
 * write(2) so lines from one process never interleave.  Every string is
 * escaped; bytes outside printable ASCII become \u00XX, so a hostile host
 * name can neither break a line nor smuggle invalid UTF-8 into the log.
 */
#ifndef EGRESSD_LOG_H
#define EGRESSD_LOG_H

#include <stddef.h>

#define LOG_LINE_MAX 4096
/* Longest string value kept; longer ones are cut and end in "...". */
#define LOG_VALUE_MAX 512

struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int full;
};

/*
 * Open the log: "-" is stdout, anything else a file opened for appending
 * (created 0640).  Returns 0, or -1 with the problem in err.  The path is
 * remembered for log_reopen.
 */
int log_open(const char *path, char *err, size_t errlen);

/* Reopen the file (after rotation; SIGUSR1).  Returns 0 or -1; on failure
 * the old file stays in use. */
int log_reopen(void);

/* Start a line: {"ts":"...","event":"EVENT". */
void log_begin(struct log_line *l, const char *event);

/* Add a string field; NULL writes null. */
void log_str(struct log_line *l, const char *key, const char *value);

/* Add a string field from len bytes that need not be NUL-terminated. */
void log_strn(struct log_line *l, const char *key, const char *value,
              size_t len);

/* Add an integer field. */
void log_int(struct log_line *l, const char *key, long long value);

/* Close the object and write the line. */
void log_end(struct log_line *l);

/*
 * Batch the calling thread's lines: they are written together once base's
 * loop has run the callbacks at hand (see log.c).  log_batch_stop writes
 * what waits and ends batching; a thread without a batch writes each line
 * at once.  log_batch_start returns 0, or -1 when out of memory.
 */
struct event_base;
int log_batch_start(struct event_base *base);
void log_batch_stop(void);

/*
 * Escape len bytes as the body of a JSON string into out (outlen bytes,
 * always NUL-terminated; cut at a whole escape).  Returns the bytes written.
 * Exposed for tests.
 */
size_t log_escape(char *out, size_t outlen, const char *in, size_t len);

#endif
