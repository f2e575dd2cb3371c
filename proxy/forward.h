/*
 * forward: one plain-HTTP request, forwarded in origin-form.
 *
 * conn has parsed and allowed the request and connected to the upstream;
 * forward writes the rewritten request head (Host from the request-target,
 * hop-by-hop fields removed, Via added, one framing field of its own),
 * streams the request body, reads the response head and streams the
 * response body back, each framed exactly (Content-Length, chunked, or until
 * close) and with backpressure.  Nothing is buffered whole.
 */
#ifndef EGRESSD_FORWARD_H
#define EGRESSD_FORWARD_H

#include <event2/bufferevent.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "reason.h"

/* What conn hands over: all of it is borrowed for the forward's lifetime. */
struct forward_request {
	const char *method;             /* NUL-terminated */
	const struct http_request *req; /* the parsed client request */
	struct http_span path;          /* origin-form target: "/p?q" */
	const char *authority; /* Host to send: "host" or "host:port" */
	struct http_body body; /* the request body's framing */
	int client_close;      /* no further request after this one */
	int keep_upstream;     /* ask the upstream to keep the connection */
};

struct forward_result {
	enum reason reason;  /* REASON_COMPLETE, or why it failed */
	int status;          /* status sent to the client, 0 if none yet */
	int keep_client;     /* the client may send another request */
	uint64_t bytes_up;   /* bytes sent upstream (head and body) */
	uint64_t bytes_down; /* bytes sent to the client (head and body) */
	int keep_upstream;   /* the upstream connection may serve another */
	int upstream_silent; /* not a byte came from the upstream */
};

struct forward;

/* Called once, as the last thing the forward does in that callback.  When
 * r->status is 0 nothing reached the client, which can still be answered. */
typedef void (*forward_done_cb)(void *arg, const struct forward_result *r);

/*
 * Start forwarding on a connected upstream.  Both bufferevents stay the
 * caller's; the forward sets their callbacks until it is done.  Bytes
 * already in the client's input are the start of the request body.
 * Returns NULL when out of memory.
 */
struct forward *forward_new(struct bufferevent *client,
                            struct bufferevent *upstream,
                            const struct forward_request *fr,
                            const struct config_limits *lim,
                            forward_done_cb done, void *arg);

/* Free the forward (not the bufferevents); safe from the done callback. */
void forward_free(struct forward *f);

/*
 * Is this field hop-by-hop for a proxy (RFC 9110 §7.6.1), given the
 * message's Connection fields?  Exposed for tests.  1 or 0.
 */
int forward_is_hop_by_hop(const struct http_field *fields, size_t n,
                          struct http_span name);

#endif
