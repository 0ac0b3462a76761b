#!/usr/bin/env bash
# Runs inside the guest: load LIO, mount configfs, run the kernel tests (all of tests/kernel,
# or the test files/ids given among the arguments).
set -uo pipefail
cd "$(dirname "$0")/../.."
bash tests/kernel/prepare-guest.sh
targets=(tests/kernel)
for a in "$@"; do
    [[ -e ${a%%::*} ]] && targets=()
done
unset PYTHONDONTWRITEBYTECODE
exec "${LIOCTL_VENV:-/opt/lioctl-venv}/bin/python" -m pytest -q -p no:cacheprovider -o testpaths= "${targets[@]}" "$@"
