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
    a = timed([LIOCTL, "save", ours])
    b = timed([tcli, "saveconfig", theirs])
    rows.append(("save", a, b))
    a = timed([LIOCTL, "restore", ours])  # nothing differs: a no-op
    b = timed([tcli, "restoreconfig", theirs])  # targetcli clears and rebuilds
    rows.append(("restore of the unchanged config", a, b))
    a = timed([LIOCTL, "clear", "--yes"])
    lc.build()
    b = timed([tcli, "clearconfig", "confirm=True"])
    rows.append(("clear", a, b))
    a = timed([LIOCTL, "restore", ours])
    cfs.clear()
    b = timed([tcli, "restoreconfig", theirs])
    rows.append(("restore into an empty kernel", a, b))
    cfs.clear()
    shutil.rmtree("/tmp/bench-img", ignore_errors=True)
    print(f"\n{'operation (256 SOs, 32x8 LUNs, 4096 mapped LUNs)':<50} {'lioctl s':>9} {'targetcli s':>12} {'ratio':>7}")
    for name, x, y in rows:
        print(f"{name:<50} {x:9.2f} {y:12.2f} {x / y:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
