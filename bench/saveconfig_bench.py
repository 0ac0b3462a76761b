"""Issue 5's benchmark in the real-kernel guest, side by side with targetcli on the large
configuration: save, restore into an empty kernel, no-op restore, clear.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/saveconfig_bench.py'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernel"))
import cfs  # noqa: E402
import large_config as lc  # noqa: E402

LIOCTL = os.path.join(os.path.dirname(sys.executable), "lioctl")


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stdout[-400:]} {p.stderr[-400:]}")
    return dt


# targetcli on the large configuration can take many minutes per command under QEMU's TCG;
# past this many seconds it is stopped and its time recorded as a lower bound (">N s").
PEER_TIMEOUT = float(os.environ.get("BENCH_PEER_TIMEOUT", "900"))


class Bound(float):
    """A peer time that hit PEER_TIMEOUT: the true time is at least this."""


def peer_timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        dt = time.perf_counter() - t0
        print(f"  {' '.join(cmd)}: stopped after {dt:.0f} s (timeout)", flush=True)
        return Bound(dt)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stdout[-400:]} {p.stderr[-400:]}")
    return dt


def main() -> int:
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        subprocess.run(["dbus-daemon", "--system", "--fork"], check=True)
    os.environ["TARGETCLI_HOME"] = "/tmp/targetcli-home"
    tcli = shutil.which("targetcli")
    cfs.clear()
    lc.build()
    ours, theirs = "/tmp/bench-lioctl.json", "/tmp/bench-targetcli.json"
    rows = []

    def row(name, a, b):
        rows.append((name, a, b))
        shown = "n/a" if b is None else f"{'>' if isinstance(b, Bound) else ''}{b:.2f}"
        print(f"  {name}: lioctl {a:.2f} s, targetcli {shown} s", flush=True)

    a = timed([LIOCTL, "save", ours])
    b = peer_timed([tcli, "saveconfig", theirs])
    row("save", a, b)
    saved = not isinstance(b, Bound)  # without targetcli's own file its restores are not measured
    a = timed([LIOCTL, "restore", ours])  # nothing differs: a no-op
    # without clear_existing=True, targetcli refuses to restore over existing objects (exit 1)
    b = peer_timed([tcli, "restoreconfig", theirs, "clear_existing=True"]) if saved else None
    row("restore of the unchanged config", a, b)  # targetcli clears and rebuilds
    a = timed([LIOCTL, "clear", "--yes"])
    lc.build()
    b = peer_timed([tcli, "clearconfig", "confirm=True"])
    row("clear", a, b)
    cfs.clear()  # in case targetcli was stopped half way
    a = timed([LIOCTL, "restore", ours])
    cfs.clear()
    b = peer_timed([tcli, "restoreconfig", theirs]) if saved else None
    row("restore into an empty kernel", a, b)
    cfs.clear()
    shutil.rmtree("/tmp/bench-img", ignore_errors=True)
    print(f"\n{'operation (256 SOs, 32x8 LUNs, 4096 mapped LUNs)':<50} {'lioctl s':>9} {'targetcli s':>12} {'ratio':>7}")
    for name, x, y in rows:
        if y is None:
            print(f"{name:<50} {x:9.2f} {'n/a':>12} {'n/a':>7}")
        elif isinstance(y, Bound):
            print(f"{name:<50} {x:9.2f} {'>' + format(y, '.2f'):>12} {'<' + format(x / y, '.2f'):>7}")
        else:
            print(f"{name:<50} {x:9.2f} {y:12.2f} {x / y:7.2f}")
    if any(isinstance(y, Bound) for _, _, y in rows):
        print(f"(>N: targetcli stopped after the {PEER_TIMEOUT:.0f} s timeout; the ratio is then an upper bound)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
