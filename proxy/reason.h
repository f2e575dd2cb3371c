/*
 * reason: the one table of outcomes.  Each way a request can end has one
 * entry: HTTP status, RFC 9209 Proxy-Status error type, log reason and the
 * sentence a person (or an agent) reads in the refusal body.  Code refers to
 * the entry; status numbers and reason strings live nowhere else.
 */
#ifndef EGRESSD_REASON_H
#define EGRESSD_REASON_H

enum reason {
	REASON_ALLOWED,
	/* Policy refusals: 403. */
	REASON_HOST_NOT_ALLOWED,
	REASON_PORT_NOT_ALLOWED,
	REASON_METHOD_NOT_ALLOWED,
	REASON_CONNECT_UNCHECKED,
	REASON_IP_LITERAL_NOT_ALLOWED,
	REASON_ADDRESS_PROHIBITED,
	REASON_ADDRESS_NOT_IN_NETWORKS,
	/* Who the client is, and its limits. */
	REASON_AUTH_REQUIRED,
	REASON_AUTH_FAILED,
	REASON_NO_IDENTITY,
	REASON_LIMIT_RATE,
	REASON_LIMIT_TUNNELS,
	REASON_TOO_MANY_CONNECTIONS,
	/* Bad requests. */
	REASON_MALFORMED_REQUEST,
	REASON_MALFORMED_HOST,
	REASON_URI_TOO_LONG,
	REASON_HEADER_TOO_LARGE,
	REASON_BAD_VERSION,
	REASON_HEADER_TIMEOUT,
	REASON_BAD_TARGET,
	REASON_BAD_FRAMING,
	REASON_LOOP_DETECTED,
	/* The hello check, after a CONNECT's 200: the client sees the
	 * tunnel close (after a TLS access_denied alert). */
	REASON_SNI_MISMATCH,
	REASON_SNI_MISSING,
	REASON_NOT_TLS,
	REASON_HELLO_TIMEOUT,
	/* Upstream failures. */
	REASON_DNS_NXDOMAIN,
	REASON_DNS_ERROR,
	REASON_DNS_NO_ADDRESS,
	REASON_DNS_TIMEOUT,
	REASON_CONNECT_REFUSED,
	REASON_CONNECT_TIMEOUT,
	REASON_CONNECT_ERROR,
	REASON_BAD_RESPONSE,
	REASON_RESPONSE_INCOMPLETE,
	REASON_UPSTREAM_TIMEOUT,
	REASON_TLS_CERTIFICATE_ERROR,
	REASON_TLS_ERROR,
	REASON_INTERNAL_ERROR,
	/* The gateway's own refusals: its routes, its tokens, git's rules.
	 * Always enforced, also under a policy in report mode. */
	REASON_BAD_PATH,
	REASON_ROUTE_NOT_FOUND,
	REASON_PATH_NOT_ALLOWED,
	REASON_TOKEN_REQUIRED,
	REASON_TOKEN_FAILED,
	REASON_REPO_NOT_ALLOWED,
	REASON_REF_NOT_ALLOWED,
	REASON_BAD_PKT_LINE,
	/* How an established connection ended. */
	REASON_CLIENT_CLOSED,
	REASON_UPSTREAM_CLOSED,
	REASON_IDLE_TIMEOUT,
	REASON_SHUTDOWN,
	REASON_COMPLETE,
	REASON_LIMIT_BYTES,
	REASON_LIMIT_LIFETIME,
	REASON_COUNT
};

struct reason_info {
	int status;               /* HTTP status; 0 for close-only reasons */
	const char *phrase;       /* HTTP reason phrase */
	const char *proxy_status; /* RFC 9209 error type, or NULL */
	const char *name;         /* log "reason" */
	const char *text;         /* one sentence for the refusal body */
};

/* The table entry for r; never NULL. */
const struct reason_info *reason_get(enum reason r);

/* Is r a refusal (401, 403, 407 or 429: a "deny" rather than an
 * "error")?
 * 1 or 0. */
int reason_is_denial(enum reason r);

/* Is r a refusal by the policy's rules or address guard (403), one that
 * a policy in report mode logs and lets through?  The gateway's refusals
 * are not.  1 or 0. */
int reason_is_policy(enum reason r);

/* Why a request head was refused, for an error of the head's scan or
 * parse: an enum http_status other than HTTP_OK and HTTP_INCOMPLETE (an
 * int, so that this header does not bring http.h's names to files that
 * use libevent's HTTP server). */
enum reason reason_of_head(int http_status);

/* Why a connection to the upstream failed, for its errno. */
enum reason reason_of_connect_error(int err);

#endif
