"""Issue 6's benchmark, in the real-kernel guest, one run, side by side: fio through tcm_loop
on (a) lioctl's TCMU handler with its file backend, (b) tcmu-runner's qcow handler on a raw
file of the same size, (c) the kernel's own fileio backstore on the same kind of file.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; BENCH_ROUNDS=3 /opt/lioctl-venv/bin/python bench/tcmu_bench.py'

BENCH_ROUNDS=N runs every job N times (the backends' order rotating) and reports the medians.

Every backing file lives in the guest's /tmp (tmpfs), so the figures compare the handlers'
own overhead, not a disk. CPU: "sys%" is the whole guest's busy time (all CPUs, from
/proc/stat, 100% = every CPU busy), "handler%" the handler process alone (100% = one CPU). Both TCMU devices have hw_max_sectors=2048
(lioctl's default; the kernel's is 128, which splits a 1 MiB I/O into 16 commands).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernel"))
import cfs  # noqa: E402

LIOCTL = [os.path.join(os.path.dirname(sys.executable), "lioctl")]
SIZE = os.environ.get("BENCH_SIZE", "256M")
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))   # >1: every job that many times; medians reported
DIR = "/tmp/tcmu-bench"
JOBS = [  # name, fio args
    ("1M seq write qd8", ["--rw=write", "--bs=1M", "--iodepth=8"]),
    ("1M seq read qd8", ["--rw=read", "--bs=1M", "--iodepth=8"]),
    ("4k rand read qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
    ("4k rand read qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"]),
    ("4k rand write qd1", ["--rw=randwrite", "--bs=4k", "--iodepth=1"]),
    ("4k rand write qd32", ["--rw=randwrite", "--bs=4k", "--iodepth=32"]),
]


def lioctl(*args) -> str:
    p = subprocess.run(LIOCTL + [str(a) for a in args], capture_output=True, text=True,
                       env=dict(os.environ, NO_COLOR="1"))
    if p.returncode:
        raise SystemExit(f"lioctl {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p.stdout


def wait_for(cond, what, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def disk_of(backstore: str) -> str:
    """By unit serial: tcmu-runner calls every LUN 'TCMU device'."""
    name = backstore.rsplit("/", 1)[1]
    so = [os.path.join(r, name) for r in (f"/sys/kernel/config/target/core/{h}" for h in
                                          os.listdir("/sys/kernel/config/target/core"))
          if os.path.isdir(os.path.join(r, name))][0]
    serial = open(f"{so}/wwn/vpd_unit_serial").read().split(":")[1].strip().encode()

    def find():
        for d in os.listdir("/sys/block"):
            try:
                if serial in open(f"/sys/block/{d}/device/vpd_pg80", "rb").read():
                    return f"/dev/{d}"
            except OSError:
                pass
    return wait_for(find, f"the disk of {backstore}")


def loopback_disk(backstore: str) -> str:
    """A new loopback target with one LUN on the backstore: its /dev/sdX."""
    wwn = json.loads(lioctl("/loopback", "create", "--json"))["wwn"]
    lioctl(f"/loopback/{wwn}/luns", "create", backstore)
    return disk_of(backstore)


def cpu_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_cpu(pid: int | None) -> tuple[int, int]:
    """(user, system) clock ticks of a process and its threads."""
    if not pid:
        return 0, 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]), int(parts[12])
    except OSError:
        return 0, 0


def run_job(dev: str, args: list[str], pid: int | None) -> dict:
    b0, t0 = cpu_busy()
    p0 = proc_cpu(pid)
    w0 = time.monotonic()
    p = subprocess.run(["fio", "--name=b", f"--filename={dev}", "--direct=1", "--ioengine=libaio",
                        f"--size={SIZE}", "--time_based", f"--runtime={RUNTIME}", "--ramp_time=2",
                        "--output-format=json", *args], capture_output=True, text=True)
    wall = time.monotonic() - w0
    b1, t1 = cpu_busy()
    p1 = proc_cpu(pid)
    if p.returncode:
        raise SystemExit(f"fio failed: {p.stderr[-500:]}")
    job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    rw = job["read"] if job["read"]["io_bytes"] else job["write"]
    hz = os.sysconf("SC_CLK_TCK")
    ios = max(1, rw["total_ios"])   # counted after the ramp; CPU over the whole run, so an overestimate
    user, system = ((p1[i] - p0[i]) / hz for i in (0, 1))
    return {"iops": rw["iops"], "mibs": rw["bw_bytes"] / (1 << 20),
            "lat_us": rw["lat_ns"]["mean"] / 1000,
            "sys_cpu": 100.0 * (b1 - b0) / max(1, t1 - t0),
            "handler_cpu": 100.0 * (user + system) / wall if pid else None,
            "handler_user_us": 1e6 * user / ios if pid else None,
            "handler_sys_us": 1e6 * system / ios if pid else None}


def run_rounds(disks: dict, jobs: list, rounds: int) -> dict[tuple[str, str], list[dict]]:
    """Every job on every disk, `rounds` times, the disks' order rotating so that none is always
    first; each result printed as it comes. disks: label -> (device, handler pid or None)."""
    runs: dict[tuple[str, str], list[dict]] = {}
    labels = list(disks)
    for rnd in range(rounds):
        order = labels[rnd % len(labels):] + labels[:rnd % len(labels)]
        for name, args in jobs:
            for label in order:
                dev, pid = disks[label]
                r = run_job(dev, args, pid)
                runs.setdefault((label, name), []).append(r)
                print(f"{label:<15} {name:<20} {r['iops']:>9.0f} IOPS {r['mibs']:>8.1f} MiB/s "
                      f"lat {r['lat_us']:>8.0f} us  sys {r['sys_cpu']:5.1f}%"
                      + (f"  handler {r['handler_cpu']:5.1f}%" if r["handler_cpu"] is not None else "")
                      + (f"  (round {rnd + 1})" if rounds > 1 else ""), flush=True)
    return runs


def median_run(rs: list[dict]) -> dict:
    """The run with the median throughput (its CPU figures with it), plus every round's."""
    rs = sorted(rs, key=lambda r: r["iops"])
    return dict(rs[(len(rs) - 1) // 2], rounds=[round(r["iops"], 1) for r in rs])


def restart_handler(env: dict[str, str], tree: str | None = None) -> int:
    """Stop lioctl's handler and start it again with `env` added to its environment, from the
    checkout `tree` if given; returns its pid."""
    subprocess.run(LIOCTL + ["tcmu", "stop"], check=True, capture_output=True)
    env = dict(os.environ, **env)
    if tree:
        env["PYTHONPATH"] = tree
    # `python -m` puts the working directory first on sys.path: start it in the tree wanted
    subprocess.run(LIOCTL + ["tcmu", "start"], check=True, env=env, capture_output=True, cwd=tree or None)
    from lioctl.tcmu import daemon
    return daemon.running_pid()


def backend_lioctl(img: str):
    lioctl("/backstores/user", "create", "b_lioctl", SIZE, img)
    from lioctl.tcmu import daemon
    return "/backstores/user/b_lioctl", daemon.running_pid()


def backend_runner(img: str):
    # the same maximum transfer as lioctl's default, so both handlers see 1 MiB commands
    lioctl("/backstores/user", "create", "b_runner", SIZE, img, "subtype=qcow", "hw_max_sectors=2048")
    pid = int(subprocess.run(["pgrep", "-x", "tcmu-runner"], capture_output=True, text=True).stdout.split()[0])
    return "/backstores/user/b_runner", pid


def backend_fileio(img: str):
    lioctl("/backstores/fileio", "create", "b_fileio", img, SIZE, "write_back=true")
    return "/backstores/fileio/b_fileio", None


def start_runner() -> subprocess.Popen:
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        subprocess.run(["dbus-daemon", "--system", "--fork"], check=True)
    os.makedirs(f"{DIR}/runner-log", exist_ok=True)
    r = subprocess.Popen(["tcmu-runner", "-l", f"{DIR}/runner-log"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    def on_bus():
        out = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                              "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"],
                             capture_output=True, text=True).stdout
        return "org.kernel.TCMUService1" in out
    wait_for(on_bus, "tcmu-runner on D-Bus")
    return r


def main() -> int:
    cfs.clear()
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(DIR)
    runner = start_runner()
    results: dict[str, dict[str, dict]] = {}
    disks = {}
    try:
        # All three disks exist at once and every job runs on each in turn: under emulation on
        # a shared host the guest's speed drifts over minutes, and one backend after another
        # once put a slow spell on one of them alone.
        for label, make in (("lioctl", backend_lioctl), ("tcmu-runner", backend_runner),
                            ("kernel fileio", backend_fileio)):
            img = f"{DIR}/{label.split()[0]}.img"
            if label == "tcmu-runner":       # the others make their file themselves
                with open(img, "wb") as f:
                    f.truncate(int(SIZE[:-1]) << 20)
            bs, pid = make(img)
            disks[label] = (loopback_disk(bs), pid)
            results[label] = {}
        for (label, name), rs in run_rounds(disks, JOBS, ROUNDS).items():
            results[label][name] = median_run(rs)
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
        cfs.clear()
    print()
    if ROUNDS > 1:
        print(f"medians of {ROUNDS} rounds (each round runs every job on the three disks in turn)")
    print(f"{'job (fio via tcm_loop, ' + SIZE + ' file on tmpfs)':<34} {'lioctl':>10} {'tcmu-runner':>12} "
          f"{'kernel fileio':>14} {'lioctl/runner':>14} {'lioctl/fileio':>14}")
    for name, _ in JOBS:
        a, b, c = (results[k][name] for k in ("lioctl", "tcmu-runner", "kernel fileio"))
        unit = "MiB/s" if name.startswith("1M") else "IOPS"
        key = "mibs" if unit == "MiB/s" else "iops"
        print(f"{name + ' (' + unit + ')':<34} {a[key]:>10.1f} {b[key]:>12.1f} {c[key]:>14.1f} "
              f"{a[key] / max(b[key], 1e-9):>13.2f}x {a[key] / max(c[key], 1e-9):>13.2f}x")
    print()
    print(f"{'CPU: guest busy% / handler%':<34} {'lioctl':>16} {'tcmu-runner':>16} {'kernel fileio':>14}")
    for name, _ in JOBS:
        a, b, c = (results[k][name] for k in ("lioctl", "tcmu-runner", "kernel fileio"))
        print(f"{name:<34} {a['sys_cpu']:>7.1f} / {a['handler_cpu']:>5.1f} {b['sys_cpu']:>7.1f} / "
              f"{b['handler_cpu']:>5.1f} {c['sys_cpu']:>14.1f}")
    print()
    print(f"{'handler CPU per I/O, user / system us':<38} {'lioctl':>16} {'tcmu-runner':>16}")
    for name, _ in JOBS:
        a, b = (results[k][name] for k in ("lioctl", "tcmu-runner"))
        print(f"{name:<38} {a['handler_user_us']:>7.0f} / {a['handler_sys_us']:<6.0f} "
              f"{b['handler_user_us']:>7.0f} / {b['handler_sys_us']:<6.0f}")
    if ROUNDS > 1:
        print()
        print("every round (IOPS), lioctl | tcmu-runner | kernel fileio")
        for name, _ in JOBS:
            print(f"{name:<22} " + " | ".join(" ".join(f"{v:.0f}" for v in results[k][name]["rounds"])
                                             for k in ("lioctl", "tcmu-runner", "kernel fileio")))
    with open(f"{DIR}.json", "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
