#!/bin/sh
# egress-lockdown.sh — the packet rules of the sidecar lockdown component.
#
# In sidecar mode the agent and egressd share one network namespace, so a
# NetworkPolicy cannot tell them apart. These rules can: in the pod's network
# namespace, only sockets owned by egressd's UID may open connections that
# leave the pod; every other UID (the agent) reaches loopback and nothing else,
# over IPv4 and IPv6. Replies to connections that came *in* (kubelet probes)
# still flow, because they belong to an established conntrack entry.
#
# Run once, before any other container of the pod starts, by an init container
# that has CAP_NET_ADMIN (see kustomization.yaml beside this file). It needs
# nft (nftables) and a kernel with nf_tables, as every current distribution has.
#
#   EGRESSD_UID=65532 sh egress-lockdown.sh          apply, then list the table
#   EGRESSD_UID=65532 sh egress-lockdown.sh print    print the ruleset only
#   EGRESSD_UID=65532 sh egress-lockdown.sh check    nft -c: parse, apply nothing
#
# Applying twice replaces the table in one transaction: it is idempotent.
set -eu

NFT=${NFT:-nft}
TABLE=egressd_lockdown

die() {
	echo "egress-lockdown: $*" >&2
	exit 2
}

uid=${EGRESSD_UID:-}
case $uid in
'' | *[!0-9]*) die "EGRESSD_UID must be egressd's numeric UID (got '${uid}')" ;;
esac
[ "$uid" -ne 0 ] || die "EGRESSD_UID=0 would let every root process out; run egressd as a dedicated non-root UID"

ruleset() {
	cat <<RULES
# Created by egress-lockdown.sh: only UID $uid (egressd) may leave this pod.
table inet $TABLE
delete table inet $TABLE
table inet $TABLE {
	chain output {
		type filter hook output priority filter; policy drop;

		# Replies on connections that were accepted before (kubelet probes
		# answered by egressd, egressd's own upstream connections).
		ct state established,related accept

		# Loopback: the agent reaches egressd on 127.0.0.1:3128 this way.
		# By destination, not by interface: traffic to the pod's own
		# address also runs over lo and must not count as loopback.
		ip daddr 127.0.0.0/8 accept
		ip6 daddr ::1 accept

		# egressd: the one process allowed out.
		meta skuid $uid accept

		# IPv6 neighbour discovery and MLD are sent by the kernel, with no
		# socket and so no UID; without them IPv6 stops working for egressd too.
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } ip6 hoplimit 255 accept
		icmpv6 type mld2-listener-report ip6 hoplimit 1 accept

		# Everything else (the agent's connections, its DNS) is refused here,
		# at once: TCP gets a reset (connect() says "connection refused"),
		# the rest an ICMP "administratively prohibited". The counters show
		# the attempts; what the rules above do not take is dropped.
		meta l4proto tcp counter reject with tcp reset
		counter reject with icmpx type admin-prohibited
	}
}
RULES
}

case ${1:-apply} in
print)
	ruleset
	;;
check)
	ruleset | "$NFT" -c -f -
	;;
apply)
	ruleset | "$NFT" -f -
	echo "egress-lockdown: applied; only UID $uid may open connections out of this pod" >&2
	"$NFT" list table inet "$TABLE"
	;;
*)
	die "usage: EGRESSD_UID=N egress-lockdown.sh [apply|print|check]"
	;;
esac
