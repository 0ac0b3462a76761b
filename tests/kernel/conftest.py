import contextlib
import io
import os
import subprocess
import sys
import time
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


class Ceph:
    """A one-node cluster started by tests/kernel/ceph.sh in the guest's /tmp (a tmpfs)."""

    def __init__(self, d: Path, store: str):
        self.dir, self.store = d, store
        self.conf, self.keyring = d / "ceph.conf", d / "keyring"
        self.started = 0.0

    def rbd(self, *args, check=True, timeout=120):
        p = subprocess.run(["timeout", "-k", "5", str(timeout), "rbd", "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True)
        if check and p.returncode:
            raise AssertionError(f"rbd {args}: {p.stderr}")
        return p

    def ceph(self, *args, timeout=120):
        """The ceph CLI (3-5 s a call under TCG: mon commands only)."""
        p = subprocess.run(["timeout", "-k", "5", str(timeout), "ceph", "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True)
        if p.returncode:
            raise AssertionError(f"ceph {args}: {p.stderr}")
        return p

    def watchers(self, image: str) -> list[str]:
        """Client addresses watching an image (its open handles)."""
        return [w.split()[0] for w in self.rbd("status", image).stdout.split("watcher=")[1:]]

    def osd_stop(self) -> None:
        pid = self.pid("osd.0")
        os.kill(pid, 15)
        for _ in range(600):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError("osd.0 did not stop")

    def osd_start(self) -> None:
        subprocess.run(["ceph-osd", "-c", str(self.conf), "-i", "0"], check=True, capture_output=True, timeout=120)

    def pid(self, daemon: str) -> int:
        return int((self.dir / "run" / f"{daemon}.pid").read_text())

    def options(self) -> str:
        """The lioctl_rbd config options that point at this cluster."""
        return f"conf={self.conf};keyring={self.keyring}"


def _ceph(tmp_path_factory, store: str, ports: tuple[int, int] = (3300, 6789)):
    d = Path(f"/tmp/ceph-{store}-{os.getpid()}")
    t = time.monotonic()
    env = dict(os.environ, STORE=store, MON_PORT=str(ports[0]), MON_PORT_V1=str(ports[1]))
    p = subprocess.run(["bash", str(REPO / "tests/kernel/ceph.sh"), "up", str(d)], capture_output=True, text=True,
                       env=env, timeout=300)
    if p.returncode:
        raise AssertionError(f"ceph.sh up: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    c = Ceph(d, store)
    c.started = time.monotonic() - t
    print(f"\n[ceph {store} cluster up in {c.started:.1f} s]")
    yield c
    t = time.monotonic()
    subprocess.run(["bash", str(REPO / "tests/kernel/ceph.sh"), "down", str(d)], timeout=300)
    print(f"\n[ceph {store} cluster down in {time.monotonic() - t:.1f} s]")


@pytest.fixture(scope="module")
def ceph(tmp_path_factory):
    """memstore: fast, but loses its data if the OSD restarts (SIGSTOP/SIGCONT are fine)."""
    yield from _ceph(tmp_path_factory, "memstore")


@pytest.fixture(scope="module")
def ceph_bluestore(tmp_path_factory):
    """bluestore on a loop device: for tests that restart the OSD (ports of its own: the
    memstore cluster may be up beside it)."""
    yield from _ceph(tmp_path_factory, "bluestore", (3301, 6790))
