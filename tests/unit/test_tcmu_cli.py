"""`lioctl tcmu` as a tired admin types it: without root, with a handler that holds the lock."""

from __future__ import annotations

import fcntl
import os

from lioctl import cli
from lioctl.tcmu import daemon


def test_status_and_stop_without_root_say_why(tmp_path, monkeypatch, capsys):
    lock = tmp_path / "tcmu.lock"
    monkeypatch.setattr(daemon, "LOCK", str(lock))
    monkeypatch.setattr(daemon, "SOCKET", str(tmp_path / "tcmu.sock"))   # nobody answers here
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["tcmu", "status"]) == 1                              # no handler at all
    assert "not running" in capsys.readouterr().out
    lock.write_text("4242\n")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)                                  # a handler runs
        assert cli.main(["tcmu", "status"]) == 77                         # not root
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["lioctl: the TCMU handler (pid 4242) tells its status to root only"]
        assert cli.main(["tcmu", "stop"]) == 77
        assert capsys.readouterr().err.strip() == "lioctl: the TCMU handler must run as root"


def test_a_bad_thread_count_is_one_line_and_exit_2(monkeypatch, capsys):
    for var, value in (("LIOCTL_TCMU_DISK_THREADS", "sixteen"), ("LIOCTL_TCMU_IO_THREADS", "-1")):
        monkeypatch.setenv(var, value)
        assert daemon.main([]) == 2
        err = capsys.readouterr().err
        assert err == f"lioctl tcmu: {var}={value!r} is not a thread count (0 or more)\n"
        monkeypatch.delenv(var)
