# syntax=docker/dockerfile:1
# Aider image for the agent pods (k8s/base/aider).
#
#   docker build -f k8s/images/aider.Dockerfile -t aider:0.86.2 .
#
# Build stage: a virtualenv with aider-chat, and the compilers some of its
# dependencies may need. Runtime stage: Python slim, git (aider needs it),
# CA certificates, the virtualenv, a dedicated numeric user. No compiler,
# no curl or wget. pip stays inside the virtualenv on purpose: aider itself
# calls it, and a Python interpreter can fetch and unpack packages without
# it, so removing it would look safer without being safer. What keeps an
# agent from installing things is that egressd lets it reach no package
# index (the walkthrough in k8s/README.md ends on exactly that refusal).
# apt and dpkg remain from the base image but run as UID 1000 on a
# read-only root filesystem they can install nothing.
# Pin the base by digest in your registry (python:3.12-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG AIDER_VERSION=0.86.2

FROM ${PYTHON_IMAGE} AS build
ARG AIDER_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/aider \
 && /opt/aider/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/aider/bin/pip install --no-cache-dir "aider-chat==${AIDER_VERSION}" \
 && /opt/aider/bin/aider --version

FROM ${PYTHON_IMAGE} AS runtime
# git for aider and the clone step; ca-certificates for TLS through the
# CONNECT tunnel. --no-install-recommends keeps out openssh-client (no ssh
# transport), less, patch. git pulls in libcurl (a library), not curl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 aider \
 && useradd --uid 1000 --gid 1000 --home-dir /home/aider --no-create-home \
      --shell /usr/sbin/nologin aider \
 && mkdir -p /workspace /home/aider \
 && chown 1000:1000 /workspace /home/aider \
 && ! command -v curl && ! command -v wget && ! command -v gcc && ! command -v cc
COPY --from=build /opt/aider /opt/aider
ENV PATH=/opt/aider/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/home/aider \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    AIDER_CHECK_UPDATE=false \
    AIDER_ANALYTICS_DISABLE=true
USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["aider"]
