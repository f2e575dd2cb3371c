#include "watch.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "watch_line.h"
#include "watch_view.h"

/* The longest line read; a longer one is skipped whole. */
#define LINE_MAX_BYTES (64 * 1024)
/* How often a followed file is looked at, and the screen redrawn. */
#define POLL_MS   200
#define REDRAW_MS 1000
/* Alerts a POST carries at most, and the room for each. */
#define BATCH_MAX   64
#define ALERT_BYTES 2048
#define BACKOFF_MAX 60

struct alerts {
	char *url, *host, *path;
	int port;
	struct evhttp_connection *conn;
	int in_flight;
	long long retry_at; /* no post before this (backoff) */
	int backoff;        /* seconds, doubled on each failure */
	int repost_s;       /* an active group is re-posted this often */
	int quiet_s;        /* a group this long without a denial resolves */
	unsigned long long posted, failed, dropped;
	char last_error[128];
	/* The batch in flight: which groups, at which count. */
	struct {
		struct watch_group *g;
		unsigned long long count;
		int resolving;
	} batch[BATCH_MAX];
	size_t nbatch;
};

struct watch {
	struct event_base *base;
	struct watch_view view;
	const char *source; /* the path, or "-" */
	int fd;
	ino_t ino;
	dev_t dev;
	off_t offset;
	int follow, once, tty, plain;
	long long since; /* count lines from this epoch second on; 0: all */
	char *line;
	size_t len;
	int overlong; /* the line being read is over LINE_MAX_BYTES */
	struct alerts am;
	int use_am;
	struct event *tick, *sigint, *sigterm, *input, *finish;
	long long last_draw;
	int done;         /* the input has ended (stdin, --once) */
	long long done_at;
};

static long long
now_s(void)
{
	return (long long)time(NULL);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Seconds since the epoch of a log time, or -1. */
static long long
ts_epoch(const char *ts)
{
	struct tm tm = {0};

	if (!watch_ts_valid(ts) ||
	    sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm);
}

/* --- lines ------------------------------------------------------------------ */

static void
take_line(struct watch *w, const char *s, size_t len)
{
	struct watch_line l;
	char plain[512];

	if (len == 0)
		return;
	if (watch_line_parse(s, len, &l) < 0) {
		watch_view_skip(&w->view);
		return;
	}
	if (w->since && ts_epoch(l.ts) >= 0 && ts_epoch(l.ts) < w->since)
		return;
	if (watch_view_add(&w->view, &l, now_s()) && !w->tty) {
		watch_plain_line(&l, plain, sizeof(plain));
		printf("%s\n", plain);
		fflush(stdout);
	}
}

/* Split what came into lines; a line over LINE_MAX_BYTES is skipped whole
 * (counted once). */
static void
take_bytes(struct watch *w, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			if (!w->overlong)
				take_line(w, w->line, w->len);
			w->overlong = 0;
			w->len = 0;
			continue;
		}
		if (w->overlong)
			continue;
		if (w->len == LINE_MAX_BYTES) {
			w->overlong = 1;
			watch_view_skip(&w->view);
			continue;
		}
		w->line[w->len++] = p[i];
	}
}

/* Read what the descriptor has now.  1 at its end, 0 when it would block,
 * -1 on an error. */
static int
drain(struct watch *w)
{
	char buf[65536];

	for (int rounds = 0; rounds < 256; rounds++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n > 0) {
			w->offset += n;
			take_bytes(w, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
	return 0; /* more next time: the screen and the alerts go on */
}

static int
open_source(struct watch *w, int at_end)
{
	struct stat st;

	if ((w->fd = open(w->source, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(w->fd, &st) < 0)
		return -1;
	w->ino = st.st_ino;
	w->dev = st.st_dev;
	w->offset = at_end ? lseek(w->fd, 0, SEEK_END) : 0;
	return 0;
}

/* A followed file: read on; after a rotation (another file at the path)
 * finish the old one and start the new one at its beginning; after a
 * truncation start again at the beginning. */
static void
follow_file(struct watch *w)
{
	struct stat st, now;

	if (w->fd >= 0) {
		drain(w);
		if (fstat(w->fd, &st) == 0 && st.st_size < w->offset) {
			lseek(w->fd, 0, SEEK_SET);
			w->offset = 0;
			w->len = 0;
			drain(w);
		}
	}
	if (stat(w->source, &now) < 0)
		return; /* rotated away, the new one not there yet */
	if (w->fd >= 0 && now.st_ino == w->ino && now.st_dev == w->dev)
		return;
	if (w->fd >= 0) {
		drain(w);
		close(w->fd);
		w->fd = -1;
	}
	w->len = 0;
	w->overlong = 0;
	if (open_source(w, 0) == 0)
		drain(w);
}

/* --- Alertmanager ------------------------------------------------------------ */

static int
parse_url(struct alerts *a, const char *url)
{
	const char *p, *slash, *colon;
	size_t hlen;

	if (strncmp(url, "http://", 7) != 0)
		return -1;
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	hlen = (size_t)((colon ? colon : slash) - p);
	if (hlen == 0 || hlen > 253)
		return -1;
	a->host = strndup(p, hlen);
	a->port = 9093;
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);

		if (end != slash || port < 1 || port > 65535)
			return -1;
		a->port = (int)port;
	}
	/* The API under whatever prefix the URL has. */
	if (asprintf(&a->path, "%.*s/api/v2/alerts",
	             (int)(strlen(slash) && slash[strlen(slash) - 1] == '/'
	                       ? strlen(slash) - 1
	                       : strlen(slash)),
	             slash) < 0)
		return -1;
	return a->host ? 0 : -1;
}

static void post_cb(struct evhttp_request *req, void *arg);

/* Post what changed: new and grown groups (re-posted at most every
 * repost_s), and groups that went quiet (resolved, once). */
static void
post_alerts(struct watch *w)
{
	struct alerts *a = &w->am;
	long long now = now_s();
	struct evhttp_request *req;
	struct evbuffer *body;
	char alert[ALERT_BYTES];

	if (a->in_flight || now < a->retry_at)
		return;
	a->nbatch = 0;
	for (size_t i = 0; i < w->view.ngroups && a->nbatch < BATCH_MAX; i++) {
		struct watch_group *g = &w->view.groups[i];
		int quiet = now - g->last >= a->quiet_s;

		/* Quiet: resolved, once.  Active: when new or grown, at most
		 * every repost_s (at the end of the input, at once). */
		if (g->resolved)
			continue;
		if (!quiet &&
		    !(g->changed && (g->posted == 0 || w->done ||
		                     now - g->posted >= a->repost_s)))
			continue;
		a->batch[a->nbatch].g = g;
		a->batch[a->nbatch].count = g->count;
		a->batch[a->nbatch].resolving = quiet;
		a->nbatch++;
	}
	if (a->nbatch == 0)
		return;
	if (!(req = evhttp_request_new(post_cb, w)))
		return;
	body = evhttp_request_get_output_buffer(req);
	evbuffer_add(body, "[", 1);
	for (size_t i = 0; i < a->nbatch; i++) {
		struct watch_group *g = a->batch[i].g;
		long long ends = a->batch[i].resolving ? now : now + a->quiet_s;

		if (watch_alert_json(g, ends, alert, sizeof(alert)) == 0)
			continue;
		if (evbuffer_get_length(body) > 1)
			evbuffer_add(body, ",", 1);
		evbuffer_add(body, alert, strlen(alert));
	}
	evbuffer_add(body, "]", 1);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	                  a->host);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "application/json");
	if (evhttp_make_request(a->conn, req, EVHTTP_REQ_POST, a->path) < 0) {
		snprintf(a->last_error, sizeof(a->last_error),
		         "could not send the request");
		return;
	}
	a->in_flight = 1;
}

static void
post_cb(struct evhttp_request *req, void *arg)
{
	struct watch *w = arg;
	struct alerts *a = &w->am;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	a->in_flight = 0;
	if (code >= 200 && code < 300) {
		long long now = now_s();

		for (size_t i = 0; i < a->nbatch; i++) {
			struct watch_group *g = a->batch[i].g;

			g->posted = now;
			if (g->count == a->batch[i].count)
				g->changed = 0;
			if (a->batch[i].resolving && g->count == a->batch[i].count)
				g->resolved = 1;
		}
		a->posted += a->nbatch;
		a->backoff = 0;
		a->last_error[0] = '\0';
	} else {
		a->failed++;
		a->backoff = a->backoff ? a->backoff * 2 : 1;
		if (a->backoff > BACKOFF_MAX)
			a->backoff = BACKOFF_MAX;
		a->retry_at = now_s() + a->backoff;
		if (code)
			snprintf(a->last_error, sizeof(a->last_error),
			         "HTTP %d", code);
		else
			snprintf(a->last_error, sizeof(a->last_error),
			         "no answer (connection refused or timed out)");
	}
	a->nbatch = 0;
}

/* --- the screen -------------------------------------------------------------- */

static void
draw(struct watch *w)
{
	static char screen[64 * 1024];
	struct winsize ws = {0};
	int width = 80, height = 24;
	size_t n;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		width = ws.ws_col;
		height = ws.ws_row;
	}
	n = watch_view_render(&w->view, w->source, width,
	                      w->use_am ? height - 1 : height, now_s(), screen,
	                      sizeof(screen));
	/* Home, then each row over the old one, clearing what is left. */
	fputs("\033[H", stdout);
	for (char *p = screen, *nl; (size_t)(p - screen) < n; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		fwrite(p, 1, (size_t)(nl - p), stdout);
		fputs("\033[K\n", stdout);
	}
	if (w->use_am)
		printf("alertmanager: %llu posted, %llu failed, %llu dropped%s%s"
		       "\033[K\n",
		       w->am.posted, w->am.failed, w->view.evicted,
		       w->am.last_error[0] ? "; last: " : "",
		       w->am.last_error);
	fputs("\033[J", stdout);
	fflush(stdout);
}

/* --- the loop ---------------------------------------------------------------- */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;

	(void)fd;
	(void)what;
	if (w->follow)
		follow_file(w);
	if (w->use_am)
		post_alerts(w);
	if (w->tty && now_ms() - w->last_draw >= REDRAW_MS) {
		draw(w);
		w->last_draw = now_ms();
	}
}

static void
input_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	int r;

	(void)fd;
	(void)what;
	r = drain(w);
	if (r != 0) {
		/* Standard input ended: what is left to post goes (finish_cb),
		 * then out. */
		event_del(w->input);
		w->done = 1;
		if (!w->use_am)
			event_base_loopexit(w->base, NULL);
	}
}

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;

	(void)fd;
	(void)what;
	event_base_loopexit(w->base, NULL);
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: egressd watch [FILE|-] [--plain] [--once] [--from-start]\n"
	        "                     [--since SECONDS] [--alertmanager URL]\n"
	        "                     [--repost SECONDS] [--quiet SECONDS]\n");
}

/* When the alerts of a finished input have gone, or 10 s after its end,
 * stop. */
static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	int pending = w->am.in_flight;

	(void)fd;
	(void)what;
	if (!w->done)
		return;
	if (!w->done_at)
		w->done_at = now_s();
	for (size_t i = 0; i < w->view.ngroups; i++)
		pending |= w->view.groups[i].changed;
	/* A failing Alertmanager gets 2 s more, a slow one 10. */
	if (!pending || now_s() - w->done_at > 10 ||
	    (w->am.last_error[0] && now_s() - w->done_at >= 2))
		event_base_loopexit(w->base, NULL);
}

int
watch_main(int argc, char **argv)
{
	enum { OPT_ONCE = 256, OPT_START, OPT_SINCE, OPT_AM, OPT_PLAIN,
	       OPT_REPOST, OPT_QUIET };
	static const struct option opts[] = {
	    {"once", no_argument, NULL, OPT_ONCE},
	    {"from-start", no_argument, NULL, OPT_START},
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"alertmanager", required_argument, NULL, OPT_AM},
	    {"plain", no_argument, NULL, OPT_PLAIN},
	    {"repost", required_argument, NULL, OPT_REPOST},
	    {"quiet", required_argument, NULL, OPT_QUIET},
	    {NULL, 0, NULL, 0},
	};
	static struct watch w;
	struct timeval tv = {0, POLL_MS * 1000};
	int opt, from_start = 0, rc = 0;
	char *end;
	long v;

	w.fd = -1;
	w.am.repost_s = 60;
	w.am.quiet_s = 300;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_ONCE:
			w.once = 1;
			break;
		case OPT_START:
			from_start = 1;
			break;
		case OPT_PLAIN:
			w.plain = 1;
			break;
		case OPT_AM:
			w.am.url = optarg;
			break;
		case OPT_SINCE:
		case OPT_REPOST:
		case OPT_QUIET:
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 86400 * 366) {
				fprintf(stderr,
				        "egressd watch: \"%s\": want a number of "
				        "seconds\n",
				        optarg);
				return 2;
			}
			if (opt == OPT_SINCE)
				w.since = now_s() - v;
			else if (opt == OPT_REPOST)
				w.am.repost_s = (int)v;
			else
				w.am.quiet_s = (int)v;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (argc - optind > 1) {
		usage();
		return 2;
	}
	w.source = optind < argc ? argv[optind] : "-";
	w.tty = !w.plain && !w.once && isatty(STDOUT_FILENO);
	if (w.am.url) {
		if (parse_url(&w.am, w.am.url) < 0) {
			fprintf(stderr,
			        "egressd watch: --alertmanager \"%s\": want "
			        "http://HOST[:PORT][/PREFIX]\n",
			        w.am.url);
			return 2;
		}
		w.use_am = 1;
	}
	if (!(w.line = malloc(LINE_MAX_BYTES)))
		return 1;
	watch_view_init(&w.view);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(w.source, "-") == 0) {
		w.fd = STDIN_FILENO;
		fcntl(w.fd, F_SETFL, fcntl(w.fd, F_GETFL) | O_NONBLOCK);
	} else if (open_source(&w, !from_start && !w.since && !w.once) < 0) {
		fprintf(stderr, "egressd watch: %s: %s\n", w.source,
		        strerror(errno));
		return 2;
	} else {
		w.follow = !w.once;
	}
	if (w.once) {
		/* Read to the end, blocking on a pipe. */
		fcntl(w.fd, F_SETFL, fcntl(w.fd, F_GETFL) & ~O_NONBLOCK);
		while (drain(&w) == 0)
			;
		w.done = 1;
	}
	if (!w.once || w.use_am) {
		if (!(w.base = event_base_new()))
			return 1;
		if (w.use_am &&
		    !(w.am.conn = evhttp_connection_base_new(
		          w.base, NULL, w.am.host, (unsigned short)w.am.port)))
			return 1;
		if (w.am.conn)
			evhttp_connection_set_timeout(w.am.conn, 5);
		w.tick = event_new(w.base, -1, EV_PERSIST, tick_cb, &w);
		w.finish = event_new(w.base, -1, EV_PERSIST, finish_cb, &w);
		w.sigint = evsignal_new(w.base, SIGINT, signal_cb, &w);
		w.sigterm = evsignal_new(w.base, SIGTERM, signal_cb, &w);
		event_add(w.tick, &tv);
		event_add(w.finish, &tv);
		event_add(w.sigint, NULL);
		event_add(w.sigterm, NULL);
		if (!w.follow && !w.done) {
			/* Standard input: a pipe or a terminal can be
			 * watched; a file redirected in is read whole. */
			w.input = event_new(w.base, w.fd, EV_READ | EV_PERSIST,
			                    input_cb, &w);
			if (event_add(w.input, NULL) < 0) {
				fcntl(w.fd, F_SETFL,
				      fcntl(w.fd, F_GETFL) & ~O_NONBLOCK);
				while (drain(&w) == 0)
					;
				w.done = 1;
			}
		}
		if (w.tty)
			fputs("\033[2J", stdout);
		event_base_dispatch(w.base);
		if (w.tty)
			draw(&w);
	}
	if (!w.tty || w.once) {
		static char summary[256 * 1024];

		watch_view_summary(&w.view, summary, sizeof(summary));
		fputs(summary, w.once ? stdout : stderr);
	}
	if (w.use_am) {
		size_t undelivered = 0;

		for (size_t i = 0; i < w.view.ngroups; i++)
			undelivered += w.view.groups[i].changed != 0;
		if (undelivered)
			fprintf(stderr,
			        "egressd watch: %zu alerts not delivered to %s "
			        "(%s)\n",
			        undelivered, w.am.url,
			        w.am.last_error[0] ? w.am.last_error : "no answer");
	}
	if (w.once)
		rc = w.view.deny > 0;
	return rc;
}
