/*
 * egressd: an egress-filtering HTTP CONNECT proxy.
 *
 * main owns the command line, start-up, the listeners and the signals.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "host.h"
#include "log.h"
#include "policy.h"
#include "resolve.h"

#ifndef EGRESSD_VERSION
#define EGRESSD_VERSION "0.0.0"
#endif

#define DEFAULT_CONFIG "/etc/egressd/egressd.conf"

/* After EMFILE/ENFILE, accepting pauses this long instead of spinning. */
#define ACCEPT_PAUSE_MS 200

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: egressd [-c FILE]            run the proxy\n"
	        "       egressd [-c FILE] -t         check the configuration\n"
	        "       egressd [-c FILE] --explain URL|HOST:PORT\n"
	        "               [--method METHOD] [--policy NAME]\n"
	        "                                    show the decision for a "
	        "destination\n"
	        "       egressd -V                   print the version\n"
	        "default FILE: " DEFAULT_CONFIG "\n");
}

static void
log_lifecycle(const char *event, const char *reason, const char *message)
{
	struct log_line l;

	log_begin(&l, event);
	if (reason)
		log_str(&l, "reason", reason);
	log_str(&l, "message", message);
	log_end(&l);
}

/* --- --explain ----------------------------------------------------------- */

/* "https://host[:port]/path", "http://...", or "host:port". */
static int
parse_explain_target(const char *s, struct host *h, uint16_t *port)
{
	uint16_t def = 0;
	size_t len;

	if (strncasecmp(s, "https://", 8) == 0) {
		s += 8;
		def = 443;
	} else if (strncasecmp(s, "http://", 7) == 0) {
		s += 7;
		def = 80;
	}
	len = def ? strcspn(s, "/?#") : strlen(s);
	return host_parse_authority(s, len, def, h, port);
}

static void
print_addresses(const struct rule *r)
{
	char buf[NETADDR_STRLEN];

	if (r->networks.n == 0) {
		printf("addresses: any address that is not special-purpose "
		       "(checked after DNS)\n");
		return;
	}
	printf("addresses: must lie in");
	for (size_t i = 0; i < r->networks.n; i++)
		printf("%s %s", i ? "," : "", cidr_str(&r->networks.v[i], buf));
	printf(" (checked after DNS)\n");
}

static int
explain(const struct config *c, const char *target, const char *method,
        const char *policy_name)
{
	const struct policy *p = policy_name ? config_policy(c, policy_name)
	                                     : c->listeners[0].policy;
	struct verdict v;
	struct host h;
	uint16_t port;
	int allowed;

	if (!p) {
		fprintf(stderr,
		        "egressd: --policy: no policy is named \"%s\"\n",
		        policy_name);
		return 2;
	}
	if (parse_explain_target(target, &h, &port) < 0) {
		fprintf(stderr,
		        "egressd: --explain: \"%s\": malformed destination "
		        "(want HOST:PORT or a http(s) URL; names must be LDH, "
		        "IP addresses strict)\n",
		        target);
		return 2;
	}
	allowed = policy_check_name(p, method, &h, port, &v);
	printf("destination: %s%s%s:%u (%s)\n", h.kind == HOST_IPV6 ? "[" : "",
	       h.name, h.kind == HOST_IPV6 ? "]" : "", port, method);
	printf("policy: %s (%s)\n", p->name,
	       p->mode == POLICY_REPORT ? "report" : "enforce");
	printf("verdict: %s\n", allowed ? "allow" : "deny");
	printf("rule: %s\n", v.rule ? v.rule->name : "-");
	printf("reason: %s\n", reason_get(v.reason)->name);
	if (v.range)
		printf("range: %s\n", v.range);
	if (allowed && h.kind == HOST_NAME)
		print_addresses(v.rule);
	if (!allowed && policy_report_waives(p, &v))
		printf("mode: report: this would be logged, not refused\n");
	return allowed ? 0 : 1;
}

/* --- listeners ----------------------------------------------------------- */

struct daemon;

struct listener {
	struct daemon *d;
	struct evconnlistener *lev;
	size_t index; /* in the config's listeners */
	struct event *resume;
};

struct daemon {
	struct event_base *base;
	struct resolver *resolver;
	struct conn_env env;
	struct listener *listeners;
	size_t nlisteners;
	struct event *signals[5];
	struct event *drain_timer;
	const char *config_path;
};

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
	struct listener *l = arg;

	(void)lev;
	conn_accept(&l->d->env, fd, sa, (socklen_t)salen, l->index);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	if (l->lev && !l->d->env.draining)
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
	log_lifecycle("error", "accept_failed", msg);
	/* Out of descriptors: pause accepting instead of spinning; closing
	 * connections frees some. */
	evconnlistener_disable(lev);
	evtimer_add(l->resume, &tv);
}

static int
bind_listeners(struct daemon *d, const struct config *c)
{
	d->listeners = calloc(c->nlisteners, sizeof(*d->listeners));
	if (!d->listeners)
		return -1;
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *cl = &c->listeners[i];
		struct listener *l = &d->listeners[d->nlisteners++];
		struct sockaddr_storage ss;
		socklen_t len;
		struct netaddr a;
		struct host h;

		l->d = d;
		l->index = i;
		if (host_parse(cl->address, strlen(cl->address), 0, &h) < 0 ||
		    h.kind == HOST_NAME) {
			fprintf(stderr, "egressd: listen: bad address %s\n",
			        cl->address);
			return -1;
		}
		a = h.addr;
		len = netaddr_to_sockaddr(&a, cl->port, &ss);
		l->resume = evtimer_new(d->base, resume_cb, l);
		l->lev = evconnlistener_new_bind(
		    d->base, accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
		        LEV_OPT_CLOSE_ON_EXEC,
		    1024, (struct sockaddr *)&ss, (int)len);
		if (!l->lev || !l->resume) {
			fprintf(stderr, "egressd: listen on %s port %u: %s\n",
			        cl->address, cl->port,
			        strerror(EVUTIL_SOCKET_ERROR()));
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, accept_error_cb);
	}
	return 0;
}

static void
close_listeners(struct daemon *d)
{
	for (size_t i = 0; i < d->nlisteners; i++) {
		if (d->listeners[i].lev)
			evconnlistener_free(d->listeners[i].lev);
		if (d->listeners[i].resume)
			event_free(d->listeners[i].resume);
		d->listeners[i].lev = NULL;
		d->listeners[i].resume = NULL;
	}
}

/* --- signals ------------------------------------------------------------- */

static void
reload(struct daemon *d)
{
	char err[1024], msg[1200];
	struct config *c = config_load(d->config_path, err, sizeof(err));

	if (!c) {
		log_lifecycle("error", "reload_failed", err);
		return;
	}
	if (!config_same_listeners(c, d->env.config)) {
		snprintf(msg, sizeof(msg),
		         "%s: listen changed; restart egressd to change "
		         "listeners (nothing was reloaded)",
		         d->config_path);
		log_lifecycle("error", "reload_failed", msg);
		config_unref(c);
		return;
	}
	if (strcmp(c->log_path, d->env.config->log_path) != 0 &&
	    log_open(c->log_path, err, sizeof(err)) < 0) {
		log_lifecycle("error", "reload_failed", err);
		config_unref(c);
		return;
	}
	conn_env_set_config(&d->env, c);
	config_unref(c);
	snprintf(msg, sizeof(msg),
	         "%s: reloaded; new connections use the new policies",
	         d->config_path);
	log_lifecycle("reload", NULL, msg);
}

static void
drained(struct conn_env *env)
{
	struct daemon *d =
	    (struct daemon *)((char *)env - offsetof(struct daemon, env));

	event_base_loopexit(d->base, NULL);
}

static void
drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	conn_close_all(&d->env, REASON_SHUTDOWN);
	event_base_loopexit(d->base, NULL);
}

static void
stop(struct daemon *d)
{
	int ms = d->env.config->limits.drain_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	char msg[128];

	if (d->env.draining) {
		/* A second signal: stop now. */
		drain_deadline_cb(-1, 0, d);
		return;
	}
	d->env.draining = 1;
	d->env.on_drained = drained;
	close_listeners(d);
	conn_close_idle(&d->env);
	snprintf(msg, sizeof(msg),
	         "stopping: no new connections; %zu open, draining for up to "
	         "%d ms",
	         d->env.active, ms);
	log_lifecycle("stop", NULL, msg);
	if (d->env.active == 0) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->drain_timer = evtimer_new(d->base, drain_deadline_cb, d);
	if (d->drain_timer)
		evtimer_add(d->drain_timer, &tv);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		reload(d);
		break;
	case SIGUSR1:
		if (log_reopen() < 0)
			log_lifecycle("error", "log_reopen_failed",
			              "could not reopen the log file; still "
			              "writing to the old one");
		break;
	default:
		stop(d);
		break;
	}
}

/* --- start-up ------------------------------------------------------------ */

static int
run(struct config *c, const char *path)
{
	static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
	struct daemon d;
	char err[512], msg[1024];
	size_t off;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.config_path = path;
	if (log_open(c->log_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "egressd: %s\n", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (resolve_library_init() < 0 || !(d.base = event_base_new())) {
		fprintf(stderr, "egressd: cannot start the event loop\n");
		return 1;
	}
	if (!(d.resolver =
	          resolver_new(d.base, &c->resolver, err, sizeof(err)))) {
		fprintf(stderr, "egressd: %s\n", err);
		goto out;
	}
	conn_env_init(&d.env, d.base, d.resolver, c);
	if (bind_listeners(&d, c) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		d.signals[i] = evsignal_new(d.base, sigs[i], signal_cb, &d);
		if (!d.signals[i] || evsignal_add(d.signals[i], NULL) < 0) {
			fprintf(stderr, "egressd: cannot handle signals\n");
			goto out;
		}
	}
	off = (size_t)snprintf(msg, sizeof(msg),
	                       "egressd " EGRESSD_VERSION " listening on");
	for (size_t i = 0; i < c->nlisteners && off < sizeof(msg); i++)
		off += (size_t)snprintf(
		    msg + off, sizeof(msg) - off, "%s %s port %u", i ? "," : "",
		    c->listeners[i].address, c->listeners[i].port);
	log_lifecycle("start", NULL, msg);
	event_base_dispatch(d.base);
	log_lifecycle("stop", NULL, "stopped");
	rc = 0;
out:
	conn_close_all(&d.env, REASON_SHUTDOWN);
	close_listeners(&d);
	free(d.listeners);
	for (size_t i = 0; i < sizeof(d.signals) / sizeof(d.signals[0]); i++)
		if (d.signals[i])
			event_free(d.signals[i]);
	if (d.drain_timer)
		event_free(d.drain_timer);
	resolver_free(d.resolver);
	if (d.env.config)
		conn_env_clear(&d.env);
	if (d.base)
		event_base_free(d.base);
	return rc;
}

int
main(int argc, char **argv)
{
	enum { OPT_EXPLAIN = 256, OPT_METHOD, OPT_POLICY };
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"explain", required_argument, NULL, OPT_EXPLAIN},
	    {"method", required_argument, NULL, OPT_METHOD},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG, *target = NULL, *method = "CONNECT";
	const char *policy = NULL;
	struct config *c;
	char err[1024];
	int test = 0, opt, rc;

	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("egressd " EGRESSD_VERSION "\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_EXPLAIN:
			target = optarg;
			break;
		case OPT_METHOD:
			method = optarg;
			break;
		case OPT_POLICY:
			policy = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!(c = config_load(path, err, sizeof(err)))) {
		fprintf(stderr, "%s\n", err);
		return target ? 2 : 1;
	}
	if (test) {
		printf("%s: configuration OK\n", path);
		rc = 0;
	} else if (target) {
		rc = explain(c, target, method, policy);
	} else {
		rc = run(c, path);
	}
	config_unref(c);
	return rc;
}
