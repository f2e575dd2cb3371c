#!/bin/sh
# make k8s-test: egressd's Kubernetes package, checked offline.
#
#   EGRESSD=/abs/path/build/egressd sh tests/k8s/run.sh
#
#  1. kubectl kustomize renders every overlay (k8s/overlays/*) and every
#     test-only kustomization (tests/k8s/kustomize/*, which pull in the
#     optional components).
#  2. validate.mjs checks every rendered object: Kubernetes schemas
#     (kubernetes-models), misspelled fields (typed excess-property check,
#     tsc), Pod Security "restricted", hardening, the agent's single way out,
#     egressd's own policies, the sidecar and lockdown wiring, and
#     `$EGRESSD -t` on every egressd config volume (egressd.conf and the
#     credentials file beside it); then its self-test
#     (mutated manifests each check must reject) and the Dockerfiles.
#  3. service-test.sh runs the built egressd on the rendered shared-service
#     configuration (egressd.conf and the credentials Secret, as the pod
#     mounts them) in a network namespace: /healthz, /readyz and /metrics on
#     the admin port, the agents' proxy URL with the documented example token
#     through curl, git (with the agent's gitconfig), pip, requests and httpx,
#     and every metric the PrometheusRule uses in /metrics.
#  4. lockdown-test.sh applies the sidecar lockdown rules in a network
#     namespace and shows what gets out and what does not.
#
# Needs kubectl, node and npm (the validator's packages are installed with
# `npm ci` into tests/k8s/node_modules on first use), root for the network
# namespace, nft, setpriv, curl, git, dnsmasq, and Debian's python3 with
# requests, httpx and pip (scripts/deps.sh test). The last line is
# "k8s: N passed, M failed"; the exit status is non-zero when M > 0.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log=$(mktemp "${TMPDIR:-/tmp}/egressd-k8s-log.XXXXXX")
out=$(mktemp -d "${TMPDIR:-/tmp}/egressd-k8s-render.XXXXXX")
trap 'rm -rf "$out" "$log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*" | tee -a "$log"; }
finish() {
	passed=$(grep -c '^ok - ' "$log")
	failed=$(grep -c '^not ok - ' "$log")
	echo "k8s: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}
# step NAME COMMAND...: run, copy its ok/not ok lines; a failing exit with
# no "not ok" line of its own still counts as one failure.
step() {
	name=$1
	shift
	before=$(grep -c '^not ok - ' "$log")
	"$@" >"$out/step.out" 2>&1
	rc=$?
	tee -a "$log" <"$out/step.out"
	after=$(grep -c '^not ok - ' "$log")
	if [ $rc != 0 ] && [ "$after" = "$before" ]; then
		say "not ok - $name exited $rc"
	fi
}

# Prerequisites: say clearly what is missing.
if ! command -v kubectl >/dev/null 2>&1; then
	say "not ok - kubectl is missing: install it (the package renders with 'kubectl kustomize')"
	finish
fi
for c in node npm; do
	if ! command -v $c >/dev/null 2>&1; then
		say "not ok - $c is missing: install Node.js 20+ with npm (the validator runs on it)"
		finish
	fi
done
if [ -z "${EGRESSD:-}" ] || [ ! -x "${EGRESSD:-}" ]; then
	if [ "${K8S_TEST_ALLOW_NO_EGRESSD:-}" = 1 ]; then
		say "skip - EGRESSD is not set: egressd -t and the proxied lockdown checks are skipped"
	else
		say "not ok - set EGRESSD to the built egressd (make k8s-test does): got '${EGRESSD:-}'"
	fi
fi

# The validator's packages, exactly as locked.
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
	[ -n "$(find "$here/package-lock.json" -newer "$here/node_modules/.package-lock.json")" ]; then
	echo "k8s: npm ci (tests/k8s/node_modules)"
	if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >"$out/npm.log" 2>&1); then
		cat "$out/npm.log"
		say "not ok - npm ci in tests/k8s failed"
		finish
	fi
fi

# 1. Render.
renders=""
for dir in "$root"/k8s/overlays/*/ "$here"/kustomize/*/; do
	[ -f "$dir/kustomization.yaml" ] || continue
	name=$(basename "$dir")
	case $dir in "$here"/*) name="test:$name" ;; esac
	file="$out/$(echo "$name" | tr ':' '_').yaml"
	if kubectl kustomize "$dir" >"$file" 2>"$out/kustomize.err"; then
		say "ok - kubectl kustomize renders $name"
		renders="$renders $name=$file"
	else
		say "not ok - kubectl kustomize renders $name"
		sed 's/^/#   /' "$out/kustomize.err" | tee -a "$log"
	fi
done
# Every component is rendered by some kustomization, so every one is checked.
for comp in "$root"/k8s/components/*/; do
	c=$(basename "$comp")
	if grep -qs "components/$c\$" "$root"/k8s/overlays/*/kustomization.yaml "$here"/kustomize/*/kustomization.yaml; then
		say "ok - component $c is rendered by an overlay or test kustomization"
	else
		say "not ok - component $c is rendered by no overlay or test kustomization"
	fi
done

# 2. Validate.
# shellcheck disable=SC2086 # $renders is a list of NAME=FILE words
step "validate.mjs" node "$here/validate.mjs" --repo "$root" $renders
mon="$out/test_shared-service-monitoring.yaml"
if [ -f "$out/shared-service.yaml" ] && [ -f "$out/sidecar-lockdown.yaml" ] && [ -f "$mon" ]; then
	step "validate.mjs --self-test" node "$here/validate.mjs" --repo "$root" --self-test \
		"$out/shared-service.yaml" "$out/sidecar-lockdown.yaml" "$mon"
else
	say "not ok - self-test needs the shared-service, sidecar-lockdown and test:shared-service-monitoring renders"
fi
step "validate.mjs --dockerfiles" node "$here/validate.mjs" --repo "$root" --dockerfiles

# The egressd image's runtime tree, laid out by the script the Dockerfile
# runs, started in a chroot as the image's user: every library is there.
image_tree() {
	[ -n "${EGRESSD:-}" ] && [ -x "${EGRESSD:-}" ] || {
		echo "skip - the egressd image's runtime tree: EGRESSD not built"
		return 0
	}
	sh "$root/k8s/images/egressd-rootfs.sh" "$EGRESSD" "$root/conf/egressd.conf" "$out/rootfs" || return 1
	if chroot --userspec=65532:65532 "$out/rootfs" /usr/local/bin/egressd -t -c /etc/egressd/egressd.conf \
		>"$out/chroot.out" 2>&1; then
		echo "ok - the egressd image's runtime tree (egressd, its config, ldd's libraries) runs egressd -t as 65532 in a chroot"
	else
		echo "not ok - the egressd image's runtime tree runs egressd -t as 65532 in a chroot"
		sed 's/^/#   /' "$out/chroot.out"
	fi
}
step "image tree" image_tree

# 3. The shared service's rendered configuration, run (bounded): admin
# endpoints, the agents' identity through their proxy URL, the alerts'
# metrics served.
if [ -f "$out/shared-service.yaml" ] && [ -f "$mon" ]; then
	step "service-test.sh" timeout -k 5 60 sh "$here/service-test.sh" "$out/shared-service.yaml" "$mon"
else
	say "not ok - service-test needs the shared-service and test:shared-service-monitoring renders"
fi

# 4. The lockdown rules, for real, in a network namespace (bounded).
step "lockdown-test.sh" timeout -k 5 90 sh "$here/lockdown-test.sh"

finish
