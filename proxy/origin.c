#include "origin.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

struct origin_tls {
	SSL_CTX *ctx;
	/* The last session an origin gave, and its name: a new connection
	 * to the same name offers it. */
	pthread_mutex_t lock;
	SSL_SESSION *session;
	char session_host[HOST_NAME_MAX_LEN + 1];
};

struct origin_handshake {
	struct bufferevent *bev;
	SSL *ssl;
	origin_done_cb done;
	void *arg;
};

static int ctx_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
make_index(void)
{
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Keep the session a server gave (with TLS 1.3, after the handshake, as
 * the response is read): the next connection to the same name resumes it.
 * A copy: OpenSSL marks the connection's own session not resumable when the
 * connection is freed without a close_notify, as a pooled upstream
 * connection that the origin closed is.  An address has no SNI, and its
 * sessions are not kept. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct origin_tls *t =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_SESSION *copy;

	if (!t || !host || !(copy = SSL_SESSION_dup(sess)))
		return 0;
	pthread_mutex_lock(&t->lock);
	SSL_SESSION_free(t->session);
	t->session = copy;
	snprintf(t->session_host, sizeof(t->session_host), "%s", host);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

struct origin_tls *
origin_tls_new(const char *ca_file, char *err, size_t errlen)
{
	/* ALPN: a length-prefixed list; HTTP/1.1 only, what forward speaks. */
	static const unsigned char alpn[] = "\x08http/1.1";
	struct origin_tls *t = calloc(1, sizeof(*t));
	char buf[256];

	pthread_once(&index_once, make_index);
	if (!t || ctx_index < 0 ||
	    !(t->ctx = SSL_CTX_new(TLS_client_method()))) {
		snprintf(err, errlen, "tls: out of memory");
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_ex_data(t->ctx, ctx_index, t);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT |
	                                           SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(t->ctx, new_session_cb);
	if (SSL_CTX_set_alpn_protos(t->ctx, alpn, sizeof(alpn) - 1) != 0)
		goto ssl_fail;
	if (ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1
	            : SSL_CTX_set_default_verify_paths(t->ctx) != 1)
		goto ssl_fail;
	return t;
ssl_fail:
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "tls: %s: %s", ca_file ? ca_file : "trust store",
	         buf);
	ERR_clear_error();
	origin_tls_free(t);
	return NULL;
}

void
origin_tls_free(struct origin_tls *t)
{
	if (!t)
		return;
	SSL_SESSION_free(t->session);
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The handshake is over: forget it, then say how it ended. */
static void
handshake_end(struct origin_handshake *h, const struct origin_result *r)
{
	origin_done_cb done = h->done;
	void *arg = h->arg;

	free(h);
	done(arg, r);
}

static void
handshake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct origin_handshake *h = arg;
	struct origin_result r = {REASON_ALLOWED, bev, NULL, 0, NULL};
	long verify = SSL_get_verify_result(h->ssl);
	unsigned long e;

	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	if (what & BEV_EVENT_CONNECTED) {
		r.resumed = SSL_session_reused(h->ssl);
		r.version = SSL_get_version(h->ssl);
		handshake_end(h, &r);
		return;
	}
	r.bev = NULL;
	if (verify != X509_V_OK) {
		r.reason = REASON_TLS_CERTIFICATE_ERROR;
		r.detail = X509_verify_cert_error_string(verify);
	} else {
		e = bufferevent_get_openssl_error(bev);
		r.reason = REASON_TLS_ERROR;
		r.detail = e ? ERR_reason_error_string(e) : NULL;
		if (!r.detail)
			r.detail = "the connection ended during the handshake";
	}
	/* The detail is OpenSSL's static text: valid after the free. */
	bufferevent_free(bev);
	ERR_clear_error();
	handshake_end(h, &r);
}

struct origin_handshake *
origin_tls_start(struct origin_tls *t, struct bufferevent *tcp,
                 const char *host, origin_done_cb done, void *arg)
{
	struct origin_handshake *h = calloc(1, sizeof(*h));
	unsigned char ip[16];
	int literal = inet_pton(AF_INET, host, ip) == 1 ||
	              inet_pton(AF_INET6, host, ip) == 1;
	int ok;

	if (!h || !(h->ssl = SSL_new(t->ctx))) {
		free(h);
		return NULL;
	}
	h->done = done;
	h->arg = arg;
	/* RFC 6066 §3: no SNI for an address; the certificate must name
	 * the address instead. */
	ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(h->ssl),
	                                             host) == 1
	             : SSL_set_tlsext_host_name(h->ssl, host) == 1 &&
	                   SSL_set1_host(h->ssl, host) == 1;
	pthread_mutex_lock(&t->lock);
	if (ok && !literal && t->session && strcmp(t->session_host, host) == 0)
		SSL_set_session(h->ssl, t->session);
	pthread_mutex_unlock(&t->lock);
	if (ok)
		h->bev = bufferevent_openssl_filter_new(
		    bufferevent_get_base(tcp), tcp, h->ssl,
		    BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!h->bev) {
		SSL_free(h->ssl);
		free(h);
		return NULL;
	}
	bufferevent_setcb(h->bev, NULL, NULL, handshake_event_cb, h);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	return h;
}

void
origin_tls_cancel(struct origin_handshake *h)
{
	if (!h)
		return;
	bufferevent_free(h->bev);
	free(h);
}
