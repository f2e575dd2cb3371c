#include "tunnel.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <sys/socket.h>

enum { CLIENT, UPSTREAM };

struct tunnel {
	struct bufferevent *side[2];
	uint64_t bytes[2]; /* read from each side */
	int eof[2];        /* the side sent EOF */
	int shut[2];       /* we shut down writing to the side */
	int first_eof;     /* which side closed first, or -1 */
	size_t high;
	int idle_ms;
	struct timeval last; /* last byte either way */
	struct event *idle;
	struct event *lifetime;
	uint64_t max_bytes;
	tunnel_done_cb done;
	void *arg;
	int finished;
};

static int
side_of(const struct tunnel *t, const struct bufferevent *bev)
{
	return bev == t->side[CLIENT] ? CLIENT : UPSTREAM;
}

static void
finish(struct tunnel *t, enum reason why)
{
	if (t->finished)
		return;
	t->finished = 1;
	bufferevent_disable(t->side[CLIENT], EV_READ | EV_WRITE);
	bufferevent_disable(t->side[UPSTREAM], EV_READ | EV_WRITE);
	t->done(t->arg, why);
}

static enum reason
closed_reason(const struct tunnel *t)
{
	return t->first_eof == UPSTREAM ? REASON_UPSTREAM_CLOSED
	                                : REASON_CLIENT_CLOSED;
}

/* Pass side i's EOF on to the other side once its output has drained. */
static void
pass_eof(struct tunnel *t, int i)
{
	int j = !i;
	struct evbuffer *out = bufferevent_get_output(t->side[j]);

	if (t->shut[j])
		return;
	if (evbuffer_get_length(out) > 0) {
		/* Wake the write callback when everything has gone. */
		bufferevent_setwatermark(t->side[j], EV_WRITE, 0, 0);
		return;
	}
	shutdown(bufferevent_getfd(t->side[j]), SHUT_WR);
	t->shut[j] = 1;
	if (t->shut[CLIENT] && t->shut[UPSTREAM])
		finish(t, closed_reason(t));
}

/* Returns -1 when the tunnel finished (and may be freed already). */
static int
relay(struct tunnel *t, int i)
{
	struct evbuffer *in = bufferevent_get_input(t->side[i]);
	struct bufferevent *dst = t->side[!i];
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return 0;
	if (t->max_bytes && t->bytes[0] + t->bytes[1] + n > t->max_bytes) {
		finish(t, REASON_LIMIT_BYTES);
		return -1;
	}
	t->bytes[i] += n;
	event_base_gettimeofday_cached(bufferevent_get_base(dst), &t->last);
	evbuffer_add_buffer(bufferevent_get_output(dst), in);
	if (evbuffer_get_length(bufferevent_get_output(dst)) >= t->high) {
		/* Backpressure: stop reading until dst drains to half. */
		bufferevent_disable(t->side[i], EV_READ);
		bufferevent_setwatermark(dst, EV_WRITE, t->high / 2, 0);
	}
	return 0;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;

	(void)relay(t, side_of(t, bev));
}

static void
lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg, REASON_LIMIT_LIFETIME);
}

void
tunnel_set_limits(struct tunnel *t, uint64_t max_bytes, int max_ms)
{
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};

	t->max_bytes = max_bytes;
	if (max_ms > 0 && !t->lifetime) {
		t->lifetime = evtimer_new(bufferevent_get_base(t->side[0]),
		                          lifetime_cb, t);
		if (t->lifetime)
			evtimer_add(t->lifetime, &tv);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;
	int j = side_of(t, bev), i = !j;

	if (t->eof[i]) {
		pass_eof(t, i);
		return;
	}
	if (!(bufferevent_get_enabled(t->side[i]) & EV_READ) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) < t->high)
		bufferevent_enable(t->side[i], EV_READ);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tunnel *t = arg;
	int i = side_of(t, bev);

	if (what & BEV_EVENT_EOF) {
		if (relay(t, i) < 0)
			return;
		t->eof[i] = 1;
		if (t->first_eof < 0)
			t->first_eof = i;
		pass_eof(t, i);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		finish(t, i == CLIENT ? REASON_CLIENT_CLOSED
		                      : REASON_UPSTREAM_CLOSED);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	struct timeval now, since, left, limit;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(bufferevent_get_base(t->side[CLIENT]),
	                               &now);
	limit.tv_sec = t->idle_ms / 1000;
	limit.tv_usec = (t->idle_ms % 1000) * 1000;
	timersub(&now, &t->last, &since);
	if (!timercmp(&since, &limit, <)) {
		finish(t, REASON_IDLE_TIMEOUT);
		return;
	}
	timersub(&limit, &since, &left);
	evtimer_add(t->idle, &left);
}

struct tunnel *
tunnel_new(struct bufferevent *client, struct bufferevent *upstream,
           size_t buffer_bytes, int idle_ms, tunnel_done_cb done, void *arg)
{
	struct event_base *base = bufferevent_get_base(client);
	struct tunnel *t = calloc(1, sizeof(*t));
	struct timeval tv = {idle_ms / 1000, (idle_ms % 1000) * 1000};

	if (!t)
		return NULL;
	if (!(t->idle = evtimer_new(base, idle_cb, t))) {
		free(t);
		return NULL;
	}
	t->side[CLIENT] = client;
	t->side[UPSTREAM] = upstream;
	t->high = buffer_bytes;
	t->idle_ms = idle_ms;
	t->first_eof = -1;
	t->done = done;
	t->arg = arg;
	event_base_gettimeofday_cached(base, &t->last);
	evtimer_add(t->idle, &tv);
	for (int i = CLIENT; i <= UPSTREAM; i++) {
		bufferevent_setcb(t->side[i], read_cb, write_cb, event_cb, t);
		bufferevent_set_timeouts(t->side[i], NULL, NULL);
		bufferevent_setwatermark(t->side[i], EV_READ, 0, 0);
		bufferevent_setwatermark(t->side[i], EV_WRITE, 0, 0);
		bufferevent_enable(t->side[i], EV_READ | EV_WRITE);
	}
	/* No limit is set yet, so this cannot finish the tunnel. */
	(void)relay(t, CLIENT);
	return t;
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
	event_free(t->idle);
	if (t->lifetime)
		event_free(t->lifetime);
	bufferevent_free(t->side[CLIENT]);
	bufferevent_free(t->side[UPSTREAM]);
	free(t);
}
