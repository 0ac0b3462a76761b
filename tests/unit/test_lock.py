"""The write lock's own logic on the host: --wait parsing, the busy exit code, naming the
holder, refusing links. (Against real targetcli and a lock held by `nobody`: tests/kernel/test_lock.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lioctl import cli, lock, rundir, verbs
from lioctl.errors import UsageError

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n")


@pytest.fixture
def locks(tmp_path, monkeypatch):
    own, tcli = tmp_path / "write.lock", tmp_path / "targetcli.lock"
    monkeypatch.setenv("LIOCTL_LOCK", str(own))
    monkeypatch.setattr(lock, "TARGETCLI_LOCK", str(tcli))
    monkeypatch.delenv("LIOCTL_LOCK_WAIT", raising=False)
    lock.set_wait(None)
    yield own, tcli
    lock.set_wait(None)


def hold(path, *extra_argv):
    """A separate process holding a flock on path, as targetcli would; its argv carries extra_argv."""
    script = path.parent / "hold.py"
    script.write_text(HOLD)
    p = subprocess.Popen([sys.executable, script.name, path.name, *extra_argv], stdout=subprocess.PIPE,
                         text=True, cwd=path.parent)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.parametrize("argv,wait", [(["--wait", "0", "ls"], 0.0), (["--wait=2.5", "ls"], 2.5),
                                       (["ls", "--wait", "7"], 7.0), (["ls"], None)])
def test_wait_is_a_global_option(argv, wait):
    opts, rest = verbs.split_globals(argv)
    assert opts.wait == wait and rest == ["ls"]


@pytest.mark.parametrize("argv", [["--wait"], ["--wait", "soon"], ["--wait=-1"], ["--wait", "nan"]])
def test_bad_wait_is_a_usage_error(argv, capsys):
    assert cli.main(argv) == 2
    assert "--wait" in capsys.readouterr().err


def test_busy_targetcli_lock_fails_at_once_with_75_naming_the_holder(locks):
    _, tcli = locks
    holder = hold(tcli, "targetcli-like", "--chap", "alice:hunter2secret")
    try:
        t0 = time.monotonic()
        with pytest.raises(lock.LockBusy) as e:
            with lock.write_lock(0):
                pass
        assert time.monotonic() - t0 < 1.0
        assert e.value.exit_code == 75 == lock.EXIT_LOCK_BUSY
        msg = str(e.value)
        assert str(tcli) in msg and f"pid {holder.pid}" in msg and "targetcli-like" in msg
        assert "hunter2secret" not in msg and "alice:********" in msg
        assert "\n" not in msg
    finally:
        holder.kill()
        holder.wait()


def test_holder_command_line_is_one_short_line():
    assert lock._one_line("python3 -c import x\nprint(1)") == "python3 -c import x\\nprint(1)"
    assert len(lock._one_line("x" * 1000)) == 240
    assert lock._redact(["lioctl", "--chap=bob:pw", "set", "auth", "password=pw", "password_mutual=pw2",
                         "--mutual-chap", "t:pw3"]) == \
        "lioctl --chap=bob:******** set auth password=******** password_mutual=******** --mutual-chap t:********"


def test_wait_is_bounded_and_taken_from_set_wait_then_env(locks, monkeypatch):
    own, _ = locks
    holder = hold(own)
    try:
        monkeypatch.setenv("LIOCTL_LOCK_WAIT", "0.3")
        t0 = time.monotonic()
        with pytest.raises(lock.LockBusy, match=r"waited 0.3s"):
            with lock.write_lock():
                pass
        assert 0.3 <= time.monotonic() - t0 < 2.0
        lock.set_wait(0)
        with pytest.raises(lock.LockBusy, match="did not wait"):
            with lock.write_lock():
                pass
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_taken_once_the_holder_goes(locks):
    own, tcli = locks
    holder = hold(tcli)
    holder.kill()
    holder.wait()
    t0 = time.monotonic()
    with lock.write_lock(5):
        assert own.exists() and tcli.exists()
    assert time.monotonic() - t0 < 1.0


def test_bad_env_wait_is_a_usage_error(locks, monkeypatch):
    monkeypatch.setenv("LIOCTL_LOCK_WAIT", "forever")
    with pytest.raises(UsageError, match="LIOCTL_LOCK_WAIT"):
        with lock.write_lock():
            pass


def test_lock_refuses_a_planted_symlink(locks, tmp_path):
    own, _ = locks
    victim = tmp_path / "victim"
    os.symlink(victim, own)
    with pytest.raises(lock.LioError, match="write lock"):
        with lock.write_lock(0):
            pass
    assert not victim.exists()


def test_default_lock_lives_in_the_private_run_dir(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.delenv("LIOCTL_LOCK", raising=False)
    monkeypatch.setattr(rundir, "RUN_DIR", str(run))
    monkeypatch.setattr(lock, "TARGETCLI_LOCK", str(tmp_path / "targetcli.lock"))
    with lock.write_lock(0):
        assert (run / lock.LOCK_NAME).exists()
    assert oct(os.stat(run).st_mode & 0o777) == "0o700"
    assert oct(os.stat(run / lock.LOCK_NAME).st_mode & 0o777) == "0o600"


def test_wait_and_exit_75_are_documented_and_completed():
    from pathlib import Path
    from lioctl.completion.scripts import candidates
    man = (Path(__file__).resolve().parents[2] / "man/lioctl.8").read_text().replace("\\-", "-")
    assert ".BI --wait" in man and ".BR 75 " in man and "LIOCTL_LOCK_WAIT" in man
    assert "--wait" in candidates("lioctl --wa") and "--wait" in candidates("lioctl export --wa")
    assert candidates("lioctl --wait ") == []
    assert "sessions" in candidates("lioctl --wait 5 sess")
    assert "--wait" in verbs.HELP_TEXT and "75" in verbs.HELP_TEXT


def test_wait_outside_the_main_thread_polls_and_is_bounded(locks):
    """SIGALRM only reaches the main thread; elsewhere the wait polls, still bounded."""
    import threading
    own, _ = locks
    holder = hold(own)
    caught = []

    def take():
        try:
            with lock.write_lock(0.3):
                pass
        except lock.LockBusy as e:
            caught.append(e)
    try:
        t = threading.Thread(target=take)
        t.start()
        t.join(10)
        assert caught and "waited 0.3s" in str(caught[0])
    finally:
        holder.kill()
        holder.wait()
    t = threading.Thread(target=take)
    t.start()
    t.join(10)
    assert len(caught) == 1  # free now: taken without error
