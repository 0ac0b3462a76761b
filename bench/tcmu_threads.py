"""How many I/O threads lioctl's TCMU handler should use: 1 MiB sequential read and write at qd8
through tcm_loop with LIOCTL_TCMU_IO_THREADS=4 (the default), 2, 1 and 0 (everything on the
event loop) (BENCH_THREADS=16,4 for others), alternating, twice, in one guest boot. The backstore has write-back caching (the
default), whose writes are answered on the event loop whatever the count: the write job shows
what idle threads cost, the read job what they buy (the kernel copies a
read's data out in the doorbell write, which a thread overlaps with the next read).

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/tcmu_threads.py'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests", "kernel")]
import cfs  # noqa: E402
import tcmu_bench as tb  # noqa: E402

COUNTS = [int(t) for t in os.environ.get("BENCH_THREADS", "4,2,1,0").split(",")]
JOBS = (("1M read qd8", ["--rw=read", "--bs=1M", "--iodepth=8"]),
        ("1M write qd8", ["--rw=write", "--bs=1M", "--iodepth=8"]))


def restart(threads: int) -> int:
    return tb.restart_handler({"LIOCTL_TCMU_IO_THREADS": str(threads)})


def main() -> None:
    tb.RUNTIME = int(os.environ.get("BENCH_RUNTIME", "12"))
    cfs.clear()
    os.makedirs(tb.DIR, exist_ok=True)
    tb.lioctl("/backstores/user", "create", "b_lioctl", "256M", tb.DIR + "/l.img")
    wwn = json.loads(tb.lioctl("/loopback", "create", "--json"))["wwn"]
    tb.lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/user/b_lioctl")
    dev = tb.disk_of("/backstores/user/b_lioctl")
    subprocess.run(["fio", "--name=fill", f"--filename={dev}", "--direct=1", "--rw=write", "--bs=1M",
                    "--size=256M"], capture_output=True, check=True)
    try:
        for _ in range(2):
            for threads in COUNTS:
                pid = restart(threads)
                for name, args in JOBS:
                    r = tb.run_job(dev, args, pid)
                    print(f"threads={threads} {name}: {r['mibs']:.1f} MiB/s handler {r['handler_cpu']:.0f}% "
                          f"user {r['handler_user_us']:.0f} sys {r['handler_sys_us']:.0f} us/IO", flush=True)
    finally:
        cfs.clear()


if __name__ == "__main__":
    main()
