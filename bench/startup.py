"""Start-up cost of one command, a fresh process each round: lioctl beside what a tool built
on rtslib pays before it does anything (importing rtslib_fb) and targetcli itself.
Every round is printed, then the median: wall time, and the CPU time the process used (user
+ system), which a busy machine disturbs far less.

    /opt/lioctl-venv/bin/python bench/startup.py              # host: --help, --version, imports
    /opt/lioctl-venv/bin/python bench/startup.py --ls         # guest: also `ls` on both tools
    /opt/lioctl-venv/bin/python bench/startup.py -n 20 -- lioctl --help   # one command
    /opt/lioctl-venv/bin/python bench/startup.py --against /tmp/old-checkout
        # this checkout's lioctl --help / --version and another's, round by round alternately
        # (both run as `python -c ...` with PYTHONPATH set, so only the code differs)

With PYTHONDONTWRITEBYTECODE set, run `python -m compileall -q lioctl` in each checkout
first: a module without bytecode is compiled again in every round.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

LIOCTL = os.path.join(os.path.dirname(sys.executable), "lioctl")
SYSTEM_PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_CLI = "import sys; from lioctl.cli import main; sys.exit(main())"


def commands(with_ls: bool) -> list[list[str]]:
    cmds = [[LIOCTL, "--help"], [LIOCTL, "--version"],
            [sys.executable, "-c", "import rtslib_fb"],
            [SYSTEM_PY, "-c", "import rtslib_fb"]]
    if with_ls:
        cmds += [[LIOCTL, "ls"], [shutil.which("targetcli") or "targetcli", "ls"]]
    return cmds


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def once(cmd: list[str], tree: str | None = None) -> tuple[float, float]:
    """One run's wall and CPU time in ms; a failing command is an error, not a fast figure."""
    env = dict(os.environ, PYTHONPATH=tree) if tree else None
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=env, cwd="/" if tree else None)
    return (time.perf_counter() - t0) * 1000, (_cpu() - c0) * 1000


def show(label: str, runs: list[tuple[float, float]]) -> None:
    for i, what in ((0, "wall"), (1, "cpu")):
        times = [r[i] for r in runs]
        print(f"{label}: {what} median {statistics.median(times):.1f} ms; rounds "
              + " ".join(f"{t:.1f}" for t in times), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10, help="rounds per command (default 10)")
    ap.add_argument("--ls", action="store_true", help="also `lioctl ls` and `targetcli ls` (needs configfs)")
    ap.add_argument("--against", metavar="CHECKOUT", help="compare with another checkout's lioctl")
    ap.add_argument("cmd", nargs="*", help="one command to measure instead of the default set")
    args = ap.parse_args()
    if args.against:
        for flag in ("--help", "--version"):
            cmd = [sys.executable, "-c", RUN_CLI, flag]
            times: dict[str, list[tuple[float, float]]] = {HERE: [], args.against: []}
            for _ in range(args.n):
                for tree in times:
                    times[tree].append(once(cmd, tree))
            for tree, t in times.items():
                show(f"{tree}: lioctl {flag}", t)
        return
    for cmd in [args.cmd] if args.cmd else commands(args.ls):
        show(" ".join(cmd), [once(cmd) for _ in range(args.n)])


if __name__ == "__main__":
    main()
