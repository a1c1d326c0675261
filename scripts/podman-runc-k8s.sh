#!/usr/bin/env bash
# An OCI runtime for podman (`podman --runtime=$PWD/scripts/podman-runc-k8s.sh ...`) that runs
# containers with the capabilities Kubernetes gives them: runc, after clearing the ambient and
# inheritable sets of the container's process. podman gives a non-root user its added
# capabilities as ambient ones; containerd and CRI-O put them in the bounding set only (and, since
# CVE-2022-24769, nothing inheritable), so only file capabilities make them effective. The test
# checks the result from the host (/proc/PID/status of a running container).
set -euo pipefail
bundle=
create=
prev=
for a in "$@"; do
  case "$prev" in --bundle | -b) bundle=$a ;; esac
  case "$a" in create | run) create=1 ;; --bundle=*) bundle=${a#--bundle=} ;; esac
  prev=$a
done
if [ -n "$create" ]; then
  [ -n "$bundle" ] || bundle=$PWD
  node -e '
    const fs = require("node:fs");
    const file = process.argv[1];
    const spec = JSON.parse(fs.readFileSync(file, "utf8"));
    const caps = spec.process && spec.process.capabilities;
    if (caps) { caps.ambient = []; caps.inheritable = []; }
    fs.writeFileSync(file, JSON.stringify(spec));
  ' "$bundle/config.json"
fi
exec runc "$@"
