#include "idle.h"

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct idle *it = arg;
	struct timeval now, since, left;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(it->base, &now);
	timersub(&now, &it->last, &since);
	if (!timercmp(&since, &it->limit, <)) {
		it->expired(it->arg);
		return;
	}
	timersub(&it->limit, &since, &left);
	evtimer_add(it->ev, &left);
}

int
idle_start(struct idle *it, struct event_base *base, int ms,
           idle_expired_cb expired, void *arg)
{
	it->ev = evtimer_new(base, idle_cb, it);
	if (!it->ev)
		return -1;
	it->base = base;
	it->limit.tv_sec = ms / 1000;
	it->limit.tv_usec = (ms % 1000) * 1000;
	it->expired = expired;
	it->arg = arg;
	idle_touch(it);
	evtimer_add(it->ev, &it->limit);
	return 0;
}

void
idle_touch(struct idle *it)
{
	event_base_gettimeofday_cached(it->base, &it->last);
}

void
idle_stop(struct idle *it)
{
	if (it->ev)
		event_del(it->ev);
}

void
idle_free(struct idle *it)
{
	if (it->ev)
		event_free(it->ev);
	it->ev = NULL;
}
