#include "forward.h"

/* The longest Location the gateway writes after a rewrite. */
#define HTTP_LOCATION_MAX 8192
#include "idle.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

/* The name egressd gives itself in Via (RFC 9110 §7.6.3). */
#define VIA_NAME "egressd"

/* Longest chunk-size or trailer line accepted. */
#define CHUNK_LINE_MAX 4096

/* A body framed by its length or by the close, between two plain sockets,
 * is read straight from src's socket in reads this large (a bufferevent
 * reads 4 KiB at a time) and written straight on. */
#define DIRECT_BYTES (64 * 1024)
/* Reads one wake-up may do before other connections get a turn. */
#define DIRECT_ROUNDS 4

/* The most of a refused request's body read and dropped before the
 * answer (see discard_start). */
#define FORWARD_DISCARD_MAX (64ULL * 1024 * 1024)

struct forward;

/* One direction's body: from src's input to dst's output. */
struct pump {
	struct forward *f;
	struct bufferevent *src, *dst;
	struct event *direct; /* set: src's socket is read here, not by src */
	struct http_body body;
	uint64_t left; /* HTTP_BODY_LENGTH: bytes still to come */
	struct http_chunked chunked;
	int active;
	int done;
	uint64_t *count;
};

/* A request held back, head and body, while fr.inspect judges its body. */
struct inspection {
	struct evbuffer *head;  /* the upstream head, written, not sent */
	unsigned char *payload; /* the body's payload so far */
	size_t len;
	size_t scanned; /* body bytes, as sent, looked at so far */
	uint64_t left;  /* HTTP_BODY_LENGTH: body bytes not yet looked at */
	struct http_chunked chunked;
	int ended; /* the body's end is among the scanned bytes */
};

enum response_state {
	RESPONSE_HEAD,
	RESPONSE_BODY,
};

struct forward {
	struct bufferevent *client, *upstream;
	const struct config_limits *lim;
	struct forward_request fr;
	int client_minor;
	struct pump request, response;
	enum response_state state;
	int keep_client;
	int upstream_persists; /* the response's head allows reuse */
	int heard_upstream;    /* a byte came from the upstream */
	struct forward_result res;
	struct inspection *held; /* set while inspect has not accepted */
	int discarding;          /* inspect refused: the body is dropped */
	enum reason refused;     /* ... and this is why */
	uint64_t discarded;
	struct idle idle;
	forward_done_cb done;
	void *arg;
	int finished;
};

/* RFC 9110 §7.6.1, and the proxy-only fields: Proxy-Authorization is the
 * client's credential for egressd, never for the upstream. */
static const char *const hop_by_hop[] = {
    "connection", "proxy-connection",    "keep-alive",         "te", "trailer",
    "upgrade",    "proxy-authorization", "proxy-authenticate", NULL};

/* The request fields forward writes itself. */
static const char *const rewritten[] = {"host", "content-length",
                                        "transfer-encoding", "via", NULL};

static int name_in(struct http_span name, const char *const *list);
static void add_field(struct evbuffer *out, const struct http_field *f);
static void add_via(struct evbuffer *out, const struct http_field *fields,
                    size_t n, int minor);
static struct inspection *inspection_new(const struct forward_request *fr);
static void inspection_free(struct inspection *in);
static int inspect_progress(struct forward *f);
static int inspect_scan(struct inspection *in, enum http_body_kind kind,
                        const unsigned char *raw, size_t n);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void request_progress(struct forward *f);
static void upstream_read_cb(struct bufferevent *bev, void *arg);
static void upstream_write_cb(struct bufferevent *bev, void *arg);
static void upstream_event_cb(struct bufferevent *bev, short what, void *arg);
static void read_response_head(struct forward *f);
static void write_response_head(struct forward *f,
                                const struct http_response *resp,
                                const struct http_body *body, int interim);
static void response_progress(struct forward *f);
static void pump_start(struct pump *p, const struct http_body *body);
static int pump_run(struct forward *f, struct pump *p);
static long long pump_measure(struct pump *p, struct evbuffer *in);
static int pump_go_direct(struct pump *p);
static void pump_resume(struct pump *p);
static int plain_socket(struct bufferevent *bev);
static void direct_cb(evutil_socket_t fd, short what, void *arg);
static int direct_write(struct pump *p, size_t n);
static void direct_event(struct forward *f, struct bufferevent *bev,
                         short what);
static void forward_idle_cb(void *arg);
static void forward_finish(struct forward *f, enum reason why);
static void send_whole(struct forward *f, struct bufferevent *to,
                      const struct forward_request *fr,
                      const struct http_response *resp,
                      const struct http_body *body, int interim);
static void response_head(struct forward *f, struct evbuffer *out,
                          const struct http_response *resp,
                          const struct http_body *body, int interim);
static void discard_start(struct forward *f, enum reason why);
static void discard_progress(struct forward *f);

/* --- the forward ---------------------------------------------------------- */

struct forward *
forward_new(struct bufferevent *client, struct bufferevent *upstream,
            const struct forward_request *fr, const struct config_limits *lim,
            forward_done_cb done, void *arg)
{
	struct forward *f;

	if (fr->plan && forward_plan_check(fr->plan) < 0)
		return NULL;
	if (!(f = calloc(1, sizeof(*f))))
		return NULL;
	if (idle_start(&f->idle, bufferevent_get_base(client),
	               lim->idle_timeout_ms, forward_idle_cb, f) < 0) {
		free(f);
		return NULL;
	}
	f->client = client;
	f->upstream = upstream;
	f->lim = lim;
	f->fr = *fr;
	f->client_minor = fr->req->version_minor;
	/* HTTP/1.0 clients get one request per connection. */
	f->keep_client = !fr->client_close && f->client_minor == 1;
	f->done = done;
	f->arg = arg;
	f->request.f = f;
	f->response.f = f;
	f->request.src = client;
	f->request.dst = upstream;
	f->request.count = &f->res.bytes_up;
	f->response.src = upstream;
	f->response.dst = client;
	f->response.count = &f->res.bytes_down;

	if (fr->inspect) {
		if (!(f->held = inspection_new(fr))) {
			idle_free(&f->idle);
			free(f);
			return NULL;
		}
		(void)forward_write_head(f->held->head, fr);
	} else {
		send_whole(f, upstream, fr, NULL, NULL, 0);
	}
	/* Read only here: conn frees them once forward_new has returned. */
	f->fr.req = NULL;
	f->fr.plan = NULL;
	pump_start(&f->request, &fr->body);
	if (f->held)
		f->held->ended = f->request.done;
	bufferevent_setcb(client, client_read_cb, client_write_cb,
	                  client_event_cb, f);
	bufferevent_setcb(upstream, upstream_read_cb, upstream_write_cb,
	                  upstream_event_cb, f);
	bufferevent_setwatermark(client, EV_READ, 0, 0);
	bufferevent_setwatermark(client, EV_WRITE, 0, 0);
	bufferevent_setwatermark(upstream, EV_READ, 0, 0);
	bufferevent_setwatermark(upstream, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(client, NULL, NULL);
	bufferevent_set_timeouts(upstream, NULL, NULL);
	bufferevent_enable(upstream, EV_READ | EV_WRITE);
	bufferevent_enable(client, EV_WRITE);
	if (!f->request.done)
		bufferevent_enable(client, EV_READ);
	/* Body bytes may already be waiting, and a request without a body
	 * may wait for the inspection: take them from the loop, never from
	 * inside forward_new. */
	if (!f->request.done || f->held)
		bufferevent_trigger(client, EV_READ,
		                    BEV_TRIG_IGNORE_WATERMARKS |
		                        BEV_TRIG_DEFER_CALLBACKS);
	return f;
}

void
forward_free(struct forward *f)
{
	if (!f)
		return;
	if (f->request.direct)
		event_free(f->request.direct);
	if (f->response.direct)
		event_free(f->response.direct);
	inspection_free(f->held);
	idle_free(&f->idle);
	free(f);
}

/* --- the request head ----------------------------------------------------- */

size_t
forward_write_head(struct evbuffer *out, const struct forward_request *fr)
{
	const struct http_request *req = fr->req;
	const struct forward_plan *plan = fr->plan;
	int minor = req->version_minor;
	size_t before = evbuffer_get_length(out);

	/* RFC 9112 §3.2.2: the Host of an absolute-form request is its
	 * authority, whatever Host field the client sent. */
	evbuffer_add_printf(out, "%s %.*s HTTP/1.%d\r\nHost: %s\r\n",
	                    fr->method, (int)fr->path.len, fr->path.p, minor,
	                    fr->authority);
	for (size_t i = 0; i < req->nfields; i++) {
		const struct http_field *fl = &req->fields[i];

		if (forward_keeps_field(req->fields, req->nfields, fl->name,
		                        plan))
			add_field(out, fl);
	}
	add_via(out, req->fields, req->nfields, minor);
	for (size_t i = 0; plan && i < plan->nadd; i++) {
		evbuffer_add_printf(out, "%s: ", plan->add[i].name);
		evbuffer_add(out, plan->add[i].value,
		             strlen(plan->add[i].value));
		evbuffer_add(out, "\r\n", 2);
	}
	/* One framing field of our own: a list such as "5, 5" is valid to us
	 * and may not be to the upstream. */
	if (fr->body.kind == HTTP_BODY_LENGTH)
		evbuffer_add_printf(out, "Content-Length: %llu\r\n",
		                    (unsigned long long)fr->body.length);
	else if (fr->body.kind == HTTP_BODY_CHUNKED)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	/* HTTP/1.1 keeps the connection by default; say so only to end it. */
	if (!fr->keep_upstream || minor != 1)
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
	return evbuffer_get_length(out) - before;
}

int
forward_keeps_field(const struct http_field *fields, size_t n,
                    struct http_span name, const struct forward_plan *plan)
{
	if (forward_is_hop_by_hop(fields, n, name) || name_in(name, rewritten))
		return 0;
	for (size_t i = 0; plan && i < plan->ndrop; i++)
		if (http_span_ieq(name, plan->drop[i]))
			return 0;
	/* Ours is the only copy of an added field. */
	for (size_t i = 0; plan && i < plan->nadd; i++)
		if (http_span_ieq(name, plan->add[i].name))
			return 0;
	return 1;
}

int
forward_is_hop_by_hop(const struct http_field *fields, size_t n,
                      struct http_span name)
{
	if (name_in(name, hop_by_hop))
		return 1;
	for (size_t i = 0; i < n; i++) {
		struct http_span rest = fields[i].value, item;

		if (!http_span_ieq(fields[i].name, "connection"))
			continue;
		while (http_list_next(&rest, &item))
			if (item.len == name.len &&
			    strncasecmp(item.p, name.p, name.len) == 0)
				return 1;
	}
	return 0;
}

int
forward_plan_check(const struct forward_plan *plan)
{
	for (size_t i = 0; i < plan->ndrop; i++)
		if (!http_field_valid(plan->drop[i], ""))
			return -1;
	for (size_t i = 0; i < plan->nadd; i++) {
		const struct forward_field *a = &plan->add[i];
		struct http_span name = {a->name, strlen(a->name)};

		if (!http_field_valid(a->name, a->value) ||
		    name_in(name, hop_by_hop) || name_in(name, rewritten))
			return -1;
		for (size_t j = 0; j < i; j++)
			if (http_span_ieq(name, plan->add[j].name))
				return -1;
	}
	return 0;
}

static int
name_in(struct http_span name, const char *const *list)
{
	for (const char *const *l = list; *l; l++)
		if (http_span_ieq(name, *l))
			return 1;
	return 0;
}

static void
add_field(struct evbuffer *out, const struct http_field *f)
{
	evbuffer_add(out, f->name.p, f->name.len);
	evbuffer_add(out, ": ", 2);
	evbuffer_add(out, f->value.p, f->value.len);
	evbuffer_add(out, "\r\n", 2);
}

/* Via: the values received, then ours (RFC 9110 §7.6.3). */
static void
add_via(struct evbuffer *out, const struct http_field *fields, size_t n,
        int minor)
{
	evbuffer_add_printf(out, "Via: ");
	for (size_t i = 0; i < n; i++) {
		if (!http_span_ieq(fields[i].name, "via"))
			continue;
		evbuffer_add(out, fields[i].value.p, fields[i].value.len);
		evbuffer_add(out, ", ", 2);
	}
	evbuffer_add_printf(out, "1.%d " VIA_NAME "\r\n", minor);
}

/* --- the inspection ------------------------------------------------------- */

/* Hold the request: its head goes to in->head, not to the upstream. */
static struct inspection *
inspection_new(const struct forward_request *fr)
{
	struct inspection *in = calloc(1, sizeof(*in));
	size_t cap = fr->inspect_max;

	if (!in)
		return NULL;
	/* The payload is never larger than the body bytes held. */
	if (fr->body.kind == HTTP_BODY_LENGTH && fr->body.length < cap)
		cap = (size_t)fr->body.length;
	in->head = evbuffer_new();
	in->payload = malloc(cap > 0 ? cap : 1);
	if (!in->head || !in->payload) {
		if (in->head)
			evbuffer_free(in->head);
		free(in->payload);
		free(in);
		return NULL;
	}
	in->left = fr->body.length;
	http_chunked_init(&in->chunked, CHUNK_LINE_MAX);
	return in;
}

static void
inspection_free(struct inspection *in)
{
	if (!in)
		return;
	evbuffer_free(in->head);
	free(in->payload);
	free(in);
}

/* Offer the hook what has come of the body: 1 accepted (the head is on its
 * way upstream, the body follows as without a hook), 0 still held, -1 the
 * forward finished. */
static int
inspect_progress(struct forward *f)
{
	struct inspection *in = f->held;
	struct evbuffer *input = bufferevent_get_input(f->client);
	size_t avail = evbuffer_get_length(input), had = in->len, head_len;
	size_t want = avail < f->fr.inspect_max ? avail : f->fr.inspect_max;
	enum reason why = REASON_INTERNAL_ERROR;
	int final, r;

	if (in->scanned < want)
		idle_touch(&f->idle);
	while (!in->ended && in->scanned < want) {
		struct evbuffer_ptr pos;
		struct evbuffer_iovec v;
		size_t n;

		if (evbuffer_ptr_set(input, &pos, in->scanned,
		                     EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_peek(input, -1, &pos, &v, 1) < 1)
			break;
		n = v.iov_len < want - in->scanned ? v.iov_len
		                                   : want - in->scanned;
		if (inspect_scan(in, f->fr.body.kind, v.iov_base, n) < 0) {
			f->keep_client = 0;
			forward_finish(f, REASON_BAD_FRAMING);
			return -1;
		}
	}
	final = in->ended                          ? FORWARD_INSPECT_END
	        : in->scanned >= f->fr.inspect_max ? FORWARD_INSPECT_FULL
	                                           : 0;
	if (!final && in->len == had)
		return 0;
	r = f->fr.inspect(f->fr.inspect_arg, in->payload, in->len, final, &why);
	if (r == 0 && final)
		r = -1;
	if (r < 0) {
		/* Nothing went upstream; conn answers from why, once the
		 * body is read. */
		f->keep_client = 0;
		inspection_free(in);
		f->held = NULL;
		discard_start(f, why);
		return -1;
	}
	if (r == 0)
		return 0;
	head_len = evbuffer_get_length(in->head);
	evbuffer_add_buffer(bufferevent_get_output(f->upstream), in->head);
	f->res.bytes_up += head_len;
	inspection_free(in);
	f->held = NULL;
	return 1;
}

/* Look at the next n bytes of the body as sent: keep their payload, note
 * the body's end.  -1 when the chunked framing is malformed. */
static int
inspect_scan(struct inspection *in, enum http_body_kind kind,
             const unsigned char *raw, size_t n)
{
	switch (kind) {
	case HTTP_BODY_NONE:
		in->ended = 1;
		return 0;
	case HTTP_BODY_LENGTH:
	case HTTP_BODY_CLOSE: /* never a request's */
		if (n > in->left)
			n = (size_t)in->left;
		memcpy(in->payload + in->len, raw, n);
		in->len += n;
		in->scanned += n;
		in->left -= n;
		in->ended = in->left == 0;
		return 0;
	case HTTP_BODY_CHUNKED:
		break;
	}
	/* A byte at a time: the scanner counts chunk data, and a byte that
	 * it counts is payload. */
	for (size_t i = 0; i < n && !in->ended; i++) {
		uint64_t data = http_chunked_data_bytes(&in->chunked);
		size_t used;
		enum http_status st = http_chunked_scan(
		    &in->chunked, (const char *)raw + i, 1, &used);

		if (st == HTTP_BAD_REQUEST)
			return -1;
		if (http_chunked_data_bytes(&in->chunked) > data)
			in->payload[in->len++] = raw[i];
		in->scanned++;
		in->ended = st == HTTP_OK;
	}
	return 0;
}

/* --- the request body ----------------------------------------------------- */

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	request_progress(arg);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct forward *f = arg;

	(void)bev;
	pump_resume(&f->response);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct forward *f = arg;

	(void)bev;
	(void)what;
	f->keep_client = 0;
	/* A client gone, or half-closed, before its request body was
	 * complete has abandoned the request (a refused one stays
	 * refused). */
	if (!f->request.done || (what & BEV_EVENT_ERROR)) {
		forward_finish(f, f->discarding ? f->refused
		                                : REASON_CLIENT_CLOSED);
		return;
	}
	bufferevent_disable(f->client, EV_READ);
}

/* After a request body: nothing more is read from the client until conn
 * takes the next request (which may already be waiting, pipelined). */
static void
request_progress(struct forward *f)
{
	if (f->discarding) {
		discard_progress(f);
		return;
	}
	if (f->held && inspect_progress(f) <= 0)
		return;
	if (pump_run(f, &f->request) < 0) {
		f->keep_client = 0;
		forward_finish(f, REASON_BAD_FRAMING);
		return;
	}
	if (f->request.done)
		bufferevent_disable(f->client, EV_READ);
	else if (pump_go_direct(&f->request) == 0)
		direct_cb(bufferevent_getfd(f->client), EV_READ, &f->request);
}

/* --- the response --------------------------------------------------------- */

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
	struct forward *f = arg;

	(void)bev;
	if (f->state == RESPONSE_HEAD)
		read_response_head(f);
	else
		response_progress(f);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
	struct forward *f = arg;

	(void)bev;
	pump_resume(&f->request);
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct forward *f = arg;

	(void)bev;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* Whatever arrived before the EOF belongs to the response. */
	upstream_read_cb(f->upstream, f);
	if (f->finished)
		return;
	if (f->state == RESPONSE_BODY &&
	    f->response.body.kind == HTTP_BODY_CLOSE &&
	    (what & BEV_EVENT_EOF)) {
		forward_finish(f, REASON_COMPLETE);
		return;
	}
	f->keep_client = 0;
	forward_finish(f, REASON_RESPONSE_INCOMPLETE);
}

static void
read_response_head(struct forward *f)
{
	struct evbuffer *in = bufferevent_get_input(f->upstream);
	struct http_limits hl = {
	    .max_request_line = f->lim->max_request_line,
	    .max_field_line = f->lim->max_header_bytes,
	    .max_fields = HTTP_MAX_FIELDS,
	    .max_head = f->lim->max_header_bytes,
	};

	while (f->state == RESPONSE_HEAD) {
		size_t len = evbuffer_get_length(in), head_len = 0;
		const char *p;
		struct http_response resp;
		struct http_body body = {HTTP_BODY_NONE, 0};
		enum http_status st;

		if (len == 0)
			return;
		f->heard_upstream = 1;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		st = http_head_end(p, len, &hl, &head_len);
		if (st == HTTP_INCOMPLETE)
			return;
		if (st != HTTP_OK ||
		    http_parse_response(p, head_len, &hl, &resp) != HTTP_OK) {
			forward_finish(f, REASON_BAD_RESPONSE);
			return;
		}
		idle_touch(&f->idle);
		if (resp.status < 200) {
			/* Interim responses go to an HTTP/1.1 client as they
			 * are (RFC 9110 §15.2); 101 cannot happen: Upgrade is
			 * never forwarded. */
			if (resp.status == 101) {
				forward_finish(f, REASON_BAD_RESPONSE);
				return;
			}
			if (f->client_minor == 1)
				write_response_head(f, &resp, &body, 1);
			evbuffer_drain(in, head_len);
			continue;
		}
		if (http_response_body(&resp, f->fr.method, &body) != HTTP_OK) {
			forward_finish(f, REASON_BAD_RESPONSE);
			return;
		}
		if (body.kind == HTTP_BODY_CLOSE)
			f->keep_client = 0;
		f->upstream_persists =
		    f->fr.keep_upstream && f->client_minor == 1 &&
		    resp.version_minor == 1 &&
		    !http_fields_has_token(resp.fields, resp.nfields,
		                           "connection", "close");
		f->res.status = resp.status;
		write_response_head(f, &resp, &body, 0);
		evbuffer_drain(in, head_len);
		f->state = RESPONSE_BODY;
		pump_start(&f->response, &body);
	}
	response_progress(f);
}

static void
write_response_head(struct forward *f, const struct http_response *resp,
                    const struct http_body *body, int interim)
{
	send_whole(f, f->client, NULL, resp, body, interim);
}

static void
response_head(struct forward *f, struct evbuffer *out,
              const struct http_response *resp, const struct http_body *body,
              int interim)
{
	evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", resp->status,
	                    (int)resp->reason.len, resp->reason.p);
	for (size_t i = 0; i < resp->nfields; i++) {
		const struct http_field *fl = &resp->fields[i];

		if (forward_is_hop_by_hop(resp->fields, resp->nfields,
		                          fl->name) ||
		    http_span_ieq(fl->name, "via"))
			continue;
		if (f->fr.location && http_span_ieq(fl->name, "location")) {
			char loc[HTTP_LOCATION_MAX];

			if (f->fr.location(f->fr.location_arg, fl->value.p,
			                   fl->value.len, loc,
			                   sizeof(loc)) == 1) {
				evbuffer_add_printf(out, "Location: %s\r\n",
				                    loc);
				continue;
			}
		}
		/* Framing fields pass only where they still describe what is
		 * sent: Content-Length of a bodiless response (HEAD, 304) and
		 * Transfer-Encoding of a chunked or close-delimited one. */
		if (http_span_ieq(fl->name, "content-length") &&
		    body->kind != HTTP_BODY_NONE)
			continue;
		if (http_span_ieq(fl->name, "transfer-encoding") &&
		    body->kind != HTTP_BODY_CHUNKED &&
		    body->kind != HTTP_BODY_CLOSE)
			continue;
		add_field(out, fl);
	}
	add_via(out, resp->fields, resp->nfields, resp->version_minor);
	if (!interim) {
		if (body->kind == HTTP_BODY_LENGTH)
			evbuffer_add_printf(out, "Content-Length: %llu\r\n",
			                    (unsigned long long)body->length);
		if (!f->keep_client)
			evbuffer_add_printf(out, "Connection: close\r\n");
	}
	evbuffer_add(out, "\r\n", 2);
}

/*
 * A head is written whole into a buffer of its own, then handed to the
 * bufferevent in one piece: an OpenSSL filter (the gateway's origin) writes
 * each addition to its output at once, so that a head written field by
 * field would leave as a TLS record per field.  The request head (fr) or
 * the response head (resp); counted in bytes_up or bytes_down.  Without
 * memory for the buffer, written straight to the output.
 */
static void
send_whole(struct forward *f, struct bufferevent *to,
           const struct forward_request *fr, const struct http_response *resp,
           const struct http_body *body, int interim)
{
	struct evbuffer *out = bufferevent_get_output(to);
	struct evbuffer *head = evbuffer_new();
	struct evbuffer *into = head ? head : out;
	size_t before = evbuffer_get_length(into), n;

	if (fr)
		forward_write_head(into, fr);
	else
		response_head(f, into, resp, body, interim);
	n = evbuffer_get_length(into) - before;
	if (head) {
		evbuffer_add_buffer(out, head);
		evbuffer_free(head);
	}
	if (fr)
		f->res.bytes_up += n;
	else
		f->res.bytes_down += n;
}

static void
response_progress(struct forward *f)
{
	if (pump_run(f, &f->response) < 0) {
		forward_finish(f, REASON_BAD_RESPONSE);
		return;
	}
	if (f->response.done)
		forward_finish(f, REASON_COMPLETE);
	else if (pump_go_direct(&f->response) == 0)
		direct_cb(bufferevent_getfd(f->upstream), EV_READ,
		          &f->response);
}

/* --- bodies --------------------------------------------------------------- */

static void
pump_start(struct pump *p, const struct http_body *body)
{
	p->body = *body;
	p->left = body->length;
	p->active = 1;
	p->done = body->kind == HTTP_BODY_NONE ||
	          (body->kind == HTTP_BODY_LENGTH && body->length == 0);
	http_chunked_init(&p->chunked, CHUNK_LINE_MAX);
}

/* Move what belongs to the body; stop reading src when dst is full. */
static int
pump_run(struct forward *f, struct pump *p)
{
	struct evbuffer *in = bufferevent_get_input(p->src);
	struct evbuffer *out = bufferevent_get_output(p->dst);
	long long n;

	if (!p->active || p->done)
		return 0;
	if ((n = pump_measure(p, in)) < 0)
		return -1;
	if (n > 0) {
		evbuffer_remove_buffer(in, out, (size_t)n);
		*p->count += (uint64_t)n;
		idle_touch(&f->idle);
	}
	if (p->done) {
		p->active = 0;
		return 0;
	}
	if (evbuffer_get_length(out) >= f->lim->buffer_bytes) {
		bufferevent_disable(p->src, EV_READ);
		bufferevent_setwatermark(p->dst, EV_WRITE,
		                         f->lim->buffer_bytes / 2, 0);
	}
	return 0;
}

/* How many of the bytes waiting in `in` belong to the body; sets p->done
 * when its end is among them.  -1 on malformed chunked framing. */
static long long
pump_measure(struct pump *p, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	struct evbuffer_iovec vec[8];
	struct evbuffer_ptr pos;
	size_t n = 0;

	switch (p->body.kind) {
	case HTTP_BODY_NONE:
		p->done = 1;
		return 0;
	case HTTP_BODY_LENGTH:
		n = avail < p->left ? avail : (size_t)p->left;
		p->left -= n;
		p->done = p->left == 0;
		return (long long)n;
	case HTTP_BODY_CLOSE:
		return (long long)avail;
	case HTTP_BODY_CHUNKED:
		break;
	}
	evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
	while (n < avail && !p->done) {
		int nv = evbuffer_peek(in, -1, &pos, vec, 8);

		if (nv <= 0)
			break;
		for (int i = 0; i < nv && i < 8 && !p->done; i++) {
			size_t used = 0;
			enum http_status st =
			    http_chunked_scan(&p->chunked, vec[i].iov_base,
			                      vec[i].iov_len, &used);

			if (st == HTTP_BAD_REQUEST)
				return -1;
			n += used;
			p->done = st == HTTP_OK;
		}
		if (evbuffer_ptr_set(in, &pos, n, EVBUFFER_PTR_SET) < 0)
			break;
	}
	return (long long)n;
}

/* From now on read p's source socket here.  0, or -1 when the body stays
 * with the bufferevents (framing, TLS, no memory). */
static int
pump_go_direct(struct pump *p)
{
	if (p->direct || !p->active || p->done ||
	    (p->body.kind != HTTP_BODY_LENGTH &&
	     p->body.kind != HTTP_BODY_CLOSE) ||
	    !plain_socket(p->src) || !plain_socket(p->dst))
		return -1;
	p->direct =
	    event_new(bufferevent_get_base(p->src), bufferevent_getfd(p->src),
	              EV_READ | EV_PERSIST, direct_cb, p);
	if (!p->direct)
		return -1;
	bufferevent_disable(p->src, EV_READ);
	event_add(p->direct, NULL);
	return 0;
}

/* dst drained: read src again. */
static void
pump_resume(struct pump *p)
{
	if (!p->active || p->done)
		return;
	if (p->direct)
		event_add(p->direct, NULL);
	else if (!(bufferevent_get_enabled(p->src) & EV_READ))
		bufferevent_enable(p->src, EV_READ);
}

/* --- bodies straight between sockets -------------------------------------- */

static _Thread_local unsigned char direct_buf[DIRECT_BYTES];

static int
plain_socket(struct bufferevent *bev)
{
	return bufferevent_getfd(bev) >= 0 && !bufferevent_openssl_get_ssl(bev);
}

static void
direct_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pump *p = arg;
	struct forward *f = p->f;
	struct evbuffer *out = bufferevent_get_output(p->dst);

	(void)what;
	for (int round = 0; round < DIRECT_ROUNDS; round++) {
		size_t want = DIRECT_BYTES;
		ssize_t n;
		int r;

		if (evbuffer_get_length(out) >= f->lim->buffer_bytes) {
			/* dst's write callback brings us back. */
			event_del(p->direct);
			bufferevent_setwatermark(p->dst, EV_WRITE,
			                         f->lim->buffer_bytes / 2, 0);
			return;
		}
		if (p->body.kind == HTTP_BODY_LENGTH && p->left < want)
			want = (size_t)p->left;
		n = read(fd, direct_buf, want);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			direct_event(
			    f, p->src,
			    BEV_EVENT_READING |
			        (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR));
			return;
		}
		*p->count += (uint64_t)n;
		idle_touch(&f->idle);
		if (p->body.kind == HTTP_BODY_LENGTH)
			p->left -= (uint64_t)n;
		if ((r = direct_write(p, (size_t)n)) < 0) {
			f->keep_client = 0;
			if (r == -2)
				forward_finish(f, REASON_INTERNAL_ERROR);
			else
				direct_event(f, p->dst,
				             BEV_EVENT_WRITING |
				                 BEV_EVENT_ERROR);
			return;
		}
		if (p->body.kind == HTTP_BODY_LENGTH && p->left == 0) {
			p->done = 1;
			p->active = 0;
			event_del(p->direct);
			if (p == &f->response)
				forward_finish(f, REASON_COMPLETE);
			return;
		}
		if ((size_t)n < want)
			return;
	}
}

/* Write n bytes of direct_buf to p->dst, after what its output already
 * holds; what the socket cannot take waits in that output.  0, or -1 when
 * the socket failed, -2 out of memory. */
static int
direct_write(struct pump *p, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(p->dst);
	struct evbuffer_iovec held[8];
	struct iovec iov[9];
	size_t queued = evbuffer_get_length(out), sent = 0;
	int k = 0;
	ssize_t w;

	if (queued > 0) {
		k = evbuffer_peek(out, -1, NULL, held, 8);
		/* Too scattered to write at once: dst writes it all. */
		if (k > 8)
			return evbuffer_add(out, direct_buf, n) < 0 ? -2 : 0;
		for (int i = 0; i < k; i++) {
			iov[i].iov_base = held[i].iov_base;
			iov[i].iov_len = held[i].iov_len;
		}
	}
	iov[k].iov_base = direct_buf;
	iov[k].iov_len = n;
	w = writev(bufferevent_getfd(p->dst), iov, k + 1);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		w = 0;
	}
	if ((size_t)w > queued)
		sent = (size_t)w - queued;
	/* A socket bufferevent freezes its output's start for everyone but
	 * its own writes; this write stands in for one of them. */
	evbuffer_unfreeze(out, 1);
	evbuffer_drain(out, (size_t)w - sent);
	evbuffer_freeze(out, 1);
	if (sent < n && evbuffer_add(out, direct_buf + sent, n - sent) < 0)
		return -2;
	return 0;
}

/* The end of p's source, or a failure on either side, as its bufferevent
 * would have reported it. */
static void
direct_event(struct forward *f, struct bufferevent *bev, short what)
{
	if (bev == f->client)
		client_event_cb(bev, what, f);
	else
		upstream_event_cb(bev, what, f);
}

/* --- the end -------------------------------------------------------------- */

static void
forward_idle_cb(void *arg)
{
	struct forward *f = arg;

	forward_finish(f,
	               f->discarding ? f->refused : REASON_UPSTREAM_TIMEOUT);
}

/*
 * A refused request's body is read to its end and dropped before the
 * answer: a client still sending when the answer comes and the connection
 * closes sees its upload fail ("broken pipe") and may never show the answer
 * (git does this with a large push).  Up to FORWARD_DISCARD_MAX bytes,
 * within the idle timeout; then the answer goes as it is.  A refusal
 * without an answer (no status) ends at once.
 */
static void
discard_start(struct forward *f, enum reason why)
{
	f->discarding = 1;
	f->refused = why;
	bufferevent_setcb(f->upstream, NULL, NULL, NULL, NULL);
	bufferevent_disable(f->upstream, EV_READ | EV_WRITE);
	if (reason_get(why)->status == 0 || f->request.done) {
		forward_finish(f, why);
		return;
	}
	discard_progress(f);
}

static void
discard_progress(struct forward *f)
{
	struct evbuffer *in = bufferevent_get_input(f->client);
	long long n = pump_measure(&f->request, in);

	if (n > 0) {
		evbuffer_drain(in, (size_t)n);
		f->discarded += (uint64_t)n;
		idle_touch(&f->idle);
	}
	if (n < 0 || f->request.done || f->discarded > FORWARD_DISCARD_MAX)
		forward_finish(f, f->refused);
}

static void
forward_finish(struct forward *f, enum reason why)
{
	if (f->finished)
		return;
	f->finished = 1;
	idle_stop(&f->idle);
	f->res.reason = why;
	f->res.keep_client =
	    why == REASON_COMPLETE && f->keep_client && f->request.done;
	/* Reusable only when both messages ended exactly where their
	 * framing said and nothing more came. */
	f->res.keep_upstream =
	    why == REASON_COMPLETE && f->upstream_persists && f->request.done &&
	    f->response.body.kind != HTTP_BODY_CLOSE &&
	    evbuffer_get_length(bufferevent_get_input(f->upstream)) == 0;
	f->res.upstream_silent = !f->heard_upstream;
	if (f->request.direct)
		event_del(f->request.direct);
	if (f->response.direct)
		event_del(f->response.direct);
	bufferevent_setcb(f->client, NULL, NULL, NULL, NULL);
	bufferevent_setcb(f->upstream, NULL, NULL, NULL, NULL);
	bufferevent_disable(f->client, EV_READ);
	bufferevent_disable(f->upstream, EV_READ);
	f->done(f->arg, &f->res);
}
