import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import cfs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LIOCTL = [sys.executable, "-m", "lioctl"]


def pytest_sessionstart(session):
    if not cfs.ROOT.is_dir():
        raise pytest.UsageError("kernel tests must run in the LIO guest: tests/run --kernel")


@pytest.fixture(autouse=True)
def empty_configfs():
    """Each test starts from an empty configfs and must leave it empty."""
    before = cfs.snapshot()
    if before:
        cfs.clear()
    yield
    leaked = cfs.snapshot()
    if leaked:
        cfs.clear()
        pytest.fail(f"test left objects in configfs: {leaked}")


class Result(subprocess.CompletedProcess):
    pass


def run_lioctl(*args, input=None, env=None, check=None):
    e = dict(os.environ)
    e.setdefault("NO_COLOR", "1")
    if env:
        e.update(env)
    proc = subprocess.run(LIOCTL + [str(a) for a in args], capture_output=True, text=True,
                          input=input, env=e, cwd=REPO)
    if check is True and proc.returncode != 0:
        raise AssertionError(f"lioctl {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def lioctl():
    return run_lioctl
