#include "tls.h"

#include <openssl/err.h>
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

struct tls_server *
tls_server_new(const char *cert, const char *key, const char *client_ca,
               char *err, size_t errlen)
{
	struct tls_server *t = calloc(1, sizeof(*t));

	if (!t || !(t->ctx = SSL_CTX_new(TLS_server_method()))) {
		snprintf(err, errlen, "tls: out of memory");
		free(t);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
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
	GENERAL_NAMES *sans;
	int rc = 0;

	if (!peer)
		return 0;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		goto out;
	sans = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
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
	if (!rc) {
		char cn[256];
		int n =
		    X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		                              NID_commonName, cn, sizeof(cn));

		if (n > 0 && (size_t)n < sizeof(cn) && strlen(cn) == (size_t)n)
			rc = fn(cn, arg);
	}
out:
	X509_free(peer);
	return rc;
}
