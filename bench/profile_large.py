"""Where lioctl's time goes on the large configuration, in the guest: wall time and the top of a
cProfile for each command (no peer tool; see tree_bench.py / saveconfig_bench.py for ratios).

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/profile_large.py'
"""

from __future__ import annotations

import io
import os
import pstats
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernel"))
import cfs  # noqa: E402
import large_config as lc  # noqa: E402

LIOCTL = os.path.join(os.path.dirname(sys.executable), "lioctl")
TOP = int(os.environ.get("PROFILE_TOP", "25"))


def run(label: str, args: list[str]) -> None:
    out = f"/tmp/prof-{label}.out"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "cProfile", "-o", out, "-m", "lioctl", *args],
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    q = subprocess.run([LIOCTL, *args], capture_output=True, text=True) if label.startswith("ls") else None
    plain = time.perf_counter() - t1 if q else None
    if q is not None and q.returncode:      # a broken install fails fast: not a timing
        raise SystemExit(f"{LIOCTL} {' '.join(args)}: rc {q.returncode}: {q.stderr[-300:]}")
    print(f"== {label}: {' '.join(args)} -> rc {p.returncode}, {dt:.2f} s profiled"
          + (f", {plain:.2f} s plain" if plain else ""), flush=True)
    if p.returncode:
        print(p.stderr[-400:])
    s = io.StringIO()
    pstats.Stats(out, stream=s).sort_stats("tottime").print_stats(TOP)
    print("\n".join(s.getvalue().splitlines()[6:6 + TOP + 3]), flush=True)


def main() -> None:
    cfs.clear()
    lc.build()
    t = lc.target_iqn(5)
    run("ls", ["ls"])
    run("save", ["save", "/tmp/large.json"])
    run("restore-noop", ["restore", "/tmp/large.json"])
    run("acl", [f"/iscsi/{t}/tpg1/acls", "create", "iqn.1994-05.com.example.bench:extra"])
    so = "/backstores/fileio/d255"
    run("lun", [f"/iscsi/{lc.target_iqn(0)}/tpg1/luns", "create", so])
    run("delete-target", ["/iscsi", "delete", lc.target_iqn(7)])
    run("clear", ["clear", "--yes"])
    run("restore-empty", ["restore", "/tmp/large.json"])
    cfs.clear()


if __name__ == "__main__":
    main()
