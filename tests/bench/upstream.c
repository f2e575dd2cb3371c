/*
 * upstream — the benchmark's origin server: one epoll loop, three services
 * on every address given.
 *
 *   upstream -a 127.0.0.21,127.0.0.22 -e ECHO_PORT -b BULK_PORT -h HTTP_PORT
 *
 * echo  writes back what it reads, until the peer closes.
 * bulk  reads one line "N\n", writes N bytes as fast as the socket takes
 *       them, then closes.
 * http  a tiny HTTP/1.1 server with keep-alive: GET /100b (100-byte body),
 *       GET /100k (102400 bytes); anything else is 404.  "Connection: close"
 *       in a request closes after its response.
 *
 * Prints "ready" on stdout once every listener is bound; runs until SIGTERM
 * or SIGINT.
 */
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define ECHO_BUF  4096
#define HTTP_BUF  8192
#define BULK_BUF  (256 * 1024)
#define MAX_LISTEN (3 * BENCH_MAX_ADDRS)

enum kind { K_LISTEN_ECHO, K_LISTEN_BULK, K_LISTEN_HTTP, K_ECHO, K_BULK, K_HTTP };

struct peer {
	enum kind kind;
	int fd;
	int eof;          /* the peer has closed its side */
	size_t inlen;     /* bytes in in[] */
	const char *out;  /* pending output (in[] for echo, static for http) */
	size_t outlen, outoff;
	uint64_t bulk_left;
	int bulk_started;
	int close_after; /* http: close once out has gone */
	char in[];
};

static volatile sig_atomic_t stopping;
static int ep;
static char bulk_data[BULK_BUF];
static char *resp_100b, *resp_100k, *resp_404;
static size_t resp_100b_len, resp_100k_len, resp_404_len;
static struct peer listeners[MAX_LISTEN];

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static char *
make_response(int status, size_t body, size_t *len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: application/octet-stream\r\n"
	                 "Cache-Control: no-store\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 status, status == 200 ? "OK" : "Not Found", body);
	char *r = malloc((size_t)n + body);

	if (!r) {
		perror("upstream: malloc");
		exit(2);
	}
	memcpy(r, head, (size_t)n);
	memset(r + n, 'x', body);
	*len = (size_t)n + body;
	return r;
}

static void
peer_close(struct peer *p)
{
	close(p->fd);
	free(p);
}

/* Write what is pending; 0 when it has all gone, 1 to wait, -1 on error. */
static int
flush_out(struct peer *p)
{
	while (p->outoff < p->outlen) {
		ssize_t n = send(p->fd, p->out + p->outoff, p->outlen - p->outoff,
		                 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		p->outoff += (size_t)n;
	}
	p->out = NULL;
	p->outlen = p->outoff = 0;
	return 0;
}

/* Read into in[] up to cap; returns bytes, 0 at EOF, -1 to wait, -2 error. */
static ssize_t
fill_in(struct peer *p, size_t cap)
{
	for (;;) {
		ssize_t n = recv(p->fd, p->in + p->inlen, cap - p->inlen, 0);

		if (n >= 0) {
			p->inlen += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? -1 : -2;
	}
}

/* Echo: returns 0 to keep the peer, -1 to close it. */
static int
echo_step(struct peer *p)
{
	for (;;) {
		int f = flush_out(p);
		ssize_t n;

		if (f < 0)
			return -1;
		if (f > 0)
			return 0;
		if (p->eof)
			return -1;
		p->inlen = 0;
		n = fill_in(p, ECHO_BUF);
		if (n == -1)
			return 0;
		if (n == -2)
			return -1;
		if (n == 0) {
			p->eof = 1;
			continue;
		}
		p->out = p->in;
		p->outlen = p->inlen;
		p->outoff = 0;
	}
}

static int
bulk_step(struct peer *p)
{
	while (!p->bulk_started) {
		char *nl = memchr(p->in, '\n', p->inlen);
		ssize_t n;

		if (nl) {
			char *end;

			*nl = '\0';
			errno = 0;
			p->bulk_left = strtoull(p->in, &end, 10);
			if (errno || end == p->in)
				return -1;
			p->bulk_started = 1;
			break;
		}
		if (p->inlen == 64)
			return -1;
		n = fill_in(p, 64);
		if (n == -1)
			return 0;
		if (n <= 0)
			return -1;
	}
	while (p->bulk_left > 0) {
		size_t want = p->bulk_left < BULK_BUF ? (size_t)p->bulk_left
		                                      : BULK_BUF;
		ssize_t n = send(p->fd, bulk_data, want, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		p->bulk_left -= (uint64_t)n;
	}
	/* All sent: close() still delivers what the socket holds, then FIN. */
	return -1;
}

/* Serve every complete request in in[]; returns 0 to keep, -1 to close. */
static int
http_step(struct peer *p)
{
	for (;;) {
		int f = flush_out(p);
		char *end;
		ssize_t n;

		if (f < 0)
			return -1;
		if (f > 0)
			return 0;
		if (p->close_after)
			return -1;
		while ((end = memmem(p->in, p->inlen, "\r\n\r\n", 4))) {
			size_t used = (size_t)(end - p->in) + 4;
			char *sp = memchr(p->in, ' ', used);
			const char *path = sp ? sp + 1 : "";

			if (strncmp(path, "/100b ", 6) == 0) {
				p->out = resp_100b;
				p->outlen = resp_100b_len;
			} else if (strncmp(path, "/100k ", 6) == 0) {
				p->out = resp_100k;
				p->outlen = resp_100k_len;
			} else {
				p->out = resp_404;
				p->outlen = resp_404_len;
			}
			p->outoff = 0;
			if (memmem(p->in, used, "\nConnection: close", 18) ||
			    memmem(p->in, used, "\nconnection: close", 18))
				p->close_after = 1;
			memmove(p->in, p->in + used, p->inlen - used);
			p->inlen -= used;
			f = flush_out(p);
			if (f < 0)
				return -1;
			if (f > 0)
				return 0;
			if (p->close_after)
				return -1;
		}
		if (p->eof || p->inlen == HTTP_BUF)
			return -1;
		n = fill_in(p, HTTP_BUF);
		if (n == -1)
			return 0;
		if (n == -2)
			return -1;
		if (n == 0)
			p->eof = 1;
	}
}

static void
accept_all(struct peer *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		size_t extra;
		struct peer *p;
		struct epoll_event ev;
		int one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				fprintf(stderr, "upstream: accept: %s\n",
				        strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		extra = l->kind == K_LISTEN_ECHO   ? ECHO_BUF
		        : l->kind == K_LISTEN_HTTP ? HTTP_BUF
		                                   : 64;
		if (!(p = calloc(1, sizeof(*p) + extra))) {
			close(fd);
			continue;
		}
		p->fd = fd;
		p->kind = l->kind == K_LISTEN_ECHO   ? K_ECHO
		          : l->kind == K_LISTEN_HTTP ? K_HTTP
		                                     : K_BULK;
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = p;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			peer_close(p);
			continue;
		}
	}
}

static int
listen_on(const struct sockaddr_in *sa, enum kind kind, struct peer *l)
{
	int one = 1;
	struct epoll_event ev;
	char name[64];

	bench_addr_str(sa, name, sizeof(name));
	l->kind = kind;
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l->fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ||
	    listen(l->fd, 4096) < 0) {
		fprintf(stderr, "upstream: listen on %s: %s\n", name,
		        strerror(errno));
		return -1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = l;
	return epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev);
}

static void
usage(void)
{
	fprintf(stderr, "usage: upstream -a IP[,IP...] -e ECHO_PORT "
	                "-b BULK_PORT -h HTTP_PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addrs[BENCH_MAX_ADDRS];
	int naddrs = 0, nl = 0, opt;
	long ports[3] = {0, 0, 0};
	struct sigaction sa;
	static struct epoll_event evs[512];

	while ((opt = getopt(argc, argv, "a:e:b:h:")) != -1) {
		switch (opt) {
		case 'a':
			naddrs = bench_parse_list(optarg, 1, addrs,
			                          BENCH_MAX_ADDRS);
			break;
		case 'e':
			ports[0] = strtol(optarg, NULL, 10);
			break;
		case 'b':
			ports[1] = strtol(optarg, NULL, 10);
			break;
		case 'h':
			ports[2] = strtol(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (naddrs <= 0)
		usage();
	for (int i = 0; i < 3; i++)
		if (ports[i] < 1 || ports[i] > 65535)
			usage();
	bench_raise_nofile();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(bulk_data, 'b', sizeof(bulk_data));
	resp_100b = make_response(200, 100, &resp_100b_len);
	resp_100k = make_response(200, 100 * 1024, &resp_100k_len);
	resp_404 = make_response(404, 0, &resp_404_len);

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("upstream: epoll_create1");
		return 2;
	}
	for (int i = 0; i < naddrs; i++)
		for (int k = 0; k < 3; k++) {
			struct sockaddr_in a = addrs[i];

			a.sin_port = htons((uint16_t)ports[k]);
			if (listen_on(&a, (enum kind)k, &listeners[nl++]) < 0)
				return 2;
		}
	printf("ready\n");
	fflush(stdout);

	while (!stopping) {
		int n = epoll_wait(ep, evs, 512, 1000);

		for (int i = 0; i < n; i++) {
			struct peer *p = evs[i].data.ptr;
			int r = 0;

			switch (p->kind) {
			case K_LISTEN_ECHO:
			case K_LISTEN_BULK:
			case K_LISTEN_HTTP:
				accept_all(p);
				continue;
			case K_ECHO:
				r = echo_step(p);
				break;
			case K_BULK:
				r = bulk_step(p);
				break;
			case K_HTTP:
				r = http_step(p);
				break;
			}
			if (r < 0)
				peer_close(p);
		}
	}
	return 0;
}
