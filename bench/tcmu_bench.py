"""Issue 6's and issue 15's benchmark, in the real-kernel guest, one boot, side by side on each
medium: fio through tcm_loop on (a) lioctl's TCMU handler with its file backend, buffered and
with O_DIRECT (`direct;` in its config) where the medium takes it, (b) tcmu-runner's qcow
handler on a raw file or device of the same size, (c) the kernel's own backstore (fileio with
write_back=true on a file, block on a device), and (d) on the 1 MiB jobs, the same handler
process serving a device that moves no data (tcmu_ceiling.py's ceiling) in the same spell.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; BENCH_ROUNDS=3 BENCH_MEDIA=tmpfs,ext4,xfs,block,delay /opt/lioctl-venv/bin/python bench/tcmu_bench.py'

The peer: Debian's tcmu-runner ships no plain file handler (handler_file.so / file_example are
not packaged; its handlers are qcow, rbd, file_optical and file_zbc), so the closest real peer
is its qcow handler, which serves a file that is not qcow as a raw image through tcmu-runner's
own I/O threads (preadv/pwritev, no O_DIRECT). It refuses a block device ("image format not
recognized", seen in the guest), so the block and delay media have no tcmu-runner column,
unless BENCH_RUNNER_HANDLERS=DIR names tcmu-runner's own file handler built by
bench/tcmu-runner-file-handler.sh: then that handler (subtype file) is the peer everywhere.

BENCH_MEDIA (comma-separated, all by default), each set up afresh and torn down after its jobs:
  tmpfs   files in the guest's /tmp (no O_DIRECT there)
  ext4    files on ext4 on a loop device over a tmpfs file (page cache, no device latency)
  xfs     the same with xfs
  block   a loop device over a tmpfs file per disk; the kernel's side is the block backstore
  delay   the same behind dm-delay (BENCH_DELAY_MS, 5 ms by default, every I/O)
BENCH_ROUNDS=N runs every job N times (the disks' order rotating) and reports medians with
every round; BENCH_RUNTIME seconds per job (20); BENCH_SIZE per disk (128M); BENCH_JOBS a
comma-separated subset of the job names' words ("qd1,qd32"); BENCH_DIRECT=0 leaves out the
O_DIRECT disk; BENCH_COMPLETION_AFFINITY=-2 sets every loopback target's
param/cmd_completion_affinity (the same for every disk); BENCH_OUT=FILE writes every result
as JSON; BENCH_TREE=DIR runs lioctl's handler from another checkout (a before/after
comparison: each boot's ratios to tcmu-runner); BENCH_FIO_CPUS=0 and BENCH_HANDLER_CPUS=1
pin fio and every handler's threads (taskset lists). Every job starts after a sync(2), so that
none pays for the writeback of what an earlier job (on any disk) left dirty; BENCH_SYNC=0 leaves
it out.

CPU: "sys%" is the whole guest's busy time (all CPUs, from /proc/stat, 100% = every CPU
busy), "handler%" the handler process alone (100% = one CPU), "us/IO" the handler's user +
system CPU per I/O, then its minor faults per I/O and its CPU per I/O by thread name. Every
TCMU device has hw_max_sectors=2048 (lioctl's default; the kernel's is 128, which splits a
1 MiB I/O into 16 commands) and the write cache on (lioctl's default write_back=true), as the
kernel's fileio here.
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
import initiator as ini  # noqa: E402

LIOCTL = [os.path.join(os.path.dirname(sys.executable), "lioctl")]
SIZE = os.environ.get("BENCH_SIZE", "128M")
RUNTIME = int(os.environ.get("BENCH_RUNTIME", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))   # >1: every job that many times; medians reported
DIR = "/tmp/tcmu-bench"
MEDIA = [m for m in os.environ.get("BENCH_MEDIA", "tmpfs,ext4,xfs,block,delay").split(",") if m]
DELAY_MS = int(os.environ.get("BENCH_DELAY_MS", "5"))
DIRECT = os.environ.get("BENCH_DIRECT", "1") != "0"
JOBS = [  # name, fio args
    ("1M seq write qd8", ["--rw=write", "--bs=1M", "--iodepth=8"]),
    ("1M seq read qd8", ["--rw=read", "--bs=1M", "--iodepth=8"]),
    ("4k rand read qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"]),
    ("4k rand read qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"]),
    ("4k rand write qd1", ["--rw=randwrite", "--bs=4k", "--iodepth=1"]),
    ("4k rand write qd32", ["--rw=randwrite", "--bs=4k", "--iodepth=32"]),
]
# BENCH_COMPLETION_AFFINITY: every loopback target's param/cmd_completion_affinity (-1, the
# kernel's default: complete on the submitting CPU; -2: on the CPU that completed, for a TCMU
# device the one that rang the doorbell)
AFFINITY = os.environ.get("BENCH_COMPLETION_AFFINITY", "")
# BENCH_JOBS="qd1,1M": the jobs holding every word of any one item
PICKED = [j for j in JOBS if not os.environ.get("BENCH_JOBS") or any(
    set(item.split()) <= set(j[0].split()) for item in os.environ["BENCH_JOBS"].split(","))]


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


def loopback_disk(backstore: str, timeout: float = 120) -> str:
    """A new loopback target with one LUN on the backstore: its /dev/sdX, found by its SCSI
    address as the kernel tests find theirs (a probe that met a unit attention, another LUN
    added just then, leaves a disk without the VPD page a serial lookup needs)."""
    wwn = json.loads(lioctl("/loopback", "create", "--json"))["wwn"]
    if AFFINITY:                # every disk alike: lioctl's, tcmu-runner's, the kernel's
        with open(f"/sys/kernel/config/target/loopback/{wwn}/param/cmd_completion_affinity", "w") as f:
            f.write(AFFINITY)
    lioctl(f"/loopback/{wwn}/luns", "create", backstore)
    try:
        return ini.loopback_disk(wwn, 0, timeout)
    except AssertionError:      # what the kernel and the handler saw
        for cmd in (["lsscsi"], ["dmesg"], ["tail", "-20", f"{DIR}-null-handler.log"], LIOCTL + ["tcmu", "status"]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            print(f"== {' '.join(cmd)}\n{(p.stdout + p.stderr)[-2500:]}", flush=True)
        raise


def cpu_snapshot() -> dict[str, list[int]]:
    """/proc/stat: (busy, total) ticks of all CPUs ("cpu") and of each, and the context switch
    and interrupt counts."""
    snap: dict[str, list[int]] = {}
    with open("/proc/stat") as f:
        for line in f:
            k, *v = line.split()
            if k.startswith("cpu"):
                n = [int(x) for x in v]
                snap[k] = [sum(n) - n[3] - n[4], sum(n)]
            elif k in ("ctxt", "intr"):
                snap[k] = [int(v[0])]
    return snap


def cpu_use(a: dict[str, list[int]], b: dict[str, list[int]], ios: int) -> dict:
    """Between two snapshots: how busy all CPUs were, the busiest and the idlest one (at 4k QD32
    neither is full: what bounds it is not the CPU), and context switches and interrupts per
    I/O (over the whole run, ramp included, like the handler's CPU)."""
    def busy(k):
        return 100.0 * (b[k][0] - a[k][0]) / max(1, b[k][1] - a[k][1])
    each = sorted(busy(k) for k in a if k.startswith("cpu") and k != "cpu")
    return {"sys_cpu": busy("cpu"), "cpu_max": each[-1], "cpu_min": each[0],
            "ctxt_per_io": (b["ctxt"][0] - a["ctxt"][0]) / ios, "intr_per_io": (b["intr"][0] - a["intr"][0]) / ios}


def proc_cpu(pid: int | None) -> tuple[int, int, int]:
    """(user, system) clock ticks and minor faults of a process and its threads."""
    if not pid:
        return 0, 0, 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]), int(parts[12]), int(parts[7])
    except OSError:
        return 0, 0, 0


def thread_cpu(pid: int | None) -> dict[str, list[int]]:
    """A process's CPU ticks [user, system] by thread name (the native path names its ring,
    copy and wait threads; Python's threads share the process's name)."""
    by: dict[str, list[int]] = {}
    if not pid:
        return by
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return by
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
            parts = rest.split()
            name = head.split("(", 1)[1]
            t = by.setdefault(name, [0, 0])
            t[0] += int(parts[11])
            t[1] += int(parts[12])
        except (OSError, IndexError):
            continue
    return by


SYNC = os.environ.get("BENCH_SYNC", "1") != "0"
# BENCH_FIO_CPUS / BENCH_HANDLER_CPUS="1": pin fio, and every handler's threads (lioctl's,
# tcmu-runner's, the no-data one), to those CPUs: where the work lands, measured apart
FIO_CPUS = os.environ.get("BENCH_FIO_CPUS", "")
HANDLER_CPUS = os.environ.get("BENCH_HANDLER_CPUS", "")


def pin_threads(pid: int | None) -> None:
    if not (pid and HANDLER_CPUS):
        return
    cpus = {int(c) for c in HANDLER_CPUS.split(",")}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def settle() -> None:
    """Before each job: write back what earlier jobs left dirty (on every disk and medium), so
    that no job pays for another's writeback; the page cache stays as it is. BENCH_SYNC=0 leaves
    it out (the grids before this commit ran without it)."""
    if SYNC:
        os.sync()


def run_job(dev: str, args: list[str], pid: int | None) -> dict:
    settle()
    pin_threads(pid)
    s0 = cpu_snapshot()
    p0 = proc_cpu(pid)
    t0 = thread_cpu(pid)
    w0 = time.monotonic()
    p = subprocess.run((["taskset", "-c", FIO_CPUS] if FIO_CPUS else []) + ["fio", "--name=b", f"--filename={dev}", "--direct=1", "--ioengine=libaio",
                        f"--size={SIZE}", "--time_based", f"--runtime={RUNTIME}", "--ramp_time=2",
                        "--output-format=json", *args], capture_output=True, text=True)
    wall = time.monotonic() - w0
    s1 = cpu_snapshot()
    p1 = proc_cpu(pid)
    t1 = thread_cpu(pid)
    if p.returncode:
        raise SystemExit(f"fio failed: {p.stderr[-500:]}")
    job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    rw = job["read"] if job["read"]["io_bytes"] else job["write"]
    hz = os.sysconf("SC_CLK_TCK")
    ios = max(1, rw["total_ios"])   # counted after the ramp; CPU over the whole run, so an overestimate
    user, system = ((p1[i] - p0[i]) / hz for i in (0, 1))
    return {"iops": rw["iops"], "mibs": rw["bw_bytes"] / (1 << 20),
            "lat_us": rw["lat_ns"]["mean"] / 1000,
            "handler_cpu": 100.0 * (user + system) / wall if pid else None,
            "handler_user_us": 1e6 * user / ios if pid else None,
            "handler_sys_us": 1e6 * system / ios if pid else None,
            "handler_faults_per_io": (p1[2] - p0[2]) / ios if pid else None,
            "handler_threads_us": {k: [1e6 * (v[i] - t0.get(k, [0, 0])[i]) / hz / ios for i in (0, 1)]
                                   for k, v in t1.items() if sum(v) > sum(t0.get(k, [0, 0]))},
            "fio_cpu": job["usr_cpu"] + job["sys_cpu"], "fio_ctx_per_io": job["ctx"] / ios,
            **cpu_use(s0, s1, ios)}


def handler_follows(timeout: float = 30) -> str:
    """Once lioctl's handler has read where the kernel completes its devices' commands (it
    looks every few seconds): large writes on its copy threads under BENCH_COMPLETION_AFFINITY=-2,
    inline otherwise (LIOCTL_TCMU_INLINE_WRITE_MAX decides alone when set). What it says."""
    want = "copy threads" if AFFINITY == "-2" else "inline"

    def ready():
        devs = json.loads(lioctl("tcmu", "status", "--json"))["devices"]
        mine = [d for d in devs if d["name"] in ("b_lioctl", "b_direct")]
        if mine and ("LIOCTL_TCMU_INLINE_WRITE_MAX" in os.environ
                     or all(d.get("large_writes", want) == want for d in mine)):
            return ", ".join(f"{d['name']}: large writes {d.get('large_writes', '?')}" for d in mine)
    return wait_for(ready, f"lioctl's handler to follow the completion affinity ({want})", timeout)


def served_counts() -> dict[str, tuple[int, int, int, int, int]]:
    """lioctl's handler's devices: name -> (commands, batches, spins, spin hits, doorbells) so
    far (a batch: a walk of the ring that served commands; a spin: a wait for more after a
    doorbell)."""
    st = json.loads(lioctl("tcmu", "status", "--json"))
    return {d["name"]: (d["commands"], d["batches"], d.get("spins", 0), d.get("spin_hits", 0),
                        d.get("doorbells") or 0) for d in st["devices"]}


def run_rounds(disks: dict, jobs: list, rounds: int, only=None, walked=None) -> dict[tuple[str, str], list[dict]]:
    """Every job on every disk, `rounds` times, the disks' order rotating so that none is always
    first; each result printed as it comes. disks: label -> (device, handler pid or None);
    only(label, job name): whether that job runs on that disk (all when None); walked: label
    -> lioctl backstore name, whose commands per walk of the ring are reported."""
    runs: dict[tuple[str, str], list[dict]] = {}
    labels = list(disks)
    walked = walked or {}
    counts = served_counts() if walked else {}
    for rnd in range(rounds):
        order = labels[rnd % len(labels):] + labels[:rnd % len(labels)]
        for name, args in jobs:
            for label in order:
                if only is not None and not only(label, name):
                    continue
                dev, pid = disks[label]
                r = run_job(dev, args, pid)
                if label in walked:
                    now = served_counts()
                    (c0, b0, s0, h0, d0), (c1, b1, s1, h1, d1) = (counts.get(walked[label], (0,) * 5),
                                                                  now.get(walked[label], (0,) * 5))
                    r["per_walk"] = (c1 - c0) / max(1, b1 - b0)
                    r["bells_per_io"] = (d1 - d0) / max(1, c1 - c0)
                    r["spins_per_io"] = (s1 - s0) / max(1, c1 - c0)
                    r["spin_hit"] = (h1 - h0) / max(1, s1 - s0)
                    counts = now
                runs.setdefault((label, name), []).append(r)
                print(f"{label:<22} {name:<20} {r['iops']:>9.0f} IOPS {r['mibs']:>8.1f} MiB/s "
                      f"lat {r['lat_us']:>8.0f} us  sys {r['sys_cpu']:5.1f}%"
                      f" (CPUs {r['cpu_max']:.0f}/{r['cpu_min']:.0f}%, {r['ctxt_per_io']:.1f} cs"
                      f" {r['intr_per_io']:.1f} irq/IO; fio {r['fio_cpu']:.0f}%, {r['fio_ctx_per_io']:.1f} cs/IO)"
                      + (f"  handler {r['handler_cpu']:5.1f}% {r['handler_faults_per_io']:.1f} faults/IO ["
                         + " ".join(f"{k} {u:.0f}+{y:.0f}" for k, (u, y) in sorted(r["handler_threads_us"].items()))
                         + " us/IO user+sys]" if r["handler_cpu"] is not None else "")
                      + (f"  {r['per_walk']:.1f}/walk {r['bells_per_io']:.2f} doorbells/IO  spins {r['spins_per_io']:.2f}/IO"
                         f" {100 * r['spin_hit']:.0f}% caught" if "per_walk" in r else "")
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




# lioctl's handler with its RAM backend made to move nothing (the benchmark never verifies
# data): the no-data ceiling, in the same process that serves the file devices
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


def start_null_handler() -> subprocess.Popen:
    """lioctl's handler (serving lioctl_file as always) whose lioctl_ram moves no data."""
    subprocess.run(LIOCTL + ["tcmu", "stop"], capture_output=True)
    tree = os.environ.get("BENCH_TREE")     # another checkout's handler (before/after runs)
    p = subprocess.Popen([sys.executable, "-c", NULL_HANDLER], start_new_session=True,
                         stderr=open(f"{DIR}-null-handler.log", "w"), cwd=tree or None,
                         env=dict(os.environ, PYTHONPATH=tree) if tree else None)
    from lioctl.tcmu import daemon
    wait_for(daemon.query, "lioctl's handler")
    return p


def sh(*cmd) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))}: {p.stderr.strip()}")
    return p.stdout.strip()


def size_bytes() -> int:
    return int(SIZE[:-1]) << {"K": 10, "M": 20, "G": 30}[SIZE[-1].upper()]


def fill(path: str, size: int) -> None:
    """Write every byte once: a medium's blocks allocated and in its page cache, as a used
    disk's are (a sparse file's holes read without touching the filesystem's blocks)."""
    chunk = memoryview(b"\x5a" * (1 << 20))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for off in range(0, size, len(chunk)):
            os.pwrite(fd, chunk[:min(len(chunk), size - off)], off)
        os.fsync(fd)
    finally:
        os.close(fd)


class Medium:
    """What the disks' backing files or devices live on, one per label; close() undoes it."""

    def __init__(self, name: str, labels: list[str]):
        self.name, self.loops, self.maps, self.mnt = name, [], [], None
        self.is_block = name in ("block", "delay")
        self.direct = name != "tmpfs"       # tmpfs has no O_DIRECT (6.1)
        root = f"{DIR}/{name}"
        os.makedirs(root, exist_ok=True)
        size = size_bytes()
        self.paths = {}
        try:
            if name == "tmpfs":
                self.paths = {label: f"{root}/{label}.img" for label in labels}
            elif name in ("ext4", "xfs"):
                img = f"{root}/fs.img"
                with open(img, "wb") as f:      # the disks plus the filesystem's own room
                    f.truncate(len(labels) * size + size // 4 + (320 << 20))
                loop = sh("losetup", "-f", "--show", img)
                self.loops.append(loop)
                sh(f"mkfs.{name}", *(["-q", "-F"] if name == "ext4" else ["-q", "-f"]), loop)
                self.mnt = f"{root}/mnt"
                os.makedirs(self.mnt, exist_ok=True)
                sh("mount", loop, self.mnt)
                self.paths = {label: f"{self.mnt}/{label}.img" for label in labels}
            elif name in ("block", "delay"):
                if name == "delay":
                    sh("modprobe", "dm-delay")
                for label in labels:
                    raw = f"{root}/{label}.raw"
                    with open(raw, "wb") as f:
                        f.truncate(size)
                    loop = sh("losetup", "-f", "--show", raw)
                    self.loops.append(loop)
                    dev = loop
                    if name == "delay":
                        m = f"bench_{label.replace(' ', '_')}"
                        sh("dmsetup", "create", m, "--table",
                           f"0 {size // 512} delay {loop} 0 {DELAY_MS}")
                        self.maps.append(m)
                        dev = f"/dev/mapper/{m}"
                    self.paths[label] = dev
            else:
                raise SystemExit(f"unknown medium {name!r} (tmpfs, ext4, xfs, block, delay)")
            for label, path in self.paths.items():
                fill(f"{root}/{label}.raw" if self.is_block else path, size)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for m in self.maps:
            subprocess.run(["dmsetup", "remove", "--retry", m], capture_output=True)
        if self.mnt:
            subprocess.run(["umount", self.mnt], capture_output=True)
        for loop in self.loops:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
        shutil.rmtree(f"{DIR}/{self.name}", ignore_errors=True)


def backend_lioctl(path: str, name: str = "b_lioctl", direct: bool = False):
    lioctl("/backstores/user", "create", name, SIZE, ("direct;" if direct else "") + path)
    from lioctl.tcmu import daemon
    return f"/backstores/user/{name}", daemon.running_pid()


# a directory with tcmu-runner's own file handler (bench/tcmu-runner-file-handler.sh builds it)
RUNNER_HANDLERS = os.environ.get("BENCH_RUNNER_HANDLERS")
RUNNER_FILE = bool(RUNNER_HANDLERS) and os.path.exists(f"{RUNNER_HANDLERS}/handler_file.so")


def backend_runner(path: str):
    # the same maximum transfer as lioctl's default, so both handlers see 1 MiB commands
    lioctl("/backstores/user", "create", "b_runner", SIZE, path, "subtype=" + ("file" if RUNNER_FILE else "qcow"),
           "hw_max_sectors=2048")
    pid = int(subprocess.run(["pgrep", "-x", "tcmu-runner"], capture_output=True, text=True).stdout.split()[0])
    return "/backstores/user/b_runner", pid


def backend_fileio(img: str):
    lioctl("/backstores/fileio", "create", "b_fileio", img, SIZE, "write_back=true")
    return "/backstores/fileio/b_fileio", None


def backend_block(dev: str):
    lioctl("/backstores/block", "create", "b_block", dev)
    return "/backstores/block/b_block", None


def start_runner() -> subprocess.Popen:
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        subprocess.run(["dbus-daemon", "--system", "--fork"], check=True)
    os.makedirs(f"{DIR}/runner-log", exist_ok=True)
    r = subprocess.Popen(["tcmu-runner", "-l", f"{DIR}/runner-log"]
                         + (["--handler-path", RUNNER_HANDLERS] if RUNNER_HANDLERS else []), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    def on_bus():
        out = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                              "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"],
                             capture_output=True, text=True).stdout
        return "org.kernel.TCMUService1" in out
    wait_for(on_bus, "tcmu-runner on D-Bus")
    return r


LIOCTL_DISK, DIRECT_DISK, RUNNER_DISK, KERNEL_DISK, NULL_DISK = (
    "lioctl", "lioctl O_DIRECT", "tcmu-runner", "kernel", "no-data")


def bench_medium(name: str, null_pid: int) -> dict[str, dict[str, dict]]:
    """Every picked job on this medium's disks (and the 1 MiB ones on the no-data disk):
    label -> job -> median run."""
    labels = [LIOCTL_DISK, KERNEL_DISK] + ([RUNNER_DISK] if RUNNER_FILE or name not in ("block", "delay") else [])
    medium = Medium(name, labels + ([DIRECT_DISK] if DIRECT and name != "tmpfs" else []))
    try:
        disks = {}
        bs, pid = backend_lioctl(medium.paths[LIOCTL_DISK])
        disks[LIOCTL_DISK] = (loopback_disk(bs), pid)
        if DIRECT_DISK in medium.paths:
            bs, pid = backend_lioctl(medium.paths[DIRECT_DISK], "b_direct", direct=True)
            disks[DIRECT_DISK] = (loopback_disk(bs), pid)
        if RUNNER_DISK in medium.paths:     # qcow refuses a device: "image format not recognized"
            bs, pid = backend_runner(medium.paths[RUNNER_DISK])
            disks[RUNNER_DISK] = (loopback_disk(bs), pid)
        kpath = medium.paths[KERNEL_DISK]
        bs, pid = backend_block(kpath) if medium.is_block else backend_fileio(kpath)
        disks[KERNEL_DISK] = (loopback_disk(bs), pid)
        lioctl("/backstores/user", "create", "b_null", SIZE, "null", "subtype=lioctl_ram")
        disks[NULL_DISK] = (loopback_disk("/backstores/user/b_null"), null_pid)
        follows = handler_follows()
        print(f"== {name}: " + ", ".join(f"{k} {v[0]}" for k, v in disks.items()) + f"; {follows}", flush=True)
        runs = run_rounds(disks, PICKED, ROUNDS, only=lambda label, job: label != NULL_DISK or job.startswith("1M"),
                          walked={k: v for k, v in ((LIOCTL_DISK, "b_lioctl"), (DIRECT_DISK, "b_direct")) if k in disks})
        out: dict[str, dict[str, dict]] = {}
        for (label, job), rs in runs.items():
            out.setdefault(label, {})[job] = median_run(rs)
        return out
    finally:
        cfs.clear()
        medium.close()


def ratio(a: dict | None, b: dict | None, key: str) -> str:
    return f"{a[key] / b[key]:.2f}x" if a and b and b[key] else "-"


def report(name: str, res: dict[str, dict[str, dict]]) -> None:
    kernel = "kernel block" if name in ("block", "delay") else "kernel fileio"
    labels = [k for k in (LIOCTL_DISK, DIRECT_DISK, RUNNER_DISK, KERNEL_DISK, NULL_DISK) if k in res]
    print(f"\n{name}: medians of {ROUNDS} round(s), {SIZE} per disk; IOPS for 4k, MiB/s for 1M; "
          f"'{KERNEL_DISK}' = {kernel}")
    print(f"{'job':<20}" + "".join(f"{k:>16}" for k in labels)
          + f"{'lioctl/runner':>14}{'direct/runner':>14}{'lioctl/kernel':>14}{'lioctl/no-data':>15}")
    for job, _ in PICKED:
        key = "mibs" if job.startswith("1M") else "iops"
        r = {k: res[k].get(job) for k in labels}
        best = max((x for x in (r.get(LIOCTL_DISK), r.get(DIRECT_DISK)) if x), key=lambda x: x[key], default=None)
        print(f"{job:<20}" + "".join(f"{r[k][key]:>16.1f}" if r[k] else f"{'-':>16}" for k in labels)
              + f"{ratio(r.get(LIOCTL_DISK), r.get(RUNNER_DISK), key):>14}"
              + f"{ratio(r.get(DIRECT_DISK), r.get(RUNNER_DISK), key):>14}"
              + f"{ratio(best, r.get(KERNEL_DISK), key):>14}"
              + f"{ratio(best, r.get(NULL_DISK), key):>15}")
    print(f"{'handler CPU us/IO':<20}" + "".join(f"{k:>16}" for k in labels if k != KERNEL_DISK)
          + "   (user+system)")
    for job, _ in PICKED:
        row = []
        for k in labels:
            if k == KERNEL_DISK:
                continue
            x = res[k].get(job)
            row.append(f"{x['handler_user_us'] + x['handler_sys_us']:>16.0f}" if x else f"{'-':>16}")
        print(f"{job:<20}" + "".join(row))
    walkers = [k for k in labels if any("per_walk" in x for x in res[k].values())]
    if walkers:
        print(f"{'commands per walk':<20}" + "".join(f"{k:>16}" for k in walkers))
        for job, _ in PICKED:
            print(f"{job:<20}" + "".join(f"{res[k][job]['per_walk']:>16.1f}" if job in res[k] else f"{'-':>16}"
                                         for k in walkers))
    if ROUNDS > 1:
        print("every round, " + " | ".join(labels))
        for job, _ in PICKED:
            print(f"{job:<20} " + " | ".join(" ".join(f"{v:.0f}" for v in res[k][job]["rounds"])
                                             if job in res[k] else "-" for k in labels))


def main() -> int:
    cfs.clear()
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(DIR)
    subprocess.run(["modprobe", "loop"], capture_output=True)
    null = start_null_handler()
    runner = start_runner()
    results: dict[str, dict] = {}
    try:
        for name in MEDIA:
            results[name] = bench_medium(name, null.pid)
            report(name, results[name])
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
        cfs.clear()
        os.killpg(null.pid, signal.SIGTERM)
        null.wait(timeout=60)
    print("\n==== all media")
    for name in results:
        report(name, results[name])
    if os.environ.get("BENCH_OUT"):
        with open(os.environ["BENCH_OUT"], "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
