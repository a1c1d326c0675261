#!/bin/sh
# Assembles the image's root filesystem in $1 (root variant) and $2 (non-root variant), inside the
# Dockerfile's collect stage (Debian bookworm with iptables, nftables, iproute2 and libcap2-bin
# installed, the entrypoint at /usr/local/bin/istio-iptables). Only what runs: the programs below,
# the shared libraries ldd says they load, iptables's extensions, and a few files in /etc.
set -eu
out=$1
nonroot=$2
arch=x86_64-linux-gnu

# What the entrypoint runs. `ip` does the policy routing (TPROXY, ::6 on lo); once the runtime does
# it over netlink, delete the /usr/bin/ip line (its libraries go with it).
programs="
/usr/local/bin/istio-iptables
/usr/sbin/xtables-nft-multi
/usr/sbin/xtables-legacy-multi
/usr/sbin/nft
/usr/bin/ip
"

mkdir -p "$out/usr/local/bin" "$out/usr/bin" "$out/usr/sbin" "$out/usr/lib/$arch" "$out/usr/lib64" "$out/etc" "$out/tmp"
# Debian's merged /usr layout, so library paths recorded in the binaries resolve.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$out/$d"; done
chmod 1777 "$out/tmp"
for p in $programs; do cp "$p" "$out$p"; done

# The names the entrypoint runs: per backend and family, -restore and -save; the plain names are
# Debian's default alternative (nft).
for family in iptables ip6tables; do
  for op in restore save; do
    ln -s xtables-nft-multi "$out/usr/sbin/$family-nft-$op"
    ln -s xtables-legacy-multi "$out/usr/sbin/$family-legacy-$op"
    ln -s xtables-nft-multi "$out/usr/sbin/$family-$op"
  done
done

# iptables loads a match or target's extension (libxt_*.so, libipt_*, libip6t_*) when a rule names
# it; all of them (2 MB) rather than a list that a new rule kind would silently outgrow.
cp -a "/usr/lib/$arch/xtables" "$out/usr/lib/$arch/xtables"

# Shared libraries: what ldd resolves for each program and extension, copied (symlinks followed)
# to the same path under merged /usr, the dynamic loader included.
for f in $programs /usr/lib/$arch/xtables/*.so; do
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true
done | sort -u | while read -r lib; do
  dest="$out$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
  [ -e "$dest" ] || cp -L "$lib" "$dest"
done

# Users and groups: root, the proxy (istio-proxy, 1337, the entrypoint's default -u) and nobody
# (the non-root variant's user). Owner matches by name resolve through /etc/group.
cat >"$out/etc/passwd" <<'EOF'
root:x:0:0:root:/:/nonexistent
istio-proxy:x:1337:1337:istio-proxy:/:/nonexistent
nobody:x:65534:65534:nobody:/:/nonexistent
EOF
cat >"$out/etc/group" <<'EOF'
root:x:0:
istio-proxy:x:1337:
nogroup:x:65534:
EOF
cat >"$out/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files
protocols: files
services: files
EOF
# Protocol and service names for iptables and nft (netbase).
cp /etc/protocols /etc/services "$out/etc/"

# The non-root variant: the same files, with the least file capabilities (effective, so programs
# that know nothing of capabilities get them) on the programs that talk to the kernel:
# iptables-nft and nft program nftables over netlink (NET_ADMIN); iptables-legacy also opens a raw
# socket (NET_RAW). The entrypoint gets NET_ADMIN as permitted only, not effective: with the
# effective bit the kernel refuses to run a program whose file capabilities are not all in the
# bounding set, and Istio's istio-validation container (same image) drops ALL. The runtime raises
# NET_ADMIN itself for its netlink routing. `ip` gets none: it drops its capabilities when not run
# as root unless NET_ADMIN is inheritable, which Kubernetes leaves empty.
cp -a "$out" "$nonroot"
setcap cap_net_admin+ep "$nonroot/usr/sbin/xtables-nft-multi"
setcap cap_net_admin,cap_net_raw+ep "$nonroot/usr/sbin/xtables-legacy-multi"
setcap cap_net_admin+ep "$nonroot/usr/sbin/nft"
setcap cap_net_admin+p "$nonroot/usr/local/bin/istio-iptables"
