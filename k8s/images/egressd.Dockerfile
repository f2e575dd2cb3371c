# syntax=docker/dockerfile:1
# egressd image: built from source on Debian 12, run from an empty base.
#
#   docker build -f k8s/images/egressd.Dockerfile -t egressd:0.1.0 .
#   (from the repository root: the build context is the source tree, trimmed
#   by the root .dockerignore)
#
# The runtime stage holds egressd, /etc/egressd/egressd.conf and the shared
# libraries egressd is linked against (found with ldd at build time): no
# shell, no package manager, no other program. It runs as UID/GID 65532.
# Pin the base by digest in your registry (debian:12-slim@sha256:...).

ARG DEBIAN_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev make pkg-config \
      libevent-dev libc-ares-dev libconfig-dev libssl-dev libseccomp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY scripts/ scripts/
COPY proxy/ proxy/
COPY conf/ conf/
RUN make all \
 && ./build/egressd -t -c conf/egressd.conf
# The runtime tree: the binary, its config directory, and every shared
# library ldd names (with the dynamic loader), at the same paths.
COPY k8s/images/egressd-rootfs.sh /usr/local/bin/egressd-rootfs
RUN sh /usr/local/bin/egressd-rootfs build/egressd conf/egressd.conf /rootfs \
 && find /rootfs -type f

FROM scratch AS runtime
COPY --from=build /rootfs/ /
USER 65532:65532
# The image checks its own completeness: egressd must start (and so find
# every library) and accept the shipped configuration.
RUN ["/usr/local/bin/egressd", "-t", "-c", "/etc/egressd/egressd.conf"]
EXPOSE 3128
ENTRYPOINT ["/usr/local/bin/egressd"]
CMD ["-c", "/etc/egressd/egressd.conf"]
