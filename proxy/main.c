/*
 * egressd: an egress-filtering HTTP CONNECT proxy.
 *
 * main owns the command line, start-up, the listeners and the signals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "explain.h"
#include "gateway.h"
#include "host.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "resolve.h"
#include "route.h"
#include "sandbox.h"
#include "suggest.h"
#include "watch.h"
#include "worker.h"

#ifndef EGRESSD_VERSION
#define EGRESSD_VERSION "0.0.0"
#endif

#define DEFAULT_CONFIG "/etc/egressd/egressd.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: egressd [-c FILE]            run the proxy\n"
	        "       egressd [-c FILE] -t         check the configuration\n"
	        "       egressd [-c FILE] --explain URL|HOST:PORT|/GATEWAY-PATH\n"
	        "               [--method METHOD] [--policy NAME]\n"
	        "               [--service git-upload-pack|git-receive-pack "
	        "[--ref REF]]\n"
	        "                                    show the decision for a "
	        "destination,\n"
	        "                                    or a gateway request\n"
	        "       egressd --suggest LOGFILE    print rules that would "
	        "allow what\n"
	        "                                    report mode logged\n"
	        "       egressd --hash-secret NAME basic|bearer < SECRET\n"
	        "                                    print a credentials-file "
	        "line\n"
	        "       egressd watch [FILE|-] [--plain] [--once] [--from-start]\n"
	        "               [--since SECONDS] [--alertmanager URL]\n"
	        "                                    follow a decision log: "
	        "denials grouped,\n"
	        "                                    alerts to Alertmanager\n"
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

/* --- --hash-secret -----------------------------------------------------------
 */

/* Print a credentials-file line for the secret read from stdin. */
static int
hash_secret(const char *name, const char *kind)
{
	char secret[1024], line[256];
	size_t len;

	if (!kind || (strcmp(kind, "basic") && strcmp(kind, "bearer"))) {
		fprintf(stderr,
		        "usage: egressd --hash-secret NAME basic|bearer "
		        "< secret\n");
		return 2;
	}
	if (!fgets(secret, sizeof(secret), stdin)) {
		fprintf(stderr, "egressd: --hash-secret: no secret on stdin\n");
		return 2;
	}
	len = strcspn(secret, "\r\n");
	if (len == 0) {
		fprintf(stderr, "egressd: --hash-secret: empty secret\n");
		return 2;
	}
	if (identity_format_credential(name,
	                               strcmp(kind, "basic") == 0
	                                   ? CREDENTIAL_BASIC
	                                   : CREDENTIAL_BEARER,
	                               secret, len, line, sizeof(line)) < 0) {
		fprintf(stderr, "egressd: --hash-secret: failed\n");
		return 1;
	}
	printf("%s\n", line);
	return 0;
}

/* --- the daemon ---------------------------------------------------------- */

/* While draining, how often the main thread looks at the workers. */
#define DRAIN_POLL_MS 50

struct daemon {
	struct event_base *base;
	struct worker **workers;
	size_t nworkers;
	struct admin *admin;
	struct event *signals[4];
	struct event *drain_poll;
	struct event *secret_poll;
	struct timespec drain_deadline;
	int draining, stopped;
	struct config *config; /* the current snapshot */
	const char *config_path;
};

static int
online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/*
 * Listeners are bound with SO_REUSEPORT so that every worker has its own.
 * That would also let a second egressd (or anything of the same user) bind
 * the same port silently; binding once without it first catches that.
 */
static int
check_ports_free(const struct config *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct config_listener *cl = &c->listeners[i];
		struct sockaddr_storage ss;
		struct host h;
		socklen_t len;
		int fd, one = 1;

		if (host_parse(cl->address, strlen(cl->address), 0, &h) < 0)
			return -1;
		len = netaddr_to_sockaddr(&h.addr, cl->port, &ss);
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
			fprintf(stderr, "egressd: listen on %s port %u: %s\n",
			        cl->address, cl->port, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Each tunnel takes two descriptors: raise the soft limit to the hard one,
 * and say so when max_connections cannot fit (accepting then pauses on
 * EMFILE rather than failing). */
static void
raise_fd_limit(const struct config *c)
{
	struct rlimit rl;
	char msg[200];

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rlim_t)c->limits.max_connections * 2 + 64 > rl.rlim_cur) {
		snprintf(msg, sizeof(msg),
		         "limits.max_connections %d needs about %d file "
		         "descriptors; the limit is %llu",
		         c->limits.max_connections,
		         c->limits.max_connections * 2 + 64,
		         (unsigned long long)rl.rlim_cur);
		log_lifecycle("error", "fd_limit_low", msg);
	}
}

/* The gateway's secret files, looked at on a timer: a Kubernetes Secret
 * volume changes by itself. */
static void
secret_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	gateway_refresh(d->config);
}

static void
secret_poll_start(struct daemon *d)
{
	int ms = d->config->limits.secret_refresh_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(d->secret_poll, &tv);
}

static void
reload(struct daemon *d)
{
	char err[1024], msg[1200];
	struct config *c = config_load(d->config_path, err, sizeof(err));

	if (c && gateway_open(c, err, sizeof(err)) < 0) {
		config_unref(c);
		c = NULL;
	}
	if (!c) {
		metrics_reload(0);
		log_lifecycle("error", "reload_failed", err);
		return;
	}
	if (!config_same_sandbox(c, d->config)) {
		snprintf(msg, sizeof(msg),
		         "%s: sandbox changed; restart egressd to change it "
		         "(nothing was reloaded)",
		         d->config_path);
		metrics_reload(0);
		log_lifecycle("error", "reload_failed", msg);
		config_unref(c);
		return;
	}
	if (!config_same_listeners(c, d->config)) {
		snprintf(msg, sizeof(msg),
		         "%s: listen, admin or workers changed; restart "
		         "egressd to change them (nothing was reloaded)",
		         d->config_path);
		metrics_reload(0);
		log_lifecycle("error", "reload_failed", msg);
		config_unref(c);
		return;
	}
	if (strcmp(c->log_path, d->config->log_path) != 0 &&
	    log_open(c->log_path, err, sizeof(err)) < 0) {
		metrics_reload(0);
		log_lifecycle("error", "reload_failed", err);
		config_unref(c);
		return;
	}
	for (size_t i = 0; i < d->nworkers; i++)
		worker_set_config(d->workers[i], c);
	/* "reloaded" is said once every worker uses the new snapshot, so a
	 * request sent after the line is decided by it. */
	for (size_t i = 0; i < d->nworkers; i++)
		if (worker_wait_config(d->workers[i], c, 2000) < 0)
			log_lifecycle("error", "reload_slow",
			              "a worker took over 2 s to take the new "
			              "configuration");
	config_unref(d->config);
	d->config = c;
	secret_poll_start(d);
	metrics_reload(1);
	snprintf(msg, sizeof(msg),
	         "%s: reloaded; new connections use the new policies",
	         d->config_path);
	log_lifecycle("reload", NULL, msg);
}

static long long
ms_until(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (t->tv_sec - now.tv_sec) * 1000LL +
	       (t->tv_nsec - now.tv_nsec) / 1000000;
}

/* While draining: end the loop once every worker is done; at the deadline,
 * tell them to close what is left. */
static void
drain_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = {0, DRAIN_POLL_MS * 1000};
	size_t done = 0;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < d->nworkers; i++)
		done += worker_done(d->workers[i]) != 0;
	if (done == d->nworkers) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	if (!d->stopped && ms_until(&d->drain_deadline) <= 0) {
		d->stopped = 1;
		for (size_t i = 0; i < d->nworkers; i++)
			worker_stop(d->workers[i]);
	}
	evtimer_add(d->drain_poll, &tv);
}

static void
stop(struct daemon *d)
{
	int ms = d->config->limits.drain_timeout_ms;
	size_t open = 0;
	char msg[160];

	if (d->draining) {
		/* A second signal: stop now. */
		clock_gettime(CLOCK_MONOTONIC, &d->drain_deadline);
		drain_poll_cb(-1, 0, d);
		return;
	}
	d->draining = 1;
	metrics_set_ready(0);
	for (size_t i = 0; i < d->nworkers; i++) {
		open += worker_active(d->workers[i]);
		worker_drain(d->workers[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &d->drain_deadline);
	d->drain_deadline.tv_sec += ms / 1000;
	d->drain_deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (d->drain_deadline.tv_nsec >= 1000000000L) {
		d->drain_deadline.tv_sec++;
		d->drain_deadline.tv_nsec -= 1000000000L;
	}
	snprintf(msg, sizeof(msg),
	         "stopping: no new connections; %zu open, draining for up to "
	         "%d ms",
	         open, ms);
	log_lifecycle("stop", NULL, msg);
	drain_poll_cb(-1, 0, d);
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
	struct sandbox sb;
	char err[512], msg[1024], note[256], sandboxed[96];
	size_t off;
	int rc = 1, n;

	memset(&d, 0, sizeof(d));
	d.config_path = path;
	d.config = config_ref(c);
	if (sandbox_init(&sb, &c->sandbox, note, sizeof(note), err,
	                 sizeof(err)) < 0 ||
	    sandbox_prepare_log(&sb, c->log_path, err, sizeof(err)) < 0 ||
	    log_open(c->log_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "egressd: %s\n", err);
		goto out;
	}
	if (note[0])
		log_lifecycle("error", "sandbox_user_ignored", note);
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || resolve_library_init() < 0 ||
	    !(d.base = event_base_new()) ||
	    !(d.drain_poll = evtimer_new(d.base, drain_poll_cb, &d)) ||
	    !(d.secret_poll =
	          event_new(d.base, -1, EV_PERSIST, secret_poll_cb, &d))) {
		fprintf(stderr, "egressd: cannot start the event loop\n");
		goto out;
	}
	if (check_ports_free(c) < 0)
		goto out;
	raise_fd_limit(c);
	n = c->workers > 0 ? c->workers : online_cpus();
	if (!(d.workers = calloc((size_t)n, sizeof(*d.workers))))
		goto out;
	for (int i = 0; i < n; i++) {
		if (!(d.workers[i] = worker_new(i, c, err, sizeof(err)))) {
			fprintf(stderr, "egressd: %s\n", err);
			goto out;
		}
		d.nworkers++;
	}
	if (c->admin_address &&
	    !(d.admin = admin_new(d.base, c->admin_address, c->admin_port,
	                          d.workers, d.nworkers, err, sizeof(err)))) {
		fprintf(stderr, "egressd: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		d.signals[i] = evsignal_new(d.base, sigs[i], signal_cb, &d);
		if (!d.signals[i] || evsignal_add(d.signals[i], NULL) < 0) {
			fprintf(stderr, "egressd: cannot handle signals\n");
			goto out;
		}
	}
	/* Everything that needs root is bound and open: give it up before a
	 * worker thread exists (they inherit the filter). */
	if (sandbox_enter(&sb, err, sizeof(err)) < 0) {
		fprintf(stderr, "egressd: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < d.nworkers; i++)
		if (worker_start(d.workers[i]) < 0) {
			fprintf(stderr, "egressd: cannot start a worker\n");
			goto out;
		}
	secret_poll_start(&d);
	metrics_set_ready(1);
	off = (size_t)snprintf(msg, sizeof(msg),
	                       "egressd " EGRESSD_VERSION " listening on");
	for (size_t i = 0; i < c->nlisteners && off < sizeof(msg); i++)
		off += (size_t)snprintf(
		    msg + off, sizeof(msg) - off, "%s %s port %u", i ? "," : "",
		    c->listeners[i].address, c->listeners[i].port);
	sandbox_describe(&sb, sandboxed, sizeof(sandboxed));
	if (off < sizeof(msg))
		snprintf(msg + off, sizeof(msg) - off, "; %zu workers; %s",
		         d.nworkers, sandboxed);
	log_lifecycle("start", NULL, msg);
	event_base_dispatch(d.base);
	rc = 0;
out:
	metrics_set_ready(0);
	/* Workers that are still running (a start-up failure) stop now. */
	for (size_t i = 0; i < d.nworkers; i++)
		worker_stop(d.workers[i]);
	for (size_t i = 0; i < d.nworkers; i++)
		worker_free(d.workers[i]);
	free(d.workers);
	admin_free(d.admin);
	for (size_t i = 0; i < sizeof(d.signals) / sizeof(d.signals[0]); i++)
		if (d.signals[i])
			event_free(d.signals[i]);
	if (d.drain_poll)
		event_free(d.drain_poll);
	if (d.secret_poll)
		event_free(d.secret_poll);
	if (d.base)
		event_base_free(d.base);
	config_unref(d.config);
	if (rc == 0)
		log_lifecycle("stop", NULL, "stopped");
	return rc;
}

int
main(int argc, char **argv)
{
	enum {
		OPT_EXPLAIN = 256,
		OPT_METHOD,
		OPT_POLICY,
		OPT_SERVICE,
		OPT_REF,
		OPT_HASH,
		OPT_SUGGEST
	};
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"explain", required_argument, NULL, OPT_EXPLAIN},
	    {"method", required_argument, NULL, OPT_METHOD},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"service", required_argument, NULL, OPT_SERVICE},
	    {"ref", required_argument, NULL, OPT_REF},
	    {"hash-secret", required_argument, NULL, OPT_HASH},
	    {"suggest", required_argument, NULL, OPT_SUGGEST},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	struct explain_args ex = {NULL, "CONNECT", NULL, NULL, NULL};
	struct config *c;
	char err[1024];
	int test = 0, opt, rc;

	if (argc > 1 && strcmp(argv[1], "watch") == 0)
		return watch_main(argc - 1, argv + 1);
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
			ex.target = optarg;
			break;
		case OPT_METHOD:
			ex.method = optarg;
			break;
		case OPT_POLICY:
			ex.policy = optarg;
			break;
		case OPT_SERVICE:
			ex.service = optarg;
			break;
		case OPT_REF:
			ex.ref = optarg;
			break;
		case OPT_SUGGEST:
			return suggest_run(optarg, stdout) < 0 ? 1 : 0;
		case OPT_HASH:
			return hash_secret(optarg,
			                   optind < argc ? argv[optind] : NULL);
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
		return ex.target ? 2 : 1;
	}
	if (gateway_open(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_unref(c);
		return ex.target ? 2 : 1;
	}
	if (test) {
		printf("%s: configuration OK\n", path);
		rc = 0;
	} else if (ex.target) {
		rc = explain(c, &ex);
	} else {
		rc = run(c, path);
	}
	config_unref(c);
	return rc;
}
