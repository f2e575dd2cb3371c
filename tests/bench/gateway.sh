#!/bin/bash
# Benchmark: egressd's gateway against nginx doing the same job, and a
# direct HTTPS client, in one run (issue 12).  Not a test: nothing in
# `make test` depends on it.  See tests/bench/README.md, "Gateway".
#
#   EGRESSD=$PWD/build/egressd bash tests/bench/gateway.sh [--quick]
#   GWBENCH_PERF=FILE: perf's profile of egressd's small-request row to FILE
#
# Inside a network namespace of its own (deleted on exit), on loopback:
#   origin   nginx over TLS on 127.0.0.25:7443 (keep-alive): /small (a
#            200-byte JSON), /4m (4 MiB), /sse (1,000 server-sent events)
#   egressd  gateway listener 127.0.0.1:7481, route /api -> the origin,
#            x-api-key injected, CA verified, decision log to a file
#   nginx    127.0.0.1:7480, location /api/ -> proxy_pass https://origin/
#            with the same key, verification, an upstream keepalive pool
#            and an access log
#   direct   curl to the origin over TLS
# The client is curl for every row (the same client, so ratios compare the
# middle): --parallel with 50 connections for the small requests, one
# kept-alive connection for the 4 MiB and SSE rows.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
EGRESSD=${EGRESSD:?set EGRESSD to the egressd binary}
quick=0
[ "${1:-}" = --quick ] && quick=1

if [ -z "${GWBENCH_IN_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "gateway.sh: run as root (it creates a network namespace)" >&2; exit 1; }
	if ! command -v nginx >/dev/null; then
		guard=""
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 755 /usr/sbin/policy-rc.d
			guard=/usr/sbin/policy-rc.d
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >&2
		[ -z "$guard" ] || rm -f "$guard"
	fi
	ns=egressd-gwbench-$$
	ip netns add "$ns"
	trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
	GWBENCH_IN_NS=1 ip netns exec "$ns" bash "$0" "$@"
	exit $?
fi

ip link set lo up
d=$(mktemp -d /tmp/egressd-gwbench.XXXXXX)
chmod 755 "$d"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$d"
}
trap cleanup EXIT

ORIGIN=127.0.0.25
ncpu=$(nproc)
KEY=sk-bench-real-key-0123456789

# --- certificates and content ---------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
	-keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=origin.bench.test \
	-keyout "$d/origin.key" -out "$d/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:origin.bench.test,IP:%s\n' "$ORIGIN" >"$d/san.ext"
openssl x509 -req -in "$d/origin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
	-CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/origin.crt" 2>/dev/null
mkdir -p "$d/www"
printf '{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"hello from the bench origin"}],"stop_reason":"end_turn","usage":{"input_tokens":1}}' >"$d/www/small.json"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$d/www/4m.bin"
for i in $(seq 1 1000); do
	printf 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"token %d"}}\n\n' "$i"
done >"$d/www/sse.txt"
printf '%s\n' "$KEY" >"$d/key"
chmod 644 "$d"/*.crt "$d/key"

# --- the origin -------------------------------------------------------------------
nginx_common="daemon off; master_process on; user root; error_log $d/%s.err warn; pid $d/%s.pid;
events { worker_connections 8192; }"
mkdir -p "$d/origin-tmp" "$d/proxy-tmp"
cat >"$d/origin.conf" <<EOF
$(printf "$nginx_common" origin origin)
worker_processes 2;
http {
  access_log off;
  client_body_temp_path $d/origin-tmp; proxy_temp_path $d/origin-tmp;
  fastcgi_temp_path $d/origin-tmp; uwsgi_temp_path $d/origin-tmp; scgi_temp_path $d/origin-tmp;
  keepalive_requests 1000000; keepalive_timeout 60s;
  server {
    listen $ORIGIN:7443 ssl;
    ssl_certificate $d/origin.crt; ssl_certificate_key $d/origin.key;
    location = /small { default_type application/json; alias $d/www/small.json; }
    location = /4m { default_type application/octet-stream; alias $d/www/4m.bin; }
    location = /sse { default_type text/event-stream; alias $d/www/sse.txt; }
  }
}
EOF
nginx -e "$d/origin.err" -c "$d/origin.conf" &
pids+=($!)

# --- nginx as the gateway ---------------------------------------------------------------
cat >"$d/proxy.conf" <<EOF
$(printf "$nginx_common" proxy proxy)
worker_processes $ncpu;
http {
  access_log $d/proxy-access.log;
  client_body_temp_path $d/proxy-tmp; proxy_temp_path $d/proxy-tmp;
  fastcgi_temp_path $d/proxy-tmp; uwsgi_temp_path $d/proxy-tmp; scgi_temp_path $d/proxy-tmp;
  keepalive_requests 1000000; keepalive_timeout 60s;
  upstream origin { server $ORIGIN:7443; keepalive 64; }
  server {
    listen 127.0.0.1:7480;
    location /api/ {
      proxy_pass https://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host origin.bench.test;
      proxy_set_header x-api-key "$KEY";
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $d/ca.crt;
      proxy_ssl_name origin.bench.test;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
    }
  }
}
EOF
nginx -e "$d/proxy.err" -c "$d/proxy.conf" &
pids+=($!)

# --- egressd's gateway --------------------------------------------------------------
cat >"$d/egressd.conf" <<EOF
listen = ( { address = "127.0.0.1"; port = 7481; gateway = true; policy = "bench"; } );
log = { path = "$d/egressd.log"; };
sandbox = { user = "nobody"; };
limits = { max_connections_per_client = 0; };
policies = ( { name = "bench"; rules = ( ); routes = [ "api" ]; } );
routes = (
  { name = "api"; prefix = "/api"; origin = "https://$ORIGIN:7443";
    ca = "$d/ca.crt"; networks = [ "127.0.0.0/8" ];
    inject = { header = "x-api-key"; secret = "$d/key"; }; }
);
EOF
touch "$d/egressd.log"
chown nobody "$d/egressd.log"
"$EGRESSD" -c "$d/egressd.conf" 2>"$d/egressd.err" &
egressd_pid=$!
pids+=($egressd_pid)

up() { # up URL [curl args]: answered within 10 s
	for _ in $(seq 1 100); do
		curl -sf -o /dev/null "$@" && return 0
		sleep 0.1
	done
	echo "gateway.sh: $1 did not answer" >&2
	cat "$d"/*.err >&2
	exit 1
}
up "https://$ORIGIN:7443/small" --cacert "$d/ca.crt"
up http://127.0.0.1:7480/api/small
up http://127.0.0.1:7481/api/small
# The key reached the origin through both, and the answer is the same.
cmp <(curl -s http://127.0.0.1:7480/api/small) <(curl -s http://127.0.0.1:7481/api/small)

base_url() {
	case $1 in
	direct) echo "https://$ORIGIN:7443" ;;
	nginx) echo "http://127.0.0.1:7480/api" ;;
	egressd) echo "http://127.0.0.1:7481/api" ;;
	esac
}
curl_args() { [ "$1" = direct ] && echo "--cacert $d/ca.crt" || true; }

# CPU ticks (utime + stime) of a process and its children's threads.
ticks_of() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
proxy_pids() {
	case $1 in
	direct) echo "" ;;
	egressd) echo "$egressd_pid" ;;
	nginx) echo "$(cat "$d/proxy.pid") $(pgrep -P "$(cat "$d/proxy.pid")" | tr '\n' ' ')" ;;
	esac
}
hz=$(getconf CLK_TCK)

# pct P FILE: the P-th percentile of a file of numbers.
pct() { sort -g "$2" | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }

requests=$([ $quick = 1 ] && echo 5000 || echo 20000)
sse_runs=$([ $quick = 1 ] && echo 20 || echo 50)
declare -A RPS CPU P99 MBS SSE1 SSE1_99 SSEN SSEN_99

for who in direct nginx egressd; do
	url=$(base_url $who)
	# Small requests: 50 connections, kept alive, $requests in all.
	cfg="$d/small-$who.cfg"
	: >"$cfg"
	for _ in $(seq 1 "$requests"); do
		printf 'url = "%s/small"\noutput = /dev/null\n' "$url"
	done >>"$cfg"
	pp=$(proxy_pids $who)
	perf_pid=""
	if [ -n "${GWBENCH_STRACE:-}" ] && [ $who = egressd ]; then
		strace -c -f -p "$egressd_pid" -o "$GWBENCH_STRACE" &
		perf_pid=$!
		sleep 0.5
	elif [ -n "${GWBENCH_PERF:-}" ] && [ $who = egressd ]; then
		perf record -q -g -p "$egressd_pid" -o "$d/perf.data" 2>/dev/null &
		perf_pid=$!
		sleep 0.5
	fi
	t0=$(ticks_of $pp)
	s0=$(date +%s.%N)
	# shellcheck disable=SC2046
	curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max 50 $(curl_args $who) \
		-w '%{time_total} %{http_code}\n' -K "$cfg" >"$d/small-$who.out"
	s1=$(date +%s.%N)
	t1=$(ticks_of $pp)
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid"
		wait "$perf_pid" || true
	fi
	if [ -n "$perf_pid" ] && [ -n "${GWBENCH_PERF:-}" ]; then
		{
			perf report -i "$d/perf.data" --stdio --no-children --sort dso 2>/dev/null
			perf report -i "$d/perf.data" --stdio --no-children -g none \
				--sort sym --percent-limit 0.7 2>/dev/null
		} | grep -v '^$' >"$GWBENCH_PERF"
	fi
	bad=$(awk '$2 != 200' "$d/small-$who.out" | wc -l)
	[ "$bad" = 0 ] || { echo "gateway.sh: $who: $bad requests failed" >&2; exit 1; }
	awk '{print $1}' "$d/small-$who.out" >"$d/small-$who.t"
	RPS[$who]=$(awk -v n="$requests" -v a="$s0" -v b="$s1" 'BEGIN {printf "%.0f", n / (b - a)}')
	CPU[$who]=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
	P99[$who]=$(awk -v v="$(pct 99 "$d/small-$who.t")" 'BEGIN {printf "%.2f", v * 1000}')
	# 4 MiB, three times on one connection: the median.
	# shellcheck disable=SC2046
	curl -s $(curl_args $who) -w '%{speed_download}\n' -o /dev/null -o /dev/null -o /dev/null \
		"$url/4m" "$url/4m" "$url/4m" >"$d/4m-$who.out"
	MBS[$who]=$(sort -g "$d/4m-$who.out" | awk 'NR==2 {printf "%.0f", $1 / 1e6}')
	# SSE: 1,000 events, $sse_runs times on one connection; time to the
	# first byte of events and to the last.
	args=()
	for _ in $(seq 1 "$sse_runs"); do args+=(-o /dev/null "$url/sse"); done
	# shellcheck disable=SC2046
	curl -s $(curl_args $who) -w '%{time_starttransfer} %{time_total}\n' "${args[@]}" >"$d/sse-$who.out"
	awk '{print $1 * 1000}' "$d/sse-$who.out" >"$d/sse1-$who.t"
	awk '{print $2 * 1000}' "$d/sse-$who.out" >"$d/ssen-$who.t"
	SSE1[$who]=$(pct 50 "$d/sse1-$who.t")
	SSE1_99[$who]=$(pct 99 "$d/sse1-$who.t")
	SSEN[$who]=$(pct 50 "$d/ssen-$who.t")
	SSEN_99[$who]=$(pct 99 "$d/ssen-$who.t")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.2f", a - b}'; }

echo "gateway benchmark: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), egressd $("$EGRESSD" -V | awk '{print $2}'), $(nginx -v 2>&1 | sed 's/.*: //'), client $(curl --version | head -1 | cut -d' ' -f1-2)"
printf '%-34s %12s %12s %12s %10s %10s\n' "" direct nginx egressd "e/nginx" "e/direct"
printf '%-34s %12s %12s %12s %10s %10s\n' "small JSON, 50 conns: req/s" "${RPS[direct]}" "${RPS[nginx]}" "${RPS[egressd]}" \
	"$(ratio "${RPS[egressd]}" "${RPS[nginx]}")" "$(ratio "${RPS[egressd]}" "${RPS[direct]}")"
printf '%-34s %12s %12s %12s %10s %10s\n' "  p99 ms" "${P99[direct]}" "${P99[nginx]}" "${P99[egressd]}" \
	"$(ratio "${P99[egressd]}" "${P99[nginx]}")" "$(ratio "${P99[egressd]}" "${P99[direct]}")"
printf '%-34s %12s %12s %12s %10s %10s\n' "  proxy CPU us/request" "-" "${CPU[nginx]}" "${CPU[egressd]}" \
	"$(ratio "${CPU[egressd]}" "${CPU[nginx]}")" "-"
printf '%-34s %12s %12s %12s %10s %10s\n' "4 MiB response: MB/s" "${MBS[direct]}" "${MBS[nginx]}" "${MBS[egressd]}" \
	"$(ratio "${MBS[egressd]}" "${MBS[nginx]}")" "$(ratio "${MBS[egressd]}" "${MBS[direct]}")"
printf '%-34s %12s %12s %12s %10s %10s\n' "SSE first event p50/p99 ms" "${SSE1[direct]}/${SSE1_99[direct]}" \
	"${SSE1[nginx]}/${SSE1_99[nginx]}" "${SSE1[egressd]}/${SSE1_99[egressd]}" "" ""
printf '%-34s %12s %12s %12s\n' "  added vs direct p50/p99 ms" "" \
	"$(added "${SSE1[nginx]}" "${SSE1[direct]}")/$(added "${SSE1_99[nginx]}" "${SSE1_99[direct]}")" \
	"$(added "${SSE1[egressd]}" "${SSE1[direct]}")/$(added "${SSE1_99[egressd]}" "${SSE1_99[direct]}")"
printf '%-34s %12s %12s %12s\n' "SSE last event p50/p99 ms" "${SSEN[direct]}/${SSEN_99[direct]}" \
	"${SSEN[nginx]}/${SSEN_99[nginx]}" "${SSEN[egressd]}/${SSEN_99[egressd]}"
printf '%-34s %12s %12s %12s\n' "  added vs direct p50/p99 ms" "" \
	"$(added "${SSEN[nginx]}" "${SSEN[direct]}")/$(added "${SSEN_99[nginx]}" "${SSEN_99[direct]}")" \
	"$(added "${SSEN[egressd]}" "${SSEN[direct]}")/$(added "${SSEN_99[egressd]}" "${SSEN_99[direct]}")"
grep -c '"event":"close"' "$d/egressd.log" | sed 's/^/egressd close lines: /'
grep -o '"upstream_conn":"[a-z]*"' "$d/egressd.log" | sort | uniq -c | sed 's/^ */  /'
