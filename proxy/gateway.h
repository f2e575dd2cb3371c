/*
 * gateway: a request to a gateway listener (issue 12).  The agent's client
 * speaks plain HTTP to egressd with an origin-form path ("POST
 * /anthropic/v1/messages"); egressd checks the path strictly, identifies
 * the client (its source, its TLS certificate, or a gateway token where the
 * SDK puts its key), finds the route whose prefix starts the path and that
 * the client's policy may use, checks the route's method and path rules,
 * then resolves the origin through the address guard, opens verified TLS
 * to it (or takes a kept connection), and forwards the request with the
 * route's credential in place of whatever the client sent.
 */
#ifndef EGRESSD_GATEWAY_H
#define EGRESSD_GATEWAY_H

#include "config.h"
#include "conn.h"

/* Take c's request, whose head is parsed, to its decision and beyond. */
void gateway_request(struct conn *c);

/*
 * Open what a snapshot's routes need beyond the file: each route's TLS
 * context (its CA file or the system store) and its secret.  0, or -1 with
 * "FILE: route NAME: problem" in err (the snapshot is then still the
 * caller's to unref).  Sets c->close_routes.
 */
int gateway_open(struct config *c, char *err, size_t errlen);

/*
 * Re-read the secrets whose files changed (Kubernetes swaps a symlink);
 * a secret that cannot be read keeps its old value.  Each change or
 * failure is a log line (never with the value).  From one thread only.
 */
void gateway_refresh(struct config *c);

#endif
