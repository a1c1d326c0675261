#!/usr/bin/env bash
# Builds both images of container/Dockerfile with podman, exactly as documented (the root image is
# the last stage, the non-root one --target nonroot), and checks each is at most 20 MB.
#   localhost/istio-iptables-ts:latest    root (Istio's istio-init profile)
#   localhost/istio-iptables-ts:nonroot   non-root, file capabilities
# --network=host keeps podman's bridge network (and its NAT rules on the host) out of the build;
# the build's RUN steps only fetch from apt and npm. podman's layer cache makes a rebuild with
# unchanged inputs take seconds. Runs scripts/podman-setup.sh first (config, and the base images:
# container/Dockerfile pins them by digest; no registry is reachable here, so the build takes local
# stand-ins through its build arguments, as container/README.md explains).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The base images: local stand-ins for the digests container/Dockerfile pins, as build arguments.
mapfile -t base_args < <(bash scripts/podman-setup.sh --build-args)
[ ${#base_args[@]} -gt 0 ] || { echo "podman-images: scripts/podman-setup.sh gave no base images" >&2; exit 1; }
# What --version says of the build: this checkout's commit (the build context has no .git).
build_arg=(--build-arg "BUILD=$(node scripts/build-info.mjs --build)")
max=20000000
for variant in latest nonroot; do
  target=()
  [ "$variant" = nonroot ] && target=(--target nonroot)
  start=$(date +%s)
  if ! out=$(podman build --network=host --pull=never "${base_args[@]}" "${build_arg[@]}" -f container/Dockerfile "${target[@]}" -t "localhost/istio-iptables-ts:$variant" . 2>&1); then
    printf '%s\n' "$out" >&2
    echo "podman-images: building istio-iptables-ts:$variant failed" >&2
    exit 1
  fi
  size=$(podman image inspect --format '{{.Size}}' "localhost/istio-iptables-ts:$variant")
  echo "istio-iptables-ts:$variant $size bytes, built in $(($(date +%s) - start)) s"
  if [ "$size" -gt "$max" ]; then
    echo "podman-images: istio-iptables-ts:$variant is $size bytes, over the $max limit" >&2
    exit 1
  fi
done
