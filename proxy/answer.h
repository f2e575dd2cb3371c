/*
 * answer: what egressd itself says to a client, all of it from the reason
 * table: a refusal or an error (status, Proxy-Status, a text body that names
 * the destination, the policy and why), and the 200 that opens a tunnel.
 */
#ifndef EGRESSD_ANSWER_H
#define EGRESSD_ANSWER_H

#include <event2/buffer.h>
#include <stddef.h>

#include "policy.h"
#include "reason.h"
#include "request.h"

/*
 * Append the answer for `why` to request r: a complete response that ends
 * the connection (Connection: close).  A refusal's body names the
 * destination, the policy and the reason, and addr (with v's range) when
 * given.  Returns the bytes appended.
 */
size_t answer_write(struct evbuffer *out, const struct request *r,
                    enum reason why, const struct verdict *v,
                    const struct netaddr *addr);

/* Append the 200 that opens a CONNECT tunnel.  Returns the bytes appended. */
size_t answer_established(struct evbuffer *out);

#endif
