#!/usr/bin/env bash
# Every benchmark in one guest boot, side by side with the peer tools:
#   bash tests/setup.sh && bash tests/kernel/boot.sh bash bench/run-in-guest.sh
set -uo pipefail
cd "$(dirname "$0")/.."
bash tests/kernel/prepare-guest.sh
unset PYTHONDONTWRITEBYTECODE
PY=${LIOCTL_VENV:-/opt/lioctl-venv}/bin/python
export TARGETCLI_HOME=/tmp/targetcli-home
CLEAR='import sys; sys.path[:0] = ["tests/kernel"]; import cfs; cfs.clear()'
echo "== object tree: lioctl vs targetcli"
$PY bench/tree_bench.py
echo "== completion on the large configuration"
$PY -c "$CLEAR"; rm -rf /tmp/bench-img
$PY -c 'import sys; sys.path[:0] = ["bench", "tests/kernel"]; import large_config; large_config.build()'
$PY bench/completion_speed.py
$PY -c "$CLEAR"
rm -rf /tmp/bench-img
echo "== save/restore: lioctl vs targetcli"
$PY bench/saveconfig_bench.py
$PY -c "$CLEAR"
echo "== TCMU: lioctl's handler vs tcmu-runner vs kernel fileio"
$PY bench/tcmu_bench.py
$PY -c "$CLEAR"
echo "== TCMU: the ceiling of any handler (no data moved) vs kernel fileio"
$PY bench/tcmu_ceiling.py
echo "== TCMU: the handler's own time per command"
$PY bench/tcmu_hot_path.py
echo "== TCMU: what a read out of the page cache costs to copy, by method"
$PY bench/copy_cost.py
$PY -c "$CLEAR"
echo "== TCMU: a disk with latency (dm-delay) behind the handler vs the kernel's block backstore"
$PY bench/tcmu_slow_disk.py
$PY -c "$CLEAR"
echo "== RBD: lioctl's backend vs tcmu-runner's rbd vs krbd + block vs fio's rbd engine"
$PY bench/rbd_bench.py
