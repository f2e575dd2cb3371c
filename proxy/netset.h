/*
 * netset: IPv4/IPv6 addresses, CIDR sets and the built-in special-purpose
 * ranges.  No I/O.
 *
 * Every address is held in IPv6 form; an IPv4 address a.b.c.d is stored as
 * the IPv4-mapped ::ffff:a.b.c.d, and an IPv4 CIDR a.b.c.d/n as
 * ::ffff:a.b.c.d/(96+n).  So one comparison serves both families.
 */
#ifndef EGRESSD_NETSET_H
#define EGRESSD_NETSET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Long enough for any IPv6 text form, with "/128". */
#define NETADDR_STRLEN 64

struct netaddr {
	uint8_t b[16];
};

struct cidr {
	struct netaddr net; /* host bits are zero */
	unsigned prefix;    /* 0..128 in the IPv6 form */
};

struct netset {
	struct cidr *v;
	size_t n, cap;
};

/* Is this an IPv4 address in mapped form (::ffff:0:0/96)?  1 or 0. */
int netaddr_is_v4(const struct netaddr *a);

/* Build from a sockaddr_in / sockaddr_in6.  Returns 0, or -1 for other
 * families. */
int netaddr_from_sockaddr(struct netaddr *a, const struct sockaddr *sa);

/* Fill a sockaddr_in (for IPv4-mapped addresses) or sockaddr_in6 with the
 * given port.  Returns the length of the sockaddr written. */
socklen_t netaddr_to_sockaddr(const struct netaddr *a, uint16_t port,
                              struct sockaddr_storage *ss);

/* Text form: dotted quad for IPv4, RFC 5952 for IPv6.  buf has
 * NETADDR_STRLEN bytes.  Returns buf. */
const char *netaddr_str(const struct netaddr *a, char *buf);

/*
 * Parse "a.b.c.d", "a.b.c.d/n", "x:y::z" or "x:y::z/n" (strict: dotted quad
 * only, no zone, host bits must be zero).  Returns 0, or -1 with a
 * description in *why: a static string, or for "host bits set (did you mean
 * 10.0.0.0/8?)" a per-thread buffer that the next call overwrites.
 */
int cidr_parse(const char *s, struct cidr *out, const char **why);

/* Text form "10.0.0.0/8" or "fc00::/7".  buf has NETADDR_STRLEN bytes. */
const char *cidr_str(const struct cidr *c, char *buf);

/* Does the CIDR contain the address?  1 or 0. */
int cidr_contains(const struct cidr *c, const struct netaddr *a);

/* Add a CIDR to the set.  Returns 0, or -1 when out of memory. */
int netset_add(struct netset *s, const struct cidr *c);

/* The first CIDR of the set that contains a, or NULL. */
const struct cidr *netset_find(const struct netset *s, const struct netaddr *a);

/* Release the set's storage; the set is empty afterwards. */
void netset_free(struct netset *s);

/*
 * Is the address special-purpose (IANA IPv4/IPv6 special-purpose registries:
 * unspecified, loopback, RFC 1918, CGNAT, link-local, multicast, benchmark,
 * documentation, reserved, broadcast, ULA, ...)?  IPv6 forms that carry an
 * IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo
 * 2001::/32) are judged by the IPv4 address they carry.  Returns NULL for a
 * globally routable address, else a static name of the range for logs
 * ("loopback", "private", "link-local", "nat64:loopback", ...).
 */
const char *netset_special(const struct netaddr *a);

/*
 * Does the CIDR lie wholly inside special-purpose space?  A rule network
 * must do so to unlock special-purpose addresses: "10.20.0.0/16" does,
 * "0.0.0.0/0" does not.  1 or 0.
 */
int netset_cidr_is_special(const struct cidr *c);

#endif
