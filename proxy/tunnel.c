#include "tunnel.h"
#include "idle.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CLIENT, UPSTREAM };

/* Reads one wake-up may do before other connections get a turn. */
#define ROUNDS 8
/* Pipes kept for reuse by each thread. */
#define PIPES_POOLED_MAX 16
/* A pipe holds a direction's buffer_bytes, up to the largest pipe an
 * unprivileged process may ask for by default (fs.pipe-max-size). */
#define PIPE_MAX (1024 * 1024)
/* Reads of the copy path: small exchanges, and streams when no pipe can
 * be had (descriptors exhausted) or splice cannot move the bytes. */
#define COPY_BYTES (16 * 1024)

/* Bytes read from side i, on their way to side !i. */
struct dir {
	unsigned char *buf; /* sent before anything in the pipe */
	size_t off, len, cap;
	int pipe[2]; /* -1 while the direction holds none */
	size_t pipe_cap, in_pipe;
	int eof;          /* side i sent EOF */
	int shut;         /* we shut down writing to side !i */
	int splicing;     /* a stream: move it with splice(2) */
	int no_splice;    /* splice(2) failed us: read and write instead */
	int write_failed; /* side !i refused bytes */
	size_t last_want; /* what the last read asked for */
};

struct tunnel {
	struct event_base *base;
	/* Two plain sockets: relayed here with splice.  Otherwise the
	 * bufferevents relay. */
	int fast;
	int fd[2];
	struct event *rd[2], *wr[2];
	short armed[2];
	struct bufferevent *bev[2];

	struct dir dir[2];
	uint64_t bytes[2]; /* read from each side */
	int first_eof;     /* which side closed first, or -1 */
	size_t high;
	struct idle idle; /* from the last byte either way */
	struct event *lifetime, *hello_timer;
	uint64_t max_bytes;
	tunnel_hello_cb hello; /* set while the check holds the first bytes */
	size_t hello_max;
	const void *refusal;
	size_t refusal_len;
	tunnel_done_cb done;
	void *arg;
	int finished;
};

struct pooled_pipe {
	int fd[2];
	size_t cap;
};

static _Thread_local struct pooled_pipe pipe_pool[PIPES_POOLED_MAX];
static _Thread_local int pipe_pool_len;

static _Thread_local unsigned char scratch[COPY_BYTES];

static int check_hello(struct tunnel *t, const unsigned char *buf, size_t len,
                       int final);
static void hello_timeout_cb(evutil_socket_t fd, short what, void *arg);
static int fast_start(struct tunnel *t, struct bufferevent *client,
                      struct bufferevent *upstream);
static int take_bytes(struct tunnel *t, int s, struct bufferevent *bev);
static int take_fd(struct bufferevent *bev);
static void fd_cb(evutil_socket_t fd, short what, void *arg);
static int fast_relay(struct tunnel *t, int i);
static void arm(struct tunnel *t);
static int held(const struct tunnel *t, int i);
static int pending(const struct tunnel *t, int i);
static int room(const struct tunnel *t, int i);
static int flush(struct tunnel *t, int i);
static ssize_t fill(struct tunnel *t, int i);
static ssize_t fill_held(struct tunnel *t, struct dir *d, int fd);
static ssize_t fill_copy(struct tunnel *t, struct dir *d, int i);
static ssize_t peek_eof(struct tunnel *t, int i);
static int append(struct dir *d, const void *p, size_t n);
static void drop_buf(struct dir *d);
static size_t pipe_resize(int fd, size_t want, size_t cap);
static int pipe_take(struct dir *d, size_t want);
static void pipe_give(struct dir *d);
static void bev_start(struct tunnel *t, struct bufferevent *client,
                      struct bufferevent *upstream);
static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static int relay(struct tunnel *t, int i);
static void pass_eof(struct tunnel *t, int i);
static int side_of(const struct tunnel *t, const struct bufferevent *bev);
static void lifetime_cb(evutil_socket_t fd, short what, void *arg);
static void tunnel_idle_cb(void *arg);
static void tunnel_finish(struct tunnel *t, enum reason why);
static int count(struct tunnel *t, int i, size_t n);
static enum reason closed_reason(const struct tunnel *t);
static enum reason side_reason(int s);

/* --- the tunnel ----------------------------------------------------------- */

struct tunnel *
tunnel_new(struct bufferevent *client, struct bufferevent *upstream,
           const struct tunnel_opts *o)
{
	struct event_base *base = bufferevent_get_base(client);
	struct tunnel *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->base = base;
	t->fd[CLIENT] = t->fd[UPSTREAM] = -1;
	for (int i = CLIENT; i <= UPSTREAM; i++)
		t->dir[i].pipe[0] = t->dir[i].pipe[1] = -1;
	t->high = o->buffer_bytes;
	t->first_eof = -1;
	t->done = o->done;
	t->arg = o->arg;
	t->hello = o->hello;
	t->hello_max = o->hello_max;
	t->refusal = o->refusal;
	t->refusal_len = o->refusal_len;
	if (t->hello)
		t->hello_timer = evtimer_new(base, hello_timeout_cb, t);
	if (idle_start(&t->idle, base, o->idle_ms, tunnel_idle_cb, t) < 0 ||
	    (t->hello && !t->hello_timer) ||
	    (!bufferevent_openssl_get_ssl(client) &&
	     fast_start(t, client, upstream) < 0)) {
		t->fast = 0;
		tunnel_free(t);
		return NULL;
	}
	if (!t->fast)
		bev_start(t, client, upstream);
	if (t->hello_timer) {
		struct timeval htv = {o->hello_ms / 1000,
		                      (o->hello_ms % 1000) * 1000};

		evtimer_add(t->hello_timer, &htv);
	}
	/* Bytes the client sent early.  No limit is set yet, so this cannot
	 * finish the tunnel, but the hello check can: the caller learns it
	 * from the done callback, after tunnel_new has returned. */
	if (!t->fast) {
		(void)relay(t, CLIENT);
	} else {
		/* The 200 goes out now, not a loop round later (a failure
		 * shows again, and is handled, when the socket is next used).
		 */
		(void)flush(t, UPSTREAM);
		(void)flush(t, CLIENT);
		arm(t);
		if (held(t, CLIENT) && t->dir[CLIENT].len > 0)
			event_active(t->rd[CLIENT], EV_READ, 0);
	}
	return t;
}

void
tunnel_set_limits(struct tunnel *t, uint64_t max_bytes, int max_ms)
{
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};

	t->max_bytes = max_bytes;
	if (max_ms > 0 && !t->lifetime) {
		t->lifetime = evtimer_new(t->base, lifetime_cb, t);
		if (t->lifetime)
			evtimer_add(t->lifetime, &tv);
	}
}

uint64_t
tunnel_bytes_up(const struct tunnel *t)
{
	return t->bytes[CLIENT];
}

uint64_t
tunnel_bytes_down(const struct tunnel *t)
{
	return t->bytes[UPSTREAM];
}

void
tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	idle_free(&t->idle);
	if (t->lifetime)
		event_free(t->lifetime);
	if (t->hello_timer)
		event_free(t->hello_timer);
	for (int s = CLIENT; s <= UPSTREAM; s++) {
		if (t->rd[s])
			event_free(t->rd[s]);
		if (t->wr[s])
			event_free(t->wr[s]);
		if (t->fast && t->fd[s] >= 0)
			close(t->fd[s]);
		if (!t->fast && t->bev[s])
			bufferevent_free(t->bev[s]);
		pipe_give(&t->dir[s]);
		free(t->dir[s].buf);
	}
	free(t);
}

void
tunnel_pool_clear(void)
{
	while (pipe_pool_len > 0) {
		pipe_pool_len--;
		close(pipe_pool[pipe_pool_len].fd[0]);
		close(pipe_pool[pipe_pool_len].fd[1]);
	}
}

/* --- the hello check ------------------------------------------------------ */

/* Run the hello check on what the client sent so far: 1 passed (the
 * bytes may go), 0 wait for more, -1 the tunnel finished. */
static int
check_hello(struct tunnel *t, const unsigned char *buf, size_t len, int final)
{
	enum reason why = final == TUNNEL_HELLO_TIMEOUT ? REASON_HELLO_TIMEOUT
	                                                : REASON_NOT_TLS;
	int r = t->hello(t->arg, buf, len, final, &why);

	if (r == 0 && (final || len >= t->hello_max))
		r = -1;
	if (r < 0) {
		/* Best effort, into an empty socket buffer; a TLS client's
		 * bytes would need its TLS, so only on plain sockets. */
		if (t->fast && t->refusal_len)
			(void)!write(t->fd[CLIENT], t->refusal, t->refusal_len);
		/* Held, never relayed. */
		t->bytes[CLIENT] = 0;
		tunnel_finish(t, why);
		return -1;
	}
	if (r > 0) {
		t->hello = NULL;
		if (t->hello_timer)
			event_del(t->hello_timer);
	}
	return r;
}

/* The client's time to send its first bytes is up: judge what came. */
static void
hello_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;

	(void)fd;
	(void)what;
	if (t->fast) {
		struct dir *d = &t->dir[CLIENT];

		if (check_hello(t, d->buf, d->len, TUNNEL_HELLO_TIMEOUT) == 1)
			arm(t);
	} else {
		struct evbuffer *in = bufferevent_get_input(t->bev[CLIENT]);

		if (check_hello(t, evbuffer_pullup(in, -1),
		                evbuffer_get_length(in),
		                TUNNEL_HELLO_TIMEOUT) == 1)
			(void)relay(t, CLIENT);
	}
}

/* --- the splice engine: two plain sockets --------------------------------- */

static int
fast_start(struct tunnel *t, struct bufferevent *client,
           struct bufferevent *upstream)
{
	struct bufferevent *bev[2] = {client, upstream};

	for (int s = CLIENT; s <= UPSTREAM; s++) {
		evutil_socket_t fd = bufferevent_getfd(bev[s]);

		t->rd[s] =
		    event_new(t->base, fd, EV_READ | EV_PERSIST, fd_cb, t);
		t->wr[s] =
		    event_new(t->base, fd, EV_WRITE | EV_PERSIST, fd_cb, t);
		if (!t->rd[s] || !t->wr[s])
			return -1;
	}
	if (take_bytes(t, CLIENT, client) < 0 ||
	    take_bytes(t, UPSTREAM, upstream) < 0)
		return -1;
	/* Nothing can fail from here: the bufferevents are ours now. */
	t->fd[CLIENT] = take_fd(client);
	t->fd[UPSTREAM] = take_fd(upstream);
	t->fast = 1;
	return 0;
}

/* Move the bytes in a bufferevent's buffers into the directions. */
static int
take_bytes(struct tunnel *t, int s, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);

	/* Bytes still to be written to s come before any relayed to it. */
	if (append(&t->dir[!s], evbuffer_pullup(out, -1),
	           evbuffer_get_length(out)) < 0 ||
	    append(&t->dir[s], evbuffer_pullup(in, -1),
	           evbuffer_get_length(in)) < 0)
		return -1;
	return 0;
}

/* Free a bufferevent but keep its socket. */
static int
take_fd(struct bufferevent *bev)
{
	int fd = bufferevent_getfd(bev);

	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_setfd(bev, -1);
	bufferevent_free(bev);
	return fd;
}

static void
fd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	int s = fd == t->fd[CLIENT] ? CLIENT : UPSTREAM;

	/* Readable: bytes from s.  Writable: bytes to s, from !s. */
	if (fast_relay(t, what & EV_READ ? s : !s) < 0)
		return;
	arm(t);
}

/* Move bytes from side i to side !i until one of them must wait.
 * Returns -1 when the tunnel finished. */
static int
fast_relay(struct tunnel *t, int i)
{
	struct dir *d = &t->dir[i];

	/* Bytes the client sent before the tunnel began. */
	if (held(t, i) && d->len > 0 && check_hello(t, d->buf, d->len, 0) < 0)
		return -1;
	for (int round = 0;; round++) {
		ssize_t n;
		int r = flush(t, i);

		if (r < 0) {
			tunnel_finish(t, side_reason(!i));
			return -1;
		}
		if (r == 0 && !room(t, i))
			return 0;
		if (r == 1 && d->eof) {
			/* Both ways done: closing sends this FIN. */
			if (t->dir[!i].shut) {
				tunnel_finish(t, closed_reason(t));
				return -1;
			}
			if (!d->shut) {
				shutdown(t->fd[!i], SHUT_WR);
				d->shut = 1;
			}
			return 0;
		}
		/* Still readable: other connections get a turn first. */
		if (round == ROUNDS)
			return 0;
		n = fill(t, i);
		if (n == -1)
			return 0;
		if (n == -2) {
			tunnel_finish(t, side_reason(d->write_failed ? !i : i));
			return -1;
		}
		if (n == 0) {
			d->eof = 1;
			if (t->first_eof < 0)
				t->first_eof = i;
			/* The client closed before the hello was judged. */
			if (held(t, i) && check_hello(t, d->buf, d->len,
			                              TUNNEL_HELLO_EOF) < 0)
				return -1;
			continue;
		}
		if (count(t, i, (size_t)n) < 0)
			return -1;
		if (held(t, i) && check_hello(t, d->buf, d->len, 0) < 0)
			return -1;
		/* A short read emptied the socket: send, then wait for more
		 * rather than ask again. */
		if ((size_t)n < d->last_want)
			round = ROUNDS - 1;
	}
}

/* Watch each socket for exactly what its two directions wait on: reading
 * while its bytes can go on, writing while bytes for it wait. */
static void
arm(struct tunnel *t)
{
	for (int s = CLIENT; s <= UPSTREAM; s++) {
		short want = 0;

		if (!t->dir[s].eof && (!pending(t, s) || room(t, s)))
			want |= EV_READ;
		if (pending(t, !s))
			want |= EV_WRITE;
		if ((want ^ t->armed[s]) & EV_READ) {
			if (want & EV_READ)
				event_add(t->rd[s], NULL);
			else
				event_del(t->rd[s]);
		}
		if ((want ^ t->armed[s]) & EV_WRITE) {
			if (want & EV_WRITE)
				event_add(t->wr[s], NULL);
			else
				event_del(t->wr[s]);
		}
		t->armed[s] = want;
	}
}

static int
held(const struct tunnel *t, int i)
{
	return i == CLIENT && t->hello;
}

static int
pending(const struct tunnel *t, int i)
{
	const struct dir *d = &t->dir[i];

	return !held(t, i) && (d->len > d->off || d->in_pipe > 0);
}

/* Bytes may still be read into direction i's pipe while the other side
 * drains it: reading and writing then overlap.  Only spliced bytes: a copy
 * is written on at once, so nothing may wait before it. */
static int
room(const struct tunnel *t, int i)
{
	const struct dir *d = &t->dir[i];
	size_t cap = t->high < d->pipe_cap ? t->high : d->pipe_cap;

	return !held(t, i) && !d->eof && d->splicing && !d->no_splice &&
	       d->pipe[0] >= 0 && d->len == d->off && d->in_pipe < cap;
}

/* Write what direction i holds to side !i: 1 all gone, 0 the socket is
 * full, -1 it failed. */
static int
flush(struct tunnel *t, int i)
{
	struct dir *d = &t->dir[i];
	int dst = t->fd[!i];

	if (held(t, i))
		return 1;
	while (d->len > d->off) {
		ssize_t n = write(dst, d->buf + d->off, d->len - d->off);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		d->off += (size_t)n;
	}
	if (d->buf)
		drop_buf(d);
	while (d->in_pipe > 0) {
		ssize_t n = splice(d->pipe[0], NULL, dst, NULL, d->in_pipe,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (n == 0)
			return -1;
		d->in_pipe -= (size_t)n;
	}
	return 1;
}

/* Read from side i: bytes read, 0 at EOF, -1 nothing yet, -2 failed
 * (reading, or d->write_failed: writing them on). */
static ssize_t
fill(struct tunnel *t, int i)
{
	struct dir *d = &t->dir[i];
	size_t want = t->high;
	ssize_t n;
	int err;

	if (held(t, i)) {
		n = fill_held(t, d, t->fd[i]);
	} else if (d->splicing && !d->no_splice &&
	           (d->pipe[0] >= 0 || pipe_take(d, t->high) == 0)) {
		if (want > d->pipe_cap)
			want = d->pipe_cap;
		want -= d->in_pipe;
		d->last_want = want;
		n = splice(t->fd[i], NULL, d->pipe[1], NULL, want,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->in_pipe += (size_t)n;
			return n;
		}
		err = errno;
		/* An idle direction holds no pipe. */
		if (d->in_pipe == 0)
			pipe_give(d);
		if (n == 0)
			return peek_eof(t, i);
		errno = err;
	} else {
		n = fill_copy(t, d, i);
	}
	if (n >= 0 || d->write_failed)
		return n < 0 ? -2 : n;
	return errno == EAGAIN || errno == EINTR ? -1 : -2;
}

/* The client's first bytes, held for the hello check, in d->buf. */
static ssize_t
fill_held(struct tunnel *t, struct dir *d, int fd)
{
	ssize_t n;

	if (d->cap < t->hello_max) {
		unsigned char *b = realloc(d->buf, t->hello_max);

		if (!b)
			return -2;
		d->buf = b;
		d->cap = t->hello_max;
	}
	if (d->len >= d->cap)
		return -2;
	d->last_want = d->cap - d->len;
	n = read(fd, d->buf + d->len, d->cap - d->len);
	if (n > 0)
		d->len += (size_t)n;
	return n;
}

/* Read into the thread's scratch buffer and write straight on; what the
 * other side cannot take yet waits in d->buf. */
static ssize_t
fill_copy(struct tunnel *t, struct dir *d, int i)
{
	ssize_t n = read(t->fd[i], scratch, sizeof(scratch)), w;

	d->last_want = sizeof(scratch);
	if (n <= 0)
		return n;
	/* A full read: a stream, which splice moves more cheaply. */
	if ((size_t)n == sizeof(scratch))
		d->splicing = 1;
	w = write(t->fd[!i], scratch, (size_t)n);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			d->write_failed = 1;
			return -2;
		}
		w = 0;
	}
	if (w < n && append(d, scratch + w, (size_t)(n - w)) < 0)
		return -2;
	return n;
}

/*
 * splice(2) from a TCP socket returns 0 at EOF, but also when it could not
 * take what is queued (a segment already consumed but not yet freed, urgent
 * data).  Only a peek tells them apart.  A socket that has bytes splice
 * cannot move is read from with read(2) from then on.
 */
static ssize_t
peek_eof(struct tunnel *t, int i)
{
	char b;
	ssize_t n = recv(t->fd[i], &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0)
		return 0;
	if (n > 0) {
		t->dir[i].no_splice = 1;
		/* Copies go out at once: not before the pipe's bytes. */
		return t->dir[i].in_pipe > 0 ? -1 : fill(t, i);
	}
	return errno == EAGAIN || errno == EINTR ? -1 : -2;
}

static int
append(struct dir *d, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (d->len + n > d->cap) {
		size_t cap = d->len + n;
		unsigned char *b = realloc(d->buf, cap);

		if (!b)
			return -1;
		d->buf = b;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, p, n);
	d->len += n;
	return 0;
}

static void
drop_buf(struct dir *d)
{
	free(d->buf);
	d->buf = NULL;
	d->off = d->len = d->cap = 0;
}

/* --- the pipe pool -------------------------------------------------------- */

/*
 * A pipe is as large as its direction's buffer while it streams and one
 * page while it waits in the pool: the pipe quota (fs.pipe-user-pages-soft)
 * counts what a pipe may hold, not what it holds, and every process of the
 * same user on the machine shares it.  Larger batches move more bytes a
 * system call and cost the kernel far less a byte (measured: 512 KiB a
 * call takes about 0.6 of the CPU a GB of 256 KiB).  A user over its quota
 * cannot grow a pipe: it keeps a small one, which only costs speed.
 */
static size_t
pipe_resize(int fd, size_t want, size_t cap)
{
	int sz = fcntl(fd, F_SETPIPE_SZ, (int)want);

	if (sz > 0)
		return (size_t)sz;
	sz = fcntl(fd, F_GETPIPE_SZ);
	return sz > 0 ? (size_t)sz : cap;
}

static int
pipe_take(struct dir *d, size_t want)
{
	size_t cap = 4096;

	if (want > PIPE_MAX)
		want = PIPE_MAX;
	if (pipe_pool_len > 0) {
		struct pooled_pipe *p = &pipe_pool[--pipe_pool_len];

		d->pipe[0] = p->fd[0];
		d->pipe[1] = p->fd[1];
		cap = p->cap;
	} else if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		d->pipe[0] = d->pipe[1] = -1;
		return -1;
	}
	d->pipe_cap = cap >= want ? cap : pipe_resize(d->pipe[1], want, cap);
	return 0;
}

/* Give back an empty pipe, shrunk; one with bytes in it is closed. */
static void
pipe_give(struct dir *d)
{
	if (d->pipe[0] < 0)
		return;
	if (d->in_pipe == 0 && pipe_pool_len < PIPES_POOLED_MAX) {
		struct pooled_pipe *p = &pipe_pool[pipe_pool_len++];

		p->fd[0] = d->pipe[0];
		p->fd[1] = d->pipe[1];
		p->cap = d->pipe_cap > 4096
		             ? pipe_resize(d->pipe[1], 4096, d->pipe_cap)
		             : d->pipe_cap;
	} else {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	d->pipe[0] = d->pipe[1] = -1;
	d->in_pipe = 0;
}

/* --- the bufferevent engine: a client on a TLS listener ------------------- */

static void
bev_start(struct tunnel *t, struct bufferevent *client,
          struct bufferevent *upstream)
{
	t->bev[CLIENT] = client;
	t->bev[UPSTREAM] = upstream;
	for (int i = CLIENT; i <= UPSTREAM; i++) {
		bufferevent_setcb(t->bev[i], read_cb, write_cb, event_cb, t);
		bufferevent_set_timeouts(t->bev[i], NULL, NULL);
		bufferevent_setwatermark(t->bev[i], EV_READ, 0, 0);
		bufferevent_setwatermark(t->bev[i], EV_WRITE, 0, 0);
		bufferevent_enable(t->bev[i], EV_READ | EV_WRITE);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;

	(void)relay(t, side_of(t, bev));
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;
	int j = side_of(t, bev), i = !j;

	if (t->dir[i].eof) {
		pass_eof(t, i);
		return;
	}
	if (!(bufferevent_get_enabled(t->bev[i]) & EV_READ) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) < t->high)
		bufferevent_enable(t->bev[i], EV_READ);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tunnel *t = arg;
	int i = side_of(t, bev);

	if (what & BEV_EVENT_EOF) {
		if (relay(t, i) < 0)
			return;
		if (held(t, i)) {
			struct evbuffer *in = bufferevent_get_input(bev);

			if (check_hello(t, evbuffer_pullup(in, -1),
			                evbuffer_get_length(in),
			                TUNNEL_HELLO_EOF) < 0 ||
			    relay(t, i) < 0)
				return;
		}
		t->dir[i].eof = 1;
		if (t->first_eof < 0)
			t->first_eof = i;
		pass_eof(t, i);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		tunnel_finish(t, side_reason(i));
}

/* Returns -1 when the tunnel finished (and may be freed already). */
static int
relay(struct tunnel *t, int i)
{
	struct evbuffer *in = bufferevent_get_input(t->bev[i]);
	struct bufferevent *dst = t->bev[!i];
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return 0;
	if (held(t, i)) {
		int r = check_hello(t, evbuffer_pullup(in, -1), n, 0);

		if (r <= 0)
			return r;
	}
	if (count(t, i, n) < 0)
		return -1;
	evbuffer_add_buffer(bufferevent_get_output(dst), in);
	if (evbuffer_get_length(bufferevent_get_output(dst)) >= t->high) {
		/* Backpressure: stop reading until dst drains to half. */
		bufferevent_disable(t->bev[i], EV_READ);
		bufferevent_setwatermark(dst, EV_WRITE, t->high / 2, 0);
	}
	return 0;
}

/* Pass side i's EOF on to the other side once its output has drained. */
static void
pass_eof(struct tunnel *t, int i)
{
	int j = !i;
	struct evbuffer *out = bufferevent_get_output(t->bev[j]);

	if (t->dir[i].shut)
		return;
	if (evbuffer_get_length(out) > 0) {
		/* Wake the write callback when everything has gone. */
		bufferevent_setwatermark(t->bev[j], EV_WRITE, 0, 0);
		return;
	}
	shutdown(bufferevent_getfd(t->bev[j]), SHUT_WR);
	t->dir[i].shut = 1;
	if (t->dir[CLIENT].shut && t->dir[UPSTREAM].shut)
		tunnel_finish(t, closed_reason(t));
}

static int
side_of(const struct tunnel *t, const struct bufferevent *bev)
{
	return bev == t->bev[CLIENT] ? CLIENT : UPSTREAM;
}

/* --- the end -------------------------------------------------------------- */

static void
lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tunnel_finish(arg, REASON_LIMIT_LIFETIME);
}

static void
tunnel_idle_cb(void *arg)
{
	tunnel_finish(arg, REASON_IDLE_TIMEOUT);
}

static void
tunnel_finish(struct tunnel *t, enum reason why)
{
	if (t->finished)
		return;
	t->finished = 1;
	for (int s = CLIENT; s <= UPSTREAM; s++) {
		if (t->fast) {
			event_del(t->rd[s]);
			event_del(t->wr[s]);
		} else {
			bufferevent_disable(t->bev[s], EV_READ | EV_WRITE);
		}
	}
	t->done(t->arg, why);
}

/* Count n bytes read from side i; -1 when that ends the tunnel. */
static int
count(struct tunnel *t, int i, size_t n)
{
	if (t->max_bytes && t->bytes[0] + t->bytes[1] + n > t->max_bytes) {
		tunnel_finish(t, REASON_LIMIT_BYTES);
		return -1;
	}
	t->bytes[i] += n;
	idle_touch(&t->idle);
	return 0;
}

static enum reason
closed_reason(const struct tunnel *t)
{
	return t->first_eof == UPSTREAM ? REASON_UPSTREAM_CLOSED
	                                : REASON_CLIENT_CLOSED;
}

static enum reason
side_reason(int s)
{
	return s == CLIENT ? REASON_CLIENT_CLOSED : REASON_UPSTREAM_CLOSED;
}
