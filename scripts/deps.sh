#!/bin/sh
# Install what egressd needs on Debian 12 when it is missing.
#   deps.sh build   compiler, pkg-config and the four libraries
#   deps.sh test    what `make test` needs on top: cmocka, dnsmasq, pytest, ...
#   deps.sh containers  podman, runc and mmdebstrap (make images)
set -eu

missing=""
need_pkg() { # need_pkg PKGCONFIG-NAME DEBIAN-PACKAGE
	pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"
}
need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need_py() { # need_py MODULE DEBIAN-PACKAGE (for Debian's /usr/bin/python3)
	/usr/bin/python3 -c "import $1" >/dev/null 2>&1 || missing="$missing $2"
}

need_cmd cc gcc
need_cmd make make
need_cmd pkg-config pkg-config
case "${1:-build}" in
build)
	need_pkg libevent libevent-dev
	need_pkg libcares libc-ares-dev
	need_pkg libconfig libconfig-dev
	need_pkg openssl libssl-dev
	need_pkg libseccomp libseccomp-dev
	;;
test)
	need_pkg cmocka libcmocka-dev
	need_cmd dnsmasq dnsmasq-base
	need_cmd ip iproute2
	need_cmd curl curl
	need_cmd openssl openssl
	need_cmd nft nftables
	need_cmd jq jq
	need_cmd git git
	need_cmd node nodejs
	need_cmd npm npm
	need_cmd clang clang
	need_cmd valgrind valgrind
	# libFuzzer's runtime (tests/fuzz), packaged apart from clang.
	rt=$(clang --print-runtime-dir 2>/dev/null || true)
	[ -e "$rt/libclang_rt.fuzzer-$(uname -m).a" ] ||
		missing="$missing libclang-rt-14-dev"
	[ -x /usr/bin/python3 ] || missing="$missing python3"
	need_py pytest python3-pytest
	need_py requests python3-requests
	need_py httpx python3-httpx
	need_py pip python3-pip
	need_py prometheus_client python3-prometheus-client
	need_py yaml python3-yaml
	# The alert rules' tests (tests/alerts): promtool, and a Prometheus and
	# an Alertmanager the test runs itself (their services never start).
	need_cmd promtool prometheus
	need_cmd prometheus prometheus
	need_cmd prometheus-alertmanager prometheus-alertmanager
	;;
containers)
	# make images and the container test (tests/containers).
	need_cmd podman podman
	need_cmd runc runc
	need_cmd mmdebstrap mmdebstrap
	need_cmd catatonit catatonit   # the pause process of `podman kube play`
	;;
esac

[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing (run as root, or: apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages with a service (dnsmasq, prometheus, ...) must not start it:
# the tests run their own. A policy-rc.d of ours, unless one is there.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	guard=/usr/sbin/policy-rc.d
fi
trap '[ -z "$guard" ] || rm -f "$guard"' EXIT
if ! apt-get install -y --no-install-recommends $missing >&2; then
	apt-get update >&2
	apt-get install -y --no-install-recommends $missing >&2
fi
