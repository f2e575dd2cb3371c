#!/bin/sh
# The sidecar lockdown rules (k8s/components/sidecar-lockdown/egress-lockdown.sh)
# tested for real, inside a network namespace created here and deleted on exit:
#
#   upstream   198.51.100.10:8080 and [2001:db8::10]:8080 on lo, a Python HTTP
#              server (addresses on lo stand in for "somewhere outside the pod";
#              the rules judge loopback by destination, so this is a fair test)
#   resolver   dnsmasq on 127.0.0.53, answering upstream.test -> 198.51.100.10
#   agent      UID 1000, egressd UID 65532 (setpriv), as in the manifests
#   node       a second namespace joined by a veth pair (192.0.2.1 <-> pod
#              192.0.2.2): an upstream that packets really leave the pod for,
#              and the kubelet's probe coming *in* to egressd's admin port
#              (9090)
#
# Then: the agent cannot reach the upstream directly (IPv4, IPv6), egressd's UID
# can, the agent still reaches loopback, and, with $EGRESSD set, the agent's
# request through egressd on 127.0.0.1:3128 works while a name outside the
# policy is refused; the kubelet's httpGet probe from the node reaches
# egressd's /readyz and /healthz on the pod address, and the agent can read
# /metrics on 127.0.0.1:9090 (as k8s/README.md says).
#
# Prints "ok - ..." / "not ok - ..." lines (counted by run.sh). Needs root.
#   EGRESSD=/abs/build/egressd sh tests/k8s/lockdown-test.sh
# Without EGRESSD the proxied checks are reported as "not ok" unless
# K8S_TEST_ALLOW_NO_EGRESSD=1 (a developer's shortcut; run.sh never sets it).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script="$root/k8s/components/sidecar-lockdown/egress-lockdown.sh"

AGENT_UID=1000
EGRESSD_UID=65532
UP4=198.51.100.10
UP6=2001:db8::10
PORT=8080
PY=/usr/bin/python3

. "$here/netns-lib.sh"

netns_require lockdown ip nft setpriv curl timeout
[ -x $PY ] || { notok "lockdown: $PY is missing"; exit 1; }

ns="egressd-k8s-$$"
node="egressd-k8s-node-$$"
netns_init lockdown "$ns" "$node"

nsx() { ip netns exec "$ns" "$@"; }
wait_port() { # wait_port HOST PORT: bounded wait for a listener
	n=0
	while [ $n -lt 50 ]; do
		nsx $PY -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5).close()' \
			"$1" "$2" 2>/dev/null && return 0
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}
# curl_direct UID URL: a direct request (no proxy from the environment)
curl_direct() {
	as_uid "$1" env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
		curl -gsS --noproxy '*' --connect-timeout 3 --max-time 5 "$2" >"$tmp/body" 2>"$tmp/err"
}
body_is_upstream() { grep -q '^upstream-ok' "$tmp/body" 2>/dev/null; }
# refused_direct UID URL: the direct request fails, and at connect()
refused_direct() { ! curl_direct "$1" "$2" && grep -qi "connect" "$tmp/err"; }

netns_add lockdown "$ns"
nsx ip addr add $UP4/32 dev lo
nsx sysctl -qw net.ipv6.conf.lo.disable_ipv6=0 2>/dev/null
nsx ip -6 addr add $UP6/128 dev lo nodad

# The "node": another namespace on the far end of a veth pair.
netns_add lockdown "$node"
ip -n "$ns" link add k8s-pod0 type veth peer name k8s-node0 netns "$node"
ip -n "$ns" addr add 192.0.2.2/24 dev k8s-pod0
ip -n "$node" addr add 192.0.2.1/24 dev k8s-node0
ip -n "$ns" link set k8s-pod0 up
ip -n "$node" link set k8s-node0 up
nodex() { ip netns exec "$node" "$@"; }

# The upstream: one small HTTP server on both addresses.
cat >"$tmp/upstream.py" <<'PY'
import http.server, socket, sys, threading

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"upstream-ok " + self.client_address[0].encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class V6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

def udp_echo(addr, port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, port))
    while True:
        data, peer = u.recvfrom(512)
        u.sendto(b"echo " + data, peer)

port = int(sys.argv[3])
threading.Thread(target=udp_echo, args=(sys.argv[1], port), daemon=True).start()
servers = [http.server.ThreadingHTTPServer((sys.argv[1], port), H), V6((sys.argv[2], port), H)]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
PY
nsx $PY "$tmp/upstream.py" $UP4 $UP6 $PORT &
pids="$pids $!"
# An upstream on the node, and a stand-in for egressd's admin port in the pod
# (owned by egressd's UID) for the kubelet's probe, until the real egressd
# takes the port over below.
nodex $PY "$tmp/upstream.py" 192.0.2.1 ::1 8081 >/dev/null 2>&1 &
pids="$pids $!"
as_uid $EGRESSD_UID $PY -c '
import os, socket
print(os.getpid(), flush=True)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9090)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"probe-ok\n"); c.close()
' >"$tmp/probe.pid" 2>/dev/null &
pids="$pids $!"
# A loopback service the agent must still reach (as egressd on 127.0.0.1 is).
nsx $PY -m http.server --bind 127.0.0.1 --directory "$tmp" 18080 >/dev/null 2>&1 &
pids="$pids $!"
echo "upstream-ok loopback" >"$tmp/loopback.txt"
chmod 644 "$tmp/loopback.txt" "$tmp/upstream.py"

if ! wait_port $UP4 $PORT || ! wait_port $UP6 $PORT || ! wait_port 127.0.0.1 18080 ||
	! wait_port 192.0.2.1 8081 || ! wait_port 127.0.0.1 9090; then
	notok "lockdown: test upstream did not start"
	exit 1
fi

# Before the rules: the agent UID reaches the upstream (the test can tell).
if curl_direct $AGENT_UID "http://$UP4:$PORT/" && body_is_upstream; then
	ok "before lockdown: agent UID reaches the upstream (baseline)"
else
	notok "before lockdown: agent UID reaches the upstream (baseline): $(cat "$tmp/err")"
fi

# The script's own guards.
check_not "script refuses a missing EGRESSD_UID" sh -c 'unset EGRESSD_UID; sh "$1" print >/dev/null 2>&1' - "$script"
check_not "script refuses EGRESSD_UID=0" sh -c 'EGRESSD_UID=0 sh "$1" print >/dev/null 2>&1' - "$script"
check_not "script refuses a non-numeric EGRESSD_UID" sh -c 'EGRESSD_UID=egressd sh "$1" print >/dev/null 2>&1' - "$script"
check "nft -c accepts the ruleset" nsx env EGRESSD_UID=$EGRESSD_UID sh "$script" check

# Apply, twice: idempotent (one table, same rules).
nsx env EGRESSD_UID=$EGRESSD_UID sh "$script" apply >"$tmp/apply1.out" 2>&1
rc1=$?
nsx env EGRESSD_UID=$EGRESSD_UID sh "$script" apply >"$tmp/apply2.out" 2>&1
rc2=$?
check "script applies the rules (twice, exit 0)" test "$rc1" = 0 -a "$rc2" = 0
tables=$(nsx nft list tables | grep -c 'inet egressd_lockdown')
check "applying twice leaves one table" test "$tables" = 1
nsx nft list table inet egressd_lockdown >"$tmp/table" 2>&1
check "the table lets egressd's UID out" grep -q "meta skuid $EGRESSD_UID accept" "$tmp/table"
check "the table's output chain drops by default" grep -q "hook output priority filter; policy drop;" "$tmp/table"

# The agent: no direct way out, IPv4 or IPv6.
if refused_direct $AGENT_UID "http://$UP4:$PORT/"; then
	ok "agent UID $AGENT_UID cannot connect to $UP4:$PORT directly ($(tr -d '\n' <"$tmp/err"))"
else
	notok "agent UID $AGENT_UID cannot connect to $UP4:$PORT directly: $(cat "$tmp/body" "$tmp/err")"
fi
if refused_direct $AGENT_UID "http://[$UP6]:$PORT/"; then
	ok "agent UID $AGENT_UID cannot connect to [$UP6]:$PORT directly"
else
	notok "agent UID $AGENT_UID cannot connect to [$UP6]:$PORT directly: $(cat "$tmp/body" "$tmp/err")"
fi
# ... nor over UDP (a DNS-style query to the upstream), while egressd's UID
# gets the echo back from the same server.
udp_echo() { # udp_echo UID: exit 0 when the upstream's UDP echo answers
	as_uid "$1" $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
try:
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    data, _ = s.recvfrom(512)
except OSError:
    sys.exit(1)
sys.exit(0 if data == b"echo ping" else 1)
' $UP4 $PORT 2>/dev/null
}
check "egressd UID gets a UDP answer from $UP4:$PORT" udp_echo $EGRESSD_UID
check_not "agent UID gets no UDP answer from $UP4:$PORT" udp_echo $AGENT_UID
# ... but loopback works.
if curl_direct $AGENT_UID "http://127.0.0.1:18080/loopback.txt" && body_is_upstream; then
	ok "agent UID $AGENT_UID still reaches 127.0.0.1 (loopback)"
else
	notok "agent UID $AGENT_UID still reaches 127.0.0.1 (loopback): $(cat "$tmp/err")"
fi
# Root inside the pod is not egressd either.
if refused_direct 0 "http://$UP4:$PORT/"; then
	ok "UID 0 cannot connect to $UP4:$PORT directly"
else
	notok "UID 0 cannot connect to $UP4:$PORT directly: $(cat "$tmp/body" "$tmp/err")"
fi

# egressd's UID: the way out.
if curl_direct $EGRESSD_UID "http://$UP4:$PORT/" && body_is_upstream; then
	ok "egressd UID $EGRESSD_UID connects to $UP4:$PORT"
else
	notok "egressd UID $EGRESSD_UID connects to $UP4:$PORT: $(cat "$tmp/err")"
fi
if curl_direct $EGRESSD_UID "http://[$UP6]:$PORT/" && body_is_upstream; then
	ok "egressd UID $EGRESSD_UID connects to [$UP6]:$PORT"
else
	notok "egressd UID $EGRESSD_UID connects to [$UP6]:$PORT: $(cat "$tmp/err")"
fi
# Off the pod, over the veth: the same verdicts, and the kubelet's probe in.
if refused_direct $AGENT_UID "http://192.0.2.1:8081/"; then
	ok "agent UID $AGENT_UID cannot connect to the node's 192.0.2.1:8081 (over the veth)"
else
	notok "agent UID $AGENT_UID cannot connect to the node's 192.0.2.1:8081: $(cat "$tmp/body" "$tmp/err")"
fi
if curl_direct $EGRESSD_UID "http://192.0.2.1:8081/" && body_is_upstream; then
	ok "egressd UID $EGRESSD_UID connects to the node's 192.0.2.1:8081 (over the veth)"
else
	notok "egressd UID $EGRESSD_UID connects to the node's 192.0.2.1:8081: $(cat "$tmp/err")"
fi
probe_in() {
	nodex $PY -c '
import socket, sys
s = socket.create_connection(("192.0.2.2", 9090), 2)
s.settimeout(2)
sys.exit(0 if s.recv(64).startswith(b"probe-ok") else 1)
' 2>/dev/null
}
check "a probe from the node reaches egressd's admin port in the pod (replies pass as established)" probe_in
drops=$(nsx nft list table inet egressd_lockdown | sed -n 's/.*counter packets \([0-9]*\) .*reject.*/\1/p' | awk '{n += $1} END {print n + 0}')
check "the reject counters counted the agent's attempts ($drops packets)" test "${drops:-0}" -gt 0

# The agent through egressd (only CONNECT is proxied today: curl -p tunnels).
netns_need_egressd "proxied request through egressd"
if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ]; then
	notok "proxied request through egressd: dnsmasq is missing"
	exit 0
fi
DNSMASQ=$(command -v dnsmasq 2>/dev/null || echo /usr/sbin/dnsmasq)
nsx "$DNSMASQ" --no-resolv --no-hosts --no-daemon --port=53 --listen-address=127.0.0.53 \
	--bind-interfaces --pid-file= --address=/upstream.test/$UP4 >"$tmp/dnsmasq.log" 2>&1 &
pids="$pids $!"

cat >"$tmp/egressd.conf" <<EOF
# lockdown-test: the sidecar's shape, upstream pinned to its test network.
listen   = ( { address = "127.0.0.1"; port = 3128; } );
admin    = { address = "0.0.0.0"; port = 9090; };
workers  = 1;
resolver = { servers = [ "127.0.0.53:53" ]; timeout_ms = 1000; };
log      = { path = "-"; };
policies = (
  { name = "aider";
    mode = "enforce";
    rules = (
      { name = "upstream"; hosts = [ "upstream.test" ]; ports = [ $PORT ];
        networks = [ "198.51.100.0/24" ]; methods = [ "CONNECT" ]; }
    );
  }
);
EOF
chmod 644 "$tmp/egressd.conf"
if ! "$EGRESSD" -t -c "$tmp/egressd.conf" >"$tmp/t.out" 2>&1; then
	notok "egressd -t accepts the test config: $(cat "$tmp/t.out")"
	exit 0
fi
# The stand-in leaves the admin port to egressd (by its own PID: $! above is
# the shell running it).
probe_pid=$(cat "$tmp/probe.pid" 2>/dev/null)
[ -n "$probe_pid" ] && kill -TERM "$probe_pid" 2>/dev/null
n=0
while [ -n "$probe_pid" ] && kill -0 "$probe_pid" 2>/dev/null && [ $n -lt 30 ]; do
	sleep 0.1
	n=$((n + 1))
done
as_uid $EGRESSD_UID "$EGRESSD" -c "$tmp/egressd.conf" >"$tmp/egressd.log" 2>&1 &
pids="$pids $!"
if ! wait_port 127.0.0.1 3128 || ! wait_port 127.0.0.53 53 || ! wait_port 127.0.0.1 9090; then
	notok "egressd (UID $EGRESSD_UID) and dnsmasq listen in the namespace: $(tail -n 5 "$tmp/egressd.log" "$tmp/dnsmasq.log" 2>&1)"
	exit 0
fi
proxied() { # proxied URL: the agent's request through egressd, CONNECT tunnel
	as_uid $AGENT_UID env -u no_proxy -u NO_PROXY curl -sS -p --proxy http://127.0.0.1:3128 \
		--connect-timeout 3 --max-time 8 -w '\ncode=%{http_code}\n' "$1" >"$tmp/body" 2>"$tmp/err"
	sed -n 's/^code=//p' "$tmp/body"
}
code=$(proxied "http://upstream.test:$PORT/")
if [ "$code" = 200 ] && body_is_upstream; then
	ok "agent UID $AGENT_UID reaches upstream.test:$PORT through egressd (CONNECT)"
else
	notok "agent UID $AGENT_UID reaches upstream.test:$PORT through egressd: code '$code' $(cat "$tmp/err") $(tail -3 "$tmp/egressd.log")"
fi
code=$(proxied "http://denied.test:$PORT/")
if [ "$code" != 200 ] && grep -q '403' "$tmp/err"; then
	ok "a name outside the policy is refused by egressd (403)"
else
	notok "a name outside the policy is refused by egressd (403): code '$code' $(cat "$tmp/err")"
fi
check "egressd logged the refusal as a deny line" grep -q '"event":"deny"' "$tmp/egressd.log"
# The kubelet's httpGet probes, from the node to the pod address, through the
# lockdown (egressd's replies leave as established traffic).
node_get() { # node_get PATH: the status of GET http://192.0.2.2:9090PATH from the node
	nodex curl -sS --noproxy '*' --max-time 3 -o /dev/null -w '%{http_code}' "http://192.0.2.2:9090$1" 2>/dev/null
}
check "the kubelet's readinessProbe from the node: GET /readyz on the pod address answers 200" test "$(node_get /readyz)" = 200
check "the kubelet's livenessProbe from the node: GET /healthz on the pod address answers 200" test "$(node_get /healthz)" = 200
# What the agent container can see of the admin listener (loopback passes
# the lockdown): the counters, which it may read.
if as_uid $AGENT_UID curl -sS --noproxy '*' --max-time 3 http://127.0.0.1:9090/metrics >"$tmp/metrics" 2>"$tmp/err" &&
	grep -q '^egressd_requests_total{decision="deny",reason="host_not_allowed",policy="aider"} ' "$tmp/metrics"; then
	ok "the agent UID reads /metrics on 127.0.0.1:9090 (counters by decision, reason, policy)"
else
	notok "the agent UID reads /metrics on 127.0.0.1:9090: $(cat "$tmp/err") $(head -5 "$tmp/metrics")"
fi
if grep -q 'denied.test' "$tmp/metrics"; then
	notok "no host name in /metrics"
else
	ok "no host name in /metrics (denied.test is only in the log)"
fi
exit 0
