/*
 * forward: one plain-HTTP request, forwarded in origin-form.
 *
 * conn has parsed and allowed the request and connected to the upstream;
 * forward writes the rewritten request head (Host from the request-target,
 * hop-by-hop fields removed, Via added, one framing field of its own),
 * streams the request body, reads the response head and streams the
 * response body back, each framed exactly (Content-Length, chunked, or until
 * close) and with backpressure.  Nothing is buffered whole.
 *
 * Two hooks let a caller (the gateway, issue 12; git rules, issue 13)
 * change and check a request without copying any of this: a header plan
 * that drops and adds request fields, and an inspection of the body's first
 * bytes that holds the whole request back until it has accepted them.
 */
#ifndef EGRESSD_FORWARD_H
#define EGRESSD_FORWARD_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "reason.h"

/* A field the plan adds.  The value is usually a secret: forward never
 * logs it, and keeps no copy of it beyond the request head it writes. */
struct forward_field {
	const char *name;  /* NUL-terminated */
	const char *value; /* NUL-terminated */
};

/*
 * A route's changes to the request head.  Every field the client sent
 * whose name is in drop or in add is left out, each instance of it, in any
 * case: the upstream sees an added field once, with the plan's value, never
 * a client's copy.  The added fields follow the client's remaining fields
 * and Via, in the plan's order, before the framing field.  The head only:
 * a chunked body's trailer fields pass as the client sent them (http.c
 * refuses the framing, routing and hop-by-hop ones, not others).  Build a
 * plan once and check it with forward_plan_check.
 */
struct forward_plan {
	const char *const *drop; /* field names */
	size_t ndrop;
	const struct forward_field *add;
	size_t nadd;
};

/*
 * Judge the request body's first len bytes before any byte of the request
 * (head or body) reaches the upstream: 1 send the request on (the head,
 * then the body bytes held so far exactly as the client sent them, then the
 * rest as it comes), 0 wait for more, -1 refuse with *why (set beforehand to
 * REASON_INTERNAL_ERROR; a reason without an HTTP status closes the client
 * unanswered).  buf holds payload: a chunked body's chunk data
 * without its sizes, extensions and trailers; any content coding is left
 * as it is.  When final no more bytes will come (FORWARD_INSPECT_END: buf
 * is the whole body, possibly empty; FORWARD_INSPECT_FULL: inspect_max
 * bytes of the body, as sent, are held): the answer must be 1 or -1, and 0
 * counts as -1.  Called on the event loop, never from forward_new, and
 * again only when more payload came or at the end; it must not free the
 * forward.
 */
enum { FORWARD_INSPECT_END = 1, FORWARD_INSPECT_FULL = 2 };
typedef int (*forward_inspect_cb)(void *arg, const unsigned char *buf,
                                  size_t len, int final, enum reason *why);

/*
 * Rewrite a response's Location value (the gateway maps its origin's URLs
 * back to its own prefix): 1 with the new value in buf, 0 to pass it as it
 * is (also when it does not fit).
 */
typedef int (*forward_location_cb)(void *arg, const char *value, size_t len,
                                   char *buf, size_t size);

/*
 * What conn hands over.  req and plan are read only inside forward_new
 * (the head is written, or held, there); the rest is borrowed for the
 * forward's lifetime.  Members left zero are no plan and no inspection:
 * the request goes as it always has.
 */
struct forward_request {
	const char *method;             /* NUL-terminated */
	const struct http_request *req; /* the parsed client request */
	struct http_span path;          /* origin-form target: "/p?q" */
	const char *authority; /* Host to send: "host" or "host:port" */
	struct http_body body; /* the request body's framing */
	int client_close;      /* no further request after this one */
	int keep_upstream;     /* ask the upstream to keep the connection */
	const struct forward_plan *plan; /* NULL: no fields dropped or added */
	/*
	 * NULL: no inspection.  Set: the upstream gets nothing, not even the
	 * head, until inspect accepts; it then sees the same bytes as
	 * without a hook.  A refusal ends the forward with inspect's reason,
	 * status 0 and bytes_up 0, the upstream connection not reusable, so
	 * that conn answers the client from the reason table; none of the
	 * body is forwarded.  When the reason has an answer (a status), the
	 * rest of the body is first read and dropped (up to 64 MiB, within
	 * the idle timeout): a client still uploading when the answer comes
	 * would see a broken pipe instead of it.  The client closing, bad chunked framing and the
	 * idle timeout end it as they would without a hook.  A client that
	 * waits for 100 Continue gets none while the head is held (it sends the
	 * body after a wait of its own, RFC 9110 §10.1.1).  A request sent
	 * again on a new connection (conn's retry) is inspected again; note
	 * that a refusal on a reused connection has status 0 and
	 * upstream_silent set, which conn's may_retry today takes for an
	 * upstream that closed it.
	 */
	forward_inspect_cb inspect;
	size_t inspect_max; /* body bytes, as sent, the check may hold */
	void *inspect_arg;
	forward_location_cb location; /* NULL: Location passes as sent */
	void *location_arg;
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
 * Returns NULL when out of memory, or when fr->plan fails
 * forward_plan_check.
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

/*
 * Is the plan one forward can write: drop names and add names tokens, each
 * add a valid field line (http_field_valid: no CR, LF or other control
 * character in a value), no name added twice, and none of the fields
 * forward writes itself (Host, Via, Content-Length, Transfer-Encoding) or
 * removes as hop-by-hop (Connection and the others of
 * forward_is_hop_by_hop)?  0 or -1.  forward_new refuses a plan that fails.
 */
int forward_plan_check(const struct forward_plan *plan);

/*
 * Does the client's field with this name go upstream, given all n fields
 * of its request and the plan (NULL: none)?  Not hop-by-hop ones, not Host,
 * Via, Content-Length and Transfer-Encoding (forward writes its own), not
 * what the plan drops or adds.  1 or 0.  Exposed for tests.
 */
int forward_keeps_field(const struct http_field *fields, size_t n,
                        struct http_span name, const struct forward_plan *plan);

/*
 * Append to out the request head forward sends upstream for fr: the
 * request line in origin-form, Host from fr->authority, the fields
 * forward_keeps_field keeps, Via, the plan's fields, one framing field of
 * its own and, when needed, "Connection: close".  Returns its length.
 * Exposed for tests.
 */
size_t forward_write_head(struct evbuffer *out,
                          const struct forward_request *fr);

#endif
