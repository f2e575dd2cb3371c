# syntax=docker/dockerfile:1
# egressd-lockdown image: the nft binary for the sidecar-lockdown init
# container (k8s/components/sidecar-lockdown). The rules themselves come from
# the egress-lockdown ConfigMap (egress-lockdown.sh, tested by make
# k8s-test); this image only has to run them.
#
#   docker build -f k8s/images/lockdown.Dockerfile -t egressd-lockdown:0.1.0 .
#
# It runs as root on purpose: loading packet rules needs CAP_NET_ADMIN in
# the effective set, which Kubernetes grants to root only. The pod gives it
# that one capability, nothing else, for the moment the rules take to load.
# Pin the base by digest in your registry (debian:12-slim@sha256:...).

ARG DEBIAN_IMAGE=debian:12-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/* \
 && nft --version
USER 0:0
ENTRYPOINT ["/bin/sh"]
