"""A disk with latency behind lioctl's TCMU handler: a user backstore on a device-mapper delay
target (a loop device over a tmpfs file, every I/O delayed DELAY_MS) next to the kernel's own
block backstore on a second delay device of the same kind, 4 KiB random reads through tcm_loop
at queue depth 1 and 32. Shows whether the handler keeps the disk busy (I/O threads) or
serializes it (answering on its event loop), and what the thread count buys.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/tcmu_slow_disk.py'

LIOCTL_TREES=/a:/b runs the handler from each checkout in turn (for before/after comparisons).
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tcmu_bench as tb  # noqa: E402

DELAY_MS = int(os.environ.get("DELAY_MS", "5"))
THREADS = [int(t) for t in os.environ.get("BENCH_THREADS", "4,16").split(",")]
TREES = [t for t in os.environ.get("LIOCTL_TREES", "").split(":") if t]
JOBS = [("4k rand read qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
        ("4k rand read qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"])]


def sh(*cmd) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def slow_disk(name: str) -> str:
    img = f"{tb.DIR}/{name}.img"
    with open(img, "wb") as f:
        f.truncate(int(tb.SIZE[:-1]) << 20)
    loop = sh("losetup", "-f", "--show", img)
    sectors = sh("blockdev", "--getsz", loop)
    sh("dmsetup", "create", name, "--table", f"0 {sectors} delay {loop} 0 {DELAY_MS}")
    return f"/dev/mapper/{name}"


def restart(threads: int, tree: str | None) -> int:
    # the disk pool's size (checkouts before it existed used the one pool for everything)
    return tb.restart_handler({"LIOCTL_TCMU_DISK_THREADS": str(threads), "LIOCTL_TCMU_IO_THREADS": str(threads)},
                              tree)


def main() -> int:
    tb.RUNTIME = int(os.environ.get("BENCH_RUNTIME", "15"))
    tb.cfs.clear()
    os.makedirs(tb.DIR, exist_ok=True)
    subprocess.run(["modprobe", "dm-delay"], check=True)
    try:
        ours, theirs = slow_disk("slow_lioctl"), slow_disk("slow_iblock")
        tb.lioctl("/backstores/user", "create", "b_slow", tb.SIZE, ours)
        tb.lioctl("/backstores/block", "create", "b_iblock", theirs)
        lio, kern = tb.loopback_disk("/backstores/user/b_slow"), tb.loopback_disk("/backstores/block/b_iblock")
        print(f"every I/O on both disks delayed {DELAY_MS} ms")
        for name, args in JOBS:
            r = tb.run_job(kern, args, None)
            print(f"{'kernel block':<34} {name:<18} {r['iops']:8.0f} IOPS", flush=True)
            for tree in TREES or [None]:
                for threads in THREADS:
                    pid = restart(threads, tree)
                    r = tb.run_job(lio, args, pid)
                    label = f"lioctl {threads} threads" + (f" ({tree})" if tree else "")
                    print(f"{label:<34} {name:<18} {r['iops']:8.0f} IOPS  handler {r['handler_cpu']:5.1f}%",
                          flush=True)
    finally:
        tb.cfs.clear()
        for name in ("slow_lioctl", "slow_iblock"):
            subprocess.run(["dmsetup", "remove", name], capture_output=True)
        subprocess.run(["losetup", "-D"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
