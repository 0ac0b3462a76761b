"""The write lock against real LIO: an unprivileged user can no longer block or redirect it,
a busy lock fails with 75 naming its holder, and lioctl and targetcli writing at once (each
taking targetcli's lock) lose nothing and leave nothing half-made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import LIOCTL, REPO

sys.path.insert(0, str(Path(__file__).parent))
import cfs  # noqa: E402

RUN_LOCK = Path("/run/lock/lioctl.lock")  # where the lock used to be, in a 1777 directory
TARGETCLI_LOCK = Path("/var/run/targetcli.lock")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def hold_as(user: str | None, path: Path) -> subprocess.Popen:
    """A process (as `user`, or root) holding a flock on path until killed; returns once held."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n")
    argv = ([] if user is None else ["runuser", "-u", user, "--"]) + ["python3", "-c", code, str(path)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def world_writable_run_lock():
    """/run/lock as on a real system (1777), and nothing left there by the test."""
    RUN_LOCK.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(RUN_LOCK.parent, 0o1777)
    yield
    if RUN_LOCK.is_symlink() or RUN_LOCK.exists():
        RUN_LOCK.unlink()


def test_lock_held_by_nobody_in_run_lock_no_longer_blocks_writes(lioctl, world_writable_run_lock):
    holder = hold_as("nobody", RUN_LOCK)
    try:
        assert RUN_LOCK.stat().st_uid != 0
        r = lioctl("/backstores/ramdisk", "create", "r1", "1M", env={"LIOCTL_LOCK_WAIT": "2"})
        ok(r)
        private = Path("/run/lioctl")
        st = private.stat()
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700
        assert (private / "write.lock").is_file() and not (private / "write.lock").is_symlink()
    finally:
        holder.kill()
        holder.wait()
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


def test_symlink_planted_by_nobody_is_not_followed(lioctl, world_writable_run_lock, tmp_path):
    victim = Path("/etc/lioctl-victim")  # root-only directory: only a followed link makes it
    subprocess.run(["runuser", "-u", "nobody", "--", "ln", "-s", str(victim), str(RUN_LOCK)], check=True)
    ok(lioctl("/backstores/ramdisk", "create", "r1", "1M", env={"LIOCTL_LOCK_WAIT": "2"}))
    assert not victim.exists()
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


def test_planted_private_dir_is_refused(lioctl, tmp_path, monkeypatch):
    """A private directory that is not root's own 0700 directory is refused, not used."""
    from lioctl import rundir
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    monkeypatch.setattr(rundir, "RUN_DIR", str(planted))
    r = lioctl("/backstores/ramdisk", "create", "r1", "1M")
    assert r.returncode == 1 and str(planted) in r.stderr and len(r.stderr.splitlines()) == 1
    assert cfs.snapshot() == []


def test_busy_targetcli_lock_exits_75_naming_the_holder_then_waits(lioctl):
    holder = hold_as(None, TARGETCLI_LOCK)
    try:
        t0 = time.monotonic()
        r = lioctl("--wait", "0", "/backstores/ramdisk", "create", "r1", "1M")
        assert r.returncode == 75, r.stderr
        assert time.monotonic() - t0 < 5
        assert f"pid {holder.pid}" in r.stderr and "targetcli.lock" in r.stderr and "python3" in r.stderr
        assert len(r.stderr.splitlines()) == 1
        assert cfs.snapshot() == []
        # with time to wait it gets the lock once the holder lets go
        threading.Timer(1.0, holder.kill).start()
        ok(lioctl("--wait", "60", "/backstores/ramdisk", "create", "r1", "1M"))
    finally:
        holder.kill()
        holder.wait()
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


WRITERS = 20


def test_concurrent_targetcli_and_lioctl_writers_lose_nothing(lioctl, dbus, tmp_path):
    """20 targetcli and 20 lioctl processes started together, each making its own objects
    (targetcli: a ramdisk; lioctl: a ramdisk, a target and its LUN, one lock per line): every
    object ends complete, each storage object in its own HBA, and rtslib reads them all."""
    env = dict(os.environ, NO_COLOR="1", LIOCTL_LOCK_WAIT="600")
    procs = []
    t0 = time.monotonic()
    for i in range(WRITERS):
        # a home each: targetcli loads its prefs pickle before taking its lock, and one run
        # saving it while another loads it fails that one (EOFError), lock or no lock
        procs.append(("targetcli", i, subprocess.Popen(
            ["targetcli", "/backstores/ramdisk", "create", f"tcli{i}", "1M"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(env, TARGETCLI_HOME=str(tmp_path / f"targetcli-home-{i}")))))
        batch = (f"/backstores/ramdisk create lio{i} 1M\n"
                 f"/iscsi create iqn.2003-01.org.example:lio{i}\n"
                 f"/iscsi/iqn.2003-01.org.example:lio{i}/tpg1/luns create /backstores/ramdisk/lio{i}\n")
        p = subprocess.Popen(LIOCTL, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        p.stdin.write(batch)
        p.stdin.close()
        procs.append(("lioctl", i, p))
    failures = []
    for kind, i, p in procs:
        out = p.stdout.read()
        if p.wait() != 0:
            failures.append(f"{kind} {i}: exit {p.returncode}: {out[-500:]}")
    elapsed = time.monotonic() - t0
    print(f"{2 * WRITERS} writers in {elapsed:.0f}s")
    try:
        assert not failures, "\n".join(failures)
        core = cfs.ROOT / "core"
        hbas = {}
        for hba in core.iterdir():
            if hba.is_dir() and hba.name != "alua":
                for so in hba.iterdir():
                    if so.is_dir():
                        hbas.setdefault(so.name, []).append(hba.name)
                        assert (so / "enable").read_text().strip() == "1", f"{hba.name}/{so.name} not enabled"
        want = {f"tcli{i}" for i in range(WRITERS)} | {f"lio{i}" for i in range(WRITERS)}
        assert set(hbas) == want
        assert all(len(v) == 1 for v in hbas.values())
        all_hbas = [h for v in hbas.values() for h in v]
        assert len(set(all_hbas)) == len(all_hbas), "two storage objects share an HBA"
        for i in range(WRITERS):
            lun = cfs.ROOT / f"iscsi/iqn.2003-01.org.example:lio{i}/tpgt_1/lun/lun_0"
            links = [e for e in lun.iterdir() if e.is_symlink()]
            assert len(links) == 1 and os.path.realpath(links[0]).endswith(f"/lio{i}"), lun
        code = "import json, rtslib_fb; print(json.dumps(sorted(so.name for so in rtslib_fb.RTSRoot().storage_objects)))"
        names = json.loads(subprocess.run(["python3", "-c", code], capture_output=True, text=True,
                                          check=True).stdout)
        assert set(names) == want
    finally:
        ok(lioctl("clear", "--yes"))
