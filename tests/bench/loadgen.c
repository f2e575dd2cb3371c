/*
 * loadgen — the benchmark's load generator: one epoll loop, one mode a run.
 *
 *   loadgen -m connect [-x PROXY] -t TARGETS [-s SOURCES] -c N -d SECONDS
 *           [-r RATE] [-n BYTES]
 *       N clients each loop: (CONNECT → 200 →) BYTES-byte echo → close.
 *       With -r, tunnels start at RATE a second (open loop, latency counted
 *       from the planned start) and -c caps how many are in flight.
 *   loadgen -m bulk [-x PROXY] -t TARGETS -c N -b BYTES
 *       N tunnels at once, each asking the bulk source for BYTES: MB/s.
 *   loadgen -m http [-x PROXY] -t TARGETS -c N -d SECONDS -u PATH
 *       N keep-alive connections looping GET PATH: absolute-form through a
 *       proxy, origin-form without one.
 *   loadgen -m idle [-x PROXY] -t TARGETS -c N [-d HOLD]
 *       Opens N tunnels (each checked with one echo), prints a "ready" line,
 *       holds them until SIGTERM or HOLD seconds, then checks each again
 *       with an echo and closes them all.
 *   loadgen -m trickle -x PROXY -t TARGET -c N -H BYTES -r RATE -d SECONDS
 *           [-L LIMIT] [-p PROXY_PID]
 *       Opens N connections that each send the first BYTES of a request
 *       head (a GET whose last field never ends), prints a "ready" line,
 *       then trickles the heads on a byte at a time, RATE bytes a second
 *       over all of them in turn, for SECONDS (a connection stops at LIMIT
 *       bytes of head, under the proxy's limit).  With -p, the proxy's CPU
 *       time (utime+stime from /proc/PID/stat) over the trickle is reported
 *       too.  The well-behaved requests to time beside it come from another
 *       loadgen (run.sh uses -m connect -r).
 *
 * TARGETS and SOURCES are comma lists of 127.0.0.x addresses (TARGETS with
 * :port); every new connection binds the next source and picks the next
 * target, so that no single address pair runs out of ephemeral ports.
 * The result is one line of key=value pairs on stdout.
 */
#include <math.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"

#define IN_BUF      16384
#define BIG_BUF     (256 * 1024)
#define MAX_ECHO    4096
#define MAX_HEAD    8192
#define TICK_MS     100

enum mode { M_CONNECT, M_BULK, M_HTTP, M_IDLE, M_TRICKLE };

enum state {
	S_FREE,
	S_CONNECTING,
	S_PROXY,  /* CONNECT sent (or being sent), waiting for its answer */
	S_ECHO,   /* echo payload sent (or being sent), waiting for it back */
	S_BULK,   /* request line sent, reading until EOF */
	S_HTTP,   /* GET sent (or being sent), reading the response */
	S_HELD,   /* idle: an open, checked tunnel */
	S_VERIFY, /* idle: the last echo */
};

enum err { E_CONNECT, E_STATUS, E_EOF, E_TIMEOUT, E_DATA, E_IO, E_COUNT };
static const char *const err_names[E_COUNT] = {
    "connect", "status", "eof", "timeout", "data", "io"};

/* HTTP response body framing. */
enum body { B_NONE, B_LENGTH, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF,
            B_TRAILER, B_CLOSE };

struct conn {
	int fd;
	enum state state;
	int connected;
	int target;
	uint64_t started;  /* this tunnel's or request's planned start */
	uint64_t deadline; /* 0: none */
	const char *out;
	size_t outlen, outoff;
	size_t inlen;
	/* http */
	int head_done, resp_close, requests;
	enum body body;
	uint64_t body_left;
	/* bulk */
	uint64_t got;
	/* trickle: bytes of head sent so far */
	size_t head_sent;
	char in[IN_BUF];
};

static struct {
	enum mode mode;
	int have_proxy;
	struct sockaddr_in proxy;
	struct sockaddr_in targets[BENCH_MAX_ADDRS];
	int ntargets;
	struct sockaddr_in sources[BENCH_MAX_ADDRS];
	int nsources;
	int clients;
	double seconds;
	double rate;
	size_t echo_bytes;
	uint64_t bulk_bytes;
	const char *path;
	double op_timeout;
	int setup_parallel;
	uint64_t min_count;
	/* trickle */
	size_t head_bytes, head_limit;
	int proxy_pid;
} opt = {
    .clients = 1,
    .seconds = 5,
    .echo_bytes = 64,
    .bulk_bytes = 64u << 20,
    .path = "/100b",
    .op_timeout = 10,
    .setup_parallel = 256,
    .head_bytes = 30000,
    .head_limit = 32000,
};

static struct {
	int ep;
	int tfd; /* rate mode: fires at the next planned start */
	struct conn *conns;
	int active;
	uint64_t next_pair; /* source/target rotation */
	uint64_t t0, t_end, t_stop;
	int running; /* new tunnels/requests may start */
	uint64_t count;  /* completed inside the measured window */
	uint64_t done;   /* completed at all */
	uint64_t errors[E_COUNT];
	char first_err[E_COUNT][160];
	uint64_t reconnects;
	struct conn **restart; /* failed clients to start again */
	int nrestart;
	uint64_t bytes;
	uint32_t *lat;
	size_t nlat, caplat;
	uint64_t planned; /* rate mode: tunnels started so far */
	/* idle */
	int established, verified, dropped;
	/* trickle */
	char *trickle_head;
	uint64_t trickled;
	long long proxy_ticks; /* -1: not measured */
	/* Requests and CONNECT lines, one per target. */
	char **connect_req, **http_req;
	size_t *connect_len, *http_len;
	char echo[MAX_ECHO];
	char bulk_req[32];
	size_t bulk_req_len;
	char big[BIG_BUF];
} g;

static volatile sig_atomic_t got_term;

static void
on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void
record_latency(uint64_t us)
{
	if (g.nlat == g.caplat) {
		size_t cap = g.caplat ? g.caplat * 2 : 65536;
		uint32_t *n = realloc(g.lat, cap * sizeof(*n));

		if (!n)
			die("out of memory for latency samples");
		g.lat = n;
		g.caplat = cap;
	}
	g.lat[g.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t
percentile(double p)
{
	size_t i;

	if (g.nlat == 0)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)g.nlat);
	if (i > 0)
		i--;
	if (i >= g.nlat)
		i = g.nlat - 1;
	return g.lat[i];
}

static void conn_start(struct conn *c);
static void conn_step(struct conn *c, uint32_t events);

static void
conn_release(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = S_FREE;
	g.active--;
}

static void
conn_fail(struct conn *c, enum err e, const char *what)
{
	if (c->state == S_HELD)
		g.dropped++;
	g.errors[e]++;
	if (!g.first_err[e][0]) {
		char t[64];

		bench_addr_str(&opt.targets[c->target], t, sizeof(t));
		snprintf(g.first_err[e], sizeof(g.first_err[e]), "%s (%s)",
		         what, t);
	}
	conn_release(c);
	/* Closed-loop clients go on after an error, from the main loop: a
	 * restart from here could recurse when connect() fails at once. */
	if (g.running && opt.mode != M_IDLE && opt.mode != M_BULK &&
	    opt.mode != M_TRICKLE && !(opt.mode == M_CONNECT && opt.rate > 0))
		g.restart[g.nrestart++] = c;
}

/* Start writing buf; the step loop flushes it. */
static void
set_out(struct conn *c, const char *buf, size_t len)
{
	c->out = buf;
	c->outlen = len;
	c->outoff = 0;
}

/* 0 when all is written, 1 to wait for POLLOUT, -1 on error. */
static int
flush_out(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		                 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		c->outoff += (size_t)n;
	}
	return 0;
}

/* Read into in[]: bytes read, 0 at EOF, -1 to wait, -2 on error. */
static ssize_t
fill_in(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->inlen == IN_BUF)
			return -2;
		n = recv(c->fd, c->in + c->inlen, IN_BUF - c->inlen, 0);
		if (n >= 0) {
			c->inlen += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? -1 : -2;
	}
}

static void
consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

/* The status code of the response head in[0..len), or -1. */
static int
status_of(const char *h, size_t len)
{
	if (len < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ')
		return -1;
	if (h[9] < '0' || h[9] > '9' || h[10] < '0' || h[10] > '9' ||
	    h[11] < '0' || h[11] > '9')
		return -1;
	return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

/* Case-insensitive search for a header field; returns its value or NULL. */
static const char *
header_value(const char *h, size_t len, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *p = h; p < h + len;) {
		const char *eol = memmem(p, (size_t)(h + len - p), "\r\n", 2);

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && p[nl] == ':' &&
		    strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

static int
value_has(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; v && i + tl <= len; i++)
		if (strncasecmp(v + i, token, tl) == 0)
			return 1;
	return 0;
}

static void
next_request(struct conn *c)
{
	c->started = bench_now_us();
	c->deadline = c->started + (uint64_t)(opt.op_timeout * 1e6);
	c->head_done = 0;
	c->resp_close = 0;
	c->body = B_NONE;
	c->state = S_HTTP;
	set_out(c, g.http_req[c->target], g.http_len[c->target]);
}

/* A tunnel or request finished well at time now. */
static void
completed(struct conn *c, uint64_t now)
{
	g.done++;
	/* With -M, what it takes to reach the minimum counts too. */
	if (now <= g.t_end || g.count < opt.min_count) {
		g.count++;
		record_latency(now - c->started);
	}
}

/* The CONNECT answer is in; go on with what the mode does in the tunnel. */
static void
tunnel_open(struct conn *c)
{
	switch (opt.mode) {
	case M_CONNECT:
	case M_IDLE:
		c->state = S_ECHO;
		set_out(c, g.echo, opt.echo_bytes);
		break;
	case M_BULK:
		c->state = S_BULK;
		c->got = 0;
		set_out(c, g.bulk_req, g.bulk_req_len);
		break;
	case M_HTTP:
	case M_TRICKLE:
		break;
	}
}

/*
 * Parse as much of an HTTP response as in[] holds.  Returns 1 when the
 * response is complete, 0 for more, -1 on a protocol error.
 */
static int
http_parse(struct conn *c, int eof)
{
	if (!c->head_done) {
		char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
		size_t hl, vl;
		const char *v;
		int st;

		if (!end)
			return c->inlen >= MAX_HEAD || eof ? -1 : 0;
		hl = (size_t)(end - c->in) + 4;
		st = status_of(c->in, hl);
		if (st != 200)
			return -1;
		v = header_value(c->in, hl, "Connection", &vl);
		c->resp_close = v ? value_has(v, vl, "close")
		                  : memcmp(c->in, "HTTP/1.0", 8) == 0;
		if ((v = header_value(c->in, hl, "Transfer-Encoding", &vl)) &&
		    value_has(v, vl, "chunked")) {
			c->body = B_CHUNK_SIZE;
		} else if ((v = header_value(c->in, hl, "Content-Length",
		                             &vl))) {
			c->body = B_LENGTH;
			c->body_left = strtoull(v, NULL, 10);
		} else {
			c->body = B_CLOSE;
			c->resp_close = 1;
		}
		c->head_done = 1;
		consume(c, hl);
	}
	for (;;) {
		char *eol;

		switch (c->body) {
		case B_NONE:
			return 1;
		case B_LENGTH:
		case B_CHUNK_DATA: {
			size_t n = c->inlen < c->body_left ? c->inlen
			                                   : (size_t)c->body_left;

			consume(c, n);
			c->body_left -= n;
			if (c->body_left > 0)
				return eof ? -1 : 0;
			c->body = c->body == B_LENGTH ? B_NONE : B_CHUNK_CRLF;
			break;
		}
		case B_CHUNK_SIZE:
			if (!(eol = memmem(c->in, c->inlen, "\r\n", 2)))
				return eof || c->inlen > 64 ? -1 : 0;
			c->body_left = strtoull(c->in, NULL, 16);
			consume(c, (size_t)(eol - c->in) + 2);
			c->body = c->body_left ? B_CHUNK_DATA : B_TRAILER;
			break;
		case B_CHUNK_CRLF:
			if (c->inlen < 2)
				return eof ? -1 : 0;
			if (memcmp(c->in, "\r\n", 2) != 0)
				return -1;
			consume(c, 2);
			c->body = B_CHUNK_SIZE;
			break;
		case B_TRAILER:
			if (!(eol = memmem(c->in, c->inlen, "\r\n", 2)))
				return eof ? -1 : 0;
			consume(c, (size_t)(eol - c->in) + 2);
			if (eol == c->in)
				c->body = B_NONE;
			break;
		case B_CLOSE:
			c->inlen = 0;
			return eof ? 1 : 0;
		}
	}
}

/*
 * After a finished tunnel or request: start the next one or stop.  Returns
 * 1 when the same connection goes on (the next keep-alive request), which
 * the caller must then step: edge-triggered epoll will not say so again.
 */
static int
conn_next(struct conn *c)
{
	if (opt.mode == M_HTTP && !c->resp_close && g.running) {
		next_request(c);
		return 1;
	}
	conn_release(c);
	if (opt.mode == M_HTTP && g.running) {
		if (c->resp_close)
			g.reconnects++;
		conn_start(c);
	} else if (opt.mode == M_CONNECT && g.running && opt.rate <= 0) {
		conn_start(c);
	}
	return 0;
}

/*
 * Run c's state machine until it has to wait.  Edge-triggered epoll: every
 * path that returns to wait has seen EAGAIN on the read or write it needs.
 */
static void
conn_step(struct conn *c, uint32_t events)
{
	for (;;) {
		ssize_t n;
		int f;
		uint64_t now;

		if (c->state == S_FREE)
			return;
		if (!c->connected) {
			int err = 0;
			socklen_t el = sizeof(err);

			if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				return;
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) <
			        0 ||
			    err) {
				conn_fail(c, E_CONNECT, strerror(err ? err : errno));
				return;
			}
			c->connected = 1;
		}
		f = flush_out(c);
		if (f < 0) {
			conn_fail(c, E_IO, strerror(errno));
			return;
		}
		if (f > 0)
			return;
		if (c->state == S_BULK) {
			/* Count and drop: the bytes themselves do not matter. */
			if (c->inlen) {
				c->got += c->inlen;
				c->inlen = 0;
			}
			n = recv(c->fd, g.big, BIG_BUF, 0);
			if (n > 0) {
				/* -T bounds a stall, not the whole stream. */
				c->got += (uint64_t)n;
				c->deadline = bench_now_us() +
				              (uint64_t)(opt.op_timeout * 1e6);
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (errno == EAGAIN)
					return;
				continue;
			}
			if (n < 0) {
				conn_fail(c, E_IO, strerror(errno));
				return;
			}
			g.bytes += c->got;
			if (c->got != opt.bulk_bytes) {
				conn_fail(c, E_DATA, "short bulk stream");
				return;
			}
			completed(c, bench_now_us());
			conn_release(c);
			return;
		}
		n = fill_in(c);
		if (n == -2) {
			conn_fail(c, E_IO, strerror(errno));
			return;
		}
		switch (c->state) {
		case S_PROXY: {
			char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);

			if (!end) {
				if (n == 0) {
					conn_fail(c, E_EOF,
					          "proxy closed before its answer");
					return;
				}
				if (n < 0)
					return;
				if (c->inlen >= MAX_HEAD) {
					conn_fail(c, E_STATUS, "answer too long");
					return;
				}
				continue;
			}
			if (status_of(c->in, (size_t)(end - c->in)) != 200) {
				char msg[64];
				size_t l = strcspn(c->in, "\r\n");

				snprintf(msg, sizeof(msg), "CONNECT: %.*s",
				         (int)(l < 40 ? l : 40), c->in);
				conn_fail(c, E_STATUS, msg);
				return;
			}
			consume(c, (size_t)(end - c->in) + 4);
			tunnel_open(c);
			continue;
		}
		case S_ECHO:
		case S_VERIFY:
			if (c->inlen >= opt.echo_bytes) {
				if (c->inlen > opt.echo_bytes ||
				    memcmp(c->in, g.echo, opt.echo_bytes)) {
					conn_fail(c, E_DATA, "echo mismatch");
					return;
				}
				c->inlen = 0;
				now = bench_now_us();
				if (opt.mode == M_IDLE) {
					if (c->state == S_VERIFY) {
						g.verified++;
						conn_release(c);
						return;
					}
					g.established++;
					c->state = S_HELD;
					c->deadline = 0;
					continue;
				}
				completed(c, now);
				if (conn_next(c))
					continue;
				return;
			}
			if (n == 0) {
				conn_fail(c, E_EOF, "closed before the echo");
				return;
			}
			if (n < 0)
				return;
			continue;
		case S_HELD:
			if (n < 0)
				return;
			if (opt.mode == M_TRICKLE) {
				char msg[80];
				size_t l = strcspn(c->in, "\r\n");

				snprintf(msg, sizeof(msg),
				         "trickling head answered: %.*s",
				         (int)(l < 40 ? l : 40), c->in);
				conn_fail(c, n == 0 ? E_EOF : E_STATUS,
				          n == 0 ? "trickling head closed" : msg);
				return;
			}
			conn_fail(c, n == 0 ? E_EOF : E_DATA,
			          "held tunnel closed or sent data");
			return;
		case S_HTTP: {
			int r;

			if (n == 0 && !c->head_done && c->inlen == 0 &&
			    c->requests > 0) {
				/* The server closed a kept-alive connection
				 * between requests: not an error. */
				conn_release(c);
				if (g.running) {
					g.reconnects++;
					conn_start(c);
				}
				return;
			}
			r = http_parse(c, n == 0);
			if (r < 0) {
				char msg[64];
				size_t l = strcspn(c->in, "\r\n");

				snprintf(msg, sizeof(msg), "bad response: %.*s",
				         (int)(l < 40 ? l : 40), c->in);
				conn_fail(c, c->head_done ? E_EOF : E_STATUS,
				          msg);
				return;
			}
			if (r == 0) {
				if (n < 0)
					return;
				continue;
			}
			c->requests++;
			now = bench_now_us();
			completed(c, now);
			if (conn_next(c))
				continue;
			return;
		}
		default:
			return;
		}
	}
}

/* Open a new connection on slot c (to the proxy, or straight to a target). */
static void
conn_start(struct conn *c)
{
	uint64_t k = g.next_pair++;
	const struct sockaddr_in *src = NULL;
	const struct sockaddr_in *dst;
	struct epoll_event ev;
	int one = 1;

	c->target = (int)((k / (uint64_t)(opt.nsources ? opt.nsources : 1)) %
	                  (uint64_t)opt.ntargets);
	if (opt.nsources)
		src = &opt.sources[k % (uint64_t)opt.nsources];
	dst = opt.have_proxy ? &opt.proxy : &opt.targets[c->target];
	if (opt.rate <= 0 || opt.mode != M_CONNECT)
		c->started = bench_now_us();
	c->deadline = bench_now_us() + (uint64_t)(opt.op_timeout * 1e6);
	c->connected = 0;
	c->inlen = 0;
	c->requests = 0;
	c->got = 0;
	c->out = NULL;
	c->outlen = c->outoff = 0;
	g.active++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->state = S_CONNECTING;
	if (c->fd < 0) {
		conn_fail(c, E_CONNECT, strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src) {
		/* Let connect() pick the port for the whole 4-tuple. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		           sizeof(one));
		if (bind(c->fd, (const struct sockaddr *)src, sizeof(*src)) <
		    0) {
			conn_fail(c, E_CONNECT, strerror(errno));
			return;
		}
	}
	if (connect(c->fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, E_CONNECT, strerror(errno));
		return;
	}
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_fail(c, E_IO, strerror(errno));
		return;
	}
	if (opt.mode == M_TRICKLE) {
		/* The partial head; then held, and trickled by run_trickle. */
		c->state = S_HELD;
		c->head_sent = opt.head_bytes;
		set_out(c, g.trickle_head, opt.head_bytes);
	} else if (opt.have_proxy && opt.mode != M_HTTP) {
		c->state = S_PROXY;
		set_out(c, g.connect_req[c->target], g.connect_len[c->target]);
	} else if (opt.mode == M_HTTP) {
		next_request(c);
	} else {
		tunnel_open(c);
	}
}

/* Fail every connection whose deadline has passed. */
static void
check_deadlines(uint64_t now)
{
	for (int i = 0; i < opt.clients; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != S_FREE && c->deadline && now > c->deadline)
			conn_fail(c, E_TIMEOUT, "no progress within -T");
	}
}

/* Rate mode: wake at absolute monotonic time at_us. */
static void
arm_timer(uint64_t at_us)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at_us / 1000000u);
	its.it_value.tv_nsec = (long)(at_us % 1000000u) * 1000;
	if (timerfd_settime(g.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		die("timerfd_settime: %s", strerror(errno));
}

/* One epoll round; returns the time after it. */
static uint64_t
poll_once(int timeout_ms)
{
	static struct epoll_event evs[1024];
	int n = epoll_wait(g.ep, evs, 1024, timeout_ms);

	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr == &g.tfd) {
			uint64_t ticks;

			if (read(g.tfd, &ticks, sizeof(ticks)) < 0)
				continue;
			continue;
		}
		conn_step(evs[i].data.ptr, evs[i].events);
	}
	return bench_now_us();
}

static struct conn *
free_slot(void)
{
	static int hint;

	for (int i = 0; i < opt.clients; i++) {
		int j = (hint + i) % opt.clients;

		if (g.conns[j].state == S_FREE) {
			hint = j + 1;
			return &g.conns[j];
		}
	}
	return NULL;
}

static void
run_timed(void)
{
	uint64_t now, last_check, grace_end;

	g.t0 = bench_now_us();
	g.t_end = g.t0 + (uint64_t)(opt.seconds * 1e6);
	g.running = 1;
	if (opt.rate <= 0 || opt.mode != M_CONNECT)
		for (int i = 0; i < opt.clients; i++)
			conn_start(&g.conns[i]);
	now = last_check = g.t0;
	for (;;) {
		if (opt.rate > 0 && opt.mode == M_CONNECT && g.running) {
			/* Tunnel k is planned at t0 + k / rate. */
			uint64_t due = (uint64_t)((double)(now - g.t0) *
			                          opt.rate / 1e6) + 1;
			struct conn *c;

			while (g.planned < due && (c = free_slot())) {
				/* Latency from the planned start: a proxy
				 * that falls behind pays for the wait. */
				c->started = g.t0 + (uint64_t)((double)g.planned *
				                               1e6 / opt.rate);
				g.planned++;
				conn_start(c);
			}
			if (g.planned < due) /* all slots busy: look again */
				arm_timer(now + 1000);
			else
				arm_timer(g.t0 + (uint64_t)((double)g.planned *
				                            1e6 / opt.rate) +
				          1);
		}
		now = poll_once(g.running ? TICK_MS : 10);
		if (g.nrestart && g.running) {
			int n = g.nrestart;

			g.nrestart = 0;
			for (int i = 0; i < n; i++) {
				struct conn *c = g.restart[i];

				if (c->state == S_FREE)
					conn_start(c);
			}
		}
		if (now - last_check > 100000) {
			check_deadlines(now);
			last_check = now;
		}
		if (g.running && now >= g.t_end &&
		    (opt.min_count == 0 || g.count >= opt.min_count ||
		     now >= g.t_end + (uint64_t)(opt.op_timeout * 1e6)))
			break;
		if (got_term)
			break;
	}
	g.t_stop = now;
	/* Let what is in flight finish, briefly; it is not counted in the
	 * window but is in done (for CPU per tunnel). */
	g.running = 0;
	grace_end = now + 2000000;
	while (g.active > 0 && now < grace_end)
		now = poll_once(10);
	for (int i = 0; i < opt.clients; i++)
		if (g.conns[i].state != S_FREE)
			conn_release(&g.conns[i]);
}

static void
run_bulk(void)
{
	uint64_t now, last_check, end;

	g.t0 = bench_now_us();
	g.t_end = UINT64_MAX;
	for (int i = 0; i < opt.clients; i++)
		conn_start(&g.conns[i]);
	now = last_check = g.t0;
	end = g.t0 + 600000000u;
	while (g.active > 0 && now < end && !got_term) {
		now = poll_once(100);
		if (now - last_check > 100000) {
			check_deadlines(now);
			last_check = now;
		}
	}
	g.t_end = now;
}

static void
run_idle(void)
{
	uint64_t now, last_check, hold_end, end;
	int started = 0;

	g.t0 = bench_now_us();
	g.t_end = UINT64_MAX;
	now = last_check = g.t0;
	end = g.t0 + (uint64_t)(opt.op_timeout * 1e6) * 6;
	/* Open them, a bounded number at a time. */
	while ((started < opt.clients || g.active > g.established) &&
	       now < end && !got_term) {
		while (started < opt.clients &&
		       g.active - g.established < opt.setup_parallel) {
			conn_start(&g.conns[started++]);
		}
		now = poll_once(10);
		if (now - last_check > 100000) {
			check_deadlines(now);
			last_check = now;
		}
	}
	/* Still opening after the setup bound, or never started: those are
	 * failures too. */
	g.errors[E_TIMEOUT] += (uint64_t)(opt.clients - started);
	for (int i = 0; i < opt.clients; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != S_FREE && c->state != S_HELD)
			conn_fail(c, E_TIMEOUT, "not open within the setup bound");
	}
	printf("ready tunnels=%d established=%d setup_s=%.3f\n", opt.clients,
	       g.established, (double)(now - g.t0) / 1e6);
	fflush(stdout);
	hold_end = now + (uint64_t)(opt.seconds * 1e6);
	while (!got_term && now < hold_end)
		now = poll_once(100);
	/* Check each tunnel again: all of them at once. */
	for (int i = 0; i < opt.clients; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != S_HELD)
			continue;
		c->state = S_VERIFY;
		c->deadline = bench_now_us() + (uint64_t)(opt.op_timeout * 1e6);
		set_out(c, g.echo, opt.echo_bytes);
		conn_step(c, EPOLLOUT);
	}
	end = bench_now_us() + (uint64_t)(opt.op_timeout * 1e6) + 1000000;
	while (g.active > 0 && now < end) {
		now = poll_once(100);
		if (now - last_check > 100000) {
			check_deadlines(now);
			last_check = now;
		}
	}
	for (int i = 0; i < opt.clients; i++)
		if (g.conns[i].state != S_FREE)
			conn_release(&g.conns[i]);
}

/* utime + stime of process pid, all its threads, in clock ticks; -1 if
 * unknown. */
static long long
proc_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command's ")": state and ten fields, then utime stime. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	           &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static void
run_trickle(void)
{
	uint64_t now, last_check, end;
	long long cpu0 = -1, cpu1;
	int started = 0, rr = 0;

	g.t0 = bench_now_us();
	g.t_end = UINT64_MAX;
	now = last_check = g.t0;
	end = g.t0 + (uint64_t)(opt.op_timeout * 1e6);
	/* Open the connections, a bounded number at a time, each sending its
	 * partial head; then they are held. */
	for (;;) {
		int open = 0, ready = 0;

		for (int i = 0; i < started; i++) {
			struct conn *c = &g.conns[i];

			if (c->state == S_FREE)
				continue;
			open++;
			if (c->outoff == c->outlen) {
				ready++;
				c->deadline = 0;
			}
		}
		if ((started == opt.clients && ready == open) || now >= end ||
		    got_term)
			break;
		while (started < opt.clients &&
		       open - ready < opt.setup_parallel) {
			conn_start(&g.conns[started++]);
			open++;
		}
		now = poll_once(10);
		if (now - last_check > 100000) {
			check_deadlines(now);
			last_check = now;
		}
	}
	g.errors[E_TIMEOUT] += (uint64_t)(opt.clients - started);
	for (int i = 0; i < started; i++) {
		struct conn *c = &g.conns[i];

		if (c->state != S_FREE && c->outoff != c->outlen)
			conn_fail(c, E_TIMEOUT,
			          "partial head not sent within the setup bound");
		else if (c->state != S_FREE)
			g.established++;
	}
	printf("ready trickling=%d setup_s=%.3f\n", g.established,
	       (double)(now - g.t0) / 1e6);
	fflush(stdout);

	if (opt.proxy_pid > 0)
		cpu0 = proc_ticks(opt.proxy_pid);
	g.t0 = now = bench_now_us();
	g.t_end = g.t0 + (uint64_t)(opt.seconds * 1e6);
	while (now < g.t_end && !got_term) {
		uint64_t due = (uint64_t)((double)(now - g.t0) * opt.rate / 1e6);
		int tries = 0;

		/* One byte to each connection in turn, until the bytes due
		 * are sent or no connection can take one. */
		while (g.trickled < due && tries < opt.clients) {
			struct conn *c = &g.conns[rr];

			rr = (rr + 1) % opt.clients;
			if (c->state != S_HELD || c->outoff != c->outlen ||
			    c->head_sent >= opt.head_limit ||
			    send(c->fd, "v", 1, MSG_DONTWAIT | MSG_NOSIGNAL) !=
			        1) {
				tries++;
				continue;
			}
			g.trickled++;
			c->head_sent++;
			tries = 0;
		}
		now = poll_once(1);
	}
	g.t_stop = now;
	if (cpu0 >= 0 && (cpu1 = proc_ticks(opt.proxy_pid)) >= 0)
		g.proxy_ticks = cpu1 - cpu0;
	/* Still held at the end: each is one completed. */
	for (int i = 0; i < opt.clients; i++)
		if (g.conns[i].state == S_HELD) {
			g.count++;
			conn_release(&g.conns[i]);
		}
	g.done = g.count;
}

static void
build_requests(void)
{
	char t[64];

	g.connect_req = calloc((size_t)opt.ntargets, sizeof(char *));
	g.http_req = calloc((size_t)opt.ntargets, sizeof(char *));
	g.connect_len = calloc((size_t)opt.ntargets, sizeof(size_t));
	g.http_len = calloc((size_t)opt.ntargets, sizeof(size_t));
	if (!g.connect_req || !g.http_req || !g.connect_len || !g.http_len)
		die("out of memory");
	for (int i = 0; i < opt.ntargets; i++) {
		int n;

		bench_addr_str(&opt.targets[i], t, sizeof(t));
		n = asprintf(&g.connect_req[i],
		             "CONNECT %s HTTP/1.1\r\nHost: %s\r\n"
		             "User-Agent: egressd-bench\r\n\r\n",
		             t, t);
		if (n < 0)
			die("out of memory");
		g.connect_len[i] = (size_t)n;
		if (opt.have_proxy)
			n = asprintf(&g.http_req[i],
			             "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n"
			             "User-Agent: egressd-bench\r\n"
			             "Accept: */*\r\n\r\n",
			             t, opt.path, t);
		else
			n = asprintf(&g.http_req[i],
			             "GET %s HTTP/1.1\r\nHost: %s\r\n"
			             "User-Agent: egressd-bench\r\n"
			             "Accept: */*\r\n\r\n",
			             opt.path, t);
		if (n < 0)
			die("out of memory");
		g.http_len[i] = (size_t)n;
	}
	for (size_t i = 0; i < sizeof(g.echo); i++)
		g.echo[i] = (char)('a' + i % 26);
	g.bulk_req_len = (size_t)snprintf(g.bulk_req, sizeof(g.bulk_req),
	                                  "%llu\n",
	                                  (unsigned long long)opt.bulk_bytes);
	if (opt.mode == M_TRICKLE) {
		/* A GET whose last field is still being sent: the trickle
		 * adds to its value, so the head never ends. */
		int n;

		bench_addr_str(&opt.targets[0], t, sizeof(t));
		if (!(g.trickle_head = malloc(opt.head_bytes)))
			die("out of memory");
		memset(g.trickle_head, 'v', opt.head_bytes);
		n = snprintf(g.trickle_head, opt.head_bytes,
		             "GET http://%s/trickle HTTP/1.1\r\nHost: %s\r\n"
		             "X-Pad: ",
		             t, t);
		if (n < 0 || (size_t)n + 1 >= opt.head_bytes)
			die("-H %zu is too short for a head", opt.head_bytes);
		/* Over snprintf's NUL. */
		g.trickle_head[n] = 'v';
	}
}

static void
report(void)
{
	static const char *const names[] = {"connect", "bulk", "http", "idle",
	                                    "trickle"};
	double secs = (double)(g.t_end - g.t0) / 1e6;
	uint64_t errors = 0;

	for (int e = 0; e < E_COUNT; e++)
		errors += g.errors[e];
	if (opt.mode == M_CONNECT || opt.mode == M_HTTP) {
		/* The window; past it only with -M, until the minimum. */
		secs = opt.seconds;
		if (g.t_stop > g.t_end && g.count > 0 &&
		    g.count <= opt.min_count)
			secs = (double)(g.t_stop - g.t0) / 1e6;
	}
	if (secs <= 0)
		secs = 1e-6;
	if (g.nlat)
		qsort(g.lat, g.nlat, sizeof(*g.lat), cmp_u32);
	printf("mode=%s clients=%d", names[opt.mode], opt.clients);
	switch (opt.mode) {
	case M_CONNECT:
	case M_HTTP:
		if (opt.rate > 0)
			printf(" target_rate=%.0f", opt.rate);
		printf(" seconds=%.3f count=%llu done=%llu rate=%.1f"
		       " p50_us=%u p90_us=%u p99_us=%u max_us=%u",
		       secs, (unsigned long long)g.count,
		       (unsigned long long)g.done, (double)g.count / secs,
		       percentile(50), percentile(90), percentile(99),
		       percentile(100));
		if (opt.mode == M_HTTP)
			printf(" reconnects=%llu",
			       (unsigned long long)g.reconnects);
		break;
	case M_BULK:
		printf(" seconds=%.3f count=%llu done=%llu bytes=%llu"
		       " mbps=%.1f",
		       secs, (unsigned long long)g.done,
		       (unsigned long long)g.done,
		       (unsigned long long)g.bytes,
		       secs > 0 ? (double)g.bytes / 1e6 / secs : 0.0);
		break;
	case M_IDLE:
		printf(" count=%d done=%d established=%d verified=%d"
		       " dropped=%d",
		       g.verified, g.verified, g.established, g.verified,
		       g.dropped);
		break;
	case M_TRICKLE:
		/* count: connections still trickling at the end. */
		printf(" established=%d count=%llu head_bytes=%zu seconds=%.3f"
		       " bytes=%llu byte_rate=%.0f",
		       g.established, (unsigned long long)g.count,
		       opt.head_bytes, (double)(g.t_stop - g.t0) / 1e6,
		       (unsigned long long)g.trickled,
		       g.t_stop > g.t0 ? (double)g.trickled * 1e6 /
		                             (double)(g.t_stop - g.t0)
		                       : 0.0);
		if (g.proxy_ticks >= 0)
			printf(" proxy_ticks=%lld hz=%ld", g.proxy_ticks,
			       sysconf(_SC_CLK_TCK));
		break;
	}
	printf(" errors=%llu", (unsigned long long)errors);
	for (int e = 0; e < E_COUNT; e++)
		if (g.errors[e])
			printf(" err_%s=%llu", err_names[e],
			       (unsigned long long)g.errors[e]);
	printf("\n");
	for (int e = 0; e < E_COUNT; e++)
		if (g.first_err[e][0])
			fprintf(stderr, "loadgen: first %s error: %s\n",
			        err_names[e], g.first_err[e]);
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: loadgen -m connect|bulk|http|idle|trickle "
	        "[-x PROXY_IP:PORT] -t IP:PORT[,...]\n"
	        "               [-s SRC_IP[,...]] [-c CLIENTS] [-d SECONDS] "
	        "[-r RATE]\n"
	        "               [-n ECHO_BYTES] [-b BULK_BYTES] [-u PATH] "
	        "[-T OP_TIMEOUT_S]\n"
	        "               [-P SETUP_PARALLEL] [-M MIN_COUNT]\n"
	        "               [-H HEAD_BYTES] [-L HEAD_LIMIT] [-p PROXY_PID]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	long nofile;
	int o;

	while ((o = getopt(argc, argv, "m:x:t:s:c:d:r:n:b:u:T:P:M:H:L:p:")) != -1) {
		switch (o) {
		case 'm':
			if (!strcmp(optarg, "connect"))
				opt.mode = M_CONNECT;
			else if (!strcmp(optarg, "bulk"))
				opt.mode = M_BULK;
			else if (!strcmp(optarg, "http"))
				opt.mode = M_HTTP;
			else if (!strcmp(optarg, "idle"))
				opt.mode = M_IDLE;
			else if (!strcmp(optarg, "trickle"))
				opt.mode = M_TRICKLE;
			else
				usage();
			break;
		case 'x':
			if (bench_parse_addr(optarg, strlen(optarg), 0,
			                     &opt.proxy) < 0 ||
			    !opt.proxy.sin_port)
				die("bad proxy address %s", optarg);
			opt.have_proxy = 1;
			break;
		case 't':
			opt.ntargets = bench_parse_list(optarg, 0, opt.targets,
			                                BENCH_MAX_ADDRS);
			if (opt.ntargets <= 0)
				die("bad target list %s", optarg);
			for (int i = 0; i < opt.ntargets; i++)
				if (!opt.targets[i].sin_port)
					die("targets need a port: %s", optarg);
			break;
		case 's':
			opt.nsources = bench_parse_list(optarg, 0, opt.sources,
			                                BENCH_MAX_ADDRS);
			if (opt.nsources <= 0)
				die("bad source list %s", optarg);
			break;
		case 'c':
			opt.clients = atoi(optarg);
			break;
		case 'd':
			opt.seconds = atof(optarg);
			break;
		case 'r':
			opt.rate = atof(optarg);
			break;
		case 'n':
			opt.echo_bytes = (size_t)atol(optarg);
			break;
		case 'b':
			opt.bulk_bytes = strtoull(optarg, NULL, 10);
			break;
		case 'u':
			opt.path = optarg;
			break;
		case 'T':
			opt.op_timeout = atof(optarg);
			break;
		case 'P':
			opt.setup_parallel = atoi(optarg);
			break;
		case 'M':
			opt.min_count = strtoull(optarg, NULL, 10);
			break;
		case 'H':
			opt.head_bytes = (size_t)atol(optarg);
			break;
		case 'L':
			opt.head_limit = (size_t)atol(optarg);
			break;
		case 'p':
			opt.proxy_pid = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || opt.ntargets == 0 ||
	    opt.clients < 1 ||
	    opt.clients > 1000000 || opt.seconds < 0 || opt.echo_bytes < 1 ||
	    opt.echo_bytes > MAX_ECHO || opt.op_timeout <= 0 ||
	    opt.setup_parallel < 1 || opt.path[0] != '/')
		usage();
	if (opt.mode == M_TRICKLE &&
	    (!opt.have_proxy || opt.head_bytes < 64 ||
	     opt.head_limit < opt.head_bytes || opt.rate < 0))
		usage();
	nofile = bench_raise_nofile();
	if (nofile > 0 && opt.clients + 64 > nofile)
		die("-c %d needs more descriptors than the limit (%ld)",
		    opt.clients, nofile);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	build_requests();
	g.proxy_ticks = -1;
	g.conns = calloc((size_t)opt.clients + 1, sizeof(*g.conns));
	g.restart = calloc((size_t)opt.clients + 1, sizeof(*g.restart));
	if (!g.conns || !g.restart)
		die("out of memory for %d connections", opt.clients);
	for (int i = 0; i < opt.clients; i++)
		g.conns[i].fd = -1;
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	if (opt.rate > 0 && opt.mode == M_CONNECT) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g.tfd};

		g.tfd = timerfd_create(CLOCK_MONOTONIC,
		                       TFD_NONBLOCK | TFD_CLOEXEC);
		if (g.tfd < 0 || epoll_ctl(g.ep, EPOLL_CTL_ADD, g.tfd, &ev) < 0)
			die("timerfd: %s", strerror(errno));
	}

	switch (opt.mode) {
	case M_CONNECT:
	case M_HTTP:
		run_timed();
		break;
	case M_BULK:
		run_bulk();
		break;
	case M_IDLE:
		run_idle();
		break;
	case M_TRICKLE:
		run_trickle();
		break;
	}
	report();
	return 0;
}
