# What lockdown-test.sh and service-test.sh share: "ok"/"not ok" lines, the
# checks before a test, its scratch directory, its network namespaces and
# their cleanup on exit. Sourced (". netns-lib.sh"); the script names its pod
# namespace $ns, and appends the PIDs of what it starts in the background to
# $pids.

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
check_not() { # check_not DESCRIPTION COMMAND...: ok when COMMAND fails
	d=$1
	shift
	if "$@"; then notok "$d"; else ok "$d"; fi
}

# netns_require WHAT COMMAND...: root, and every COMMAND on the PATH; or a
# "not ok - WHAT: ..." line and exit 1.
netns_require() {
	what=$1
	shift
	if [ "$(id -u)" != 0 ]; then
		notok "$what: must run as root (ip netns)"
		exit 1
	fi
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			notok "$what: $c is missing (scripts/deps.sh test installs it)"
			exit 1
		fi
	done
}

# netns_need_egressd WHAT: $EGRESSD is the built binary; or a "skip - WHAT"
# line (K8S_TEST_ALLOW_NO_EGRESSD=1) or a "not ok - WHAT" line, and exit 0.
netns_need_egressd() {
	if [ -z "${EGRESSD:-}" ] || [ ! -x "${EGRESSD:-}" ]; then
		if [ "${K8S_TEST_ALLOW_NO_EGRESSD:-}" = 1 ]; then
			echo "skip - $1: EGRESSD not built (K8S_TEST_ALLOW_NO_EGRESSD=1)"
			exit 0
		fi
		notok "$1: set EGRESSD to the built binary (got '${EGRESSD:-}')"
		exit 0
	fi
}

# netns_init NAME NAMESPACE...: a scratch directory $tmp
# (egressd-k8s-NAME.XXXXXX), no $pids yet, and the traps that clean up on
# exit: the NAMESPACEs are deleted whether or not they were created.
netns_init() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/egressd-k8s-$1.XXXXXX")
	chmod 755 "$tmp"
	shift
	pids=""
	netns_names="$*"
	trap netns_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

netns_cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	i=0
	while [ $i -lt 20 ]; do
		alive=""
		for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	# Anything left in the namespaces was started by the script (they are its
	# own, created by netns_add): end it by PID before deleting them.
	for n in $netns_names; do
		for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for n in $netns_names; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$tmp"
}

# netns_add WHAT NAMESPACE: the namespace, with lo up; or a "not ok - WHAT:
# ..." line and exit 1.
netns_add() {
	ip netns add "$2" || { notok "$1: ip netns add $2"; exit 1; }
	ip -n "$2" link set lo up
}

as_uid() { # as_uid UID COMMAND...: inside the namespace $ns, as UID:UID, no groups
	u=$1
	shift
	ip netns exec "$ns" setpriv --reuid="$u" --regid="$u" --clear-groups "$@"
}
