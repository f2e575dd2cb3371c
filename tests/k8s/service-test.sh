#!/bin/sh
# The shared service's rendered configuration, run. In a network namespace
# created here and deleted on exit:
#
#   egressd    the built binary, as UID 65532, on the egressd.conf and the
#              credentials file of the rendered shared-service overlay, laid
#              out as the pod mounts them (validate.mjs --materialize); the
#              pod's address is 192.0.2.2 on lo
#   agent      UID 1000, a clean environment, the proxy URL the agent's
#              manifests build (http://USER:TOKEN@egressd:3128) with the
#              example identity the shipped credentials line is for
#
# Checks: /healthz, /readyz and /metrics on the admin port of the pod
# address; without credentials, or with a wrong token, 407; with the example
# token, curl, git (with the agent's gitconfig: credentials on the first
# CONNECT), pip, requests and httpx are identified as "aider" and refused by
# policy (403 host_not_allowed: nothing leaves the namespace, no DNS is
# needed); the token never reaches the log; every metric the PrometheusRule
# uses is served.
#
# Prints "ok - ..." / "not ok - ..." lines (counted by run.sh). Needs root.
#   EGRESSD=/abs/build/egressd sh tests/k8s/service-test.sh SHARED.yaml MONITORING.yaml
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${1:?usage: service-test.sh SHARED-RENDER.yaml MONITORING-RENDER.yaml}
monitoring=${2:?usage: service-test.sh SHARED-RENDER.yaml MONITORING-RENDER.yaml}

# The documented example identity (k8s/README.md, walkthrough step 4; the
# comment above the line in k8s/overlays/shared-service/egress/credentials).
EXAMPLE_USER=aider
EXAMPLE_TOKEN=EXAMPLE-token-0123456789abcdef-replace-me
POD=192.0.2.2
AGENT_UID=1000
EGRESSD_UID=65532
PY=/usr/bin/python3

. "$here/netns-lib.sh"

netns_need_egressd "service test"
netns_require "service test" ip setpriv curl git timeout
for m in requests httpx pip; do
	if ! $PY -c "import $m" >/dev/null 2>&1; then
		notok "service test: $PY cannot import $m (scripts/deps.sh test installs python3-$m)"
		exit 1
	fi
done

ns="egressd-k8s-svc-$$"
netns_init service "$ns"

# egressd's config directory, as the pod sees /etc/egressd.
if ! conf=$(node "$here/validate.mjs" --repo "$root" --materialize "$shared" "$tmp/etc" 2>"$tmp/mat.err"); then
	notok "service test: the rendered egressd config volume: $(cat "$tmp/mat.err")"
	exit 0
fi
chmod -R a+rX "$tmp/etc"
check "the shared-service config volume holds egressd.conf and the credentials file it names" \
	test -f "$conf" -a -f "$tmp/etc/credentials"
check "the example token is the one documented beside the credentials line and in k8s/README.md" \
	sh -c 'grep -q -- "$1" "$2" && grep -q -- "$1" "$3"' - "$EXAMPLE_TOKEN" \
	"$root/k8s/overlays/shared-service/egress/credentials" "$root/k8s/README.md"

netns_add "service test" "$ns"
ip -n "$ns" addr add $POD/32 dev lo

mkdir -p "$tmp/home" "$tmp/pip"
chown $AGENT_UID:$AGENT_UID "$tmp/home" "$tmp/pip"
# agent PROXY-URL COMMAND...: the agent's tool, with the agent's proxy
# variables (all four, as the manifests set them) and git config, nothing
# else from this environment.
agent() {
	u=$1
	shift
	as_uid $AGENT_UID env -i PATH=/usr/bin:/bin HOME="$tmp/home" \
		HTTPS_PROXY="$u" https_proxy="$u" HTTP_PROXY="$u" http_proxy="$u" \
		NO_PROXY=localhost,127.0.0.1 no_proxy=localhost,127.0.0.1 \
		GIT_CONFIG_GLOBAL="$root/k8s/base/aider/gitconfig" GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 \
		PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
		timeout 20 "$@"
}
get() { # get PATH: GET on the admin listener at the pod address; prints the
	# status, leaves the body in $tmp/get.body
	ip netns exec "$ns" curl -sS --noproxy '*' --max-time 5 -o "$tmp/get.body" -w '%{http_code}' \
		"http://$POD:9090$1" 2>/dev/null
}

as_uid $EGRESSD_UID "$EGRESSD" -c "$conf" >"$tmp/egressd.log" 2>&1 &
pids="$pids $!"
n=0
while [ $n -lt 50 ] && [ "$(get /readyz)" != 200 ]; do
	sleep 0.1
	n=$((n + 1))
done

# The kubelet's probes, on the pod address.
code=$(get /readyz)
if [ "$code" = 200 ] && grep -q ready "$tmp/get.body"; then
	ok "GET http://$POD:9090/readyz answers 200 (readinessProbe)"
else
	notok "GET http://$POD:9090/readyz answers 200: got '$code' $(tail -3 "$tmp/egressd.log")"
	exit 0
fi
check "GET http://$POD:9090/healthz answers 200 (livenessProbe)" test "$(get /healthz)" = 200
code=$(ip netns exec "$ns" curl -sS -o /dev/null -w '%{http_connect}' --max-time 5 \
	--proxy "http://$POD:9090" "https://admin.denied.test/" 2>/dev/null)
check "the admin port is no proxy (CONNECT through it: $code)" test "$code" != 200

# The identity, by the agent's proxy URL.
url="http://$EXAMPLE_USER:$EXAMPLE_TOKEN@$POD:3128"
code=$(agent "http://$POD:3128" curl -sS -o /dev/null -w '%{http_connect}' https://noauth.denied.test/ 2>/dev/null)
check "without credentials in the proxy URL: 407 (got $code)" test "$code" = 407
code=$(agent "http://$EXAMPLE_USER:wrong-token@$POD:3128" curl -sS -o /dev/null -w '%{http_connect}' https://wrong.denied.test/ 2>/dev/null)
check "with a wrong token: 407 (got $code)" test "$code" = 407

# denied_as_aider HOST: egressd logged the refusal of HOST for identity aider,
# policy aider, by policy (host_not_allowed)
denied_as_aider() {
	grep '"event":"deny"' "$tmp/egressd.log" | grep "\"host\":\"$1\"" | grep '"identity":"aider"' |
		grep '"policy":"aider"' | grep -q '"reason":"host_not_allowed"'
}
# client NAME EXPECT COMMAND...: the agent's tool with the example proxy URL
# prints EXPECT, and egressd refused its host for identity aider
client() {
	name=$1 expect=$2
	shift 2
	agent "$url" "$@" >"$tmp/$name.out" 2>&1
	if grep -q -- "$expect" "$tmp/$name.out" && denied_as_aider "$name.denied.test"; then
		ok "$name with HTTPS_PROXY=http://aider:TOKEN@...: identified as aider, refused by policy ($expect)"
	else
		notok "$name with HTTPS_PROXY=http://aider:TOKEN@...: identified as aider, refused by policy ($expect): $(tail -3 "$tmp/$name.out") $(grep "$name.denied.test" "$tmp/egressd.log" | head -2)"
	fi
}
client curl "CONNECT tunnel failed, response 403" curl -sS https://curl.denied.test/
client git "CONNECT tunnel failed, response 403" git ls-remote https://git.denied.test/team/service.git
client requests "Tunnel connection failed: 403" $PY -c 'import requests; requests.get("https://requests.denied.test/", timeout=5)'
client httpx "ProxyError('403" $PY -c '
import httpx
try:
    httpx.get("https://httpx.denied.test/", timeout=5)
except httpx.ProxyError as e:
    print(repr(e))'
client pip "Tunnel connection failed: 403 Forbidden" $PY -m pip download --isolated --no-cache-dir --retries 1 --timeout 5 \
	-d "$tmp/pip" --index-url https://pip.denied.test/simple/ egressd-probe-pkg
# git's default proxy authentication (anyauth) would first ask without the
# credentials: a 407 auth_required for every clone. The gitconfig says basic.
if grep '"host":"git.denied.test"' "$tmp/egressd.log" | grep -q '"reason":"auth_'; then
	notok "git sent its credentials with the first CONNECT (http.proxyAuthMethod = basic): $(grep git.denied.test "$tmp/egressd.log" | head -1)"
else
	ok "git sent its credentials with the first CONNECT (http.proxyAuthMethod = basic): no auth_required line"
fi
if grep -q -- "$EXAMPLE_TOKEN" "$tmp/egressd.log"; then
	notok "the token never appears in egressd's log"
else
	ok "the token never appears in egressd's log"
fi

# The metrics the alerts are written against.
code=$(get /metrics)
cp "$tmp/get.body" "$tmp/metrics"
check "GET http://$POD:9090/metrics answers 200" test "$code" = 200
deny=$(sed -n 's/^egressd_requests_total{decision="deny",reason="host_not_allowed",policy="aider"} \([0-9]*\).*/\1/p' "$tmp/metrics")
check "egressd_requests_total{decision=\"deny\",reason=\"host_not_allowed\",policy=\"aider\"} counted the agent's refusals (${deny:-none})" \
	test "${deny:-0}" -ge 5
check "egressd_ready is 1" grep -qx 'egressd_ready 1' "$tmp/metrics"
check "egressd_reloads_total{result=\"failed\"} is served" grep -q '^egressd_reloads_total{result="failed"} ' "$tmp/metrics"
if names=$(node "$here/validate.mjs" --repo "$root" --rule-metrics "$monitoring" 2>&1); then
	missing=""
	for m in $names; do
		grep -q "^# TYPE $m " "$tmp/metrics" || missing="$missing $m"
	done
	check "every metric the PrometheusRule uses is served by egressd ($(echo $names))${missing:+; missing:$missing}" test -z "$missing"
else
	notok "the PrometheusRule's metrics: $names"
fi
exit 0
