#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A value and its holders: the secret's own reference and each reader's. */
struct held {
	struct secret_value v;
	int refs; /* under the secret's lock, or the last holder's alone */
	char bytes[];
};

struct secret {
	char *path;
	pthread_mutex_t lock;
	struct held *cur;
	/* What the current value was read from. */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* One lock for every value's count: a value may outlive its secret. */
static pthread_mutex_t refs_lock = PTHREAD_MUTEX_INITIALIZER;

static void
held_unref(struct held *h)
{
	int last;

	pthread_mutex_lock(&refs_lock);
	last = --h->refs == 0;
	pthread_mutex_unlock(&refs_lock);
	if (last) {
		OPENSSL_cleanse(h->bytes, h->v.len);
		free(h);
	}
}

/* Is the value fit for a header field: visible ASCII, inner spaces? */
static int
valid_value(const char *p, size_t len)
{
	if (len == 0 || p[0] == ' ' || p[len - 1] == ' ')
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < ' ' || (unsigned char)p[i] > '~')
			return 0;
	return 1;
}

/*
 * Read the file at path into a new value, with what it was read from in
 * *st.  NULL with err set.  The buffer read into is wiped whatever
 * happens.
 */
static struct held *
read_value(const char *path, struct stat *st, char *err, size_t errlen)
{
	char buf[SECRET_MAX + 3];
	size_t len = 0;
	struct held *h = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "secret %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "secret %s: not a regular file", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "secret %s: %s", path,
			         strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			snprintf(err, errlen, "secret %s: longer than %d bytes",
			         path, SECRET_MAX);
			goto out;
		}
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > SECRET_MAX) {
		snprintf(err, errlen, "secret %s: longer than %d bytes", path,
		         SECRET_MAX);
		goto out;
	}
	if (!valid_value(buf, len)) {
		snprintf(err, errlen, "secret %s: %s", path,
		         len == 0 ? "empty"
		                  : "must be visible ASCII (inner spaces "
		                    "allowed) on one line");
		goto out;
	}
	if (!(h = malloc(sizeof(*h) + len + 1))) {
		snprintf(err, errlen, "secret %s: out of memory", path);
		goto out;
	}
	memcpy(h->bytes, buf, len);
	h->bytes[len] = '\0';
	h->v.len = len;
	h->v.bytes = h->bytes;
	h->refs = 1;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return h;
}

static void
remember(struct secret *s, const struct stat *st)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
}

struct secret *
secret_load(const char *path, char *err, size_t errlen)
{
	struct secret *s = calloc(1, sizeof(*s));
	struct stat st;

	if (!s || !(s->path = strdup(path))) {
		snprintf(err, errlen, "secret %s: out of memory", path);
		free(s);
		return NULL;
	}
	if (!(s->cur = read_value(path, &st, err, errlen))) {
		free(s->path);
		free(s);
		return NULL;
	}
	remember(s, &st);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

int
secret_refresh(struct secret *s, char *err, size_t errlen)
{
	struct stat st;
	struct held *h, *old;
	int same;

	if (stat(s->path, &st) < 0) {
		snprintf(err, errlen, "secret %s: %s", s->path,
		         strerror(errno));
		return -1;
	}
	if (st.st_dev == s->dev && st.st_ino == s->ino &&
	    st.st_size == s->size && st.st_mtim.tv_sec == s->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == s->mtime.tv_nsec)
		return 0;
	if (!(h = read_value(s->path, &st, err, errlen)))
		return -1;
	remember(s, &st);
	pthread_mutex_lock(&s->lock);
	old = s->cur;
	same = old->v.len == h->v.len &&
	       CRYPTO_memcmp(old->bytes, h->bytes, h->v.len) == 0;
	s->cur = h;
	pthread_mutex_unlock(&s->lock);
	held_unref(old);
	return !same;
}

const struct secret_value *
secret_get(struct secret *s)
{
	struct held *h;

	pthread_mutex_lock(&s->lock);
	h = s->cur;
	pthread_mutex_lock(&refs_lock);
	h->refs++;
	pthread_mutex_unlock(&refs_lock);
	pthread_mutex_unlock(&s->lock);
	return &h->v;
}

void
secret_put(const struct secret_value *v)
{
	if (v)
		held_unref(
		    (struct held *)((char *)v - offsetof(struct held, v)));
}

const char *
secret_path(const struct secret *s)
{
	return s->path;
}

void
secret_free(struct secret *s)
{
	if (!s)
		return;
	held_unref(s->cur);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}
