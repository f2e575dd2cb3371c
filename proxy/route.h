/*
 * route: the gateway's I/O-free decisions about a request's path (issue 12).
 * A route maps a path prefix of the gateway ("/anthropic") to an https://
 * origin (host, port, base path), and may list method and path rules
 * ("POST /v1/messages", "GET /v1/\*").  Paths are normalised strictly before
 * anything matches them: a path that would need cleaning ('.' or '..'
 * segments, "%2e", "%2f", "%5c", a backslash, "//", a control or non-ASCII
 * byte) is refused, never cleaned into one that matches.
 */
#ifndef EGRESSD_ROUTE_H
#define EGRESSD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* The longest path (without the query) the gateway accepts, in bytes. */
#define ROUTE_PATH_MAX 4096

/* One method and path rule.  path is exact ("/v1/messages") or a prefix
 * pattern ending in "/\*" ("/v1/\*": "/v1/x", "/v1/x/y", not "/v1" itself).
 * The query string is not matched. */
struct route_rule {
	char *method; /* "GET"...; NULL or "*": any method */
	char *path;
};

/* What matching needs to know of a route; the gateway's own route record
 * (config) embeds it. */
struct route {
	char *prefix; /* "/anthropic": starts with '/', no trailing '/'; "/"
	               * alone is the catch-all */
	char *host;   /* the origin's name or IP literal, normalised */
	uint16_t port;
	char *base; /* the origin's base path: "" or "/api" (no trailing
	             * '/') */
	struct route_rule *rules;
	size_t nrules; /* 0: every method and path */
};

/* A request target split and checked: path and query point into the
 * caller's target; path_len excludes the query. */
struct route_target {
	const char *path;
	size_t path_len;
	const char *query; /* after '?', or NULL */
	size_t query_len;
};

/*
 * Check an origin-form request target ("/p/a/t/h?query") strictly.
 * 0 and *out filled, or -1 (the answer is REASON_BAD_PATH) for: not
 * starting with '/', a '.' or '..' segment, an empty segment ("//",
 * but a single trailing '/' is fine), a '%' not followed by two hex digits,
 * "%2e", "%2f", "%5c", "%00" or any percent-encoded byte below 0x20 or
 * above 0x7e (any case), a backslash, a control, space or non-ASCII byte,
 * a '#', a ';' in a segment, or a path over ROUTE_PATH_MAX.  The query is
 * checked only for control, space and non-ASCII bytes.
 */
int route_target_parse(const char *target, size_t len,
                       struct route_target *out);

/*
 * The route whose prefix starts the path at a segment boundary ("/openai"
 * starts "/openai" and "/openai/v1", not "/openaix"), the longest one when
 * several do: its index, or -1.  *rest is the path after the prefix, with
 * its leading '/' ("/v1/models"), or "" when the path is the prefix.
 */
int route_find(const struct route *const *routes, size_t n,
               const struct route_target *t, const char **rest,
               size_t *rest_len);

/* Does rule pattern match the path (the route's rest)?  1 or 0. */
int route_pattern_match(const char *pattern, const char *path, size_t len);

/* Do the route's rules allow method on rest?  1 or 0 (no rules: 1).  An
 * empty rest matches as "/". */
int route_allows(const struct route *r, const char *method, const char *rest,
                 size_t rest_len);

/*
 * The origin-form target to send upstream: base, rest ("/" when both are
 * empty), then '?' and the query when there is one.  Its length, or -1
 * when it does not fit in size bytes (with the NUL).
 */
int route_upstream_target(const struct route *r, const char *rest,
                          size_t rest_len, const struct route_target *t,
                          char *buf, size_t size);

/*
 * A response's Location, rewritten when it points at the route's origin:
 * an absolute "https://host[:port]/base/..." on the same host and port, or
 * an absolute path under base, becomes the gateway's prefix + the rest.
 * 1 and the new value in buf, 0 when loc is left as it is (another origin,
 * outside base, relative), -1 when it does not fit.
 */
int route_rewrite_location(const struct route *r, const char *loc, size_t len,
                           char *buf, size_t size);

/*
 * Parse an origin URL "https://host[:port][/base]" (no userinfo, query or
 * fragment; the base normalised like a path, without a trailing '/').
 * Fills host (malloc'd, normalised like rule hosts), port (443 default)
 * and base (malloc'd, "" when none).  NULL, or the problem as a sentence
 * for a config error.
 */
const char *route_origin_parse(const char *url, char **host, uint16_t *port,
                               char **base);

#endif
