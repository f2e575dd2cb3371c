/*
 * fuzz_cidr: networks and addresses (netset.c).  The input is a network as
 * a config file holds it ("10.0.0.0/8", "fc00::/7"); when it is 16 bytes or
 * more, its first 16 bytes are also taken as a raw address, as a resolver
 * would return one.  cidr_str and netaddr_str must give text that parses
 * back to the same thing, and the special-purpose checks must agree with
 * each other.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz.h"
#include "netset.h"

/* The last address of the network: its host bits all set. */
static struct netaddr
last_addr(const struct cidr *c)
{
	struct netaddr a = c->net;

	for (unsigned bit = c->prefix; bit < 128; bit++)
		a.b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	return a;
}

static void
check_addr(const struct netaddr *a)
{
	char text[NETADDR_STRLEN];
	struct cidr back;
	const char *why = NULL;
	struct sockaddr_storage ss;
	struct netaddr from;
	socklen_t sl;

	netaddr_str(a, text);
	FUZZ_CHECK(strlen(text) < NETADDR_STRLEN);
	FUZZ_CHECK(cidr_parse(text, &back, &why) == 0);
	FUZZ_CHECK(back.prefix == 128);
	FUZZ_CHECK(memcmp(&back.net, a, sizeof(*a)) == 0);
	FUZZ_CHECK(cidr_contains(&back, a));

	const char *special = netset_special(a);
	if (special)
		FUZZ_CHECK(special[0] != '\0');
	/* A single address is special exactly when its /128 is. */
	FUZZ_CHECK(netset_cidr_is_special(&back) == (special != NULL));

	sl = netaddr_to_sockaddr(a, 443, &ss);
	FUZZ_CHECK(sl == (netaddr_is_v4(a) ? sizeof(struct sockaddr_in)
	                                   : sizeof(struct sockaddr_in6)));
	FUZZ_CHECK(netaddr_from_sockaddr(&from, (struct sockaddr *)&ss) == 0);
	FUZZ_CHECK(memcmp(&from, a, sizeof(*a)) == 0);
}

static void
check_cidr(const struct cidr *c)
{
	char text[NETADDR_STRLEN];
	struct cidr back;
	const char *why = NULL;
	struct netset set = {0};
	struct netaddr last = last_addr(c);

	FUZZ_CHECK(c->prefix <= 128);
	/* The ::ffff:0:0/96 bits of a mapped network are never host bits. */
	if (netaddr_is_v4(&c->net))
		FUZZ_CHECK(c->prefix >= 96);
	cidr_str(c, text);
	FUZZ_CHECK(strlen(text) < NETADDR_STRLEN);
	FUZZ_CHECK(cidr_parse(text, &back, &why) == 0);
	FUZZ_CHECK(back.prefix == c->prefix);
	FUZZ_CHECK(memcmp(&back.net, &c->net, sizeof(c->net)) == 0);

	FUZZ_CHECK(cidr_contains(c, &c->net));
	FUZZ_CHECK(cidr_contains(c, &last));
	FUZZ_CHECK(netset_add(&set, c) == 0);
	FUZZ_CHECK(netset_find(&set, &last) == &set.v[0]);
	netset_free(&set);
	FUZZ_CHECK(set.v == NULL && set.n == 0);

	/* A network wholly in special-purpose space holds no global
	 * address: not its first, not its last. */
	if (netset_cidr_is_special(c)) {
		FUZZ_CHECK(netset_special(&c->net) != NULL);
		FUZZ_CHECK(netset_special(&last) != NULL);
	}
	check_addr(&c->net);
	check_addr(&last);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size);
	struct cidr c;
	const char *why = NULL;

	if (cidr_parse(s, &c, &why) == 0) {
		check_cidr(&c);
	} else {
		static const char hint[] = "host bits set (did you mean ";

		FUZZ_CHECK(why != NULL && why[0] != '\0');
		/* The suggested network is one that parses. */
		if (strncmp(why, hint, sizeof(hint) - 1) == 0) {
			char net[NETADDR_STRLEN + 8];
			size_t n = strlen(why + sizeof(hint) - 1);
			struct cidr fixed;

			FUZZ_CHECK(n >= 2 && n < sizeof(net) &&
			           strcmp(why + strlen(why) - 2, "?)") == 0);
			memcpy(net, why + sizeof(hint) - 1, n - 2);
			net[n - 2] = '\0';
			FUZZ_CHECK(cidr_parse(net, &fixed, &why) == 0);
			check_cidr(&fixed);
		}
	}
	free(s);

	if (size >= 16) {
		struct netaddr a;

		memcpy(a.b, data, 16);
		check_addr(&a);
	}
	return 0;
}
