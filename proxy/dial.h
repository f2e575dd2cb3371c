/*
 * dial: from a request whose name the policy allows to a connected upstream.
 * Resolve the name (c-ares; a literal is its own address), admit each
 * address through the caller's check, and connect to the admitted ones in
 * order, each within connect_timeout_ms, the next on failure; never
 * re-resolve between the check and the connect.  A bodiless idempotent
 * request may take an idle connection from the pool instead, keyed by
 * identity, name, port and an address its own check admitted.
 *
 * The request's failures (DNS, every address refused, no address reached)
 * leave through conn_fail.
 */
#ifndef EGRESSD_DIAL_H
#define EGRESSD_DIAL_H

#include "conn.h"

/*
 * May the request go to this address?  1, with v->rule the rule that
 * admitted it (NULL where a refusal was waived); 0 with the refusal in *v.
 */
typedef int (*dial_admit_fn)(struct conn *c, const struct netaddr *a,
                             struct verdict *v);

/* Called once c->up_bev is connected to c->r.upstream (or was taken from
 * the pool: c->r.reused) and c->r.rule is the rule that admitted it. */
typedef void (*dial_connected_fn)(struct conn *c);

/*
 * Dial c's request: resolve c->r.host, or take the address already in
 * c->r.addrs for a literal.  Then admit and connect as above.
 */
void dial_start(struct conn *c, dial_admit_fn admit,
                dial_connected_fn connected);

/* The reused upstream connection closed before answering: connect afresh
 * to the same admitted addresses, without the pool. */
void dial_again(struct conn *c);

/* Put the upstream connection, which may serve another request, into the
 * pool under the request's key (unless draining or pool-less). */
void dial_keep(struct conn *c);

#endif
