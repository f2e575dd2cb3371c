#include "log.h"

#include <errno.h>
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

void
log_end(struct log_line *l)
{
	size_t off = 0;

	if (l->full) {
		/* Too long: keep the line valid JSON and say it was cut. */
		l->len = 0;
		l->full = 0;
		put_s(l,
		      "{\"event\":\"error\",\"reason\":\"log_line_too_long\"");
	}
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	while (off < l->len) {
		ssize_t n = write(log_fd < 0 ? STDOUT_FILENO : log_fd,
		                  l->buf + off, l->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* Nowhere to say it; don't stop the proxy. */
		off += (size_t)n;
	}
}
