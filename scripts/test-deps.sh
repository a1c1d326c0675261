#!/usr/bin/env bash
# The kernel tests need iptables (nft and legacy backends), iproute2, nft (nftables: cleanup
# deletes tables it emptied), flock and setpriv (util-linux), setcap (libcap2-bin: the non-root
# image test), python3 (traffic agents), and gcc with libc6-dev and musl-tools (the entrypoint's
# runtime, built by npm run build:entrypoint), chromium (test/pictures.test.ts renders the SVG pictures), and
# podman for the image tests (scripts/podman-setup.sh).
# Install what is missing when running as root on Debian (CI, a fresh machine); otherwise say what
# is needed and fail.
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ! command -v iptables-legacy-restore >/dev/null 2>&1 || ! command -v iptables-nft-restore >/dev/null 2>&1; then
  missing+=(iptables)
fi
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v flock >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v setcap >/dev/null 2>&1 || missing+=(libcap2-bin)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The entrypoint's runtime (native/) is compiled and linked statically with musl (musl-gcc), with
# Linux's headers from libc6-dev's dependencies; the sanitizer build is gcc with glibc.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
# The engine's sources come as Debian's .orig.tar.xz, and our patches to them are applied with
# patch(1) (scripts/build-entrypoint.mjs).
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
command -v patch >/dev/null 2>&1 || missing+=(patch)
# podman's CNI backend and its reference plugins (bridge, host-local), which
# test/kernel/cni-podman.test.ts chains with our istio-cni plugin: podman only needs some network
# stack (netavark would do for it), so ask for these by name.
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
# The stand-in Kubernetes API server of the istio-cni agent's tests makes its certificate with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The pictures (--output svg) are rendered in headless Chromium by test/pictures.test.ts.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "the kernel tests need: ${missing[*]} (as root: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "installing test dependencies: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# podman needs root here (rootful storage, /etc/containers); without root the podman test says so.
if [ "$(id -u)" = 0 ]; then bash "$(dirname "$0")/podman-setup.sh"; fi
