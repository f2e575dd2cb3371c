/*
 * Unit tests for origin: egressd's TLS to an origin, over a socketpair to an
 * OpenSSL server in the same event loop, with certificates made by
 * certs/make-test-ca.sh.  Each run is bounded by a 5 s failsafe.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "origin.h"

static char dir[64], ca_good[128];
static SSL_CTX *server_good, *server_other;

/* What one run saw, on both sides. */
struct run {
	struct event_base *base;
	int done;
	struct origin_result got;
	char detail[256];
	char sni[256];    /* the server name the server was sent */
	char offered[64]; /* the ALPN list the server was offered */
	int server_read;  /* the client's byte reached the server */
	struct bufferevent *client;
};

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
        const unsigned char *in, unsigned int inlen, void *arg)
{
	struct run *r = SSL_get_app_data(ssl);

	(void)arg;
	if (r && inlen < sizeof(r->offered)) {
		memcpy(r->offered, in, inlen);
		r->offered[inlen] = '\0';
	}
	if (inlen >= 9 && memcmp(in, "\x08http/1.1", 9) == 0) {
		*out = in + 1;
		*outlen = 8;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *
server_ctx(const char *which)
{
	char crt[160], key[160];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	snprintf(crt, sizeof(crt), "%s/%s/server.crt", dir, which);
	snprintf(key, sizeof(key), "%s/%s/server.key", dir, which);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, crt), 1);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	return ctx;
}

static int
setup(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/egressd-origin.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
	         "sh certs/make-test-ca.sh %s/good origin.test ip:127.0.0.1 && "
	         "sh certs/make-test-ca.sh %s/other origin.test",
	         dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(ca_good, sizeof(ca_good), "%s/good/ca.crt", dir);
	server_good = server_ctx("good");
	server_other = server_ctx("other");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	SSL_CTX_free(server_good);
	SSL_CTX_free(server_other);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void
server_read_cb(struct bufferevent *bev, void *arg)
{
	struct run *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	r->server_read += (int)evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	/* An answer: with TLS 1.3 the session ticket travels before it. */
	bufferevent_write(bev, "y", 1);
}

static void
server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct run *r = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (what & BEV_EVENT_CONNECTED)
		snprintf(r->sni, sizeof(r->sni), "%s", sni ? sni : "");
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct run *r = arg;

	evbuffer_drain(bufferevent_get_input(bev), 1);
	event_base_loopexit(r->base, NULL);
}

static void
done_cb(void *arg, const struct origin_result *res)
{
	struct run *r = arg;

	r->done++;
	r->got = *res;
	snprintf(r->detail, sizeof(r->detail), "%s",
	         res->detail ? res->detail : "");
	r->client = res->bev;
	if (!res->bev) {
		event_base_loopexit(r->base, NULL);
		return;
	}
	/* Say something, and read the answer (and any ticket). */
	bufferevent_setcb(res->bev, client_read_cb, NULL, NULL, r);
	bufferevent_enable(res->bev, EV_READ | EV_WRITE);
	bufferevent_write(res->bev, "x", 1);
}

/*
 * Connect to host through t, to a server with ctx (or, without one, a peer
 * that answers plaintext), and run until done and, on success, a byte went
 * each way.
 */
static void
run_one(struct run *r, struct origin_tls *t, SSL_CTX *ctx, const char *host)
{
	struct timeval failsafe = {5, 0};
	struct bufferevent *tcp, *server = NULL;
	struct origin_handshake *h;
	int sv[2];

	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	tcp = bufferevent_socket_new(r->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (ctx) {
		SSL *ssl = SSL_new(ctx);

		SSL_set_app_data(ssl, r);
		server = bufferevent_openssl_socket_new(
		    r->base, sv[1], ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(server, server_read_cb, NULL, server_event_cb,
		                  r);
		bufferevent_enable(server, EV_READ | EV_WRITE);
	} else {
		static const char plain[] =
		    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";

		assert_int_equal(write(sv[1], plain, sizeof(plain) - 1),
		                 (ssize_t)sizeof(plain) - 1);
		shutdown(sv[1], SHUT_WR);
	}
	h = origin_tls_start(t, tcp, host, done_cb, r);
	assert_non_null(h);
	/* Never from inside the call. */
	assert_int_equal(r->done, 0);
	event_base_loopexit(r->base, &failsafe);
	event_base_dispatch(r->base);
	assert_int_equal(r->done, 1);
	if (r->client)
		bufferevent_free(r->client);
	if (server)
		bufferevent_free(server);
	else
		close(sv[1]);
	event_base_free(r->base);
}

static void
test_verified_and_resumed(void **state)
{
	char err[256];
	struct origin_tls *t = origin_tls_new(ca_good, err, sizeof(err));
	struct run r;

	(void)state;
	assert_non_null(t);
	run_one(&r, t, server_good, "origin.test");
	assert_int_equal(r.got.reason, REASON_ALLOWED);
	assert_string_equal(r.got.version, "TLSv1.3");
	assert_int_equal(r.got.resumed, 0);
	assert_string_equal(r.sni, "origin.test");
	assert_string_equal(r.offered, "\x08http/1.1");
	assert_int_equal(r.server_read, 1);
	/* The next connection resumes the session the first was given. */
	run_one(&r, t, server_good, "origin.test");
	assert_int_equal(r.got.reason, REASON_ALLOWED);
	assert_int_equal(r.got.resumed, 1);
	assert_int_equal(r.server_read, 1);
	origin_tls_free(t);
}

static void
test_refusals(void **state)
{
	static const struct {
		int good_server; /* else: a certificate from another CA */
		const char *host;
		enum reason want;
		const char *detail;
	} cases[] = {
	    {1, "other.test", REASON_TLS_CERTIFICATE_ERROR,
	     "hostname mismatch"},
	    {1, "127.0.0.2", REASON_TLS_CERTIFICATE_ERROR,
	     "IP address mismatch"},
	    {0, "origin.test", REASON_TLS_CERTIFICATE_ERROR,
	     "unable to get local issuer certificate"},
	};
	char err[256];
	struct origin_tls *t = origin_tls_new(ca_good, err, sizeof(err));
	struct run r;

	(void)state;
	assert_non_null(t);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_one(&r, t,
		        cases[i].good_server ? server_good : server_other,
		        cases[i].host);
		if (r.got.reason != cases[i].want ||
		    !strstr(r.detail, cases[i].detail))
			fail_msg("%s: %s (%s)", cases[i].host,
			         reason_get(r.got.reason)->name, r.detail);
		assert_null(r.got.bev);
		assert_int_equal(r.server_read, 0);
	}
	/* A plaintext answer is no handshake. */
	run_one(&r, t, NULL, "origin.test");
	assert_int_equal(r.got.reason, REASON_TLS_ERROR);
	assert_true(r.detail[0] != '\0');
	origin_tls_free(t);
}

/* An address: verified against the certificate's IP SAN, no SNI sent, no
 * session kept. */
static void
test_address(void **state)
{
	char err[256];
	struct origin_tls *t = origin_tls_new(ca_good, err, sizeof(err));
	struct run r;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 2; i++) {
		run_one(&r, t, server_good, "127.0.0.1");
		assert_int_equal(r.got.reason, REASON_ALLOWED);
		assert_string_equal(r.sni, "");
		assert_int_equal(r.got.resumed, 0);
	}
	origin_tls_free(t);
}

static void
test_cancel(void **state)
{
	char err[256];
	struct origin_tls *t = origin_tls_new(ca_good, err, sizeof(err));
	struct event_base *base = event_base_new();
	struct timeval soon = {0, 100000};
	struct bufferevent *tcp;
	struct origin_handshake *h;
	struct run r;
	int sv[2];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	tcp = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(
	    h = origin_tls_start(t, tcp, "origin.test", done_cb, &r));
	origin_tls_cancel(h);
	event_base_loopexit(base, &soon);
	event_base_dispatch(base);
	assert_int_equal(r.done, 0);
	close(sv[1]);
	event_base_free(base);
	origin_tls_free(t);
}

static void
test_bad_trust(void **state)
{
	char err[256], path[160];
	struct origin_tls *t;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.crt", dir);
	assert_null(origin_tls_new(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	/* The system store. */
	t = origin_tls_new(NULL, err, sizeof(err));
	assert_non_null(t);
	origin_tls_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verified_and_resumed),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_address),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_bad_trust),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
