/*
 * explain: `egressd --explain`, the decision for a destination or a gateway
 * request printed for a person, from the configuration alone (no DNS, no
 * connection): which policy, rule or route, and why.
 */
#ifndef EGRESSD_EXPLAIN_H
#define EGRESSD_EXPLAIN_H

#include "config.h"

struct explain_args {
	const char *target;  /* URL, HOST:PORT, or a gateway path "/..." */
	const char *method;  /* "CONNECT" unless given */
	const char *policy;  /* NULL: the first listener's, or the only one */
	const char *service; /* a git route: "git-upload-pack" (fetch) or
	                      * "git-receive-pack" (push); NULL: none */
	const char *ref;     /* with a push: the ref to judge; ":REF" is a
	                      * delete; NULL: none */
};

/* Print the decision: 0 allowed, 1 refused, 2 a bad argument (on
 * stderr). */
int explain(const struct config *c, const struct explain_args *a);

#endif
