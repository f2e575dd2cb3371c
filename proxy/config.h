/*
 * config: a libconfig file turned into an immutable, validated snapshot.
 *
 * A snapshot is reference-counted: each connection holds the one it started
 * with, so a reload can build a new snapshot beside the old one and swap it
 * in for new connections without touching connections in flight.  Errors
 * name the file and line.
 */
#ifndef EGRESSD_CONFIG_H
#define EGRESSD_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "policy.h"
#include "route.h"

struct tls_server;
struct origin_tls;
struct secret;

struct config_listener {
	char *address;
	uint16_t port;
	/* Without identify: every client gets this policy (points into the
	 * same snapshot).  With it: NULL, and the identity decides. */
	const struct policy *policy;
	enum identify_method identify[4]; /* tried in this order */
	size_t nidentify;
	struct tls_server *tls; /* a TLS listener's context, else NULL */
	int gateway;            /* a gateway (reverse-proxy) listener */
};

/* How a route's credential is written into its header. */
enum inject_scheme {
	INJECT_PLAIN,  /* the secret as it is: x-api-key: SECRET */
	INJECT_BEARER, /* Authorization: Bearer SECRET */
	INJECT_BASIC,  /* Authorization: Basic base64(USER:SECRET) */
};

/* A git server's route (docs/config.md, "git"): the repositories the
 * agent may fetch and push, and the refs a push may change.  Patterns as
 * gitpkt.h checks them.  on = 0: the route has no git rules. */
struct route_git {
	int on;
	char **fetch; /* repository patterns: clone, fetch, ls-remote */
	size_t nfetch;
	char **push; /* repository patterns: push */
	size_t npush;
	char **refs; /* ref patterns a push may change */
	size_t nrefs;
	int allow_delete; /* a push may delete a ref it may change */
	int allow_tags;   /* a push may create tags */
};

/* A gateway route (docs/config.md, "Gateway"): a path prefix of the
 * gateway listeners, the https:// origin it forwards to, what it allows
 * there, and the credential egressd adds on the way. */
struct config_route {
	char *name;
	int line;
	struct route match; /* prefix, origin, method and path rules */
	/* One rule for the origin's name and port, with the route's
	 * networks: the address guard the proxy's rules get, applied to
	 * what the origin's name resolves to. */
	struct policy guard;
	char *ca_file;       /* NULL: the system store */
	char *inject_header; /* lower-case field name; NULL: none added */
	enum inject_scheme inject_scheme;
	char *inject_user; /* INJECT_BASIC */
	char *secret_path;
	struct route_git git;
	int metrics_slot; /* see metrics_route_slot */
	/* Opened by the daemon (gateway_open), not by config_load: */
	struct origin_tls *tls;
	struct secret *secret;
};

struct config_resolver {
	char **servers; /* "IP", "IP:PORT", "[IPv6]:PORT"; none: resolv.conf */
	size_t nservers;
	int timeout_ms;
	int tries;
	int cache_entries;
	int max_ttl_s;
};

struct config_limits {
	int header_timeout_ms;
	int connect_timeout_ms;
	int idle_timeout_ms;
	int keepalive_timeout_ms;
	int drain_timeout_ms;
	int secret_refresh_ms; /* how often the gateway's secret files are
	                        * looked at for a change */
	size_t max_request_line;
	size_t max_header_bytes;
	size_t max_header_fields;
	size_t buffer_bytes;
	int max_connections;            /* client connections, all workers */
	int max_connections_per_client; /* from one address; 0: no cap */
};

/* What egressd gives up after start-up (sandbox.c does it). */
struct config_sandbox {
	char *user;  /* started as root: serve as this user; NULL: none */
	int seccomp; /* install the system-call filter; default 1 */
};

struct config {
	atomic_int refs;
	char *path;
	struct config_listener *listeners;
	size_t nlisteners;
	struct config_resolver resolver;
	char *log_path;      /* "-" for stdout */
	int workers;         /* threads; 0: one per online CPU */
	char *admin_address; /* NULL: no admin listener */
	uint16_t admin_port;
	struct config_limits limits;
	struct policy *policies;
	size_t npolicies;
	struct identity *identities;
	size_t nidentities;
	char *credentials_path;
	struct config_sandbox sandbox;
	struct config_route *routes;
	size_t nroutes;
	const struct route **route_match; /* &routes[i].match, for route_find */
	/* Set by whoever opened the routes' files and contexts; called
	 * before the snapshot is freed. */
	void (*close_routes)(struct config *c);
};

/*
 * Read and validate a file.  Returns a snapshot with one reference, or NULL
 * with "FILE:LINE: problem" (or "FILE: problem") written to err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);

/*
 * The same for len bytes of text held in memory (they need no NUL; one
 * inside them is an error).  name stands for the file in messages
 * ("NAME:LINE: problem"), in the snapshot's path, and as the directory that
 * relative file names (credentials, certificates) are taken from.
 */
struct config *config_load_string(const char *text, size_t len,
                                  const char *name, char *err, size_t errlen);

/* Take another reference; returns c. */
struct config *config_ref(struct config *c);

/* Drop a reference; the last one frees the snapshot.  NULL is ignored. */
void config_unref(struct config *c);

/* The route of this name, or NULL. */
const struct config_route *config_route(const struct config *c,
                                        const char *name);

/* The policy of this name, or NULL. */
const struct policy *config_policy(const struct config *c, const char *name);

/*
 * Do two snapshots agree on what only a restart can change: the listeners
 * (address, port, in order), the admin listener and the worker count?
 * A reload may change policies, not sockets or threads.  1 or 0.
 */
int config_same_listeners(const struct config *a, const struct config *b);

/* Do two snapshots agree on the sandbox settings (applied once, at
 * start-up)?  1 or 0. */
int config_same_sandbox(const struct config *a, const struct config *b);

#endif
