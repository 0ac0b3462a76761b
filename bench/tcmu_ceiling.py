"""How fast can any TCMU handler be here? The 1 MiB jobs of tcmu_bench.py on (a) lioctl's
handler with its file backend, (b) the same handler with a backend that moves no data at all
(reads answer GOOD leaving the data area as it is, writes are dropped) and (c) the kernel's
fileio backstore, all three at once, each job on each disk in turn.

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
JOBS = [j for j in tb.JOBS if j[0].startswith("1M")] + [j for j in tb.JOBS if j[0] == "4k rand read qd1"]

# lioctl's handler, its RAM backend made to move nothing (the benchmark never verifies data)
NULL_HANDLER = """
import sys
from lioctl.tcmu.backends import ram
ram.RamBackend.__init__ = lambda self, size: setattr(self, "size", size)
ram.RamBackend.readv = lambda self, bufs, offset: sum(map(len, bufs))
ram.RamBackend.writev = lambda self, bufs, offset, sync=False: None
ram.RamBackend.flush = lambda self: None
ram.RamBackend.close = lambda self: None
from lioctl.tcmu import daemon
sys.exit(daemon.main([]))
"""


def main() -> int:
    tb.cfs.clear()
    shutil.rmtree(tb.DIR, ignore_errors=True)
    os.makedirs(tb.DIR)
    null = subprocess.Popen([sys.executable, "-c", NULL_HANDLER], start_new_session=True,
                            stderr=open(f"{tb.DIR}/null-handler.log", "w"))
    from lioctl.tcmu import daemon
    tb.wait_for(daemon.query, "the no-data handler")
    disks = {}
    try:
        tb.lioctl("/backstores/user", "create", "b_null", tb.SIZE, "null", "subtype=lioctl_ram")
        # the file backend in the same handler process (it serves every lioctl device)
        tb.lioctl("/backstores/user", "create", "b_lioctl", tb.SIZE, f"{tb.DIR}/lioctl.img")
        for label, bs in (("lioctl file", "/backstores/user/b_lioctl"), ("lioctl no-data", "/backstores/user/b_null")):
            disks[label] = (tb.loopback_disk(bs), null.pid)
        bs, _ = tb.backend_fileio(f"{tb.DIR}/fileio.img")
        disks["kernel fileio"] = (tb.loopback_disk(bs), None)
        runs = tb.run_rounds(disks, JOBS, ROUNDS)
        labels = list(disks)
    except BaseException:
        with open(f"{tb.DIR}/null-handler.log") as f:     # why the handler did not serve
            sys.stderr.write(f.read()[-3000:])
        # what the kernel and the handler saw (a LUN once never showed up as a disk)
        for cmd in (["dmesg"], ["lsscsi", "-g"], tb.LIOCTL + ["tcmu", "status", "--json"]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            sys.stderr.write(f"== {' '.join(cmd)}\n{(p.stdout + p.stderr)[-4000:]}\n")
        raise
    finally:
        tb.cfs.clear()
        os.killpg(null.pid, signal.SIGTERM)
        null.wait(timeout=60)
    print()
    print(f"medians of {ROUNDS} rounds")
    print(f"{'job':<22} {'lioctl file':>12} {'no-data':>10} {'kernel fileio':>14} {'file/fileio':>12} "
          f"{'no-data/fileio':>15}")
    for name, _ in JOBS:
        a, b, c = (tb.median_run(runs[(k, name)]) for k in labels)
        key = "mibs" if name.startswith("1M") else "iops"
        print(f"{name:<22} {a[key]:>12.1f} {b[key]:>10.1f} {c[key]:>14.1f} {a[key] / c[key]:>11.2f}x "
              f"{b[key] / c[key]:>14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
