#!/bin/bash
# egressd benchmark: egressd, Squid and tinyproxy, each in turn the only proxy
# running, against a direct connection, with the same allowlist and the same
# load, on 127.0.0.0/8.  Prints one table.  See tests/bench/README.md.
#
#   EGRESSD=/abs/path/build/egressd bash tests/bench/run.sh [--quick|--smoke]
#
#   (no option)  the full benchmark (about 5 minutes on 2 cores)
#   --quick      every proxy, short scenarios: a look in about 2 minutes
#   --smoke      egressd only, about 1 s a scenario; checks that the tools
#                work (counts > 0, no errors), never a timing; exit 1 if not
#
# Environment (defaults for the full run):
#   BENCH_SECONDS=10        duration of each timed scenario
#   BENCH_BULK_BYTES=1073741824  bytes streamed in each bulk scenario
#   BENCH_BULK_RUNS=3       each bulk scenario this many times: the run with
#                           the median MB/s stands for it (errors of all count)
#   BENCH_IDLE="4000 8000"  idle tunnel counts
#   BENCH_RATE=1000         the fixed-rate scenario's tunnels a second
#   BENCH_CLIENTS=50        concurrent clients (connect-rate, http)
#   BENCH_TRICKLE_CONNS=300 trickle: connections holding a partial head
#   BENCH_TRICKLE_HEAD=30000  bytes of head each sends at once
#   BENCH_TRICKLE_RATE=50000  then bytes a second, one at a time, in all
#   BENCH_TRICKLE_SECONDS=5   for this long (under header_timeout_ms)
#   BENCH_TRICKLE_PROBES=100  probe tunnels a second beside it
#   BENCH_PROXIES="direct egressd squid tinyproxy"
#   BENCH_SCENARIOS=all     or some of: conn1 conn50 rate bulk1 bulk16
#                           http100b http100k trickle idle
#   BENCH_PORT_BASE=7100    ports BASE+1..3 upstream, BASE+28..30 proxies
#   BENCH_NETNS=1           run inside a network namespace of its own (root)
#   BENCH_EGRESSD_EXTRA='workers = 1;'  appended to egressd's configuration
#   BENCH_NICE=-10          priority of everything the benchmark runs (root)
#   BENCH_TMPDIR=/tmp       where the run's configs and the proxies' logs go
#                           (/dev/shm takes the disk's fsync out of it)
#   BENCH_OUT=DIR           keep results, configs and logs in DIR
#   BENCH_BIN=DIR           prebuilt loadgen and upstream (else built here)
#   BENCH_PROFILE=perf      after the measurements, profile egressd with
#                           perf record (connect-rate, bulk, http) into
#                           BENCH_OUT (default build/bench-profile)
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=full
case "${1:-}" in
"") ;;
--quick) mode=quick ;;
--smoke) mode=smoke ;;
-h | --help)
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "bench: unknown option $1 (try --help)" >&2
	exit 2
	;;
esac

case $mode in
full)
	: "${BENCH_SECONDS:=10}" "${BENCH_BULK_BYTES:=1073741824}"
	: "${BENCH_IDLE=4000 8000}" "${BENCH_RATE:=1000}"
	: "${BENCH_PROXIES:=direct egressd squid tinyproxy}"
	;;
quick)
	: "${BENCH_SECONDS:=3}" "${BENCH_BULK_BYTES:=268435456}"
	: "${BENCH_IDLE=1000 2000}" "${BENCH_RATE:=1000}"
	: "${BENCH_PROXIES:=direct egressd squid tinyproxy}"
	;;
smoke)
	: "${BENCH_SECONDS:=1}" "${BENCH_BULK_BYTES:=16777216}"
	: "${BENCH_IDLE=200}" "${BENCH_RATE:=200}"
	: "${BENCH_PROXIES:=egressd}" "${BENCH_BULK_RUNS:=1}"
	: "${BENCH_TRICKLE_SECONDS:=2}"
	;;
esac
: "${BENCH_BULK_RUNS:=3}"
: "${BENCH_TRICKLE_CONNS:=300}" "${BENCH_TRICKLE_HEAD:=30000}"
: "${BENCH_TRICKLE_RATE:=50000}" "${BENCH_TRICKLE_SECONDS:=5}"
: "${BENCH_TRICKLE_PROBES:=100}" "${BENCH_SCENARIOS:=all}"
: "${BENCH_CLIENTS:=50}" "${BENCH_PORT_BASE:=7100}" "${BENCH_NETNS:=1}"
: "${BENCH_PROFILE:=}" "${BENCH_NICE:=-10}"

say() { echo "bench: $*" >&2; }
die() {
	say "$*"
	exit 2
}

case " $BENCH_PROXIES " in *" egressd "*)
	if [ -z "${EGRESSD:-}" ] || [ ! -x "$EGRESSD" ]; then
		die "set EGRESSD to the egressd binary (got '${EGRESSD:-}'); make bench does"
	fi
	case "$EGRESSD" in /*) ;; *) EGRESSD="$PWD/$EGRESSD" ;; esac
	;;
esac

# Addresses and ports.  Upstream services listen on every target address;
# the load generator binds the sources in turn; proxies listen on 127.0.0.1.
TARGETS="127.0.0.21 127.0.0.22 127.0.0.23 127.0.0.24"
SOURCES="127.0.0.31,127.0.0.32,127.0.0.33,127.0.0.34,127.0.0.35,127.0.0.36,127.0.0.37,127.0.0.38"
P_ECHO=$((BENCH_PORT_BASE + 1))
P_BULK=$((BENCH_PORT_BASE + 2))
P_HTTP=$((BENCH_PORT_BASE + 3))
port_of() {
	case $1 in
	egressd) echo $((BENCH_PORT_BASE + 28)) ;;
	squid) echo $((BENCH_PORT_BASE + 29)) ;;
	tinyproxy) echo $((BENCH_PORT_BASE + 30)) ;;
	esac
}
targets_on() { # targets_on PORT → "ip:port,ip:port,..."
	local t out=""
	for t in $TARGETS; do out="$out${out:+,}$t:$1"; done
	echo "$out"
}

# --- what the benchmark needs ------------------------------------------------

need=""
case " $BENCH_PROXIES " in *" squid "*)
	command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] || need="$need squid" ;;
esac
case " $BENCH_PROXIES " in *" tinyproxy "*)
	command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need="$need tinyproxy" ;;
esac
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || die "missing:$need (run as root, or apt-get install$need)"
	say "installing:$need"
	# The packages would start their system services (Squid on 3128): keep
	# them from it, as container images do, unless a policy is there.
	made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends $need >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends $need >&2
	fi
	rc=$?
	[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install$need failed"
fi
PATH="$PATH:/usr/sbin:/sbin"

# --- temporary state, cleaned up on every exit ------------------------------

work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/egressd-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$work"
ns=""
NSX=()
pids=() # every long-lived process started here
results="$work/results"
: >"$results"

# The parent of PID, or nothing once it is gone.
ppid_of() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2; }

stop_pid() { # stop_pid PID [TENTHS]: TERM, up to 10 s, then KILL; reaps it
	local pid=$1 i=0 limit=${2:-100}
	# Only a child of this script: a PID that has been reaped may have
	# been given to someone else's process since.
	if [ "$(ppid_of "$pid")" != "$$" ]; then
		wait "$pid" 2>/dev/null
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && [ $i -lt "$limit" ]; do
		# A zombie child of ours counts as gone.
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(ppid_of "$pid")" = "$$" ] && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
	if [ -n "$ns" ]; then
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	fi
	if [ -n "${BENCH_OUT:-}" ]; then
		mkdir -p "$BENCH_OUT" && cp -r "$work"/. "$BENCH_OUT"/ &&
			say "results, configs and logs in $BENCH_OUT"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Priority: on a shared machine, background work (a fuzzer, a test suite)
# would take cores from whichever proxy happens to run beside it.  Every
# process started from here inherits this.
if [ "$(id -u)" = 0 ] && [ "$BENCH_NICE" != 0 ]; then
	renice -n "$BENCH_NICE" -p $$ >/dev/null 2>&1 ||
		say "warning: cannot renice to $BENCH_NICE"
fi

# Descriptors: the idle scenario holds thousands of tunnels; every process
# started from here inherits this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] || [ "$nofile" -ge 20000 ] ||
	say "warning: open files limited to $nofile; large idle scenarios will fail"

# --- the tools ---------------------------------------------------------------

if [ -n "${BENCH_BIN:-}" ] && [ -x "$BENCH_BIN/loadgen" ] && [ -x "$BENCH_BIN/upstream" ]; then
	LOADGEN="$BENCH_BIN/loadgen"
	UPSTREAM="$BENCH_BIN/upstream"
else
	mkdir -p "$work/bin"
	for t in loadgen upstream; do
		${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow \
			-Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
			-Wimplicit-fallthrough -o "$work/bin/$t" "$here/$t.c" -lm ||
			die "cannot build $t"
	done
	LOADGEN="$work/bin/loadgen"
	UPSTREAM="$work/bin/upstream"
fi

# A copy of egressd: a rebuild during the run must not change the binary
# between scenarios (the idle scenarios restart it).
if [ -n "${EGRESSD:-}" ] && [ -x "$EGRESSD" ]; then
	mkdir -p "$work/bin"
	cp "$EGRESSD" "$work/bin/egressd" || die "cannot copy $EGRESSD"
	EGRESSD="$work/bin/egressd"
fi

# --- a network namespace of its own ------------------------------------------

if [ "$BENCH_NETNS" = 1 ] && [ "$(id -u)" = 0 ]; then
	ns="egressd-bench-$$"
	if ip netns add "$ns" 2>/dev/null && ip -n "$ns" link set lo up; then
		NSX=(ip netns exec "$ns")
	else
		say "warning: no network namespace; running in the current one"
		ip netns del "$ns" 2>/dev/null
		ns=""
	fi
fi

# --- measuring a process -----------------------------------------------------

HZ=$(getconf CLK_TCK)

# CPU ticks (user+system) of PID, its reaped children and its live children
# (Squid's log daemon): one number that only grows.
proc_cpu() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$1" '
		{ pid = $1; sub(/^.*\) /, "");
		  # now $1 is the state, $2 the ppid, $12..$15 utime stime cutime cstime
		  if (pid == p) t += $12 + $13 + $14 + $15;
		  else if ($2 == p) t += $12 + $13 }
		END { print t + 0 }'
}
proc_rss() { # KiB
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# --- the upstream ------------------------------------------------------------

"${NSX[@]}" "$UPSTREAM" -a "$(echo $TARGETS | tr ' ' ,)" -e $P_ECHO -b $P_BULK -h $P_HTTP \
	>"$work/upstream.out" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
for _ in $(seq 50); do
	grep -q ready "$work/upstream.out" 2>/dev/null && break
	sleep 0.1
done
grep -q ready "$work/upstream.out" || die "upstream did not start: $(cat "$work/upstream.out")"

# --- the proxies -------------------------------------------------------------

all_ports() { echo "$P_ECHO $P_BULK $P_HTTP"; }

write_egressd_conf() { # DIR PORT
	cat >"$1/egressd.conf" <<EOF
# egressd for the benchmark: one rule, IP-literal upstreams on loopback.
listen = ( { address = "127.0.0.1"; port = $2; } );
log = { path = "$1/decisions.log"; };
# Room for the largest idle scenario: two descriptors a tunnel, 20,000 here.
# No per-client cap (0; the default is 256): the load comes from a few
# addresses, the idle scenario holds 1,000 tunnels from each of eight and
# the trickle 300 heads from one.
limits = { max_connections = 9000; max_connections_per_client = 0; };
# As in production: started as root, it serves as nobody under its
# seccomp filter.
sandbox = { user = "nobody"; };
${BENCH_EGRESSD_EXTRA:-}
${egressd_scenario_extra:-}
policies = (
  { name = "bench";
    mode = "enforce";
    rules = (
      { name = "bench-upstreams";
        networks = [ "127.0.0.0/8" ];
        ports = [ $P_ECHO, $P_BULK, $P_HTTP ];
        methods = [ "CONNECT", "GET" ]; }
    );
  }
);
EOF
}

write_squid_conf() { # DIR PORT
	# Squid looks up every client's name (PTR); a hosts file answers for
	# the benchmark's addresses, as DNS (with its cache) would in production.
	{
		echo "127.0.0.1 localhost"
		for a in $(echo "$SOURCES" | tr , ' ') $TARGETS; do
			echo "$a bench-${a##*.}.invalid"
		done
	} >"$1/hosts"
	cat >"$1/squid.conf" <<EOF
# Squid for the benchmark: the same allowlist, cache off, access log on.
http_port 127.0.0.1:$2
visible_hostname egressd-bench
acl clients src 127.0.0.0/8
acl upstreams dst 127.0.0.0/8
acl bench_ports port $(all_ports)
acl CONNECT method CONNECT
http_access deny !bench_ports
http_access allow clients upstreams
http_access deny all
cache deny all
access_log daemon:$1/access.log squid
hosts_file $1/hosts
cache_log $1/cache.log
cache_store_log none
pid_filename $1/squid.pid
coredump_dir $1
pinger_enable off
shutdown_lifetime 1 seconds
max_filedescriptors 20000
EOF
}

write_tinyproxy_conf() { # DIR PORT
	printf '^127\\.0\\.0\\.[0-9]+$\n' >"$1/filter"
	cat >"$1/tinyproxy.conf" <<EOF
# tinyproxy for the benchmark: the same allowlist, logging at Info.
User tinyproxy
Group tinyproxy
Port $2
Listen 127.0.0.1
Timeout 600
LogFile "$1/tinyproxy.log"
LogLevel Info
PidFile "$1/tinyproxy.pid"
MaxClients 20000
Allow 127.0.0.0/8
Filter "$1/filter"
FilterType ere
FilterDefaultDeny Yes
$(for p in $(all_ports); do echo "ConnectPort $p"; done)
EOF
}

proxy_pid=""
proxy_addr=""
proxy_name=""
proxy_fds=0 # open descriptors of the idle proxy, after start

proc_fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# settle: before the next scenario, let the proxy finish what the last one
# left (an overloaded proxy may still be working through thousands of
# closed connections); if it has not within 20 s, start it afresh, so that
# no scenario pays for the one before.  Squid keeps up to one idle upstream
# connection per client after the HTTP scenarios: hence the margin.
settle() {
	local i
	if [ -n "$proxy_pid" ]; then
		for i in $(seq 200); do
			[ "$(proc_fds "$proxy_pid")" -le $((proxy_fds + BENCH_CLIENTS + 16)) ] && break
			sleep 0.1
		done
		if [ "$(proc_fds "$proxy_pid")" -gt $((proxy_fds + BENCH_CLIENTS + 16)) ]; then
			say "$proxy_name still busy after 20 s ($(proc_fds "$proxy_pid") descriptors open): restarted"
			echo "$proxy_name restarted after $1" >>"$work/notes"
			stop_proxy
			start_proxy "$proxy_name" || return 1
		fi
	fi
	sleep "${BENCH_SETTLE:-1}"
}

# start_proxy NAME: start it in $work/NAME, wait until a CONNECT goes through.
start_proxy() {
	local name=$1 dir="$work/$1" port
	port=$(port_of "$name")
	mkdir -p "$dir"
	chmod 777 "$dir"
	case $name in
	egressd)
		write_egressd_conf "$dir" "$port"
		"${NSX[@]}" "$EGRESSD" -c "$dir/egressd.conf" >>"$dir/stdout" 2>&1 &
		;;
	squid)
		write_squid_conf "$dir" "$port"
		chown proxy "$dir" 2>/dev/null
		"${NSX[@]}" squid -N -f "$dir/squid.conf" >>"$dir/stdout" 2>&1 &
		;;
	tinyproxy)
		write_tinyproxy_conf "$dir" "$port"
		chown tinyproxy "$dir" 2>/dev/null
		"${NSX[@]}" tinyproxy -d -c "$dir/tinyproxy.conf" >>"$dir/stdout" 2>&1 &
		;;
	esac
	proxy_pid=$!
	proxy_name=$name
	pids+=("$proxy_pid")
	proxy_addr="127.0.0.1:$port"
	local i
	for i in $(seq 40); do
		kill -0 "$proxy_pid" 2>/dev/null || break
		if "${NSX[@]}" "$LOADGEN" -m connect -x "$proxy_addr" -t "$(targets_on $P_ECHO)" \
			-c 1 -d 0 -M 1 -T 1 2>/dev/null | grep -q ' count=[1-9]'; then
			sleep 0.2
			proxy_fds=$(proc_fds "$proxy_pid")
			return 0
		fi
		sleep 0.25
	done
	say "$name did not start or refuses the benchmark's CONNECT; its output:"
	tail -n 20 "$dir/stdout" "$dir"/*.log >&2 2>/dev/null
	stop_proxy
	return 1
}

stop_proxy() {
	[ -n "$proxy_pid" ] || return 0
	stop_pid "$proxy_pid"
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$proxy_pid" ] || keep+=("$p"); done
	pids=("${keep[@]}")
	proxy_pid=""
}

# --- scenarios ---------------------------------------------------------------

# run_load TARGET SCENARIO LIMIT_S LOADGEN-ARGS...: one loadgen run, its
# result line and the proxy's CPU ticks appended to the results.
run_load() {
	local target=$1 scen=$2 limit=$3 c0=0 c1=0 out xarg=()
	shift 3
	[ "$target" = direct ] || xarg=(-x "$proxy_addr")
	[ -n "$proxy_pid" ] && c0=$(proc_cpu "$proxy_pid")
	out=$(timeout -k 5 "$limit" "${NSX[@]}" "$LOADGEN" "${xarg[@]}" "$@" \
		2>>"$work/loadgen.err" | grep '^mode=')
	[ -n "$proxy_pid" ] && c1=$(proc_cpu "$proxy_pid")
	[ -n "$out" ] || out="mode=failed count=0 errors=1"
	echo "$target $scen $out cpu_ticks=$((c1 - c0))" >>"$results"
	say "$target $scen: $out cpu_ticks=$((c1 - c0))"
	settle "$scen"
}

# run_median N TARGET SCEN LIMIT LOADGEN-ARGS...: run_load N times; the run
# with the median MB/s is the scenario's result line, with the errors of
# every run added up (a bad run is never hidden by picking another).
run_median() {
	local n=$1 target=$2 scen=$3 all=$results i
	shift 3
	results="$work/median-$scen"
	: >"$results"
	for i in $(seq "$n"); do run_load "$target" "$scen" "$@"; done
	results=$all
	awk -v m=$(((n + 1) / 2)) '
	function val(key,   i, a) {
		for (i = 1; i <= NF; i++)
			if (index($i, key "=") == 1) { split($i, a, "="); return a[2] + 0 }
		return 0
	}
	{ line[NR] = $0; mb[NR] = val("mbps"); errs += val("errors") }
	END {
		for (i = 1; i <= NR; i++) order[i] = i
		for (i = 1; i <= NR; i++)
			for (j = i + 1; j <= NR; j++)
				if (mb[order[j]] < mb[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
		$0 = line[order[m]]
		for (i = 1; i <= NF; i++) if (index($i, "errors=") == 1) $i = "errors=" errs
		print
	}' "$work/median-$scen" >>"$results"
}

# run_idle TARGET N: hold N tunnels; the proxy's RSS before and while held.
run_idle() {
	local target=$1 n=$2 rss0=0 rss1=0 c0=0 c1=0 lpid out i xarg=()
	if [ "$target" != direct ]; then
		# A fresh proxy: memory freed by earlier scenarios would hide growth.
		stop_proxy
		start_proxy "$target" || return 1
		xarg=(-x "$proxy_addr")
		sleep 0.5
		rss0=$(proc_rss "$proxy_pid")
		c0=$(proc_cpu "$proxy_pid")
	fi
	: >"$work/idle.out"
	"${NSX[@]}" "$LOADGEN" "${xarg[@]}" -m idle -t "$(targets_on $P_ECHO)" -s "$SOURCES" \
		-c "$n" -d 120 >"$work/idle.out" 2>>"$work/loadgen.err" &
	lpid=$!
	pids+=("$lpid")
	for i in $(seq 1200); do
		grep -q '^ready' "$work/idle.out" && break
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	[ -n "$proxy_pid" ] && rss1=$(proc_rss "$proxy_pid")
	# It checks every tunnel once more (at most 11 s), then exits.
	stop_pid "$lpid" 300
	[ -n "$proxy_pid" ] && c1=$(proc_cpu "$proxy_pid")
	out=$(grep '^mode=' "$work/idle.out")
	[ -n "$out" ] || out="mode=failed count=0 errors=1"
	echo "$target idle$n $out rss0=$rss0 rss1=$rss1 cpu_ticks=$((c1 - c0))" >>"$results"
	say "$target idle$n: $out rss0=$rss0 rss1=$rss1"
	settle "idle$n"
}

# run_trickle TARGET: a fresh proxy (egressd with one worker, as the issue
# measured it); first a probe alone, BENCH_TRICKLE_PROBES tunnels a second
# from 127.0.0.32 (CONNECT, echo, close; open loop, timed from each planned
# start); then BENCH_TRICKLE_CONNS connections from 127.0.0.31 each send
# BENCH_TRICKLE_HEAD bytes of a head and trickle it on at
# BENCH_TRICKLE_RATE bytes a second in all, and the probe runs again beside
# them.  The trickling loadgen reads the proxy's CPU time over the trickle.
# One results line: the probe's fields, q_ the quiet probe's, t_ the
# trickle's; errors counts all three.
run_trickle() {
	local target=$1 tpid quiet probe tout i probe_s
	probe_s=$((BENCH_TRICKLE_SECONDS > 2 ? BENCH_TRICKLE_SECONDS - 1 : 1))
	stop_proxy
	if [ "$target" = egressd ]; then
		case ${BENCH_EGRESSD_EXTRA:-} in
		*workers*) ;;
		*) egressd_scenario_extra="workers = 1;" ;;
		esac
	fi
	start_proxy "$target"
	local rc=$?
	egressd_scenario_extra=""
	if [ $rc != 0 ]; then
		echo "$target trickle mode=failed count=0 errors=1" >>"$results"
		return 1
	fi
	quiet=$(timeout -k 5 "$LIM" "${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m connect \
		-t "$(targets_on $P_ECHO)" -s 127.0.0.32 -c 64 -r "$BENCH_TRICKLE_PROBES" \
		-d "$probe_s" "${SMOKE_MIN[@]}" 2>>"$work/loadgen.err" | grep '^mode=')
	: >"$work/trickle.out"
	"${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m trickle -t "127.0.0.21:$P_ECHO" -s 127.0.0.31 \
		-c "$BENCH_TRICKLE_CONNS" -H "$BENCH_TRICKLE_HEAD" -L 32000 \
		-r "$BENCH_TRICKLE_RATE" -d "$BENCH_TRICKLE_SECONDS" -p "$proxy_pid" \
		>"$work/trickle.out" 2>>"$work/loadgen.err" &
	tpid=$!
	pids+=("$tpid")
	for i in $(seq 300); do
		grep -q '^ready' "$work/trickle.out" && break
		kill -0 "$tpid" 2>/dev/null || break
		sleep 0.1
	done
	probe=$(timeout -k 5 "$LIM" "${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m connect \
		-t "$(targets_on $P_ECHO)" -s 127.0.0.32 -c 64 -r "$BENCH_TRICKLE_PROBES" \
		-d "$probe_s" "${SMOKE_MIN[@]}" 2>>"$work/loadgen.err" | grep '^mode=')
	# It trickles for BENCH_TRICKLE_SECONDS after ready, then reports.
	for i in $(seq $((BENCH_TRICKLE_SECONDS * 10 + 300))); do
		kill -0 "$tpid" 2>/dev/null || break
		[ "$(awk '{print $3}' "/proc/$tpid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.1
	done
	stop_pid "$tpid"
	tout=$(grep '^mode=' "$work/trickle.out")
	[ -n "$quiet" ] || quiet="mode=failed count=0 errors=1"
	[ -n "$probe" ] || probe="mode=failed count=0 errors=1"
	[ -n "$tout" ] || tout="mode=failed count=0 errors=1"
	echo "$target trickle $probe $(echo "$quiet" | sed 's/\([a-z0-9_]*\)=/q_\1=/g') $(echo "$tout" | sed 's/\([a-z0-9_]*\)=/t_\1=/g')" |
		awk '{ e = 0
			for (i = 3; i <= NF; i++) {
				split($i, a, "=")
				if (a[1] == "errors" || a[1] == "q_errors" || a[1] == "t_errors") e += a[2]
			}
			for (i = 3; i <= NF; i++) if (index($i, "errors=") == 1) $i = "errors=" e
			print }' >>"$results"
	say "$target trickle: probe $probe; quiet $quiet; trickle $tout"
	settle trickle
}

T=$BENCH_SECONDS
LIM=$(awk -v t="$T" 'BEGIN { printf "%d", t + 60 }')
SMOKE_MIN=()
[ $mode = smoke ] && SMOKE_MIN=(-M 1)

# wanted SCENARIO: is it in BENCH_SCENARIOS (all of them by default)?
wanted() {
	case " $BENCH_SCENARIOS " in *" all "* | *" $1 "*) return 0 ;; esac
	return 1
}

run_all() { # TARGET
	local t=$1 half=$((BENCH_BULK_BYTES / 16))
	wanted conn1 && run_load "$t" conn1 "$LIM" -m connect -t "$(targets_on $P_ECHO)" \
		-s "$SOURCES" -c 1 -d "$T" "${SMOKE_MIN[@]}"
	wanted conn50 && run_load "$t" conn50 "$LIM" -m connect -t "$(targets_on $P_ECHO)" \
		-s "$SOURCES" -c "$BENCH_CLIENTS" -d "$T" "${SMOKE_MIN[@]}"
	wanted rate && run_load "$t" rate "$LIM" -m connect -t "$(targets_on $P_ECHO)" \
		-s "$SOURCES" -c 4000 -r "$BENCH_RATE" -d "$T" "${SMOKE_MIN[@]}"
	wanted bulk1 && run_median "$BENCH_BULK_RUNS" "$t" bulk1 900 -m bulk \
		-t "$(targets_on $P_BULK)" -s "$SOURCES" -c 1 -b "$BENCH_BULK_BYTES"
	wanted bulk16 && run_median "$BENCH_BULK_RUNS" "$t" bulk16 900 -m bulk \
		-t "$(targets_on $P_BULK)" -s "$SOURCES" -c 16 -b "$half"
	wanted http100b && run_load "$t" http100b "$LIM" -m http -t "$(targets_on $P_HTTP)" \
		-s "$SOURCES" -c "$BENCH_CLIENTS" -d "$T" -u /100b "${SMOKE_MIN[@]}"
	wanted http100k && run_load "$t" http100k "$LIM" -m http -t "$(targets_on $P_HTTP)" \
		-s "$SOURCES" -c "$BENCH_CLIENTS" -d "$T" -u /100k "${SMOKE_MIN[@]}"
	# Only a proxy has a request head to trickle.
	[ "$t" != direct ] && wanted trickle && run_trickle "$t"
	local n
	if wanted idle; then
		for n in $BENCH_IDLE; do run_idle "$t" "$n"; done
	fi
	return 0
}

# profile_egressd: perf record egressd during three loads (not measured).
profile_egressd() {
	local out=${BENCH_OUT:-$root/build/bench-profile} scen ppid
	command -v perf >/dev/null 2>&1 || { say "no perf: profile skipped"; return; }
	mkdir -p "$out"
	for scen in conn50 bulk1 http100b; do
		"${NSX[@]}" perf record -F 2999 -g -o "$out/perf-$scen.data" -p "$proxy_pid" \
			>/dev/null 2>"$work/perf-$scen.err" &
		ppid=$!
		pids+=("$ppid")
		sleep 0.5
		case $scen in
		conn50) timeout 120 "${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m connect \
			-t "$(targets_on $P_ECHO)" -s "$SOURCES" -c "$BENCH_CLIENTS" -d "$T" >/dev/null 2>&1 ;;
		bulk1) timeout 300 "${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m bulk \
			-t "$(targets_on $P_BULK)" -c 1 -b "$BENCH_BULK_BYTES" >/dev/null 2>&1 ;;
		http100b) timeout 120 "${NSX[@]}" "$LOADGEN" -x "$proxy_addr" -m http \
			-t "$(targets_on $P_HTTP)" -s "$SOURCES" -c "$BENCH_CLIENTS" -d "$T" -u /100b >/dev/null 2>&1 ;;
		esac
		[ "$(ppid_of "$ppid")" = "$$" ] && kill -INT "$ppid" 2>/dev/null
		wait "$ppid" 2>/dev/null
		perf report -i "$out/perf-$scen.data" --stdio --no-children --sort symbol \
			--percent-limit 0.5 2>/dev/null | grep -v '^$' | head -n 400 >"$out/perf-$scen.txt"
		say "profile: $out/perf-$scen.txt"
	done
}

# --- the run -----------------------------------------------------------------

t_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
egressd_ok=1
for target in $BENCH_PROXIES; do
	say "== $target"
	if [ "$target" != direct ]; then
		if ! start_proxy "$target"; then
			[ "$target" = egressd ] && egressd_ok=0
			echo "$target start mode=failed count=0 errors=1" >>"$results"
			continue
		fi
	fi
	run_all "$target"
	if [ "$target" = egressd ] && [ "$BENCH_PROFILE" = perf ] && [ -n "$proxy_pid" ]; then
		profile_egressd
	fi
	stop_proxy
done
elapsed=$(($(date +%s) - t_start))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table ---------------------------------------------------------------

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
eg_ver=$([ -n "${EGRESSD:-}" ] && "$EGRESSD" -V 2>/dev/null | head -n 1)
eg_rev=$(git -C "$root" describe --always --dirty 2>/dev/null)

{
	echo "egressd benchmark ($mode) — $(date -u '+%Y-%m-%d %H:%M UTC'), ${elapsed}s"
	echo "machine: $(nproc) CPUs, $cpu_model, Linux $(uname -r)"
	echo "egressd: ${eg_ver:-?} ($eg_rev); squid $(ver squid); tinyproxy $(ver tinyproxy)"
	echo "loadavg: $load_start before the run, $load_end after (other work on the machine disturbs the figures); nice $(ps -o ni= -p $$ | tr -d ' ')"
	echo "load: ${T}s a timed scenario, $BENCH_CLIENTS clients, bulk $BENCH_BULK_BYTES bytes a scenario (median of $BENCH_BULK_RUNS runs), fixed rate $BENCH_RATE/s, idle: $BENCH_IDLE"
	echo "trickle: $BENCH_TRICKLE_CONNS heads of $BENCH_TRICKLE_HEAD bytes from one address, then $BENCH_TRICKLE_RATE bytes/s a byte at a time for ${BENCH_TRICKLE_SECONDS}s; probe $BENCH_TRICKLE_PROBES tunnels/s; egressd with one worker"
} >"$work/table"

LC_ALL=C awk -v hz="$HZ" -v proxies="$BENCH_PROXIES" -v idle="$BENCH_IDLE" '
function kv(line, k,   n, i, a, b) {
	n = split(line, a, " ")
	for (i = 3; i <= n; i++) { split(a[i], b, "="); if (b[1] == k) return b[2] }
	return ""
}
{ line[$1 "," $2] = $0 }
function val(t, s, m,   l, c) {
	l = line[t "," s]
	if (l == "") return ""
	if (kv(l, "mode") == "failed") return "fail"
	if (m == "rate") return kv(l, "rate")
	if (m == "p50") return kv(l, "p50_us")
	if (m == "p99") return kv(l, "p99_us")
	if (m == "mbps") return kv(l, "mbps")
	if (m == "errors") return kv(l, "errors")
	if (m == "ok") return kv(l, "verified")
	if (m == "cpu_tunnel" || m == "cpu_req") {
		if (t == "direct" || kv(l, "done") + 0 == 0) return ""
		return kv(l, "cpu_ticks") * 1e6 / hz / kv(l, "done")
	}
	if (m == "cpu_gb") {
		if (t == "direct" || kv(l, "bytes") + 0 == 0) return ""
		return kv(l, "cpu_ticks") * 1000 / hz / (kv(l, "bytes") / 1e9)
	}
	if (m == "rss") {
		if (t == "direct" || kv(l, "established") + 0 == 0) return ""
		return (kv(l, "rss1") - kv(l, "rss0")) / kv(l, "established")
	}
	if (m == "q_p99") return kv(l, "q_p99_us")
	if (m == "cpu_byte") {
		if (kv(l, "t_bytes") + 0 == 0 || kv(l, "t_hz") + 0 == 0) return ""
		return kv(l, "t_proxy_ticks") * 1e6 / kv(l, "t_hz") / kv(l, "t_bytes")
	}
	if (m == "cpu_core") {
		if (kv(l, "t_seconds") + 0 == 0 || kv(l, "t_hz") + 0 == 0) return ""
		return kv(l, "t_proxy_ticks") * 100 / kv(l, "t_hz") / kv(l, "t_seconds")
	}
	return ""
}
function fmt(v) {
	if (v == "") return "-"
	if (v == "fail") return "fail"
	if (v + 0 >= 100) return sprintf("%.0f", v)
	if (v + 0 >= 10) return sprintf("%.1f", v)
	return sprintf("%.2f", v)
}
function ratio(v, r,   x) {
	if (v == "" || r == "" || v == "fail" || r == "fail" || r + 0 == 0) return "-"
	x = v / r
	return sprintf(x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.2f", x)
}
function row(label, metric, s,   i, t, v, d, q, out) {
	d = val("direct", s, metric); q = val("squid", s, metric)
	# Widths in bytes (LC_ALL=C): "µ" takes two.
	out = sprintf("%-15s %-*s", label, 15 + (index(metric_name[metric], "µ") > 0),
		metric_name[metric])
	for (i = 1; i <= np; i++) {
		t = p[i]; v = val(t, s, metric)
		if (t == "direct") out = out sprintf(" %9s |", fmt(v))
		else out = out sprintf(" %9s %6s %6s |", fmt(v), ratio(v, d), ratio(v, q))
	}
	print out
}
function errors_row(s,   i, t, any, out, v) {
	any = 0
	out = sprintf("%-15s %-15s", "", "errors")
	for (i = 1; i <= np; i++) {
		t = p[i]; v = val(t, s, "errors")
		if (v != "" && v != "0") any = 1
		if (t == "direct") out = out sprintf(" %9s |", v == "" ? "-" : v)
		else out = out sprintf(" %9s %6s %6s |", v == "" ? "-" : v, "", "")
	}
	if (any) print out
}
END {
	np = split(proxies, p, " ")
	metric_name["rate"] = "tunnels/s"; metric_name["p50"] = "p50 µs"
	metric_name["p99"] = "p99 µs"; metric_name["cpu_tunnel"] = "CPU µs/tunnel"
	metric_name["mbps"] = "MB/s"; metric_name["cpu_gb"] = "CPU ms/GB"
	metric_name["cpu_req"] = "CPU µs/req"; metric_name["ok"] = "tunnels ok"
	metric_name["rss"] = "RSS KiB/tunnel"
	metric_name["q_p99"] = "quiet p99 µs"; metric_name["cpu_byte"] = "CPU µs/byte"
	metric_name["cpu_core"] = "CPU % of a core"
	h = sprintf("%-15s %-15s", "scenario", "metric")
	for (i = 1; i <= np; i++)
		if (p[i] == "direct") h = h sprintf(" %9s |", "direct")
		else h = h sprintf(" %9s %6s %6s |", p[i], "/dir", "/squid")
	print h
	gsub(/[^|]/, "-", h); print h
	row("connect c=1", "rate", "conn1"); row("", "p50", "conn1"); row("", "p99", "conn1")
	row("", "cpu_tunnel", "conn1"); errors_row("conn1")
	row("connect c=" clients, "rate", "conn50"); row("", "p50", "conn50"); row("", "p99", "conn50")
	row("", "cpu_tunnel", "conn50"); errors_row("conn50")
	row("connect " rate "/s", "rate", "rate"); row("", "p50", "rate"); row("", "p99", "rate")
	row("", "cpu_tunnel", "rate"); errors_row("rate")
	row("bulk x1", "mbps", "bulk1"); row("", "cpu_gb", "bulk1"); errors_row("bulk1")
	row("bulk x16", "mbps", "bulk16"); row("", "cpu_gb", "bulk16"); errors_row("bulk16")
	metric_name["rate"] = "req/s"
	row("http 100 B", "rate", "http100b"); row("", "p99", "http100b")
	row("", "cpu_req", "http100b"); errors_row("http100b")
	row("http 100 KiB", "rate", "http100k"); row("", "p99", "http100k")
	row("", "cpu_req", "http100k"); errors_row("http100k")
	row("trickle " tconns "x" int(thead / 1000) "K", "q_p99", "trickle")
	row("", "p99", "trickle"); row("", "cpu_byte", "trickle")
	row("", "cpu_core", "trickle"); errors_row("trickle")
	n = split(idle, ids, " ")
	for (i = 1; i <= n; i++) {
		row("idle " ids[i], "ok", "idle" ids[i]); row("", "rss", "idle" ids[i])
		errors_row("idle" ids[i])
	}
}' clients="$BENCH_CLIENTS" rate="$BENCH_RATE" tconns="$BENCH_TRICKLE_CONNS" \
	thead="$BENCH_TRICKLE_HEAD" "$results" >>"$work/table"
if [ -s "$work/notes" ]; then
	echo "notes: $(tr '\n' ';' <"$work/notes" | sed 's/;$//; s/;/; /g')" >>"$work/table"
fi
cat >>"$work/table" <<'EOF'
/dir, /squid: this proxy's figure divided by direct's and by Squid's (rates:
higher is better; latency, CPU and RSS: lower is better).  CPU is the proxy
process's user+system time (children included) over the scenario, divided by
the tunnels or requests completed or the bytes moved; RSS is the growth of a
freshly started proxy while the idle tunnels are held.  trickle: the probe's
p99 alone (quiet) and beside the trickle; the proxy's CPU over the trickle
(the probe's tunnels included) a trickled byte and as a share of one core.
EOF
cat "$work/table"

# --- smoke checks ------------------------------------------------------------

if [ $mode = smoke ]; then
	pass=0 fail=0
	while read -r target scen rest; do
		count=$(echo "$rest" | tr ' ' '\n' | awk -F= '$1 == "count" { print $2 }')
		errs=$(echo "$rest" | tr ' ' '\n' | awk -F= '$1 == "errors" { print $2 }')
		if [ "${count:-0}" -gt 0 ] && [ "${errs:-1}" = 0 ]; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			echo "bench smoke: FAIL $target $scen: $rest" >&2
		fi
	done <"$results"
	[ -s "$work/loadgen.err" ] && sed 's/^/bench smoke: loadgen: /' "$work/loadgen.err" >&2
	[ $((pass + fail)) -gt 0 ] || fail=1
	echo "bench smoke: $pass passed, $fail failed"
	[ $fail = 0 ] || exit 1
	exit 0
fi
[ $egressd_ok = 1 ] || exit 1
exit 0
