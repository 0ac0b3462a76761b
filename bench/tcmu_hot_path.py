"""What one command costs the TCMU handler's Python: Device.drain over the simulated ring
(tests/unit/tcmu_sim.py) with the file backend on a temporary file, one 4 KiB read or write
at a time (the queue-depth-1 case), the doorbell written to /dev/null. No kernel involved,
so it runs on the host and in the guest alike; in the guest it tells how much of a
queue-depth-1 I/O's latency is the handler's own Python.

    python bench/tcmu_hot_path.py
    bash tests/kernel/boot.sh /opt/lioctl-venv/bin/python bench/tcmu_hot_path.py
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
from lioctl.tcmu.backends.file import FileBackend  # noqa: E402
from lioctl.tcmu.device import NATIVE  # noqa: E402
from tcmu_sim import SimKernel, sim_device  # noqa: E402

SIZE = 64 << 20
N = int(os.environ.get("BENCH_COMMANDS", "3000"))


def device(path: str, native: bool):
    # write_cache as lioctl sets it by default (write_back=true): no RWF_DSYNC per write
    return sim_device(FileBackend(path, SIZE), os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC),
                      ring_size=1 << 20, data_blocks=256, write_cache=True, native=native)


def per_command(k: SimKernel, d, cdb: bytes, data_out: bytes, data_in: int) -> float:
    """Median handler time of N commands, each queued alone and answered by one drain()."""
    times = []
    for _ in range(N):
        k.queue(cdb, data_out=data_out, data_in=data_in, scatter=False)
        t = time.perf_counter_ns()
        d.drain()
        times.append(time.perf_counter_ns() - t)
        k.reap()
    times.sort()
    return times[len(times) // 2] / 1000


def main() -> int:
    # a file on tmpfs: the guest's /tmp is the host's file system over 9p, which has no
    # RWF_NOWAIT (and costs a host round trip per read); BENCH_DIR for another medium
    where = os.environ.get("BENCH_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        path = os.path.join(tmp, "disk.img")
        with open(path, "wb") as f:
            f.truncate(SIZE)
        read = struct.pack(">BBIBHB", 0x28, 0, 1000, 0, 8, 0)
        write = struct.pack(">BBIBHB", 0x2A, 0, 1000, 0, 8, 0)
        tur = bytes(6)
        t = time.perf_counter_ns()
        for _ in range(1000):
            os.getppid()
        syscall = (time.perf_counter_ns() - t) / 1000 / 1000
        paths = [False] + ([True] if NATIVE else [])
        devices = {native: device(path, native) for native in paths}
        for k, d in devices.values():
            per_command(k, d, read, b"", 4096)      # warm up (and the page cache)
        print(f"handler time per command, median of {N} (us): Python path"
              + (", native path (_fastpath.c)" if NATIVE else ", no native path built"))
        for name, args in (("4 KiB read (READ 10)", (read, b"", 4096)),
                           ("4 KiB write (WRITE 10)", (write, bytes(4096), 0)),
                           ("TEST UNIT READY", (tur, b"", 0))):
            cols = "".join(f" {per_command(k, d, *args):8.1f}" for k, d in devices.values())
            print(f"  {name:<24}{cols}", flush=True)
        print(f"  (one getppid for scale: {syscall:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
