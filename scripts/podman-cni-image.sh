#!/usr/bin/env bash
# Builds the istio-cni node agent's image (container/cni/Dockerfile: the agent with the plugin
# inside) with podman, as scripts/podman-images.sh builds the init images, and prints its size:
#   localhost/istio-cni-ts:latest
# The Dockerfile pins its base images by digest, as container/Dockerfile does, with the same
# build arguments (scripts/podman-setup.sh --build-args gives the local stand-ins).
# --network=host keeps podman's bridge (and its NAT rules on the host) out of the build; its RUN
# steps fetch from apt and npm only. Runs scripts/podman-setup.sh first (base images, config).
# Other suites share podman's store: run it under `flock /tmp/podman.lock`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The base images: local stand-ins for the digests the Dockerfiles pin, as build arguments.
mapfile -t base_args < <(bash scripts/podman-setup.sh --build-args)
tag=localhost/istio-cni-ts:latest
start=$(date +%s)
# What the build says of itself: this checkout's commit (the build context has no .git).
build_arg=(--build-arg "BUILD=$(node scripts/build-info.mjs --build)")
if ! out=$(podman build --network=host --pull=never "${base_args[@]}" "${build_arg[@]}" -f container/cni/Dockerfile -t "$tag" . 2>&1); then
  printf '%s\n' "$out" >&2
  echo "podman-cni-image: building $tag failed" >&2
  exit 1
fi
echo "$tag $(podman image inspect --format '{{.Size}}' "$tag") bytes, built in $(($(date +%s) - start)) s"
