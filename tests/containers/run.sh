#!/bin/bash
# The container test (issue 14): the images of k8s/images, built with
# podman, and the sidecar-lockdown overlay played as a real pod with
# `podman kube play`, on a podman network with no route out (--internal).
# What the agent sees and what egressd's container is are checked from
# inside the pod and from /proc.  Everything it starts is removed at the
# end, its test agent image too; the egressd images (make images) and the
# Debian base image stay.
set -euo pipefail
. "$(dirname "$0")/env.sh"

net=egressd-ct-$$
subnet=198.51.100.0/24
upstream_ip=198.51.100.10
agent_img=localhost/egressd-ct-agent:$ct_version
work=$(mktemp -d /tmp/egressd-ct.XXXXXX)
pass=0
fail=0
started_up=""
pod_yaml=$work/pod.yaml

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
	local what=$1
	shift
	if "$@" >"$work/out" 2>&1; then ok "$what"; else
		not_ok "$what"
		sed 's/^/#   /' "$work/out" | tail -5
	fi
}

cleanup() {
	[ -f "$pod_yaml" ] && podman kube down "$pod_yaml" >/dev/null 2>&1 || true
	[ -f "$work/shared.yaml" ] && podman kube down "$work/shared.yaml" >/dev/null 2>&1 || true
	[ -n "$started_up" ] && podman rm -f -t 0 "$started_up" >/dev/null 2>&1 || true
	podman network rm -f "$net" >/dev/null 2>&1 || true
	# The test's own image goes; make images' egressd images and the
	# Debian base stay (what a user builds, and the cache).
	podman rmi -f "$agent_img" >/dev/null 2>&1 || true
	[ -n "${CT_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

t0=$(date +%s)
bash "$ct_here/images.sh"
mounts=(-v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro)
[ -e /etc/apt/sources.list ] && mounts+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
podman build --quiet --network host "${mounts[@]}" --build-arg DEBIAN_IMAGE="$ct_base" \
	-f "$ct_here/agent.Containerfile" -t "$agent_img" "$ct_here" >/dev/null
echo "# images built in $(($(date +%s) - t0)) s"

# An internal network (no route out) and a plain-HTTP upstream on it.
podman network create --internal --subnet "$subnet" "$net" >/dev/null
started_up=egressd-ct-up-$$
podman run -d --network "$net" --ip "$upstream_ip" --name "$started_up" "$agent_img" \
	python3 -m http.server 8080 >/dev/null

# The shipped overlay, rendered, made playable (transform.py says how).
kubectl kustomize "$ct_root/k8s/overlays/sidecar-lockdown" |
	/usr/bin/python3 "$ct_here/transform.py" "$agent_img" "localhost/egressd:$ct_version" \
		"localhost/egressd-lockdown:$ct_version" "$upstream_ip" >"$pod_yaml"
podman kube play --network "$net" "$pod_yaml" >/dev/null
agent=egressd-ct-aider
egressd=egressd-ct-egressd
in_agent() { podman exec "$agent" "$@"; }
for _ in $(seq 1 50); do
	in_agent curl -sf -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null && break
	sleep 0.2
done
check "egressd's sidecar is ready (GET /readyz from the agent container)" \
	in_agent curl -sf -o /dev/null http://127.0.0.1:9090/readyz

# The lockdown init container ran in the pod's network namespace (podman
# removes an init container once it has run: its table is the evidence).
pid=$(podman inspect "$egressd" --format '{{.State.Pid}}')
check "the lockdown init container left its nftables table in the pod (output policy drop)" \
	sh -c "nsenter -t $pid -n nft list table inet egressd_lockdown | grep -q 'policy drop'"

# --- what the agent sees ---------------------------------------------------------
code=$(in_agent curl -sS -o /dev/null -w '%{http_code}' "http://$upstream_ip:8080/" 2>&1 || true)
[ "$code" = 200 ] && ok "an allowed request through egressd (HTTP_PROXY) gets 200" ||
	not_ok "an allowed request through egressd: $code"
code=$(in_agent curl -sS -o /dev/null -w '%{http_connect}' https://pypi.org/simple/ 2>/dev/null || true)
[ "$code" = 403 ] && ok "a denied destination gets egressd's 403 (HTTPS_PROXY)" ||
	not_ok "a denied destination: CONNECT answered $code"
sleep 0.5
check "egressd's container log has the deny line" \
	sh -c "podman logs $egressd 2>&1 | grep -q '\"event\":\"deny\".*\"host\":\"pypi.org\".*\"reason\":\"host_not_allowed\"'"
if in_agent curl -sS --noproxy '*' --max-time 3 -o /dev/null "http://$upstream_ip:8080/" 2>"$work/direct"; then
	not_ok "a direct connection that skips egressd got through"
else
	ok "a direct connection that skips egressd fails ($(tr -d '\n' <"$work/direct" | cut -c1-60))"
fi
if in_agent python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)' 2>/dev/null; then
	not_ok "DNS answered the agent"
else
	ok "DNS fails for the agent"
fi
in_agent pip install --break-system-packages --user --no-cache-dir --index-url https://pypi.internal.test/simple/ \
	--retries 1 --timeout 5 requests-toolbelt >"$work/pip" 2>&1 || true
check "pip install from an index egressd does not allow fails with the 403" \
	grep -q "403" "$work/pip"

# --- what egressd's container is -------------------------------------------------
status=/proc/$pid/status
check "egressd runs as UID 65532" sh -c "grep -Eq '^Uid:[[:space:]]+65532[[:space:]]' $status"
check "egressd has no capabilities (CapEff and CapPrm 0)" \
	sh -c "grep -q '^CapEff:[[:space:]]*0000000000000000' $status && grep -q '^CapPrm:[[:space:]]*0000000000000000' $status"
check "no_new_privs is set" sh -c "grep -q '^NoNewPrivs:[[:space:]]*1' $status"
check "a seccomp filter is on (Seccomp: 2)" sh -c "grep -q '^Seccomp:[[:space:]]*2' $status"
check "its root file system is read-only" \
	sh -c "[ \"\$(podman inspect $egressd --format '{{.HostConfig.ReadonlyRootfs}}')\" = true ]"
check "and it still serves (GET /healthz)" in_agent curl -sf -o /dev/null http://127.0.0.1:9090/healthz

# SIGTERM: egressd drains and exits 0 within the pod's grace period (30 s).
t=$(date +%s)
podman stop -t 30 "$egressd" >/dev/null
took=$(($(date +%s) - t))
rc=$(podman inspect "$egressd" --format '{{.State.ExitCode}}')
[ "$rc" = 0 ] && [ "$took" -lt 30 ] && ok "SIGTERM: egressd exits 0 in ${took} s" ||
	not_ok "SIGTERM: exit $rc after ${took} s"
check "egressd logged its stop" sh -c "podman logs $egressd 2>&1 | grep -q '\"event\":\"stop\"'"

podman kube down "$pod_yaml" >/dev/null

# --- the shared service ---------------------------------------------------------------
# The shared-service overlay's egressd Deployment as a pod on the same
# network, reached from a client container with the example proxy token of
# k8s/README.md (its credentials file holds that token's hashes).
ss_yaml=$work/shared.yaml
kubectl kustomize "$ct_root/k8s/overlays/shared-service" |
	/usr/bin/python3 "$ct_here/transform.py" shared-service "localhost/egressd:$ct_version" >"$ss_yaml"
podman kube play --network "$net" --ip 198.51.100.20 "$ss_yaml" >/dev/null
token=EXAMPLE-token-0123456789abcdef-replace-me
client() { # client PROXY-URL: curl to a denied destination through it, the CONNECT status
	podman run --rm --network "$net" -e HTTPS_PROXY="$1" "$agent_img" \
		curl -sS -o /dev/null -w '%{http_connect}' https://pypi.org/simple/ 2>/dev/null || true
}
for _ in $(seq 1 50); do
	[ "$(client http://198.51.100.20:3128)" = 407 ] && break
	sleep 0.2
done
code=$(client http://198.51.100.20:3128)
[ "$code" = 407 ] && ok "shared service: a client without the proxy token gets 407" ||
	not_ok "shared service without a token: $code"
code=$(client "http://aider:$token@198.51.100.20:3128")
[ "$code" = 403 ] && ok "shared service: with the token, identified and refused by the policy (403)" ||
	not_ok "shared service with the token: $code"
check "shared service: its log names the identity aider" \
	sh -c "podman logs egressd-ss-egressd 2>&1 | grep -q '\"identity\":\"aider\".*\"reason\":\"host_not_allowed\"'"
check "shared service: its log never holds the token" \
	sh -c "! podman logs egressd-ss-egressd 2>&1 | grep -q '$token'"
podman kube down "$ss_yaml" >/dev/null
echo "containers: $pass passed, $fail failed ($(($(date +%s) - t0)) s)"
[ "$fail" = 0 ]
