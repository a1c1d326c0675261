#!/usr/bin/env bash
# podman for the container tests (test/kernel/podman.test.ts), on a Debian machine, as root:
#   1. podman, runc, mmdebstrap and catatonit (podman's pause image for pods) from Debian;
#   2. a containers.conf drop-in that works on this kind of machine (runc: crun 1.8 fails on
#      hybrid cgroups; cgroupfs and a file event log: no systemd session; ulimits no higher than
#      this shell's hard limits: root here lacks CAP_SYS_RESOURCE);
#   3. stand-ins for the base images container/Dockerfile pins by digest, made locally since no
#      registry is reachable: Debian bookworm with mmdebstrap (minbase, merged /usr) from apt's
#      configured Debian sources, and node:<major>-bookworm-slim from it plus this machine's node
#      and npm; with --build-args, prints the `--build-arg NAME=stand-in` that select them
#      (scripts/podman-images.sh passes them to podman build; container/README.md explains).
# Idempotent: what exists is kept. Fails loudly when podman cannot run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "podman-setup: $*" >&2; exit 1; }

missing=()
for cmd in podman runc mmdebstrap catatonit; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || fail "needs ${missing[*]} (as root: apt-get install -y --no-install-recommends ${missing[*]})"
  echo "podman-setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Container ulimits: podman's defaults for root (nofile 1048576, nproc 4194304 or 1048576) exceed
# the hard limits here, and root cannot raise them. nofile: this shell's hard limit. nproc: 4096,
# plenty for these containers (conmon runs with a hard nproc of 32768 here, below the shell's).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
ulimits="nofile=$nofile:$nofile nproc=4096:4096"
conf=/etc/containers/containers.conf.d/50-istio-iptables-ts.conf
want="# Written by scripts/podman-setup.sh (istio-iptables-ts container tests).
[containers]
default_ulimits = [$(printf '"%s", ' $ulimits | sed 's/, $//')]
[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf"
fi
[ "$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>&1)" = runc ] || fail "podman cannot run here: $(podman info 2>&1 | tail -3)"

# The base images container/Dockerfile builds from. It names them by digest, as build arguments
# (`ARG NODE_IMAGE=docker.io/library/node:...@sha256:...`), which no registry here can serve: each
# is stood in by a local image of the same distribution and version, built here and named for what
# it is, localhost/stand-in/<name>:<major>-bookworm-slim, never under the registry's name or digest.
# scripts/podman-images.sh passes them as the build arguments (--build-args below prints them).
# A plain `FROM debian:bookworm-slim` or `FROM node:20-bookworm-slim` is stood in too, under
# docker.io/library/<ref>, as short names resolve (the pods' app containers use that one).
dockerfile="$root/container/Dockerfile"
debian=docker.io/library/debian:bookworm-slim
make_debian() {
  podman image exists "$debian" && return 0
  # Apt's configured Debian bookworm sources (the archive keyring's), so the image fetches what this
  # host fetches; mmdebstrap's default mirror when there are none.
  local sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && grep -qE '^[^#]*debian-archive-keyring' "$f" &&
      grep -qE '^[^#]*bookworm' "$f" && sources+=("$f")
  done
  echo "podman-setup: building $debian with mmdebstrap (${sources[*]:-mmdebstrap default mirror})" >&2
  local log; log=$(mktemp)
  mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='Acquire::Retries "3"' bookworm - "${sources[@]}" 2>"$log" |
    podman import --quiet --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$debian" >/dev/null ||
    { cat "$log" >&2; rm -f "$log"; fail "building $debian failed"; }
  rm -f "$log"
}
# node:<major>-bookworm-slim: the Debian stand-in plus this machine's node and npm (of that major).
make_node() {
  local major=$1 image="docker.io/library/node:$1-bookworm-slim"
  podman image exists "$image" && return 0
  local have; have=$(node --version 2>/dev/null) || fail "node $major images need this machine's node (none found)"
  [ "${have%%.*}" = "v$major" ] || fail "node $major images need node $major here, found $have"
  make_debian
  local npm; npm=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  local ctx; ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$(readlink -f "$(command -v node)")" "$ctx/node"
  cp -a "$npm" "$ctx/npm"
  # And what this machine's node trusts (its CA bundle: registries may sit behind a TLS proxy).
  local ca=/etc/ssl/certs/ca-certificates.crt
  if [ -s "$ca" ]; then cp "$ca" "$ctx/ca.crt"; else : >"$ctx/ca.crt"; fi
  printf '%s\n' "FROM $debian" \
    'COPY node /usr/local/bin/node' \
    'COPY npm /usr/local/lib/node_modules/npm' \
    'COPY ca.crt /usr/local/share/node-extra-ca.crt' \
    'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/node-extra-ca.crt' \
    'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && node --version && npm --version' \
    'CMD ["node"]' >"$ctx/Containerfile"
  echo "podman-setup: building $image from $debian and node $have" >&2
  podman build --quiet --network=host --pull=never -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
}
# The local image standing in for REF (a registry reference, with or without a digest); its name on stdout.
stand_in() {
  local ref=$1 name
  name=${ref%%@*}
  name=${name#docker.io/}
  name=${name#library/}
  case "$name" in
    debian:bookworm | debian:bookworm-slim | debian:bookworm-[0-9]*)
      make_debian
      podman tag "$debian" localhost/stand-in/debian:bookworm-slim
      echo localhost/stand-in/debian:bookworm-slim ;;
    node:[0-9]*-bookworm | node:[0-9]*-bookworm-slim)
      local major=${name#node:}; major=${major%%[.-]*}
      make_node "$major"
      podman tag "docker.io/library/node:$major-bookworm-slim" "localhost/stand-in/node:$major-bookworm-slim"
      echo "localhost/stand-in/node:$major-bookworm-slim" ;;
    *) fail "container/Dockerfile: $ref cannot be stood in here (debian:bookworm[-*], node:<version>-bookworm[-slim] or scratch)" ;;
  esac
}

stages=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" { print $4 }' "$dockerfile")
build_args=()
for ref in $(awk 'toupper($1) == "FROM" { print $2 }' "$dockerfile" | sort -u); do
  grep -qx "$ref" <<<"$stages" && continue
  case "$ref" in
    scratch) ;;
    '${'*'}')
      # A build argument: its default, pinned by digest, stood in under its local name.
      arg=${ref#'${'}; arg=${arg%'}'}
      pinned=$(awk -v a="$arg" 'toupper($1) == "ARG" && index($2, a "=") == 1 { print substr($2, length(a) + 2) }' "$dockerfile")
      [[ "$pinned" =~ @sha256:[0-9a-f]{64}$ ]] || fail "container/Dockerfile: ARG $arg must default to an image pinned by digest (found '$pinned')"
      local_name=$(stand_in "$pinned")
      build_args+=("--build-arg" "$arg=$local_name") ;;
    *)
      local_name=$(stand_in "$ref")
      [ "$ref" = debian:bookworm ] && podman tag "$debian" docker.io/library/debian:bookworm
      : "$local_name" ;;
  esac
done
# --build-args: print the build arguments that select the stand-ins, one per line.
if [ "${1:-}" = --build-args ]; then printf '%s\n' "${build_args[@]}"; fi
