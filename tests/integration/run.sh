#!/bin/sh
# egressd integration tests: the real binary against real peers (dnsmasq, TLS
# servers, canaries, curl) inside a network namespace created here and deleted
# on exit. Nothing is sent outside that namespace.
#
#   EGRESSD=/abs/path/build/egressd sh tests/integration/run.sh [PYTEST-ARGS...]
#
# EGRESSD_WRAPPER="valgrind ..." runs every egressd under that command (see
# README.md; `make valgrind` sets it). egressd is then much slower: every
# wait of the harness, and the time limit here, is stretched by
# EGRESSD_IT_SLOW (a whole number; 10 under a wrapper unless given).
#
# Needs root (ip netns). Exit status: pytest's.
set -u

if [ "$(id -u)" != 0 ]; then
	echo "integration: must run as root (it creates a network namespace with ip netns)" >&2
	exit 2
fi
if [ -z "${EGRESSD:-}" ] || [ ! -x "$EGRESSD" ]; then
	echo "integration: set EGRESSD to the absolute path of the egressd binary (got '${EGRESSD:-}')" >&2
	exit 2
fi
case "$EGRESSD" in
/*) ;;
*) echo "integration: EGRESSD must be an absolute path" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
ns="egressd-it-$$"
# pytest's temporary files (configs, logs of every egressd and dnsmasq):
# removed after a clean run, kept for a look after a failing one.
work=$(mktemp -d /tmp/egressd-it.XXXXXX) || exit 2
rc=2

cleanup() {
	# Processes still in the namespace were started by this run: end them by PID.
	for pid in $(ip netns pids "$ns" 2>/dev/null); do
		kill -TERM "$pid" 2>/dev/null
	done
	i=0
	while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && [ $i -lt 20 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	for pid in $(ip netns pids "$ns" 2>/dev/null); do
		kill -KILL "$pid" 2>/dev/null
	done
	ip netns del "$ns" 2>/dev/null
	rm -rf "/etc/netns/$ns"
	if [ "$rc" = 0 ]; then
		rm -rf "$work"
	else
		echo "integration: logs and configs kept in $work" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The official LLM SDKs the gateway tests run (pinned in sdk/package-lock.json),
# installed here, outside the namespace, where the package registry is
# reachable; inside it nothing is.
sdk="$here/sdk"
if [ ! -f "$sdk/node_modules/.package-lock.json" ] ||
	[ -n "$(find "$sdk/package-lock.json" -newer "$sdk/node_modules/.package-lock.json")" ]; then
	echo "integration: npm ci (tests/integration/sdk/node_modules)"
	(cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error) ||
		echo "integration: npm ci failed: the SDK tests will fail" >&2
fi

ip netns add "$ns" || { echo "integration: ip netns add $ns failed" >&2; exit 2; }
ip -n "$ns" link set lo up || exit 2
# ip netns exec bind-mounts /etc/netns/NS/* over /etc: a client that resolves
# a name itself (one that bypasses the proxy, NO_PROXY) asks the namespace's
# dnsmasq, never the host's resolver.
mkdir -p "/etc/netns/$ns" &&
	echo "nameserver 127.0.0.53" >"/etc/netns/$ns/resolv.conf" || exit 2

[ $# -gt 0 ] || set -- "$here"

if [ -z "${EGRESSD_IT_SLOW:-}" ]; then
	EGRESSD_IT_SLOW=1
	[ -z "${EGRESSD_WRAPPER:-}" ] || EGRESSD_IT_SLOW=10
fi
case "$EGRESSD_IT_SLOW" in
'' | *[!0-9]* | 0) echo "integration: EGRESSD_IT_SLOW must be a whole number > 0" >&2; exit 2 ;;
esac
limit=$((260 * EGRESSD_IT_SLOW))

# pytest runs inside the namespace, so every process it starts does too.
# timeout(1) bounds the whole run; pytest's own summary line is printed as is.
EGRESSD_IT_NETNS="$ns" EGRESSD_IT_SLOW="$EGRESSD_IT_SLOW" PYTHONDONTWRITEBYTECODE=1 \
	timeout -k 10 "$limit" ip netns exec "$ns" \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider --rootdir="$here" --basetemp="$work" "$@"
rc=$?
[ $rc = 124 ] && echo "integration: timed out after ${limit}s" >&2
exit $rc
