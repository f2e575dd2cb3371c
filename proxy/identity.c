#include "identity.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- the registry ----------------------------------------------------------
 */

struct registry_entry {
	char *name;
	struct identity_state state;
	struct registry_entry *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registry_entry *registry;

struct identity_state *
identity_state_for(const char *name)
{
	struct registry_entry *e;

	pthread_mutex_lock(&registry_lock);
	for (e = registry; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			break;
	if (!e && (e = calloc(1, sizeof(*e)))) {
		if (!(e->name = strdup(name))) {
			free(e);
			e = NULL;
		} else {
			e->next = registry;
			registry = e;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return e ? &e->state : NULL;
}

/* --- credentials -----------------------------------------------------------
 */

static void
digest(const unsigned char *salt, const char *secret, size_t len,
       unsigned char out[IDENTITY_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;

	memset(out, 0, IDENTITY_HASH_LEN);
	if (!ctx)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, salt, IDENTITY_SALT_LEN) == 1 &&
	    EVP_DigestUpdate(ctx, secret, len) == 1)
		EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}

static int
matches(const struct credential *c, const char *secret, size_t len)
{
	unsigned char h[IDENTITY_HASH_LEN];

	digest(c->salt, secret, len, h);
	return CRYPTO_memcmp(h, c->hash, IDENTITY_HASH_LEN) == 0;
}

static int
unhex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;

		for (int j = 0; j < 2; j++) {
			char ch = s[2 * i + (size_t)j];

			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* RFC 4648 base64, strict: padding only at the end. */
static long
b64decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0, pad = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *p;

		if (in[i] == '=') {
			if (++pad > 2 || i < len - 2)
				return -1;
			continue;
		}
		if (pad || !(p = strchr(alphabet, in[i])) || !in[i])
			return -1;
		acc = (acc << 6) | (unsigned)(p - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outlen)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)o;
}

const struct identity *
identity_by_credentials(const struct identity *ids, size_t n, const char *value,
                        size_t len)
{
	unsigned char decoded[512];
	const char *secret;
	size_t slen;

	/* RFC 9110 §11.6.2: auth-scheme 1*SP token68; schemes are
	 * case-insensitive. */
	if (len > 6 && strncasecmp(value, "Basic ", 6) == 0) {
		const char *colon;
		long dl;

		value += 6;
		len -= 6;
		while (len && *value == ' ')
			value++, len--;
		if ((dl = b64decode(value, len, decoded, sizeof(decoded))) < 0)
			return NULL;
		colon = memchr(decoded, ':', (size_t)dl);
		if (!colon)
			return NULL;
		secret = colon + 1;
		slen = (size_t)dl - (size_t)(secret - (const char *)decoded);
		for (size_t i = 0; i < n; i++) {
			const struct identity *id = &ids[i];
			size_t ulen = (size_t)(colon - (const char *)decoded);

			if (strlen(id->name) != ulen ||
			    memcmp(id->name, decoded, ulen) != 0)
				continue;
			for (size_t j = 0; j < id->ncreds; j++)
				if (id->creds[j].kind == CREDENTIAL_BASIC &&
				    matches(&id->creds[j], secret, slen))
					return id;
		}
		return NULL;
	}
	if (len > 7 && strncasecmp(value, "Bearer ", 7) == 0) {
		secret = value + 7;
		slen = len - 7;
		while (slen && *secret == ' ')
			secret++, slen--;
		return identity_by_token(ids, n, secret, slen);
	}
	return NULL;
}

int
identity_gateway_token(const char *api_key, size_t api_key_len,
                       const char *authz, size_t authz_len, char *buf,
                       size_t size)
{
	const char *tok = NULL, *colon;
	size_t len = 0;
	long dl;

	if (api_key) {
		tok = api_key;
		len = api_key_len;
	} else if (authz && authz_len > 7 &&
	           strncasecmp(authz, "Bearer ", 7) == 0) {
		tok = authz + 7;
		len = authz_len - 7;
	} else if (authz && authz_len > 6 &&
	           strncasecmp(authz, "Basic ", 6) == 0) {
		tok = authz + 6;
		len = authz_len - 6;
		while (len && *tok == ' ')
			tok++, len--;
		if ((dl = b64decode(tok, len, (unsigned char *)buf, size)) <
		        0 ||
		    !(colon = memchr(buf, ':', (size_t)dl)))
			return -1;
		len = (size_t)dl - (size_t)(colon + 1 - buf);
		memmove(buf, colon + 1, len);
		return len ? (int)len : -1;
	} else if (authz) {
		return -1;
	}
	if (!tok)
		return 0;
	while (len && *tok == ' ')
		tok++, len--;
	if (len == 0 || len > size)
		return -1;
	memcpy(buf, tok, len);
	return (int)len;
}

const struct identity *
identity_by_token(const struct identity *ids, size_t n, const char *token,
                  size_t len)
{
	const struct identity *found = NULL;

	if (len == 0)
		return NULL;
	/* Every bearer credential is tried, so the time taken does not tell
	 * which one matched. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ids[i].ncreds; j++)
			if (ids[i].creds[j].kind == CREDENTIAL_BEARER &&
			    matches(&ids[i].creds[j], token, len) && !found)
				found = &ids[i];
	return found;
}

const struct identity *
identity_by_source(const struct identity *ids, size_t n,
                   const struct netaddr *a)
{
	for (size_t i = 0; i < n; i++)
		if (netset_find(&ids[i].sources, a))
			return &ids[i];
	return NULL;
}

const struct identity *
identity_by_tls_name(const struct identity *ids, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < ids[i].ntls_names; j++)
			if (strcasecmp(ids[i].tls_names[j], name) == 0)
				return &ids[i];
	return NULL;
}

/* --- limits ----------------------------------------------------------------
 */

enum reason
identity_admit_request(const struct identity *id, long long now_ns)
{
	const struct identity_limits *l = &id->limits;
	long long interval, tolerance, tat, next;

	if (l->per_second <= 0 || !id->state)
		return REASON_ALLOWED;
	/* GCRA: one atomic word, no lock; equivalent to a token bucket of
	 * `burst` tokens refilled at per_second. */
	interval = (long long)(1e9 / l->per_second);
	tolerance = interval * (l->burst > 0 ? l->burst : 1);
	tat = atomic_load_explicit(&id->state->tat_ns, memory_order_relaxed);
	do {
		long long base = tat > now_ns ? tat : now_ns;

		next = base + interval;
		if (next - now_ns > tolerance)
			return REASON_LIMIT_RATE;
	} while (!atomic_compare_exchange_weak_explicit(
	    &id->state->tat_ns, &tat, next, memory_order_relaxed,
	    memory_order_relaxed));
	return REASON_ALLOWED;
}

enum reason
identity_take_tunnel(const struct identity *id)
{
	if (!id->state)
		return REASON_ALLOWED;
	if (atomic_fetch_add(&id->state->tunnels, 1) + 1 >
	        id->limits.max_tunnels &&
	    id->limits.max_tunnels > 0) {
		atomic_fetch_sub(&id->state->tunnels, 1);
		return REASON_LIMIT_TUNNELS;
	}
	return REASON_ALLOWED;
}

void
identity_release_tunnel(const struct identity *id)
{
	if (id->state)
		atomic_fetch_sub(&id->state->tunnels, 1);
}

/* --- the credentials file ----------------------------------------------------
 */

int
identity_parse_credential(char *line, char **name, struct credential *cred,
                          const char **why)
{
	char *fields[5];
	int n = 0;
	char *save = NULL, *tok;

	line[strcspn(line, "\r\n")] = '\0';
	while (isspace((unsigned char)*line))
		line++;
	if (*line == '\0' || *line == '#')
		return 1;
	for (tok = strtok_r(line, " \t", &save); tok && n < 5;
	     tok = strtok_r(NULL, " \t", &save))
		fields[n++] = tok;
	if (n != 4) {
		*why = "expected: NAME basic|bearer SALT HASH (from egressd "
		       "--hash-secret)";
		return -1;
	}
	if (strcmp(fields[1], "basic") == 0)
		cred->kind = CREDENTIAL_BASIC;
	else if (strcmp(fields[1], "bearer") == 0)
		cred->kind = CREDENTIAL_BEARER;
	else {
		*why = "the kind must be basic or bearer";
		return -1;
	}
	if (unhex(fields[2], cred->salt, IDENTITY_SALT_LEN) < 0) {
		*why = "the salt must be 32 lowercase hex digits";
		return -1;
	}
	if (unhex(fields[3], cred->hash, IDENTITY_HASH_LEN) < 0) {
		*why = "the hash must be 64 lowercase hex digits";
		return -1;
	}
	*name = fields[0];
	return 0;
}

int
identity_format_credential(const char *name, enum credential_kind kind,
                           const char *secret, size_t len, char *out,
                           size_t outlen)
{
	struct credential c;
	size_t off;
	int n;

	if (RAND_bytes(c.salt, IDENTITY_SALT_LEN) != 1)
		return -1;
	digest(c.salt, secret, len, c.hash);
	n = snprintf(out, outlen, "%s %s ", name,
	             kind == CREDENTIAL_BASIC ? "basic" : "bearer");
	if (n < 0 ||
	    (size_t)n + 2 * (IDENTITY_SALT_LEN + IDENTITY_HASH_LEN) + 2 >
	        outlen)
		return -1;
	off = (size_t)n;
	for (size_t i = 0; i < IDENTITY_SALT_LEN; i++, off += 2)
		snprintf(out + off, 3, "%02x", c.salt[i]);
	out[off++] = ' ';
	for (size_t i = 0; i < IDENTITY_HASH_LEN; i++, off += 2)
		snprintf(out + off, 3, "%02x", c.hash[i]);
	out[off] = '\0';
	return 0;
}

void
identity_free(struct identity *id)
{
	free(id->name);
	netset_free(&id->sources);
	for (size_t i = 0; i < id->ntls_names; i++)
		free(id->tls_names[i]);
	free(id->tls_names);
	free(id->creds);
	memset(id, 0, sizeof(*id));
}

enum reason
identity_identify(const enum identify_method *order, size_t n,
                  const struct identity *ids, size_t nids,
                  const struct identity_claims *claims,
                  const struct identity **id)
{
	const struct identity *found = NULL, *by_auth = NULL, *by_token = NULL;
	int takes_auth = 0, takes_token = 0;

	*id = NULL;
	if (n == 0)
		return REASON_ALLOWED;
	for (size_t i = 0; i < n; i++) {
		takes_auth |= order[i] == IDENTIFY_PROXY_AUTH;
		takes_token |= order[i] == IDENTIFY_TOKEN;
	}
	if (takes_auth && claims->credentials &&
	    !(by_auth = identity_by_credentials(ids, nids, claims->credentials,
	                                        claims->credentials_len)))
		return REASON_AUTH_FAILED;
	if (takes_token && claims->token &&
	    !(by_token = identity_by_token(ids, nids, claims->token,
	                                   claims->token_len)))
		return REASON_TOKEN_FAILED;
	for (size_t i = 0; i < n && !found; i++) {
		switch (order[i]) {
		case IDENTIFY_PROXY_AUTH:
			found = by_auth;
			break;
		case IDENTIFY_TOKEN:
			found = by_token;
			break;
		case IDENTIFY_SOURCE:
			found = identity_by_source(ids, nids, claims->source);
			break;
		case IDENTIFY_TLS_CERT:
			found = claims->by_cert ? claims->by_cert(claims->arg)
			                        : NULL;
			break;
		}
	}
	if (!found)
		return takes_auth    ? REASON_AUTH_REQUIRED
		       : takes_token ? REASON_TOKEN_REQUIRED
		                     : REASON_NO_IDENTITY;
	*id = found;
	return REASON_ALLOWED;
}
