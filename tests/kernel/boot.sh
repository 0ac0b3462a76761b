#!/usr/bin/env bash
# Boot Debian's kernel (all LIO modules) under QEMU/TCG with virtme-ng and run a command in
# the guest, in this checkout. The guest sees the host's files; only the checkout is writable.
set -euo pipefail
cd "$(dirname "$0")/../.."
K=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1)
[[ -n $K ]] || { echo "boot.sh: no Debian kernel in /boot (install linux-image-amd64)" >&2; exit 1; }
MEM=${LIOCTL_VM_MEMORY:-3G}
VENV=${LIOCTL_VENV:-/opt/lioctl-venv}
export PATH="$VENV/bin:$PATH"
# QEMU reopens /proc/self/fd/1 and 2 with O_TRUNC: through a pipe, a log file keeps what came before.
set -o pipefail
# virtme-ng does not pass the caller's environment to the guest: hand on lioctl's and the
# benchmarks' own variables (a second checkout's venv above all) explicitly.
pass=(env "LIOCTL_VENV=$VENV")
while IFS='=' read -r name _; do
    [[ $name =~ ^(LIOCTL_|BENCH_) && $name != LIOCTL_VENV ]] && pass+=("$name=${!name}")
done < <(env)
"$VENV/bin/vng" --run "$K" --disable-kvm --memory "$MEM" --cpus 2 \
    --rwdir "$PWD" --exec "$(printf '%q ' "${pass[@]}" "$@")" < /dev/null 2>&1 | cat
