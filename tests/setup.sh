#!/usr/bin/env bash
# Idempotent set-up for tests and the demo: Debian packages, the project venv, virtme-ng.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(qemu-system-x86 linux-image-amd64 busybox-static kmod udev libudev1 open-iscsi
      sg3-utils fio lsscsi targetcli-fb tcmu-runner dbus python3-venv procps iproute2
      bash-completion zsh fish groff man-db e2fsprogs util-linux)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# targetcli/tcmu-runner/iscsid must not run on the host: they are for the guest.
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.lioctl-deps-$(sha1sum pyproject.toml | cut -c1-12)
if [[ ! -e $stamp ]]; then
    echo "== installing Python dependencies into .venv"
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.lioctl-deps-*; touch "$stamp"
fi
