"""What one RBD command costs the TCMU handler's Python, end to end through the handler's own
loop (the doorbell's drain, librbd's completion eventfd, the reap, the answer and its
doorbell) over the simulated ring (tests/unit/tcmu_sim.py) against a one-node memstore
cluster (tests/kernel/ceph.sh) on 127.0.0.1. No kernel: it runs on the host and in the guest.
Prints wall time and the event loop's CPU per 4 KiB command at queue depth 1 and 32, and with
BENCH_PROFILE=FILE a cProfile of one run (BENCH_PROFILE_JOB: read1, read32, write1, write32).

    python bench/rbd_hot_path.py
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
from lioctl.tcmu import rbdspec  # noqa: E402
from lioctl.tcmu.daemon import Daemon, Reaper  # noqa: E402
from tcmu_sim import sim_device  # noqa: E402

N = int(os.environ.get("BENCH_COMMANDS", "3000"))


def loop_once(d: Daemon, timeout: float = 10.0) -> None:
    """One pass of Daemon.run's loop over the fds a device and its backend registered."""
    events = d.poll(timeout)
    assert events, "no completion within 10 s"
    for fd, _ in events:
        what = d.fds.get(fd)
        if what.__class__ is Reaper:
            d._reap(what.dev)
        elif what == "completions":
            d._completions()
        else:
            d._service(what)


def run(d: Daemon, k, dev, cdb: bytes, data_out: bytes, data_in: int, depth: int) -> tuple[float, float]:
    """(wall us, the loop's CPU us) per command, N commands kept `depth` in flight: the loop's
    CPU is the event loop thread's own (the handler's Python and its librbd calls; not the
    simulated kernel's, nor librbd's threads, which any librbd client pays)."""
    queued = done = 0
    cpu = 0.0
    clock = time.thread_time
    w0 = time.perf_counter()
    while done < N:
        while queued - done < depth and queued < N:
            k.queue(cdb, data_out=data_out, data_in=data_in, scatter=False)
            queued += 1
        c0 = clock()
        dev.drain()
        loop_once(d)
        cpu += clock() - c0
        done += len(k.reap())
    return (time.perf_counter() - w0) / N * 1e6, cpu / N * 1e6


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cdir = os.path.join(tmp, "ceph")
        subprocess.run(["bash", os.path.join(ROOT, "tests/kernel/ceph.sh"), "up", cdir], check=True,
                       capture_output=True, env=dict(os.environ, MON_PORT="3310", MON_PORT_V1="6799"))
        try:
            subprocess.run(["rbd", "-c", f"{cdir}/ceph.conf", "create", "--size", "64", "rbd/hot"], check=True)
            from lioctl.tcmu.backends.rbd import RbdBackend
            os.environ["LIOCTL_TCMU_IO_THREADS"] = os.environ["LIOCTL_TCMU_DISK_THREADS"] = "0"
            d = Daemon()
            b = RbdBackend(rbdspec.RbdSpec("rbd", "hot", conf=f"{cdir}/ceph.conf", keyring=f"{cdir}/keyring"))
            k, dev = sim_device(b, os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), queue=d.completions,
                                ring_size=1 << 20, data_blocks=1024, write_cache=True)
            d.watch(d.completions.fd, "completions")
            d.watch(b.completion_fd(), Reaper(dev, b.completion_fd()))
            read = struct.pack(">BBIBHB", 0x28, 0, 1000, 0, 8, 0)
            write = struct.pack(">BBIBHB", 0x2A, 0, 1000, 0, 8, 0)
            run(d, k, dev, write, bytes(4096), 0, 32)      # warm up: objects exist, lock taken
            print(f"per 4 KiB command, {N} commands (us): wall / event loop CPU")
            prof = os.environ.get("BENCH_PROFILE")
            for name, cdb, out, inn in (("read", read, b"", 4096), ("write", write, bytes(4096), 0)):
                for depth in (1, 32):
                    if prof and f"{name}{depth}" == os.environ.get("BENCH_PROFILE_JOB", "write32"):
                        import cProfile
                        pr = cProfile.Profile()
                        wall, cpu = pr.runcall(run, d, k, dev, cdb, out, inn, depth)
                        pr.dump_stats(prof)
                    else:
                        wall, cpu = run(d, k, dev, cdb, out, inn, depth)
                    print(f"  4k {name:<5} qd{depth:<3} {wall:8.1f} / {cpu:8.1f}", flush=True)
            c = dev.counters
            print(f"  wake-ups of the completion queue: {d.completions.runs}, batches {c.batches}")
            b.close()
        finally:
            subprocess.run(["bash", os.path.join(ROOT, "tests/kernel/ceph.sh"), "down", cdir], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
