#include "reason.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>

#include "http.h"

#define DENIED        "http_request_denied"
#define IP_PROHIBITED "destination_ip_prohibited"
#define REQUEST_ERROR "http_request_error"

static const struct reason_info reasons[REASON_COUNT] = {
    [REASON_ALLOWED] = {200, "Connection established", NULL, "allowed",
                        "The request was allowed."},
    [REASON_HOST_NOT_ALLOWED] = {403, "Forbidden", DENIED, "host_not_allowed",
                                 "No rule of this policy allows this host."},
    [REASON_PORT_NOT_ALLOWED] = {403, "Forbidden", DENIED, "port_not_allowed",
                                 "A rule names this host, but not this port."},
    [REASON_METHOD_NOT_ALLOWED] =
        {403, "Forbidden", DENIED, "method_not_allowed",
         "A rule names this host and port, but not this method."},
    [REASON_CONNECT_UNCHECKED] =
        {403, "Forbidden", DENIED, "connect_unchecked",
         "The rule that names this host and port allows a CONNECT tunnel "
         "only where egressd checks the TLS hello, and does not here. "
         "Send plain HTTP through the proxy (an http:// URL: egressd sets "
         "the Host), or ask the operator to list CONNECT in the rule's "
         "methods."},
    [REASON_IP_LITERAL_NOT_ALLOWED] =
        {403, "Forbidden", IP_PROHIBITED, "ip_literal_not_allowed",
         "IP-address destinations are allowed only inside the networks "
         "a rule lists; this one is not."},
    [REASON_ADDRESS_PROHIBITED] =
        {403, "Forbidden", IP_PROHIBITED, "address_prohibited",
         "The name resolved to a private or otherwise special-purpose "
         "address, which no rule allows for it."},
    [REASON_ADDRESS_NOT_IN_NETWORKS] =
        {403, "Forbidden", IP_PROHIBITED, "address_not_in_networks",
         "The name resolved outside the networks its rule pins it to."},
    [REASON_AUTH_REQUIRED] = {407, "Proxy Authentication Required", DENIED,
                              "auth_required",
                              "This proxy needs credentials "
                              "(Proxy-Authorization)."},
    [REASON_AUTH_FAILED] = {407, "Proxy Authentication Required", DENIED,
                            "auth_failed",
                            "The proxy credentials were not accepted."},
    [REASON_NO_IDENTITY] = {403, "Forbidden", DENIED, "no_identity",
                            "This client matches no identity, so no "
                            "policy allows it anything."},
    [REASON_LIMIT_RATE] = {429, "Too Many Requests", "connection_limit_reached",
                           "limit_rate",
                           "This client is sending requests faster than "
                           "its limit."},
    [REASON_LIMIT_TUNNELS] = {429, "Too Many Requests",
                              "connection_limit_reached", "limit_tunnels",
                              "This client has as many connections open "
                              "as its limit allows."},
    [REASON_TOO_MANY_CONNECTIONS] = {503, "Service Unavailable",
                                     "connection_limit_reached",
                                     "too_many_connections",
                                     "The proxy, or this client, has as "
                                     "many connections open as allowed."},
    [REASON_MALFORMED_REQUEST] = {400, "Bad Request", REQUEST_ERROR,
                                  "malformed_request",
                                  "The request is not valid HTTP/1.1."},
    [REASON_MALFORMED_HOST] =
        {400, "Bad Request", REQUEST_ERROR, "malformed_host",
         "The destination is not a valid host name or IP address."},
    [REASON_URI_TOO_LONG] = {414, "URI Too Long", REQUEST_ERROR, "uri_too_long",
                             "The request line is too long."},
    [REASON_HEADER_TOO_LARGE] = {431, "Request Header Fields Too Large",
                                 REQUEST_ERROR, "header_too_large",
                                 "The request header section is too large."},
    [REASON_BAD_VERSION] = {505, "HTTP Version Not Supported", REQUEST_ERROR,
                            "bad_version",
                            "Only HTTP/1.0 and HTTP/1.1 are supported."},
    [REASON_HEADER_TIMEOUT] = {408, "Request Timeout", REQUEST_ERROR,
                               "header_timeout",
                               "The request head did not arrive in time."},
    [REASON_BAD_TARGET] = {400, "Bad Request", REQUEST_ERROR, "bad_target",
                           "The request-target must be host:port for "
                           "CONNECT, or an absolute http:// URL."},
    [REASON_BAD_FRAMING] = {400, "Bad Request", REQUEST_ERROR, "bad_framing",
                            "The request's Content-Length or "
                            "Transfer-Encoding is invalid or ambiguous."},
    [REASON_LOOP_DETECTED] = {508, "Loop Detected", "proxy_loop_detected",
                              "loop_detected",
                              "The request has already passed through "
                              "egressd."},
    [REASON_SNI_MISMATCH] = {403, "Forbidden", DENIED, "sni_mismatch",
                             "The TLS ClientHello names a server other "
                             "than the CONNECT host."},
    [REASON_SNI_MISSING] = {403, "Forbidden", DENIED, "sni_missing",
                            "The TLS ClientHello names no server (SNI), "
                            "which this rule requires."},
    [REASON_NOT_TLS] = {403, "Forbidden", "tls_protocol_error", "not_tls",
                        "The tunnel's first bytes are not a valid TLS "
                        "ClientHello, which this rule requires."},
    [REASON_HELLO_TIMEOUT] = {403, "Forbidden", "tls_protocol_error",
                              "hello_timeout",
                              "The TLS ClientHello did not arrive in "
                              "time."},
    [REASON_DNS_NXDOMAIN] = {502, "Bad Gateway", "dns_error", "dns_nxdomain",
                             "The name does not exist."},
    [REASON_DNS_ERROR] = {502, "Bad Gateway", "dns_error", "dns_error",
                          "The name could not be resolved."},
    [REASON_DNS_NO_ADDRESS] = {502, "Bad Gateway", "dns_error",
                               "dns_no_address",
                               "The name has no IPv4 or IPv6 address."},
    [REASON_DNS_TIMEOUT] = {504, "Gateway Timeout", "dns_timeout",
                            "dns_timeout",
                            "The DNS server did not answer in time."},
    [REASON_CONNECT_REFUSED] = {502, "Bad Gateway", "connection_refused",
                                "connect_refused",
                                "The destination refused the connection."},
    [REASON_CONNECT_TIMEOUT] = {504, "Gateway Timeout", "connection_timeout",
                                "connect_timeout",
                                "The destination did not answer in time."},
    [REASON_CONNECT_ERROR] = {502, "Bad Gateway", "destination_unavailable",
                              "connect_error",
                              "The destination could not be reached."},
    [REASON_BAD_RESPONSE] = {502, "Bad Gateway", "http_protocol_error",
                             "bad_response",
                             "The destination sent an invalid HTTP "
                             "response."},
    [REASON_RESPONSE_INCOMPLETE] = {502, "Bad Gateway",
                                    "http_response_incomplete",
                                    "response_incomplete",
                                    "The destination closed the connection "
                                    "before its response was complete."},
    [REASON_UPSTREAM_TIMEOUT] = {504, "Gateway Timeout",
                                 "connection_read_timeout", "upstream_timeout",
                                 "The destination did not respond in time."},
    [REASON_TLS_CERTIFICATE_ERROR] =
        {502, "Bad Gateway", "tls_certificate_error", "tls_certificate_error",
         "The destination's TLS certificate did not verify (its name, its "
         "issuer or its dates): egressd does not talk to it."},
    [REASON_TLS_ERROR] = {502, "Bad Gateway", "tls_protocol_error", "tls_error",
                          "The TLS handshake with the destination failed."},
    [REASON_INTERNAL_ERROR] = {500, "Internal Server Error",
                               "proxy_internal_error", "internal_error",
                               "The proxy ran out of a resource."},
    [REASON_BAD_PATH] = {400, "Bad Request", REQUEST_ERROR, "bad_path",
                         "The path has a segment or byte the gateway does "
                         "not accept: '.' or '..', an encoded '.', '/' or "
                         "'\\', a backslash, an empty segment, a control "
                         "or non-ASCII byte."},
    [REASON_ROUTE_NOT_FOUND] = {403, "Forbidden", DENIED, "route_not_found",
                                "No route of this gateway starts this "
                                "path."},
    [REASON_PATH_NOT_ALLOWED] =
        {403, "Forbidden", DENIED, "path_not_allowed",
         "The route exists, but its rules do not allow this method and "
         "path."},
    [REASON_TOKEN_REQUIRED] =
        {401, "Unauthorized", DENIED, "token_required",
         "This gateway needs a token where the client puts its API key "
         "(x-api-key, Authorization: Bearer, or the password of git's "
         "Basic credentials): the one the operator gave this agent."},
    [REASON_TOKEN_FAILED] = {401, "Unauthorized", DENIED, "token_failed",
                             "The gateway token was not accepted."},
    [REASON_REPO_NOT_ALLOWED] =
        {403, "Forbidden", DENIED, "repo_not_allowed",
         "The route's git rules do not allow this repository for this "
         "service (fetch or push)."},
    [REASON_REF_NOT_ALLOWED] =
        {403, "Forbidden", DENIED, "ref_not_allowed",
         "The route's git rules do not allow this push to change one of "
         "its refs; nothing was pushed."},
    [REASON_BAD_PKT_LINE] = {400, "Bad Request", REQUEST_ERROR, "bad_pkt_line",
                             "The push's command list is not well-formed "
                             "pkt-lines within the gateway's limits."},
    [REASON_CLIENT_CLOSED] = {0, NULL, NULL, "client_closed", NULL},
    [REASON_UPSTREAM_CLOSED] = {0, NULL, NULL, "upstream_closed", NULL},
    [REASON_IDLE_TIMEOUT] = {0, NULL, NULL, "idle_timeout", NULL},
    [REASON_SHUTDOWN] = {0, NULL, NULL, "shutdown", NULL},
    [REASON_COMPLETE] = {0, NULL, NULL, "complete", NULL},
    [REASON_LIMIT_BYTES] = {0, NULL, NULL, "limit_bytes", NULL},
    [REASON_LIMIT_LIFETIME] = {0, NULL, NULL, "limit_lifetime", NULL},
};

const struct reason_info *
reason_get(enum reason r)
{
	assert(r >= 0 && r < REASON_COUNT);
	return &reasons[r];
}

int
reason_is_denial(enum reason r)
{
	return reasons[r].status == 401 || reasons[r].status == 403 ||
	       reasons[r].status == 407 || reasons[r].status == 429;
}

int
reason_is_policy(enum reason r)
{
	return r >= REASON_HOST_NOT_ALLOWED &&
	       r <= REASON_ADDRESS_NOT_IN_NETWORKS;
}

enum reason
reason_of_head(int http_status)
{
	switch ((enum http_status)http_status) {
	case HTTP_URI_TOO_LONG:
		return REASON_URI_TOO_LONG;
	case HTTP_FIELDS_TOO_LARGE:
		return REASON_HEADER_TOO_LARGE;
	case HTTP_BAD_VERSION:
		return REASON_BAD_VERSION;
	default:
		return REASON_MALFORMED_REQUEST;
	}
}

enum reason
reason_of_connect_error(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return REASON_CONNECT_REFUSED;
	case ETIMEDOUT:
		return REASON_CONNECT_TIMEOUT;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		/* No socket for the upstream: egressd's shortage, not the
		 * destination's fault. */
		return REASON_INTERNAL_ERROR;
	default:
		return REASON_CONNECT_ERROR;
	}
}
