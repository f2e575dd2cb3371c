#include "tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_server {
	SSL_CTX *ctx;
};

static void
ssl_error(char *err, size_t errlen, const char *what, const char *path)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, path, buf);
	ERR_clear_error();
}

/*
 * A server that verifies client certificates resumes only sessions made in
 * its own session id context, and OpenSSL refuses every resumption (an
 * internal_error alert) while none is set.  The context names the listener
 * and its client CAs: a session belongs to the listener, and to the trust,
 * that verified its certificate.
 */
static int
session_id_context(SSL_CTX *ctx, const char *address, unsigned port)
{
	STACK_OF(X509_OBJECT) *objs =
	    X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sum[EVP_MAX_MD_SIZE], cert[EVP_MAX_MD_SIZE];
	unsigned int sumlen = 0, certlen;
	char where[128];
	int ok;

	snprintf(where, sizeof(where), "egressd listener %s port %u", address,
	         port);
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, where, strlen(where) + 1);
	for (int i = 0; ok && i < sk_X509_OBJECT_num(objs); i++) {
		X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		ok = !ca || (X509_digest(ca, EVP_sha256(), cert, &certlen) &&
		             EVP_DigestUpdate(md, cert, certlen));
	}
	ok = ok && EVP_DigestFinal_ex(md, sum, &sumlen) &&
	     SSL_CTX_set_session_id_context(ctx, sum, sumlen) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

struct tls_server *
tls_server_new(const char *cert, const char *key, const char *client_ca,
               const char *address, unsigned port, char *err, size_t errlen)
{
	struct tls_server *t = calloc(1, sizeof(*t));

	if (!t || !(t->ctx = SSL_CTX_new(TLS_server_method()))) {
		snprintf(err, errlen, "tls: out of memory");
		free(t);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
	/* Sessions resume by ticket only (RFC 5077, RFC 8446 §4.6.1): the
	 * ticket carries the session, its certificate too, to the client.
	 * A session cache here would be useless: OpenSSL drops a session
	 * whose connection is freed without a close_notify sent, and egressd
	 * sends none. */
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
		ssl_error(err, errlen, "tls: cert", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		ssl_error(err, errlen, "tls: key", key);
		goto fail;
	}
	if (client_ca) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);

		if (SSL_CTX_load_verify_locations(t->ctx, client_ca, NULL) !=
		        1 ||
		    !names) {
			ssl_error(err, errlen, "tls: client_ca", client_ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(t->ctx, names);
		/* Asked for, checked when sent, not required: a client
		 * without one gets an HTTP answer that says why. */
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_verify_depth(t->ctx, 4);
	}
	if (session_id_context(t->ctx, address, port) < 0) {
		ssl_error(err, errlen, "tls: session id context for", address);
		goto fail;
	}
	return t;
fail:
	tls_server_free(t);
	return NULL;
}

SSL *
tls_server_ssl(struct tls_server *t)
{
	return SSL_new(t->ctx);
}

void
tls_server_free(struct tls_server *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int
tls_peer_names(SSL *ssl, int (*fn)(const char *name, void *arg), void *arg)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);
	int rc = 0;

	if (peer && SSL_get_verify_result(ssl) == X509_V_OK)
		rc = tls_cert_names(peer, fn, arg);
	X509_free(peer);
	return rc;
}

int
tls_cert_names(X509 *cert, int (*fn)(const char *name, void *arg), void *arg)
{
	GENERAL_NAMES *sans;
	int rc = 0;

	/* RFC 6125 §6.4.4 ignores the CN beside DNS or URI SANs; we ignore
	 * it beside any subjectAltName (IP and e-mail SANs too, and one that
	 * does not parse): a CA that writes SANs names the holder there. */
	if (X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) < 0) {
		char cn[256];
		int n =
		    X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
		                              NID_commonName, cn, sizeof(cn));

		if (n > 0 && (size_t)n < sizeof(cn) && strlen(cn) == (size_t)n)
			rc = fn(cn, arg);
		return rc;
	}
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int type = GEN_DNS; sans && !rc; type = GEN_URI) {
		for (int i = 0; i < sk_GENERAL_NAME_num(sans) && !rc; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
			const ASN1_IA5STRING *s = g->d.ia5;
			char name[256];

			if (g->type != type || !s ||
			    (size_t)s->length >= sizeof(name) ||
			    memchr(s->data, '\0', (size_t)s->length))
				continue;
			memcpy(name, s->data, (size_t)s->length);
			name[s->length] = '\0';
			rc = fn(name, arg);
		}
		if (type == GEN_URI)
			break;
	}
	GENERAL_NAMES_free(sans);
	return rc;
}
