/*
 * gateway_git: a git route's rules applied to a gateway request (issue 13).
 *
 * A route with git rules sees git's smart-HTTP requests (gitpkt.h): a
 * fetch (info/refs and upload-pack) needs a repository its fetch patterns
 * match, a push (info/refs and receive-pack) one its push patterns match,
 * and the push's command list is read before anything reaches the server:
 * every ref must pass the ref rules, or the push is refused whole with a
 * report-status that git prints against each ref.  Any other request on
 * the route (dumb HTTP, the web UI, the API, LFS) needs a path rule of the
 * route's `allow`; without one it is refused.  Each decision is logged with
 * the repository and service, a push's refs each on a line of its own.
 */
#ifndef EGRESSD_GATEWAY_GIT_H
#define EGRESSD_GATEWAY_GIT_H

#include "conn.h"
#include "proxy.h"
#include "route.h"

/*
 * Decide c's request on its git route by the route's rest (with its '/')
 * and the target's query.  REASON_ALLOWED, or the refusal (its detail set
 * to what git shows).  A push's refs are decided later, by the inspection
 * gateway_git_hooks sets up.
 */
enum reason gateway_git_decide(struct conn *c, const struct route_target *t,
                               const char *rest, size_t rest_len);

/* For a push: set h's inspection (the command list's parser and the ref
 * rules); anything else is left as it is. */
void gateway_git_hooks(struct conn *c, struct proxy_hooks *h);

#endif
