#!/usr/bin/env bash
# Runs inside the guest: load LIO, mount configfs, run the kernel test suite.
set -uo pipefail
cd "$(dirname "$0")/../.."
bash tests/kernel/prepare-guest.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/kernel "$@"
