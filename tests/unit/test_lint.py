"""pyflakes over the package, the tests and the benchmarks: unused imports and names, undefined
names, placeholder-less f-strings. Cheap, and each one it found so far was a leftover."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pyflakes_finds_nothing():
    p = subprocess.run([sys.executable, "-m", "pyflakes", "lioctl", "tests", "bench"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
