"""How fast can any TCMU handler be here? The 1 MiB jobs of tcmu_bench.py on (a) lioctl's
handler with its file backend, (b) the same handler with a backend that moves no data at all
(reads answer GOOD leaving the data area as it is, writes are dropped) and (c) the kernel's
fileio backstore (block on a device), all three at once, each job on each disk in turn, the
files on the first medium of BENCH_MEDIA (tcmu_bench.py's: tmpfs by default). tcmu_bench.py
runs the no-data disk beside every medium too.

(b) is the ceiling of the kernel's TCMU path plus the handler's per-command work: if it stays
below half of (c), no backend that copies data can reach half of kernel fileio in this guest.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/tcmu_ceiling.py'
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tcmu_bench as tb  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
MEDIUM = tb.MEDIA[0] if os.environ.get("BENCH_MEDIA") else "tmpfs"   # tcmu_bench.py's media
JOBS = [j for j in tb.JOBS if j[0].startswith("1M")] + [j for j in tb.JOBS if j[0] == "4k rand read qd1"]


def main() -> int:
    tb.cfs.clear()
    shutil.rmtree(tb.DIR, ignore_errors=True)
    os.makedirs(tb.DIR)
    null = tb.start_null_handler()
    disks = {}
    medium = tb.Medium(MEDIUM, ["lioctl", "kernel"])
    try:
        tb.lioctl("/backstores/user", "create", "b_null", tb.SIZE, "null", "subtype=lioctl_ram")
        # the file backend in the same handler process (it serves every lioctl device)
        bs, _ = tb.backend_lioctl(medium.paths["lioctl"])
        disks["lioctl file"] = (tb.loopback_disk(bs), null.pid)
        disks["lioctl no-data"] = (tb.loopback_disk("/backstores/user/b_null"), null.pid)
        make = tb.backend_block if medium.is_block else tb.backend_fileio
        bs, _ = make(medium.paths["kernel"])
        disks["kernel"] = (tb.loopback_disk(bs), None)
        runs = tb.run_rounds(disks, JOBS, ROUNDS)
        labels = list(disks)
    except BaseException:
        with open(f"{tb.DIR}-null-handler.log") as f:     # why the handler did not serve
            sys.stderr.write(f.read()[-3000:])
        # what the kernel and the handler saw (a LUN once never showed up as a disk)
        for cmd in (["dmesg"], ["lsscsi", "-g"], tb.LIOCTL + ["tcmu", "status", "--json"]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            sys.stderr.write(f"== {' '.join(cmd)}\n{(p.stdout + p.stderr)[-4000:]}\n")
        raise
    finally:
        tb.cfs.clear()
        medium.close()
        os.killpg(null.pid, signal.SIGTERM)
        null.wait(timeout=60)
    print()
    print(f"medians of {ROUNDS} rounds, medium {MEDIUM}")
    print(f"{'job':<22} {'lioctl file':>12} {'no-data':>10} {'kernel':>14} {'file/kernel':>12} "
          f"{'no-data/kernel':>15}")
    for name, _ in JOBS:
        a, b, c = (tb.median_run(runs[(k, name)]) for k in labels)
        key = "mibs" if name.startswith("1M") else "iops"
        print(f"{name:<22} {a[key]:>12.1f} {b[key]:>10.1f} {c[key]:>14.1f} {a[key] / c[key]:>11.2f}x "
              f"{b[key] / c[key]:>14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
