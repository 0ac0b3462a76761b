"""How the handler is started and where it keeps its files: it runs as root on initiators'
input, so neither the caller's working directory and environment nor a link planted in its
runtime directory may reach it."""

from __future__ import annotations

import os
import stat

import pytest

from lioctl import rundir
from lioctl.errors import LioError
from lioctl.tcmu import daemon, launcher

PLANTED = "import os, sys\nopen(os.environ.get('PLANT_MARK', '/dev/null'), 'a').write(__name__ + '\\n')\n"


def test_a_module_planted_in_the_callers_directory_is_not_imported(tmp_path, monkeypatch):
    """`python -m` put the working directory first on sys.path: a json.py or fcntl.py there
    ran as root. The handler must start from /, isolated, with a scrubbed environment."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    mark = tmp_path / "imported"
    for name in ("json", "fcntl", "select", "socket"):
        (cwd / f"{name}.py").write_text(PLANTED)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PLANT_MARK", str(mark))
    monkeypatch.setenv("PYTHONPATH", str(cwd))
    monkeypatch.setenv("PYTHONSTARTUP", str(cwd / "json.py"))
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/planted.so")
    # a bad thread count: the handler imports everything, then stops at once with exit 2
    monkeypatch.setenv("LIOCTL_TCMU_IO_THREADS", "many")
    log = tmp_path / "log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        proc = launcher.spawn(["--idle-exit"], fd)
    finally:
        os.close(fd)
    assert proc.wait(timeout=60) == 2, log.read_text()
    assert log.read_text() == "lioctl tcmu: LIOCTL_TCMU_IO_THREADS='many' is not a thread count (0 or more)\n"
    assert not mark.exists(), f"planted modules ran: {mark.read_text()}"


def test_the_handler_environment_keeps_only_its_knobs():
    env = launcher.handler_env({"PATH": ".:/home/u/bin", "LIOCTL_TCMU_IO_THREADS": "2", "LIOCTL_RUN_DIR": "/r",
                                "PYTHONPATH": "/x", "LD_PRELOAD": "/y.so", "HOME": "/home/u", "IFS": "x"})
    assert env == {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LIOCTL_TCMU_IO_THREADS": "2", "LIOCTL_RUN_DIR": "/r"}


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    d = tmp_path / "run"
    for name in ("LOCK", "SOCKET", "LOG"):
        monkeypatch.setattr(daemon, name, str(d / f"tcmu.{name.lower()}".replace(".socket", ".sock")))
    return d


def test_runtime_directory_is_made_private(run_dir):
    fd = daemon.take_lock()
    try:
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(run_dir / "tcmu.lock").st_mode) == 0o600
        assert (run_dir / "tcmu.lock").read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)


def test_a_link_planted_as_the_lock_is_refused_not_followed(run_dir):
    run_dir.mkdir(mode=0o700)
    victim = run_dir.parent / "victim"
    os.symlink(victim, run_dir / "tcmu.lock")
    with pytest.raises(rundir.UnsafeRunDir, match="tcmu.lock is a symbolic link"):
        daemon.take_lock()
    assert not victim.exists()
    assert daemon.running_pid() is None          # nor read through


def test_a_link_planted_as_the_log_is_refused_not_followed(run_dir, monkeypatch):
    run_dir.mkdir(mode=0o700)
    victim = run_dir.parent / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, run_dir / "tcmu.log")
    monkeypatch.setattr(daemon, "running_pid", lambda: None)
    with pytest.raises(LioError, match="tcmu.log is a symbolic link"):
        launcher.ensure_serving(["user_1/x"], timeout=1)
    assert victim.read_text() == "precious\n"


def test_a_runtime_directory_others_can_write_is_refused(run_dir):
    run_dir.mkdir()
    os.chmod(run_dir, 0o777)
    with pytest.raises(rundir.UnsafeRunDir):
        daemon.take_lock()
    assert not (run_dir / "tcmu.lock").exists()
