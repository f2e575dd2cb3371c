#include "admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "worker.h"

/* A worker whose loop has not run its heartbeat for this long is stuck. */
#define STUCK_SECONDS 5.0
#define METRICS_MAX   (256 * 1024)

struct admin {
	struct evhttp *http;
	struct worker *const *workers;
	size_t nworkers;
};

static void
reply(struct evhttp_request *req, int code, const char *reason,
      const char *type, const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(out, body, len);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", type);
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void
text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
	reply(req, code, reason, "text/plain; charset=utf-8", body,
	      strlen(body));
}

static void
serve_metrics(struct evhttp_request *req)
{
	char *buf = malloc(METRICS_MAX);
	size_t n;

	if (!buf) {
		text(req, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	n = metrics_render(buf, METRICS_MAX, EGRESSD_VERSION);
	if (n == 0)
		text(req, 500, "Internal Server Error", "metrics too large\n");
	else
		reply(req, 200, "OK", "text/plain; version=0.0.4", buf, n);
	free(buf);
}

static void
serve_health(struct admin *a, struct evhttp_request *req)
{
	for (size_t i = 0; i < a->nworkers; i++)
		if (worker_silence(a->workers[i]) > STUCK_SECONDS) {
			text(req, 503, "Service Unavailable",
			     "a worker's event loop is stuck\n");
			return;
		}
	text(req, 200, "OK", "ok\n");
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	size_t len = strcspn(uri, "?");

	if (len == 8 && strncmp(uri, "/metrics", 8) == 0)
		serve_metrics(req);
	else if (len == 8 && strncmp(uri, "/healthz", 8) == 0)
		serve_health(a, req);
	else if (len == 7 && strncmp(uri, "/readyz", 7) == 0)
		metrics_ready()
		    ? text(req, 200, "OK", "ready\n")
		    : text(req, 503, "Service Unavailable", "not ready\n");
	else
		text(req, 404, "Not Found",
		     "egressd admin: /metrics, /healthz, /readyz\n");
}

struct admin *
admin_new(struct event_base *base, const char *address, uint16_t port,
          struct worker *const *workers, size_t nworkers, char *err,
          size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (!a || !(a->http = evhttp_new(base))) {
		snprintf(err, errlen, "admin: out of memory");
		free(a);
		return NULL;
	}
	a->workers = workers;
	a->nworkers = nworkers;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_gencb(a->http, request_cb, a);
	if (!evhttp_bind_socket_with_handle(a->http, address, port)) {
		snprintf(err, errlen, "admin: listen on %s port %u failed",
		         address, port);
		evhttp_free(a->http);
		free(a);
		return NULL;
	}
	return a;
}

void
admin_free(struct admin *a)
{
	if (!a)
		return;
	evhttp_free(a->http);
	free(a);
}
