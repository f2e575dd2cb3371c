#!/bin/bash
# make images: the egressd and lockdown images from k8s/images, built with
# podman, tagged with VERSION; the Debian base image made first when it is
# not there (cached between runs: it only changes when removed).
set -euo pipefail
. "$(dirname "$0")/env.sh"

if ! podman image exists "$ct_base"; then
	echo "images: making $ct_base with mmdebstrap" >&2
	mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - \
		/etc/apt/sources.list.d/debian.sources | podman import - "$ct_base" >/dev/null
fi
# apt-get inside a build reaches the machine's package sources only.
mounts=(-v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro)
[ -e /etc/apt/sources.list ] && mounts+=(-v /etc/apt/sources.list:/etc/apt/sources.list:ro)
for img in egressd lockdown; do
	name=$([ $img = egressd ] && echo egressd || echo egressd-lockdown)
	podman build --quiet --network host "${mounts[@]}" \
		--build-arg DEBIAN_IMAGE="$ct_base" \
		-f "$ct_root/k8s/images/$img.Dockerfile" -t "localhost/$name:$ct_version" "$ct_root" >/dev/null
	echo "images: localhost/$name:$ct_version" >&2
done
