#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The log's descriptor number never changes once open: a new file (reload,
 * SIGUSR1) is put in its place with dup2(2), which is atomic, so workers
 * writing at that moment never see a closed or reused descriptor.
 */
static int log_fd = -1;
static char *log_path;

/* A new descriptor for path ("-": a copy of stdout). */
static int
open_target(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, "-") == 0)
		fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd =
		    open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 && err)
		snprintf(err, errlen, "log: %s: %s",
		         strcmp(path, "-") == 0 ? "stdout" : path,
		         strerror(errno));
	return fd;
}

/* Put fd where the log writes, and close fd. */
static int
install(int fd)
{
	if (log_fd < 0) {
		log_fd = fd;
		return 0;
	}
	if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
log_open(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int fd;

	if (!copy) {
		snprintf(err, errlen, "log: out of memory");
		return -1;
	}
	if ((fd = open_target(path, err, errlen)) < 0 || install(fd) < 0) {
		if (fd >= 0)
			snprintf(err, errlen, "log: %s: %s", path,
			         strerror(errno));
		free(copy);
		return -1;
	}
	free(log_path);
	log_path = copy;
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (!log_path || strcmp(log_path, "-") == 0)
		return 0;
	if ((fd = open_target(log_path, NULL, 0)) < 0)
		return -1;
	return install(fd);
}

static void
put(struct log_line *l, const char *s, size_t n)
{
	/* Keep room for the closing "}\n". */
	if (l->full || l->len + n + 2 > sizeof(l->buf)) {
		l->full = 1;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
put_s(struct log_line *l, const char *s)
{
	put(l, s, strlen(s));
}

size_t
log_escape(char *out, size_t outlen, const char *in, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		char esc[7];
		size_t n;

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			n = 2;
		} else if (ch >= 0x20 && ch < 0x7f) {
			esc[0] = (char)ch;
			n = 1;
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			n = 6;
		}
		if (o + n + 1 > outlen)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	if (outlen)
		out[o] = '\0';
	return o;
}

static void
put_key(struct log_line *l, const char *key)
{
	put(l, ",\"", 2);
	put_s(l, key);
	put(l, "\":", 2);
}

void
log_begin(struct log_line *l, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char stamp[40];

	l->len = 0;
	l->full = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + 19, sizeof(stamp) - 19, ".%03dZ",
	         (int)(ts.tv_nsec / 1000000) % 1000);
	put_s(l, "{\"ts\":\"");
	put_s(l, stamp);
	put_s(l, "\"");
	log_str(l, "event", event);
}

void
log_strn(struct log_line *l, const char *key, const char *value, size_t len)
{
	char esc[LOG_VALUE_MAX * 6 + 4];
	size_t n;

	put_key(l, key);
	if (!value) {
		put(l, "null", 4);
		return;
	}
	n = log_escape(esc, sizeof(esc), value,
	               len > LOG_VALUE_MAX ? LOG_VALUE_MAX : len);
	if (len > LOG_VALUE_MAX) {
		memcpy(esc + n, "...", 4);
		n += 3;
	}
	put(l, "\"", 1);
	put(l, esc, n);
	put(l, "\"", 1);
}

void
log_str(struct log_line *l, const char *key, const char *value)
{
	log_strn(l, key, value, value ? strlen(value) : 0);
}

void
log_int(struct log_line *l, const char *key, long long value)
{
	char num[24];

	put_key(l, key);
	put(l, num, (size_t)snprintf(num, sizeof(num), "%lld", value));
}

/* Write all of p, or give up: a log that cannot be written must not stop
 * the proxy. */
static void
write_all(const char *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(log_fd < 0 ? STDOUT_FILENO : log_fd, p + off,
		                  len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/*
 * A worker's lines wait in its batch until its event loop has run the
 * callbacks at hand, then leave in as few writes as possible: the flush
 * event is made active with the first line, so it runs after the callbacks
 * already due in this round.  Each write holds whole lines and, where it
 * can, at most PIPE_BUF bytes, so lines from several workers never mix
 * even on a pipe.  Nothing is fsync()ed.
 */
#define BATCH_BYTES 16384

struct batch {
	struct event *flush;
	size_t len;
	char buf[BATCH_BYTES];
};

static _Thread_local struct batch *batch;

static void
batch_flush(void)
{
	size_t off = 0;

	while (off < batch->len) {
		size_t n = batch->len - off;

		if (n > PIPE_BUF) {
			const char *nl =
			    memrchr(batch->buf + off, '\n', PIPE_BUF);

			/* A line longer than PIPE_BUF goes alone. */
			if (!nl)
				nl = memchr(batch->buf + off + PIPE_BUF, '\n',
				            n - PIPE_BUF);
			n = (size_t)(nl - (batch->buf + off)) + 1;
		}
		write_all(batch->buf + off, n);
		off += n;
	}
	batch->len = 0;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	batch_flush();
}

int
log_batch_start(struct event_base *base)
{
	if (batch)
		return 0;
	if (!(batch = calloc(1, sizeof(*batch))))
		return -1;
	if (!(batch->flush = event_new(base, -1, 0, flush_cb, NULL))) {
		free(batch);
		batch = NULL;
		return -1;
	}
	return 0;
}

void
log_batch_stop(void)
{
	if (!batch)
		return;
	batch_flush();
	event_free(batch->flush);
	free(batch);
	batch = NULL;
}

void
log_end(struct log_line *l)
{
	if (l->full) {
		/* Too long: keep the line valid JSON and say it was cut. */
		l->len = 0;
		l->full = 0;
		put_s(l,
		      "{\"event\":\"error\",\"reason\":\"log_line_too_long\"");
	}
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	if (!batch) {
		write_all(l->buf, l->len);
		return;
	}
	if (batch->len + l->len > sizeof(batch->buf))
		batch_flush();
	memcpy(batch->buf + batch->len, l->buf, l->len);
	batch->len += l->len;
	event_active(batch->flush, EV_TIMEOUT, 0);
}
