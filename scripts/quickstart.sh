#!/usr/bin/env bash
# The quickstart: installs what it needs (busybox-static, for a static userland to put in the
# image) when missing, then builds, pushes to an embedded registry, pulls into an image store and runs
# a container, printing each step. Run as root (containers need namespaces and mounts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q '^install ok installed$'; then
    SUDO=()
    [[ $(id -u) -eq 0 ]] || SUDO=(sudo env DEBIAN_FRONTEND=noninteractive)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends busybox-static </dev/null
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "quickstart: run as root (containers need namespaces and mounts)" >&2
    exit 1
fi
exec cargo run --release --quiet --example quickstart -- "$@"
