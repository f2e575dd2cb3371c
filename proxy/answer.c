#include "answer.h"

#include <stdio.h>
#include <string.h>

#include "config.h"

/* "host:port" as the request named it, brackets around IPv6. */
static void
dest_text(const struct request *r, char *buf, size_t len)
{
	if (r->have_dest)
		snprintf(buf, len, "%s%s%s:%u",
		         r->host.kind == HOST_IPV6 ? "[" : "", r->host.name,
		         r->host.kind == HOST_IPV6 ? "]" : "", r->port);
	else if (r->route) /* a gateway request refused before its dial */
		snprintf(buf, len, "%s%s%s:%u",
		         strchr(r->route->match.host, ':') ? "[" : "",
		         r->route->match.host,
		         strchr(r->route->match.host, ':') ? "]" : "",
		         r->route->match.port);
	else if (r->gateway_path)
		snprintf(buf, len, "%s", r->gateway_path);
	else
		snprintf(buf, len, "(unknown)");
}

/* The refusal body's address line, "" without an address: the address,
 * and its special-purpose range when the verdict names one. */
static void
address_line(char *buf, size_t len, const struct verdict *v,
             const struct netaddr *addr)
{
	char abuf[NETADDR_STRLEN];

	if (!addr)
		buf[0] = '\0';
	else if (v && v->range)
		snprintf(buf, len, "  address:     %s (%s)\n",
		         netaddr_str(addr, abuf), v->range);
	else
		snprintf(buf, len, "  address:     %s\n",
		         netaddr_str(addr, abuf));
}

/* The text body of the answer; its length. */
static int
answer_body(char *body, size_t len, const struct request *r, enum reason why,
            const struct verdict *v, const struct netaddr *addr)
{
	const struct reason_info *ri = reason_get(why);
	char dest[HOST_NAME_MAX_LEN + 16], aline[NETADDR_STRLEN + 128];
	int n;

	dest_text(r, dest, sizeof(dest));
	if (!reason_is_denial(why))
		n = snprintf(body, len,
		             "egressd could not complete this request.\n\n"
		             "  destination: %s\n"
		             "  reason:      %s: %s\n",
		             dest, ri->name, ri->text);
	else {
		address_line(aline, sizeof(aline), v, addr);
		n = snprintf(
		    body, len,
		    "egressd refused this request.\n\n"
		    "  destination: %s (%s)\n"
		    "  policy:      %s\n"
		    "  reason:      %s: %s\n"
		    "%s%s%s%s"
		    "\nThis block is deliberate: this environment may only "
		    "reach the destinations\nits operator allowed. Do not "
		    "try to work around it (other hosts, IP addresses,\n"
		    "ports or tools). If the task needs this destination, "
		    "ask the operator to\nadd it to the egress policy.\n",
		    dest, r->method, r->policy ? r->policy->name : "(none)",
		    ri->name, ri->text, aline, r->detail[0] ? "  detail:      " : "",
		    r->detail, r->detail[0] ? "\n" : "");
	}
	if (n < 0 || (size_t)n >= len)
		n = (int)strlen(body);
	return n;
}

size_t
answer_write(struct evbuffer *out, const struct request *r, enum reason why,
             const struct verdict *v, const struct netaddr *addr)
{
	const struct reason_info *ri = reason_get(why);
	/* The output may still hold an earlier response of this connection. */
	size_t before = evbuffer_get_length(out);
	char body[2048], dest[HOST_NAME_MAX_LEN + 16];
	int n;

	if (r->reply) {
		/* The gateway's own answer (a push's report-status), which the
		 * client's tool shows better than the table's. */
		evbuffer_add_printf(out,
		                    "HTTP/1.1 %d OK\r\n"
		                    "Proxy-Status: egressd; error=%s; "
		                    "details=\"%s\"\r\n"
		                    "Content-Type: %s\r\n"
		                    "Content-Length: %zu\r\n"
		                    "Cache-Control: no-cache\r\n"
		                    "Connection: close\r\n\r\n",
		                    r->reply_status, ri->proxy_status, ri->name,
		                    r->reply_type, r->reply_len);
		evbuffer_add(out, r->reply, r->reply_len);
		return evbuffer_get_length(out) - before;
	}
	n = answer_body(body, sizeof(body), r, why, v, addr);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", ri->status, ri->phrase);
	/* RFC 9209 §2: the proxy names itself, then the error type. */
	evbuffer_add_printf(out, "Proxy-Status: egressd; error=%s",
	                    ri->proxy_status);
	if (why == REASON_DNS_NXDOMAIN)
		evbuffer_add_printf(out, "; rcode=\"NXDOMAIN\"");
	if (r->have_dest) {
		dest_text(r, dest, sizeof(dest));
		evbuffer_add_printf(out, "; details=\"%s: %s\"", ri->name,
		                    dest);
	} else {
		evbuffer_add_printf(out, "; details=\"%s\"", ri->name);
	}
	if (ri->status == 401)
		/* RFC 9110 §11.6.1: git sends its credentials (the gateway
		 * token as the password) only after a Basic challenge. */
		evbuffer_add_printf(out, "\r\nWWW-Authenticate: Basic "
		                         "realm=\"egressd gateway\", Bearer "
		                         "realm=\"egressd gateway\"");
	if (ri->status == 407)
		/* RFC 9110 §11.7.1: say which schemes will do. */
		evbuffer_add_printf(out, "\r\nProxy-Authenticate: Basic "
		                         "realm=\"egressd\", Bearer "
		                         "realm=\"egressd\"");
	evbuffer_add_printf(out,
	                    "\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                    "Content-Length: %d\r\nConnection: close\r\n\r\n",
	                    n);
	evbuffer_add(out, body, (size_t)n);
	return evbuffer_get_length(out) - before;
}

size_t
answer_established(struct evbuffer *out)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	evbuffer_add(out, ok, sizeof(ok) - 1);
	return sizeof(ok) - 1;
}
