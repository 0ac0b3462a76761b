"""CHAP secrets against real LIO: the file and environment forms keep them out of every
process's command line (what ps shows every user) while lioctl runs, they reach configfs
exactly, and listings and dry-runs show them only with --show-secrets."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import cfs
from conftest import LIOCTL, REPO

IQN = "iqn.2003-01.org.example:secrets"
ACL = "iqn.1994-05.com.example:secrets-client"
SECRET, MUTUAL = "file-Secret-4711", "env-Mutual-0815"
TARGETCLI_LOCK = Path("/var/run/targetcli.lock")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def every_cmdline() -> str:
    out = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return "\n".join(out)


def flock_pids(path: Path) -> set[int]:
    st = path.stat()
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].endswith(f":{st.st_ino}"):
            pids.add(int(parts[4]))
    return pids


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "disk.img"
    with open(p, "wb") as f:
        f.truncate(16 << 20)
    return p


def test_file_and_env_secrets_never_in_any_cmdline_while_lioctl_runs(lioctl, image, tmp_path):
    chap = tmp_path / "chap"
    chap.write_text(f"alice:{SECRET}\n")
    os.chmod(chap, 0o600)
    # hold targetcli's lock so the export stops, alive, right before it writes anything
    code = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen(["python3", "-c", code, str(TARGETCLI_LOCK)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    env = dict(os.environ, LIOCTL_MUTUAL_CHAP=f"tgt:{MUTUAL}", NO_COLOR="1")
    p = subprocess.Popen(LIOCTL + ["--wait", "300", "export", str(image), "--iqn", IQN, "--acl", ACL,
                                   "--chap-file", str(chap)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    checked = False
    try:
        own_lock = Path("/run/lioctl/write.lock")
        deadline = time.monotonic() + 120
        while not (own_lock.exists() and p.pid in flock_pids(own_lock)):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "lioctl never reached the lock"
            time.sleep(0.1)
        # lioctl is running, credentials read, waiting for targetcli's lock: look at every process
        cmdlines = every_cmdline()
        assert "--chap-file" in cmdlines  # we do see lioctl's command line
        assert SECRET not in cmdlines and MUTUAL not in cmdlines
        ps = subprocess.run(["ps", "-e", "-ww", "-o", "args"], capture_output=True, text=True, check=True).stdout
        assert "--chap-file" in ps and SECRET not in ps and MUTUAL not in ps
        checked = True
    finally:
        holder.kill()
        holder.wait()
        out, err = p.communicate(timeout=300)
        if not checked:  # a failed check above: the export went on once the lock was free
            cfs.clear()
    assert p.returncode == 0, err
    assert "warning" not in err
    auth = cfs.ROOT / "iscsi" / IQN / "tpgt_1" / "acls" / ACL / "auth"
    assert (auth / "userid").read_text().strip() == "alice"
    assert (auth / "password").read_text().strip() == SECRET
    assert (auth / "userid_mutual").read_text().strip() == "tgt"
    assert (auth / "password_mutual").read_text().strip() == MUTUAL

    # listings: masked everywhere unless --show-secrets
    acl_path = f"/iscsi/{IQN}/tpg1/acls/{ACL}"
    for argv in (["ls"], ["ls", "--json"], [acl_path, "info"], [acl_path, "info", "--json"],
                 [acl_path, "get"], [acl_path, "get", "auth", "--json"], [f"/iscsi/{IQN}/tpg1", "info"],
                 ["ls", "/iscsi"]):
        r = ok(lioctl(*argv))
        assert SECRET not in r.stdout and MUTUAL not in r.stdout, argv
    shown = json.loads(ok(lioctl(acl_path, "get", "auth", "--json", "--show-secrets")).stdout)
    assert shown["auth"]["password"] == SECRET and shown["auth"]["password_mutual"] == MUTUAL
    ok(lioctl("unexport", IQN))


def test_set_auth_password_from_stdin_and_file_and_dry_run_masked(lioctl, tmp_path):
    acl_path = f"/iscsi/{IQN}/tpg1/acls/{ACL}"
    ok(lioctl(input=f"/iscsi create {IQN}\n/iscsi/{IQN}/tpg1/acls create {ACL}\n"))
    auth = cfs.ROOT / "iscsi" / IQN / "tpgt_1" / "acls" / ACL / "auth"
    try:
        ok(lioctl(acl_path, "set", "auth", "userid=bob", "password=-", input=SECRET + "\n"))
        assert (auth / "password").read_text().strip() == SECRET
        f = tmp_path / "pw"
        f.write_text(MUTUAL + "\n")
        os.chmod(f, 0o600)
        r = ok(lioctl(acl_path, "set", "auth", "userid_mutual=tgt", f"password_mutual_file={f}"))
        assert (auth / "password_mutual").read_text().strip() == MUTUAL and MUTUAL not in r.stdout
        # dry-run: masked, and the kernel keeps what it had
        r = ok(lioctl(acl_path, "set", "auth", "password=-", "--dry-run", input="other-secret-99\n"))
        assert "other-secret-99" not in r.stdout and "LIOCTL_SECRET_1" in r.stdout
        assert (auth / "password").read_text().strip() == SECRET
        r = ok(lioctl(acl_path, "set", "auth", "password=-", "--dry-run", "--show-secrets",
                      input="other-secret-99\n"))
        assert "other-secret-99" in r.stdout
        # a file others may read is refused, nothing changes
        os.chmod(f, 0o644)
        r = lioctl(acl_path, "set", "auth", f"password_file={f}")
        assert r.returncode == 1 and "chmod 600" in r.stderr and len(r.stderr.splitlines()) == 1
        assert (auth / "password").read_text().strip() == SECRET
        # restore --dry-run --script and clear --dry-run mask it too
        saved = tmp_path / "saved.json"
        ok(lioctl("save", saved))
        ok(lioctl("clear", "--yes"))
        r = ok(lioctl("restore", saved, "--dry-run", "--script"))
        assert SECRET not in r.stdout and MUTUAL not in r.stdout
        ok(lioctl("restore", saved))
        assert (auth / "password").read_text().strip() == SECRET
        r = ok(lioctl("clear", "--dry-run"))
        assert SECRET not in r.stdout
    finally:
        ok(lioctl("clear", "--yes"))
    assert cfs.snapshot() == []
