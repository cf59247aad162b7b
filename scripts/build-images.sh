#!/usr/bin/env bash
# Builds GPU Steward's two images from operator/Dockerfile and agent/Dockerfile (the source of truth),
# the same way on a laptop with Docker and on a machine with only Debian's buildah (`make images`).
#
#   scripts/build-images.sh [operator|agent|all]            default: all
#
# Environment:
#   IMAGE_REPO_PREFIX  where the images are named, default "localhost" -> localhost/gpu-steward-operator:TAG
#   IMAGE_TAG          default: the version in pyproject.toml
#   BUILDER            docker | buildah (default: docker when a Docker daemon answers, else buildah)
#   PYTHON_IMAGE       the base image (default: the Dockerfiles' pinned python:3.11.x-slim-bookworm). With
#                      buildah, when that base cannot be pulled (an offline or registry-less machine), a
#                      Debian bookworm base with its Python 3.11 is made once with mmdebstrap from Debian's
#                      packages: localhost/gpu-steward-python:3.11-bookworm.
#   BUILD_CA_BUNDLE    a CA bundle pip must trust during the build (behind a TLS-intercepting proxy); it is
#                      mounted read-only, never copied into an image. Default: $PIP_CERT when that is set.
#   STORAGE_DRIVER     buildah/podman storage, default vfs (works everywhere, nested containers included;
#                      overlay is faster where it works)
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in operator|agent|all) ;; *) echo "usage: $0 [operator|agent|all]" >&2; exit 2 ;; esac

prefix=${IMAGE_REPO_PREFIX:-localhost}
tag=${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)}
ca=${BUILD_CA_BUNDLE:-${PIP_CERT:-}}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
debian_base=localhost/gpu-steward-python:3.11-bookworm

if [ -z "${BUILDER:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then BUILDER=docker; else BUILDER=buildah; fi
fi
command -v "$BUILDER" >/dev/null || { echo "$BUILDER is not installed (apt-get install buildah podman mmdebstrap)" >&2; exit 1; }

say() { printf '[images] %s\n' "$*" >&2; }

# The Dockerfiles' default base, read from them so it is written in one place.
dockerfile_base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' operator/Dockerfile | head -n1)

debian_base_image() {
  # Debian's own Python 3.11 (bookworm, with its security updates) standing in for the python:3.11-slim base.
  if buildah inspect --type image "$debian_base" >/dev/null 2>&1; then return; fi
  command -v mmdebstrap >/dev/null || { echo "mmdebstrap is needed to make a base image offline (apt-get install mmdebstrap)" >&2; exit 1; }
  say "making the base image $debian_base with mmdebstrap (Debian bookworm, python3.11; about a minute)"
  local tar; tar=$(mktemp --suffix=.tar)
  mmdebstrap --quiet --variant=essential \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --format=tar bookworm "$tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tar" "$debian_base" >/dev/null
  rm -f "$tar"
}

base_args=()
if [ -n "${PYTHON_IMAGE:-}" ]; then
  base_args=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
elif [ "$BUILDER" = buildah ]; then
  if buildah inspect --type image "$dockerfile_base" >/dev/null 2>&1 \
     || timeout 120 buildah pull --quiet "$dockerfile_base" >/dev/null 2>&1; then
    say "base: $dockerfile_base"
  else
    say "base $dockerfile_base cannot be pulled here: using Debian's Python instead"
    debian_base_image
    base_args=(--build-arg "PYTHON_IMAGE=$debian_base")
  fi
fi

ca_args=()
if [ -n "$ca" ]; then
  [ -r "$ca" ] || { echo "BUILD_CA_BUNDLE=$ca is not readable" >&2; exit 1; }
  if [ "$BUILDER" = buildah ]; then
    ca_args=(--volume "$ca:/run/build-ca.crt:ro" --build-arg PIP_CERT=/run/build-ca.crt)
  elif [ -n "${BUILD_CA_BUNDLE:-}" ]; then
    # Docker cannot bind-mount into RUN steps; configure the proxy's CA in Docker itself instead.
    echo "BUILD_CA_BUNDLE works with BUILDER=buildah only; with Docker, trust the proxy CA in the daemon" >&2
    exit 2
  fi
fi

build() {
  local name=$1 dockerfile=$2 ref="$prefix/gpu-steward-$1:$tag" start=$SECONDS
  say "building $ref from $dockerfile with $BUILDER"
  if [ "$BUILDER" = buildah ]; then
    buildah build --quiet --isolation chroot --layers -f "$dockerfile" "${base_args[@]}" "${ca_args[@]}" -t "$ref" . >&2
  else
    DOCKER_BUILDKIT=1 docker build -q -f "$dockerfile" "${base_args[@]}" "${ca_args[@]}" -t "$ref" . >&2
  fi
  say "built $ref in $((SECONDS - start)) s"
  echo "$ref"
}

[ "$what" = agent ] || build operator operator/Dockerfile
[ "$what" = operator ] || build agent agent/Dockerfile
