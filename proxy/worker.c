#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "host.h"
#include "log.h"
#include "resolve.h"
#include "tunnel.h"

/* After EMFILE/ENFILE, accepting pauses this long instead of spinning. */
#define ACCEPT_PAUSE_MS 200
#define HEARTBEAT_MS    1000

enum {
	CMD_CONFIG = 1,
	CMD_DRAIN = 2,
	CMD_STOP = 4,
};

struct listener {
	struct worker *w;
	struct evconnlistener *lev;
	size_t index; /* in the config's listeners */
	struct event *resume;
};

struct worker {
	int index;
	pthread_t thread;
	int started;
	struct event_base *base;
	struct resolver *resolver;
	struct conn_env env;
	struct listener *listeners;
	size_t nlisteners;
	struct event *wake, *heartbeat;
	atomic_llong beat_ms; /* CLOCK_MONOTONIC, last heartbeat */
	atomic_size_t active;
	atomic_int done;

	pthread_mutex_t lock; /* guards cmd, pending and current */
	pthread_cond_t changed;
	int cmd;
	struct config *pending;
	const struct config *current; /* the snapshot new requests get */
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void
log_worker_error(const char *reason, const char *message)
{
	struct log_line l;

	log_begin(&l, "error");
	log_str(&l, "reason", reason);
	log_str(&l, "message", message);
	log_end(&l);
}

/* --- listeners ------------------------------------------------------------ */

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
	struct listener *l = arg;

	(void)lev;
	conn_accept(&l->w->env, fd, sa, (socklen_t)salen, l->index);
	atomic_store(&l->w->active, l->w->env.active);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	if (l->lev && !l->w->env.draining)
		evconnlistener_enable(l->lev);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	char msg[128];

	snprintf(msg, sizeof(msg), "accept: %s",
	         strerror(EVUTIL_SOCKET_ERROR()));
	log_worker_error("accept_failed", msg);
	/* Out of descriptors: pause accepting instead of spinning; closing
	 * connections frees some. */
	evconnlistener_disable(lev);
	evtimer_add(l->resume, &tv);
}

static int
bind_listeners(struct worker *w, const struct config *c, char *err,
               size_t errlen)
{
	w->listeners = calloc(c->nlisteners, sizeof(*w->listeners));
	if (!w->listeners) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *cl = &c->listeners[i];
		struct listener *l = &w->listeners[w->nlisteners++];
		struct sockaddr_storage ss;
		socklen_t len;
		struct host h;

		l->w = w;
		l->index = i;
		if (host_parse(cl->address, strlen(cl->address), 0, &h) < 0 ||
		    h.kind == HOST_NAME) {
			snprintf(err, errlen, "listen: bad address %s",
			         cl->address);
			return -1;
		}
		len = netaddr_to_sockaddr(&h.addr, cl->port, &ss);
		l->resume = evtimer_new(w->base, resume_cb, l);
		l->lev = evconnlistener_new_bind(
		    w->base, accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
		        LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC |
		        LEV_OPT_DISABLED,
		    1024, (struct sockaddr *)&ss, (int)len);
		if (!l->lev || !l->resume) {
			snprintf(err, errlen, "listen on %s port %u: %s",
			         cl->address, cl->port,
			         strerror(EVUTIL_SOCKET_ERROR()));
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, accept_error_cb);
		/* Accepted sockets inherit it: small writes (a 200, a
		 * response's last segment) go out without waiting for an ACK.
		 */
		(void)setsockopt(evconnlistener_get_fd(l->lev), IPPROTO_TCP,
		                 TCP_NODELAY, &(int){1}, sizeof(int));
	}
	return 0;
}

static void
close_listeners(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].lev)
			evconnlistener_free(w->listeners[i].lev);
		if (w->listeners[i].resume)
			event_free(w->listeners[i].resume);
		w->listeners[i].lev = NULL;
		w->listeners[i].resume = NULL;
	}
}

/* --- commands from the main thread ---------------------------------------- */

static void
drained(struct conn_env *env)
{
	event_base_loopexit(env->base, NULL);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct config *pending;
	int cmd;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->lock);
	cmd = w->cmd;
	pending = w->pending;
	w->cmd = 0;
	w->pending = NULL;
	pthread_mutex_unlock(&w->lock);

	if (pending) {
		conn_env_set_config(&w->env, pending);
		pthread_mutex_lock(&w->lock);
		w->current = pending;
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		config_unref(pending);
	}
	if (cmd & CMD_STOP) {
		close_listeners(w);
		conn_close_all(&w->env, REASON_SHUTDOWN);
		event_base_loopexit(w->base, NULL);
	} else if ((cmd & CMD_DRAIN) && !w->env.draining) {
		w->env.draining = 1;
		w->env.on_drained = drained;
		close_listeners(w);
		conn_close_idle(&w->env);
		if (w->env.active == 0)
			event_base_loopexit(w->base, NULL);
	}
	atomic_store(&w->active, w->env.active);
}

static void
post(struct worker *w, int cmd, struct config *c)
{
	pthread_mutex_lock(&w->lock);
	w->cmd |= cmd;
	if (c) {
		config_unref(w->pending);
		w->pending = config_ref(c);
	}
	pthread_mutex_unlock(&w->lock);
	event_active(w->wake, EV_READ, 0);
}

void
worker_set_config(struct worker *w, struct config *c)
{
	post(w, CMD_CONFIG, c);
}

int
worker_wait_config(struct worker *w, const struct config *c, int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (w->current != c && !atomic_load(&w->done) && rc == 0)
		rc = pthread_cond_timedwait(&w->changed, &w->lock, &until);
	rc = w->current == c || atomic_load(&w->done) ? 0 : -1;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void
worker_drain(struct worker *w)
{
	post(w, CMD_DRAIN, NULL);
}

void
worker_stop(struct worker *w)
{
	post(w, CMD_STOP, NULL);
}

/* --- the thread ------------------------------------------------------------
 */

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	atomic_store(&w->beat_ms, now_ms());
	atomic_store(&w->active, w->env.active);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t all;

	/* Signals are the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* Without a batch, lines are written one by one: slower, not lost. */
	(void)log_batch_start(w->base);
	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_enable(w->listeners[i].lev);
	event_base_dispatch(w->base);
	close_listeners(w);
	conn_close_all(&w->env, REASON_SHUTDOWN);
	tunnel_pool_clear();
	log_batch_stop();
	atomic_store(&w->active, 0);
	atomic_store(&w->done, 1);
	return NULL;
}

/* An event loop whose epoll changes are applied once per loop iteration:
 * a connection that stops and starts watching a socket within one round
 * of callbacks costs no system call.  (The changelist's known trap is a
 * dup()ed socket; egressd never dups one.) */
static struct event_base *
new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

struct worker *
worker_new(int index, struct config *c, char *err, size_t errlen)
{
	struct timeval beat = {HEARTBEAT_MS / 1000, 0};
	struct worker *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->index = index;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	w->current = c;
	atomic_store(&w->beat_ms, now_ms());
	if (!(w->base = new_base()) ||
	    !(w->wake = event_new(w->base, -1, EV_PERSIST, wake_cb, w)) ||
	    !(w->heartbeat =
	          event_new(w->base, -1, EV_PERSIST, heartbeat_cb, w))) {
		snprintf(err, errlen, "cannot create an event loop");
		worker_free(w);
		return NULL;
	}
	event_add(w->wake, NULL);
	event_add(w->heartbeat, &beat);
	if (!(w->resolver = resolver_new(w->base, &c->resolver, err, errlen))) {
		worker_free(w);
		return NULL;
	}
	conn_env_init(&w->env, w->base, w->resolver, c);
	if (bind_listeners(w, c, err, errlen) < 0) {
		worker_free(w);
		return NULL;
	}
	return w;
}

int
worker_start(struct worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

int
worker_done(const struct worker *w)
{
	return atomic_load(&w->done);
}

double
worker_silence(const struct worker *w)
{
	if (atomic_load(&w->done))
		return 0;
	return (double)(now_ms() - atomic_load(&w->beat_ms)) / 1000.0;
}

size_t
worker_active(const struct worker *w)
{
	return atomic_load(&w->active);
}

void
worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->started)
		pthread_join(w->thread, NULL);
	close_listeners(w);
	if (w->env.config) {
		conn_close_all(&w->env, REASON_SHUTDOWN);
		conn_env_clear(&w->env);
	}
	free(w->listeners);
	resolver_free(w->resolver);
	if (w->wake)
		event_free(w->wake);
	if (w->heartbeat)
		event_free(w->heartbeat);
	config_unref(w->pending);
	if (w->base)
		event_base_free(w->base);
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
