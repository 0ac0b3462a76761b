"""Where lioctl's RBD handler spends its CPU in the real-kernel guest, per I/O: one memstore
cluster, one lioctl_rbd LUN through tcm_loop, fio jobs; for each job the CPU of every thread of
the handler process (the event loop, librbd/librados's threads) per I/O, the idle cost first;
then with BENCH_PROFILE=1 a cProfile of the handler (LIOCTL_TCMU_PROFILE) over one more run.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/rbd_profile.py'
"""

from __future__ import annotations

import collections
import json
import os
import pstats
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests", "kernel")]
import cfs  # noqa: E402
import tcmu_bench as tb  # noqa: E402

CEPH = "/tmp/rbd-profile-ceph"
SIZE = "64M"
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "10"))
PROFILE = "/tmp/rbd-profile.out"
JOBS = [("idle", None),
        ("4k rand read qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
        ("4k rand write qd1", ["--rw=randwrite", "--bs=4k", "--iodepth=1"]),
        ("4k rand read qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"])]


def threads(pid: int) -> dict[str, int]:
    """user + system ticks of every thread of a process, summed by thread name."""
    out: dict[str, int] = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            parts = rest.split()
            out[head.split("(", 1)[1]] += int(parts[11]) + int(parts[12])
        except OSError:
            continue
    return out


def run(dev: str, args, pid: int) -> None:
    t0 = threads(pid)
    if args is None:
        time.sleep(RUNTIME)
        ios = 1
    else:
        p = subprocess.run(["fio", "--name=b", f"--filename={dev}", "--direct=1", "--ioengine=libaio",
                            f"--size={SIZE}", "--time_based", f"--runtime={RUNTIME}", "--output-format=json", *args],
                           capture_output=True, text=True, check=True)
        job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
        rw = job["read"] if job["read"]["io_bytes"] else job["write"]
        ios = max(1, rw["total_ios"])
        print(f"  {rw['iops']:.0f} IOPS, load {os.getloadavg()[0]:.1f}", flush=True)
    t1 = threads(pid)
    hz = os.sysconf("SC_CLK_TCK")
    per = {k: (t1[k] - t0.get(k, 0)) / hz * 1e6 / ios for k in t1}
    what = "us per I/O" if args is not None else f"us over {RUNTIME} s idle"
    print(f"  handler threads, {what}: total {sum(per.values()):.0f}; "
          + ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v), flush=True)


def main() -> int:
    cfs.clear()
    subprocess.run(["bash", os.path.join(HERE, "..", "tests/kernel/ceph.sh"), "up", CEPH], check=True,
                   capture_output=True)
    with open(f"{CEPH}/ceph.conf", "a") as f:
        f.write("rbd_cache = false\n")
    try:
        subprocess.run(["rbd", "-c", f"{CEPH}/ceph.conf", "create", "--size", SIZE, "rbd/p"], check=True)
        subprocess.run(["rbd", "-c", f"{CEPH}/ceph.conf", "bench", "--io-type", "write", "--io-size", "4M",
                        "--io-pattern", "seq", "--io-total", SIZE, "rbd/p"], check=True, capture_output=True)
        tb.lioctl("/backstores/user", "create", "p", SIZE, f"rbd/p;conf={CEPH}/ceph.conf;keyring={CEPH}/keyring",
                  "subtype=lioctl_rbd")
        dev = tb.loopback_disk("/backstores/user/p")
        from lioctl.tcmu import daemon
        pid = daemon.running_pid()
        for name, args in JOBS:
            print(name, flush=True)
            run(dev, args, pid)
        if os.environ.get("BENCH_PROFILE"):
            pid = tb.restart_handler({"LIOCTL_TCMU_PROFILE": PROFILE})
            tb.wait_for(lambda: (daemon.query() or {}).get("devices"), "the handler to serve the LUN again")
            print("profiled: 4k rand read qd1", flush=True)
            run(dev, JOBS[1][1], pid)
            subprocess.run(tb.LIOCTL + ["tcmu", "stop"], check=True, capture_output=True)
            pstats.Stats(PROFILE).sort_stats("tottime").print_stats(30)
    finally:
        cfs.clear()
        subprocess.run(["bash", os.path.join(HERE, "..", "tests/kernel/ceph.sh"), "down", CEPH])
    return 0


if __name__ == "__main__":
    sys.exit(main())
