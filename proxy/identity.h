/*
 * identity: who a client is, and what it may use.  No I/O.
 *
 * An identity names a policy and carries the ways a client can prove it is
 * that identity: source networks, TLS client certificate names, and
 * credentials (Basic or Bearer over Proxy-Authorization) from a file of
 * salted SHA-256 hashes.  Its limits' counters live in a process-wide
 * registry keyed by name, so they survive reloads and are shared by all
 * workers without a lock (atomics only).
 */
#ifndef EGRESSD_IDENTITY_H
#define EGRESSD_IDENTITY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "netset.h"
#include "reason.h"

#define IDENTITY_SALT_LEN 16
#define IDENTITY_HASH_LEN 32

enum credential_kind {
	CREDENTIAL_BASIC,  /* user = identity name, password */
	CREDENTIAL_BEARER, /* a token */
};

struct credential {
	enum credential_kind kind;
	unsigned char salt[IDENTITY_SALT_LEN];
	unsigned char hash[IDENTITY_HASH_LEN]; /* SHA-256(salt || secret) */
};

struct identity_limits {
	int max_tunnels;           /* concurrent; 0: no limit */
	double per_second;         /* new requests; 0: no limit */
	int burst;                 /* requests above the rate allowed at once */
	uint64_t max_tunnel_bytes; /* both directions; 0: no limit */
	int max_tunnel_ms;         /* 0: no limit */
};

/* Shared across workers and reloads. */
struct identity_state {
	atomic_int tunnels;
	atomic_llong tat_ns; /* GCRA: theoretical arrival time */
};

struct identity {
	char *name;
	int line;
	const struct policy *policy;
	struct netset sources;
	char **tls_names;
	size_t ntls_names;
	struct credential *creds;
	size_t ncreds;
	struct identity_limits limits;
	struct identity_state *state;
};

/* How a listener tells who a client is (config key identify). */
enum identify_method {
	IDENTIFY_PROXY_AUTH, /* Proxy-Authorization: Basic or Bearer */
	IDENTIFY_SOURCE,     /* the client's address */
	IDENTIFY_TLS_CERT,   /* the client's TLS certificate (TLS listener) */
	IDENTIFY_TOKEN,      /* a gateway token where the client puts its API
	                      * key (gateway listener) */
};

/* What a client presented, for identity_identify. */
struct identity_claims {
	/* The Proxy-Authorization value, or NULL when none was sent. */
	const char *credentials;
	size_t credentials_len;
	/* The gateway token (gateway_token finds it), or NULL. */
	const char *token;
	size_t token_len;
	const struct netaddr *source;
	/* The identity a verified client certificate names, or NULL; asked
	 * only when the order reaches IDENTIFY_TLS_CERT. */
	const struct identity *(*by_cert)(void *arg);
	void *arg;
};

/*
 * Who is asking?  The first of the n methods, in their order, that names an
 * identity among ids decides.  Credentials, when sent and the order takes
 * them, are checked first whatever the order: wrong ones are refused
 * (REASON_AUTH_FAILED), never passed over for another method; so is a
 * gateway token (REASON_TOKEN_FAILED).  Sets *id (NULL when n is 0: the
 * listener has no identities) and returns REASON_ALLOWED, or why not:
 * REASON_AUTH_REQUIRED when the order takes credentials and none named
 * anyone, REASON_TOKEN_REQUIRED when it takes a token, else
 * REASON_NO_IDENTITY.
 */
enum reason identity_identify(const enum identify_method *order, size_t n,
                              const struct identity *ids, size_t nids,
                              const struct identity_claims *claims,
                              const struct identity **id);

/* The registry's state for a name, created on first use (config load).
 * NULL when out of memory. */
struct identity_state *identity_state_for(const char *name);

/*
 * Parse a Proxy-Authorization value ("Basic base64", "Bearer token") and
 * find the identity whose credential it is among n identities.  Returns the
 * identity, or NULL.  Comparisons are constant-time per credential.
 */
const struct identity *identity_by_credentials(const struct identity *ids,
                                               size_t n, const char *value,
                                               size_t len);

/* The identity one of whose bearer credentials is this token (a gateway
 * token: the same lines of the credentials file), or NULL.  Every bearer
 * credential is compared, each in constant time. */
const struct identity *identity_by_token(const struct identity *ids, size_t n,
                                         const char *token, size_t len);

/*
 * The gateway token a client sent where its SDK puts the API key: the
 * x-api-key value (api_key, or NULL), else Authorization's Bearer token,
 * else the password of its Basic credentials (git sends "user:token";
 * the user is not looked at).  Copied into buf.  Its length; 0 when
 * neither field was sent; -1 when the one sent holds no token (another
 * scheme, bad base64, an empty token) or it does not fit.
 */
int identity_gateway_token(const char *api_key, size_t api_key_len,
                           const char *authz, size_t authz_len, char *buf,
                           size_t size);

/* The first identity whose sources contain the address, or NULL. */
const struct identity *identity_by_source(const struct identity *ids, size_t n,
                                          const struct netaddr *a);

/* The first identity that lists this TLS name (case-insensitive), or NULL. */
const struct identity *identity_by_tls_name(const struct identity *ids,
                                            size_t n, const char *name);

/*
 * Admit a new request under the identity's limits at time now_ns
 * (CLOCK_MONOTONIC).  REASON_ALLOWED, or REASON_LIMIT_RATE.
 */
enum reason identity_admit_request(const struct identity *id, long long now_ns);

/* Take a tunnel slot: REASON_ALLOWED or REASON_LIMIT_TUNNELS.  Every
 * REASON_ALLOWED must be matched by identity_release_tunnel. */
enum reason identity_take_tunnel(const struct identity *id);
void identity_release_tunnel(const struct identity *id);

/*
 * Parse one credentials-file line "NAME basic|bearer SALTHEX HASHEX".
 * Returns 0 and fills *name (pointing into line, NUL-terminated in place)
 * and *cred, or -1 with a static description in *why.  Blank lines and
 * '#' comments return 1.
 */
int identity_parse_credential(char *line, char **name, struct credential *cred,
                              const char **why);

/* Write the credentials-file line for a secret, with a fresh random salt,
 * into out (at least 160 bytes).  0 or -1. */
int identity_format_credential(const char *name, enum credential_kind kind,
                               const char *secret, size_t len, char *out,
                               size_t outlen);

void identity_free(struct identity *id);

#endif
