/*
 * host: destination name normalisation and matching.  No I/O.
 *
 * A destination is either a DNS name (normalised: lowercase, one trailing
 * dot removed, LDH labels only) or a strictly parsed IP literal (dotted quad,
 * or bracketed IPv6 without a zone).  Anything else is malformed and must be
 * refused before it reaches a resolver or a lenient parser.
 */
#ifndef EGRESSD_HOST_H
#define EGRESSD_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "netset.h"

#define HOST_NAME_MAX_LEN 253

enum host_kind {
	HOST_NAME,
	HOST_IPV4,
	HOST_IPV6,
};

struct host {
	enum host_kind kind;
	/* Normalised name, or the canonical text of the IP literal (IPv6
	 * without brackets).  Always NUL-terminated. */
	char name[HOST_NAME_MAX_LEN + 1];
	/* Valid when kind is HOST_IPV4 or HOST_IPV6.  An IPv4-mapped IPv6
	 * literal ("[::ffff:10.0.0.1]") is HOST_IPV4, named "10.0.0.1". */
	struct netaddr addr;
};

/*
 * Parse and normalise a bare host (no port): "Example.COM.", "10.1.2.3",
 * "[2001:db8::1]".  When allow_brackets is 0 an IPv6 literal is accepted
 * without brackets (config files, --explain); when 1, IPv6 must be bracketed
 * (request targets).  Returns 0 and fills *out, or -1 when the host is
 * malformed: non-ASCII, empty or over-long labels, characters outside LDH,
 * a leading or trailing hyphen, more than one trailing dot, or a numeric form
 * that is not a strict dotted quad ("2130706433", "0x7f.1", "0177.0.0.1",
 * "127.1" are all malformed).
 */
int host_parse(const char *s, size_t len, int brackets, struct host *out);

/*
 * Parse an authority "host:port" (RFC 9110 §9.3.6 CONNECT target, or the
 * authority of an absolute URI).  IPv6 must be bracketed.  The port must be
 * 1..65535 in plain decimal digits; when it is absent, *port is set to
 * default_port, or the call fails when default_port is 0.  Userinfo ("@") is
 * malformed.  Returns 0 or -1.
 */
int host_parse_authority(const char *s, size_t len, uint16_t default_port,
                         struct host *out, uint16_t *port);

/*
 * Validate a host pattern from the config: an exact name ("api.example.com")
 * or "*.suffix" (matches proper subdomains only, never the suffix itself).
 * Writes the normalised pattern to out (size HOST_NAME_MAX_LEN + 3).
 * Returns 0, or -1 with a static description of the problem in *why.
 */
int host_pattern_parse(const char *s, char *out, const char **why);

/*
 * Does a normalised pattern match a normalised name?  Label-wise: "*.b.c"
 * matches "a.b.c" and "x.a.b.c", but not "b.c" or "xb.c".  Returns 1 or 0.
 */
int host_pattern_match(const char *pattern, const char *name);

#endif
