/*
 * proxy: a forward-proxy request (an HTTP_PROXY/HTTPS_PROXY client's), from
 * its parsed head to its hand-off.  The target (CONNECT host:port, or an
 * absolute http:// URL), the loop check, who is asking, and the policy's
 * name check before any DNS; then dial, with the policy's address check;
 * then CONNECT becomes a tunnel (200, the hello check) and a plain-HTTP
 * request is forwarded in origin-form.
 */
#ifndef EGRESSD_PROXY_H
#define EGRESSD_PROXY_H

#include "conn.h"
#include "forward.h"

/* Take c's request, whose head is parsed (c->r.req, c->r.method, body
 * framing and client_close set), to its decision and beyond. */
void proxy_request(struct conn *c);

/* The gateway's changes to a forwarded request (forward.h). */
struct proxy_hooks {
	const struct forward_plan *plan; /* NULL: no fields dropped or added */
	forward_location_cb location;    /* NULL: Location passes as sent */
	/* NULL: none.  Set: the request is decided by inspect, which calls
	 * proxy_allowed when it accepts; a refusal's decision line is
	 * conn_fail's. */
	forward_inspect_cb inspect;
	size_t inspect_max;
	void *arg; /* for location and inspect */
};

/*
 * Forward c's allowed plain-HTTP request on the connected c->up_bev, with
 * the gateway's hooks (NULL: none).  The decision line is written here,
 * unless an inspection decides; a reused upstream that closed before
 * answering is dialled again, and the request sent again, when it can be.
 */
void proxy_forward(struct conn *c, const struct proxy_hooks *h);

/* Write the allow decision line of c's request, once. */
void proxy_allowed(struct conn *c);

#endif
