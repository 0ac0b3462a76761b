import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import cfs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LIOCTL = [str(Path(sys.executable).with_name("lioctl"))]


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


def run_lioctl(*args, input=None, env=None, check=None, subprocess_=False):
    """Run lioctl's main() in this process (as `python -m lioctl` would, minus the ~4 s a Python
    start costs under QEMU's TCG), capturing stdout/stderr; subprocess_=True forks a real one."""
    argv = [str(a) for a in args]
    if subprocess_:
        e = dict(os.environ, NO_COLOR="1", **(env or {}))
        proc = subprocess.run(LIOCTL + argv, capture_output=True, text=True, input=input, env=e, cwd=REPO)
    else:
        from lioctl import cli
        saved_env = dict(os.environ)
        saved_stdin = sys.stdin
        os.environ["NO_COLOR"] = "1"
        os.environ.update(env or {})
        sys.stdin = io.StringIO(input or "")
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = cli.main(argv)
                except SystemExit as e:  # argparse --help
                    rc = e.code if isinstance(e.code, int) else 0
        finally:
            sys.stdin = saved_stdin
            os.environ.clear()
            os.environ.update(saved_env)
        proc = subprocess.CompletedProcess(["lioctl"] + argv, rc, out.getvalue(), err.getvalue())
    if check is True and proc.returncode != 0:
        raise AssertionError(f"lioctl {argv} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def lioctl():
    return run_lioctl


@pytest.fixture
def dbus(tmp_path, monkeypatch):
    """targetcli (Debian's) needs a system D-Bus in the guest, and each test its own home
    (concurrent targetcli processes sharing one prefs file race)."""
    monkeypatch.setenv("TARGETCLI_HOME", str(tmp_path / "targetcli-home"))
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        subprocess.run(["dbus-daemon", "--system", "--fork"], check=True)
