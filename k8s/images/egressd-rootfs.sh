#!/bin/sh
# egressd-rootfs.sh BINARY CONF DEST
#
# Lays out the egressd image's whole runtime filesystem under DEST: the
# binary, its config directory, and every shared library ldd names (the
# dynamic loader included), at the paths the binary will look for them.
# egressd.Dockerfile runs it in its build stage and copies DEST onto an empty
# base; make k8s-test runs it too and starts the result in a chroot as UID
# 65532, so a missing library fails here, not in a cluster.
set -eu
[ $# = 3 ] || { echo "usage: egressd-rootfs.sh BINARY CONF DEST" >&2; exit 2; }
bin=$1 conf=$2 dest=$3
mkdir -p "$dest/usr/local/bin" "$dest/etc/egressd"
install -m 0755 "$bin" "$dest/usr/local/bin/egressd"
install -m 0644 "$conf" "$dest/etc/egressd/egressd.conf"
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "egressd-rootfs: ldd found no libraries in $bin" >&2; exit 1; }
for lib in $libs; do
	cp --parents -L "$lib" "$dest/"
done
