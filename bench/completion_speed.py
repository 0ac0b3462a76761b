"""How fast `lioctl __complete` answers (what bash/zsh/fish wait for on each Tab), and how
fast the interactive shell's completer answers per keystroke on the current configuration.

    /opt/lioctl-venv/bin/python bench/completion_speed.py          # host or guest
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

LIOCTL = os.path.join(os.path.dirname(sys.executable), "lioctl")
LINES = ["lioctl /iscsi/", "lioctl /backstores/fileio/", "lioctl /backstores/fi", "lioctl export --",
         "lioctl /iscsi/iqn.2003-01.org.example.bench:t00/tpg1/acls/"]


def one_shot(reps: int = 5) -> list[tuple[str, float]]:
    out = []
    for line in LINES:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run([LIOCTL, "__complete", "bash", line], capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        out.append((line, statistics.median(times)))
    return out


def per_keystroke() -> tuple[float, float, float]:
    """The shell reads the tree once per prompt; each keystroke only asks for candidates."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lioctl.completion.candidates import Candidates, tolerant_split
    from lioctl.verbs import Options
    from lioctl.shell.session import ShellSession
    sh = ShellSession(Options())
    t0 = time.perf_counter()
    sh.snap()
    read = time.perf_counter() - t0
    cand = Candidates(sh)
    typed = "cd /iscsi/iqn.2003-01.org.example.bench:t00/tpg1/acls/iqn.1994-05.com.example.bench:t00-c0"
    times = []
    for i in range(1, len(typed) + 1):
        t0 = time.perf_counter()
        words, word = tolerant_split(typed[:i])
        list(cand.candidates(words, word))
        times.append(time.perf_counter() - t0)
    times.sort()
    return read, statistics.mean(times), times[int(len(times) * 0.95) - 1]


if __name__ == "__main__":
    for line, t in one_shot():
        print(f"lioctl __complete {line!r:<62} {t * 1000:7.1f} ms (median of 5)")
    read, mean, p95 = per_keystroke()
    print(f"shell: tree read once per prompt {read * 1000:.1f} ms; per keystroke mean {mean * 1000:.2f} ms, "
          f"p95 {p95 * 1000:.2f} ms")
