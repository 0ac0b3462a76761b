"""Issue 14's benchmark, in the real-kernel guest, one boot, one cluster, side by side: fio
through tcm_loop on (a) lioctl's handler with its RBD backend (lioctl_rbd, librbd aio),
(b) tcmu-runner's rbd handler (Debian's handler_rbd.so), (c) the kernel's own path (`rbd map`
+ the kernel's block backstore), and (d) fio's rbd engine straight on librbd (no SCSI at all:
the ceiling of any gateway).

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; BENCH_ROUNDS=3 /opt/lioctl-venv/bin/python bench/rbd_bench.py'

One memstore cluster (tests/kernel/ceph.sh) on 127.0.0.1 in the guest; every path has its own
image of BENCH_SIZE (default 128M), written whole before the runs (reads of never-written RBD
objects cost nothing). Every job runs on every path in turn, the order rotating per round;
BENCH_ROUNDS=N reports medians with every round shown; BENCH_JOBS=qd1,1M picks jobs.
Verification is off for speed; a separate fio verify run checks lioctl's LUN (on a failure:
the kernel's log and the handler's worst latency, to tell a command the kernel timed out from
a wrong answer). CPU per I/O: the
handler process (lioctl's or tcmu-runner's), user + system microseconds per I/O over the whole
run. Every librbd client has `rbd_cache = false` (the [client] section of the cluster's
ceph.conf): tcmu-runner sets it itself, lioctl's handler too, krbd has no such cache, and fio's
rbd engine would otherwise acknowledge writes before the OSD has them. The guest's load
average is printed beside every figure (under TCG everything shares two host cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests", "kernel")]
import cfs  # noqa: E402
import tcmu_bench as tb  # noqa: E402

SIZE = os.environ.get("BENCH_SIZE", "128M")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "10"))
VERIFY_SIZE = os.environ.get("BENCH_VERIFY_SIZE", "32M")     # the verify run's span
CEPH = "/tmp/rbd-bench-ceph"
JOBS = [
    ("4k rand read qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
    ("4k rand read qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"]),
    ("4k rand write qd1", ["--rw=randwrite", "--bs=4k", "--iodepth=1"]),
    ("4k rand write qd32", ["--rw=randwrite", "--bs=4k", "--iodepth=32"]),
    ("1M seq read qd8", ["--rw=read", "--bs=1M", "--iodepth=8"]),
    ("1M seq write qd8", ["--rw=write", "--bs=1M", "--iodepth=8"]),
]
# BENCH_JOBS="qd1,1M": only the jobs holding every word of one item (as tcmu_bench.py)
JOBS = [j for j in JOBS if not os.environ.get("BENCH_JOBS") or any(
    set(item.split()) <= set(j[0].split()) for item in os.environ["BENCH_JOBS"].split(","))]
LABELS = ("lioctl", "tcmu-runner", "krbd+block", "fio rbd engine")
tb.SIZE, tb.RUNTIME = SIZE, RUNTIME


def rbd(*args):
    p = subprocess.run(["rbd", "-c", f"{CEPH}/ceph.conf", *map(str, args)], capture_output=True, text=True,
                       timeout=600)
    if p.returncode:
        raise SystemExit(f"rbd {args}: {p.stderr.strip()}")
    return p.stdout


def image(name: str) -> str:
    rbd("create", "--size", SIZE, f"rbd/{name}")
    rbd("bench", "--io-type", "write", "--io-size", "4M", "--io-pattern", "seq", "--io-total", SIZE,
        f"rbd/{name}")
    return name


def run_rbd_engine(name: str, args: list[str]) -> dict:
    """fio's rbd ioengine on librbd directly (reads CEPH_CONF only)."""
    w0 = time.monotonic()
    p = subprocess.run(["fio", "--name=b", "--ioengine=rbd", "--clientname=admin", "--pool=rbd",
                        f"--rbdname={name}", f"--size={SIZE}", "--time_based", f"--runtime={RUNTIME}",
                        "--ramp_time=2", "--output-format=json", *args], capture_output=True, text=True,
                       env=dict(os.environ, CEPH_CONF=f"{CEPH}/ceph.conf"))
    if p.returncode:
        raise SystemExit(f"fio rbd failed: {p.stderr[-500:]}")
    job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    rw = job["read"] if job["read"]["io_bytes"] else job["write"]
    return {"iops": rw["iops"], "mibs": rw["bw_bytes"] / (1 << 20), "lat_us": rw["lat_ns"]["mean"] / 1000,
            "sys_cpu": 0.0, "handler_cpu": None, "handler_user_us": None, "handler_sys_us": None,
            "wall": time.monotonic() - w0}


def why(daemon) -> None:
    """After a failed verify: what the kernel logged (a TCMU command timeout shows as no line
    of its own, an aborted or failed command as sd/tcm_loop lines) and the handler's worst
    command latency against the device's cmd_time_out."""
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
    print("  kernel: " + "\n  kernel: ".join([ln for ln in log if any(w in ln for w in (
        "tcmu", "TCMU", "sd ", "tcm_loop", "I/O error", "ring", "abort"))][-15:]), flush=True)
    st = daemon.query() or {}
    for d in st.get("devices", []):
        cmd_time_out = open(f"/sys/kernel/config/target/core/{d['hba']}/{d['name']}/attrib/cmd_time_out").read()
        print(f"  handler: {d['name']} max latency {d['latency_us_max'] / 1e6:.1f} s, cmd_time_out "
              f"{cmd_time_out.strip()} s, errors {d['errors']}, backend errors {d.get('backend_errors')}",
              flush=True)


def main() -> int:
    cfs.clear()
    t = time.monotonic()
    subprocess.run(["bash", os.path.join(HERE, "..", "tests/kernel/ceph.sh"), "up", CEPH], check=True,
                   capture_output=True)
    print(f"cluster up in {time.monotonic() - t:.0f} s", flush=True)
    with open(f"{CEPH}/ceph.conf", "a") as f:       # [client] is the file's last section
        f.write("rbd_cache = false\n")
    os.makedirs(tb.DIR, exist_ok=True)
    runner = tb.start_runner()
    mapped = None
    disks: dict[str, tuple] = {}
    try:
        opts = f"conf={CEPH}/ceph.conf;keyring={CEPH}/keyring"
        tb.lioctl("/backstores/user", "create", "b_lioctl", SIZE, f"rbd/{image('lioctl')};{opts}",
                  "subtype=lioctl_rbd")
        from lioctl.tcmu import daemon
        disks["lioctl"] = (tb.loopback_disk("/backstores/user/b_lioctl"), daemon.running_pid())
        tb.lioctl("/backstores/user", "create", "b_runner", SIZE, f"rbd/{image('runner')};conf={CEPH}/ceph.conf",
                  "subtype=rbd", "hw_max_sectors=2048")
        pid = int(subprocess.run(["pgrep", "-x", "tcmu-runner"], capture_output=True, text=True).stdout.split()[0])
        disks["tcmu-runner"] = (tb.loopback_disk("/backstores/user/b_runner"), pid)
        subprocess.run(["modprobe", "rbd"], check=True)
        mapped = rbd("map", "-o", "noudev", f"rbd/{image('krbd')}").strip()
        tb.lioctl("/backstores/block", "create", "b_krbd", mapped)
        disks["krbd+block"] = (tb.loopback_disk("/backstores/block/b_krbd"), None)
        engine_img = image("engine")
        print("verify run (lioctl's LUN): ", end="", flush=True)
        v = subprocess.run(["fio", "--name=v", f"--filename={disks['lioctl'][0]}", "--direct=1",
                            "--ioengine=libaio", "--rw=randwrite", "--bs=4k", "--iodepth=32", f"--size={VERIFY_SIZE}",
                            "--verify=crc32c", "--verify_fatal=1", "--output-format=json"],
                           capture_output=True, text=True)
        print("passed" if v.returncode == 0 else f"FAILED {v.stderr[-300:]}", flush=True)
        if v.returncode:
            why(daemon)
        runs: dict[tuple[str, str], list[dict]] = {}
        labels = list(LABELS)
        for rnd in range(ROUNDS):
            order = labels[rnd % len(labels):] + labels[:rnd % len(labels)]
            for name, args in JOBS:
                for label in order:
                    if label == "fio rbd engine":
                        r = run_rbd_engine(engine_img, args)
                    else:
                        dev, pid = disks[label]
                        r = tb.run_job(dev, args, pid)
                    runs.setdefault((label, name), []).append(r)
                    print(f"{label:<15} {name:<20} {r['iops']:>9.0f} IOPS {r['mibs']:>8.1f} MiB/s "
                          f"lat {r['lat_us']:>8.0f} us"
                          + (f"  handler {r['handler_cpu']:5.1f}%" if r["handler_cpu"] is not None else "")
                          + f"  (round {rnd + 1}, load {os.getloadavg()[0]:.1f})", flush=True)
        results = {label: {} for label in LABELS}
        for (label, name), rs in runs.items():
            results[label][name] = tb.median_run(rs)
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
        cfs.clear()
        if mapped:
            subprocess.run(["rbd", "-c", f"{CEPH}/ceph.conf", "unmap", mapped], capture_output=True)
        subprocess.run(["bash", os.path.join(HERE, "..", "tests/kernel/ceph.sh"), "down", CEPH])
    print()
    print(f"medians of {ROUNDS} round(s), {RUNTIME} s each, {SIZE} images, one memstore OSD on 127.0.0.1")
    print(f"{'job (IOPS; MiB/s for 1M)':<26} " + " ".join(f"{k:>15}" for k in LABELS)
          + f" {'lioctl/runner':>14} {'lioctl/krbd':>12}")
    for name, _ in JOBS:
        key = "mibs" if name.startswith("1M") else "iops"
        v = [results[k][name][key] for k in LABELS]
        print(f"{name:<26} " + " ".join(f"{x:>15.1f}" for x in v)
              + f" {v[0] / max(v[1], 1e-9):>13.2f}x {v[0] / max(v[2], 1e-9):>11.2f}x")
    print()
    print(f"{'handler CPU per I/O (user/sys us)':<36} {'lioctl':>16} {'tcmu-runner':>16}")
    for name, _ in JOBS:
        a, b = (results[k][name] for k in ("lioctl", "tcmu-runner"))
        print(f"{name:<36} {a['handler_user_us']:>7.0f} / {a['handler_sys_us']:<6.0f} "
              f"{b['handler_user_us']:>7.0f} / {b['handler_sys_us']:<6.0f}")
    print()
    print("every round (IOPS): " + " | ".join(LABELS))
    for name, _ in JOBS:
        print(f"{name:<22} " + " | ".join(" ".join(f"{v:.0f}" for v in results[k][name]["rounds"])
                                         for k in LABELS))
    with open("/tmp/rbd-bench.json", "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
