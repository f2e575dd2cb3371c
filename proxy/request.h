/*
 * request: one request on a client connection, from its first byte to its
 * close line: what was asked, who asked, what was decided and where it went.
 * It writes the request's two log lines: the decision (allow, deny or error)
 * and the close (bytes, duration, outcome).  A kept-alive connection resets
 * it before the next request.
 */
#ifndef EGRESSD_REQUEST_H
#define EGRESSD_REQUEST_H

#include <stdint.h>
#include <time.h>

#include "http.h"
#include "identity.h"
#include "log.h"
#include "policy.h"
#include "reason.h"
#include "resolve.h"

struct conn;
struct config_route;

struct request {
	struct timespec started;
	int begun;  /* a byte of its head has arrived */
	int logged; /* its close line is written */
	/* The head as it arrives: each read's bytes are scanned once, from
	 * where the scan stopped, and moved here out of the input buffer. */
	char *head;
	size_t head_len, head_cap;
	struct http_head_scan scan;
	struct http_request *req; /* parsed head; freed once relaying */
	char method[33];
	/* The request-target's host as sent, kept for logs even when
	 * malformed (see request_note_line). */
	char raw_host[LOG_VALUE_MAX + 1];
	size_t raw_host_len;
	int have_dest;
	int is_connect;
	struct host host;
	uint16_t port;
	char *path;      /* plain HTTP: the origin-form target */
	char *authority; /* plain HTTP: the Host to send */
	struct http_body body;
	int client_close;

	/* Addresses that passed the policy, in the order to try them, and
	 * the rule that admitted each (NULL where report mode waived). */
	struct netaddr addrs[RESOLVE_MAX_ADDRS];
	const struct rule *addr_rules[RESOLVE_MAX_ADDRS];
	size_t naddrs, next_addr;
	/* The rule that governs: the name check's until an address is
	 * chosen, then the one that admitted that address. */
	const struct rule *rule;
	enum reason connect_error;

	struct timespec dns_started, connect_started;
	int reused;      /* on an idle upstream connection from the pool */
	int no_pool;     /* a reused connection failed: connect afresh */
	int in_progress; /* counted in egressd_active_requests */

	/* Who asked, and so which policy applies; NULL until known. */
	const struct identity *identity;
	const struct policy *policy;
	int tunnel_slot; /* holds one of the identity's tunnel slots */

	/* The SNI of the tunnel's ClientHello, once the hello check read it. */
	char sni[256];
	int tunnel_open;   /* the tunnel's 200 is sent */
	int hello_pending; /* the decision line waits for the hello check */

	/* A gateway request: its route, the path the client sent (without
	 * the query), the upstream TLS, and why a handshake failed. */
	const struct config_route *route;
	char *gateway_path;
	const char *tls_version;
	int tls_resumed;
	char detail[160];

	/* A git route's request (gitpkt.h): the repository and service, a
	 * push's command-list parser, and how much of the body it has read. */
	char *git_repo;
	const char *git_service;
	struct gitpkt_push *git_push;
	size_t git_fed;

	/* An answer of the gateway's own in place of the reason table's
	 * (the report-status that refuses a push): status, type, body. */
	int reply_status;
	const char *reply_type;
	char *reply;
	size_t reply_len;

	/* The outcome, for the close line. */
	int status;
	enum reason reason;
	int upstream_known;
	struct netaddr upstream;
	uint64_t bytes_up, bytes_down;
};

/* Start a request afresh (after request_free, or on zeroed memory): its
 * clock starts now; a listener without identify knows its policy. */
void request_init(struct request *r, const struct policy *policy);

/* Free what the request owns; it must be initialised again to be used. */
void request_free(struct request *r);

/* Free the head and its parse, which relaying no longer needs: an idle
 * tunnel should not carry them. */
void request_drop_head(struct request *r);

/*
 * Keep the method and the host of a request line for the log, however
 * malformed: hostile input is exactly what the log must show.  Of the
 * request-target only what names the host is kept (http_target_host): a
 * credential or a query string in it never reaches the log.
 */
void request_note_line(struct request *r, const char *p, size_t len);

/* Give back the identity's tunnel slot, if the request holds one. */
void request_release_slot(struct request *r);

/*
 * The decision line of c's request: allow, deny or error, with the address
 * and the verdict's rule and range when given.  A deny line's mode says how
 * the refusal was applied: "report" (report is 1: the request went on) or
 * "enforce".  Counts the request in the metrics.
 */
void request_log_decision(const struct conn *c, enum reason why,
                          const struct verdict *v, const struct netaddr *addr,
                          int report);

/* Begin a line of event about c's request, with the fields every line of
 * a request carries (conn, client, identity, policy, route, destination,
 * the git repository); the caller adds its own and ends it. */
void request_log_begin(struct log_line *l, const struct conn *c,
                       const char *event);

/* The close line of c's request, once; ends its count as in progress. */
void request_log_close(struct conn *c);

/* Time since t (CLOCK_MONOTONIC), in seconds and in whole milliseconds. */
double request_seconds_since(const struct timespec *t);
long long request_ms_since(const struct timespec *t);

#endif
