#!/usr/bin/env bash
# Idempotent set-up for tests and the demo: Debian packages, the project venv, virtme-ng.
# The venv is built on Debian's own python3 (a static binary: it starts 5x faster than a
# shared-libpython build inside the QEMU guest) and lives in /opt, outside the 9p-mounted
# checkout; lioctl is installed editable (compat mode: a plain path entry, no import hook).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(qemu-system-x86 linux-image-amd64 busybox-static kmod udev libudev1 open-iscsi
      sg3-utils fio lsscsi targetcli-fb tcmu-runner dbus python3 python3-venv procps iproute2
      bash-completion zsh fish groff man-db e2fsprogs util-linux tmux qemu-utils systemd
      ceph-mon ceph-osd ceph-common python3-rbd python3-rados    # the RBD backend's cluster (tests/kernel/ceph.sh)
      gcc python3-dev)      # the TCMU handler's native READ/WRITE path (lioctl/tcmu/_fastpath.c)
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    (( ${#missing[@]} )) || return 0
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    [[ -n ${APT_UPDATED:-} ]] || { apt-get update -q >/dev/null; APT_UPDATED=1; }
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
install_missing "${PKGS[@]}"
# the headers of the kernel the guest boots (fabric-skeleton builds against them): known only
# once linux-image-amd64 is installed, so a second step on a fresh machine
install_missing "linux-headers-$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -1 | sed 's,.*/vmlinuz-,,')"
VENV=${LIOCTL_VENV:-/opt/lioctl-venv}
PY=/usr/bin/python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: need Python >= 3.11" >&2; exit 1; }
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
stamp=$VENV/.lioctl-deps-$( (cat pyproject.toml; pwd) | sha1sum | cut -c1-12)
if [[ ! -e $stamp ]]; then
    echo "== installing Python dependencies into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
    rm -f "$VENV"/.lioctl-deps-*; touch "$stamp"
fi
# the native path, built in place (the editable install is a plain path entry); again whenever
# _fastpath.c is newer than what was built
"$VENV/bin/python" setup.py -q build_ext --inplace 2>&1 | grep -v -e '^$' -e _BetaConfiguration -e 'warnings.warn' >&2 || true
"$VENV/bin/python" -c 'import lioctl.tcmu._fastpath' || { echo "setup: lioctl/tcmu/_fastpath.c did not build" >&2; exit 1; }
# compiled bytecode for the guest, where every file read crosses 9p
"$VENV/bin/python" -m compileall -q lioctl tests bench >/dev/null || true
