/*
 * resolve: DNS through c-ares on the event loop, with a TTL cache.
 *
 * One resolver per event_base.  Names are looked up exactly as given: no
 * search domains, no /etc/hosts, since the policy decided on that name.
 * Only names the policy already allowed are ever passed in.
 */
#ifndef EGRESSD_RESOLVE_H
#define EGRESSD_RESOLVE_H

#include <event2/event.h>
#include <stddef.h>

#include "config.h"
#include "netset.h"

/* Most addresses kept for one name. */
#define RESOLVE_MAX_ADDRS 16

enum resolve_status {
	RESOLVE_OK,
	RESOLVE_NXDOMAIN,   /* the name does not exist */
	RESOLVE_NO_ADDRESS, /* it exists, with no A or AAAA records */
	RESOLVE_ERROR,      /* SERVFAIL, REFUSED, a bad answer */
	RESOLVE_TIMEOUT,    /* no server answered in time */
};

struct resolver;
struct resolve_query;

/*
 * Called once per started query, unless it was cancelled first, from the
 * event loop (never from inside resolve_start).  addrs is valid only during
 * the call.  The query is freed after the callback returns.
 */
typedef void (*resolve_cb)(enum resolve_status status,
                           const struct netaddr *addrs, size_t naddrs,
                           void *arg);

/* Process-wide set-up (ares_library_init); 0 or -1. */
int resolve_library_init(void);

/* A resolver on base with these settings; NULL with the problem in err. */
struct resolver *resolver_new(struct event_base *base,
                              const struct config_resolver *conf, char *err,
                              size_t errlen);

/* Free the resolver; outstanding queries are cancelled without callback. */
void resolver_free(struct resolver *r);

/*
 * Look up the A and AAAA records of a normalised name.  Returns a handle for
 * resolve_cancel, or NULL when out of memory (no callback then).
 */
struct resolve_query *resolve_start(struct resolver *r, const char *name,
                                    resolve_cb cb, void *arg);

/* The callback of q will not be called; q is freed in due course. */
void resolve_cancel(struct resolve_query *q);

/* Text for a status, for messages: "NXDOMAIN", "timeout", ... */
const char *resolve_status_str(enum resolve_status s);

#endif
