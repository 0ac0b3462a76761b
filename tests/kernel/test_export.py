"""`lioctl export` end to end against real LIO with a real open-iscsi initiator."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import cfs
import initiator

MiB = 1 << 20


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "disk.img"
    with open(p, "wb") as f:
        f.truncate(64 * MiB)
    return p


@pytest.fixture
def loopdev(tmp_path):
    with initiator.loop_disk(tmp_path / "loop.img", 64 * MiB) as dev:
        yield dev


def _io_roundtrip(dev: str, offset: int = 0) -> bytes:
    data = os.urandom(8 * MiB)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT if False else os.O_RDWR)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    # drop the page cache so the read really crosses the wire
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    fd = os.open(dev, os.O_RDONLY)
    try:
        back = os.pread(fd, len(data), offset)
    finally:
        os.close(fd)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    return data


def test_export_file_login_write_read_unexport(lioctl, image):
    r = lioctl("export", image, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    iqn = info["target"]
    assert iqn.startswith("iqn.2003-01.org.linux-iscsi.") and iqn.endswith(":disk.img")
    assert info["portals"] == ["0.0.0.0:3260"]
    tpg = cfs.ROOT / "iscsi" / iqn / "tpgt_1"
    assert (tpg / "enable").read_text().strip() == "1"
    assert (tpg / "attrib/generate_node_acls").read_text().strip() == "1"
    assert (tpg / "attrib/demo_mode_write_protect").read_text().strip() == "0"
    initiator.start()
    assert iqn in initiator.discover()
    initiator.login(iqn)
    try:
        dev = initiator.disk_for(iqn)
        data = _io_roundtrip(dev, offset=MiB)
    finally:
        initiator.logout(iqn)
    with open(image, "rb") as f:
        f.seek(MiB)
        assert f.read(len(data)) == data, "backing file does not hold what was written"
    r = lioctl("unexport", iqn)
    assert r.returncode == 0, r.stderr
    assert cfs.snapshot() == []


def test_export_block_device(lioctl, loopdev):
    r = lioctl("export", loopdev, "--iqn", "iqn.2003-01.org.example:blk", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backstore"].startswith("/backstores/block/")
    initiator.start()
    initiator.discover()
    initiator.login("iqn.2003-01.org.example:blk")
    try:
        dev = initiator.disk_for("iqn.2003-01.org.example:blk")
        data = _io_roundtrip(dev)
    finally:
        initiator.logout("iqn.2003-01.org.example:blk")
    with open(loopdev, "rb") as f:
        assert f.read(len(data)) == data
    r = lioctl("unexport", loopdev)
    assert r.returncode == 0, r.stderr
    assert cfs.snapshot() == []


def test_export_acl_chap(lioctl, image):
    iqn = "iqn.2003-01.org.example:chap"
    r = lioctl("export", image, "--iqn", iqn, "--acl", initiator.INITIATOR_IQN,
               "--chap", "alice:s3cret-pass1", "--mutual-chap", "tgt:mutual-secret2")
    assert r.returncode == 0, r.stderr
    acl = cfs.ROOT / "iscsi" / iqn / "tpgt_1" / "acls" / initiator.INITIATOR_IQN
    assert (acl / "auth/password").read_text().strip() == "s3cret-pass1"
    initiator.start()
    initiator.discover()
    try:
        # no credentials: refused
        assert initiator.login(iqn, check=False).returncode != 0
        initiator.set_chap(iqn, "alice", "wrong-secret-1")
        assert initiator.login(iqn, check=False).returncode != 0
        initiator.set_chap(iqn, "alice", "s3cret-pass1", ("tgt", "mutual-secret2"))
        initiator.login(iqn)
        initiator.disk_for(iqn)
        # sessions shows the initiator
        s = lioctl("sessions", "--json")
        assert initiator.INITIATOR_IQN in s.stdout, s.stdout + s.stderr
    finally:
        initiator.logout(iqn)
    assert lioctl("unexport", iqn).returncode == 0
    assert cfs.snapshot() == []


def test_dry_run_script_makes_the_same_tree(lioctl, image, tmp_path):
    args = ["export", image, "-p", "127.0.0.1", "-p", "[::1]:3261", "--acl",
            "iqn.1994-05.com.example:c1", "--chap", "u1:pa%ss'w@rd12"]
    r = lioctl(*args, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert cfs.snapshot() == [], "--dry-run changed configfs"
    assert "pa%ss'w@rd12" not in r.stdout and "LIOCTL_SECRET_1" in r.stdout  # masked
    script = tmp_path / "export.sh"
    script.write_text(r.stdout)
    s = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                       env=dict(os.environ, LIOCTL_SECRET_1="pa%ss'w@rd12"))
    assert s.returncode == 0, s.stderr
    by_script = cfs.tree()
    cfs.clear()
    r = lioctl(*args)
    assert r.returncode == 0, r.stderr
    by_command = cfs.tree()
    assert by_script == by_command
    assert lioctl("unexport", image).returncode == 0


BAD = [
    (["export", "/nonexistent/file.img"], 4, "no such file"),  # not found
    (["export", "/tmp"], 1, "directory"),
    (["export", "/dev/null"], 1, "character device"),
    (["export", "IMG", "--iqn", "iqn.bad"], 1, "not valid"),
    (["export", "IMG", "-p", "1.2.3.999"], 1, "not an IP address"),
    (["export", "IMG", "-p", "127.0.0.1", "-p", "127.0.0.1:3260"], 1, "twice"),
    (["export", "IMG", "-p", "192.0.2.77"], 1, "not configured on this host"),
    (["export", "IMG", "--name", "a/b"], 1, "'/'"),
    (["export", "IMG", "--name", ".."], 1, "'.'"),
    (["export", "IMG", "--name", "a b"], 1, "spaces"),
    (["export", "IMG", "--name", "x" * 129], 1, "at most 128"),
    (["export", "IMG", "--chap", "nocolon"], 2, "--acl"),  # --chap USER asks for the secret, with --acl
    (["export"], 2, "required"),
]


@pytest.mark.parametrize("args,code,text", BAD, ids=[" ".join(a[1:])[:40] for a, _, _ in BAD])
def test_bad_input(lioctl, image, args, code, text):
    before = cfs.tree()
    r = lioctl(*[str(image) if a == "IMG" else a for a in args])
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert cfs.tree() == before


def test_not_root_is_refused(lioctl, image):
    """A file the user may read and write, so that only being root is missing: exit 77."""
    before = cfs.tree()
    d = tempfile.mkdtemp(prefix="lioctl-notroot-")
    try:
        os.chmod(d, 0o755)
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(image.stat().st_size)
        os.chmod(img, 0o666)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-m", "lioctl", "export", img],
                           capture_output=True, text=True)
    finally:
        shutil.rmtree(d)
    assert r.returncode == 77, r  # permission
    assert "must run as root" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert cfs.tree() == before


def test_reexport_refused_or_exist_ok(lioctl, image):
    r = lioctl("export", image)
    assert r.returncode == 0, r.stderr
    r2 = lioctl("export", image)
    assert r2.returncode == 5 and "already exported" in r2.stderr and "iqn." in r2.stderr
    r3 = lioctl("export", image, "--exist-ok")
    assert r3.returncode == 0, r3.stderr
    assert lioctl("unexport", image).returncode == 0
    assert cfs.snapshot() == []


def test_exist_ok_names_what_differs(lioctl, image):
    """--exist-ok accepts an export made the same way and refuses (exit 5, conflict) one that is
    not, naming each difference; a CHAP secret is compared, never shown; nothing changes."""
    ini = "iqn.1994-05.com.redhat:exist-ok"
    same = ["--acl", ini, "--chap-file", "-", "-p", "127.0.0.1:3260", "--readonly"]
    r = lioctl("export", image, *same, input="alice:s3cret-one-two\n")
    assert r.returncode == 0, r.stderr
    before = cfs.tree()
    r = lioctl("export", image, "--exist-ok", *same, input="alice:s3cret-one-two\n")
    assert r.returncode == 0 and "already exported" in r.stdout, r.stderr
    cases = [
        (["--acl", ini, "-p", "127.0.0.1:3260", "--readonly", "--chap-file", "-"],
         "alice:another-secret1\n", ["CHAP credentials of ACL"]),
        (["--acl", ini, "--acl", "iqn.1994-05.com.redhat:other", "-p", "127.0.0.1:3260", "--readonly"],
         None, ["its ACLs are " + ini]),
        (["-p", "127.0.0.1:3261"], None,
         ["its portals are 127.0.0.1:3260, not 127.0.0.1:3261", "allows only " + ini, "read-only"]),
        (["--acl", ini, "--chap-file", "-", "-p", "127.0.0.1:3260", "--lun-size", "32M",
          "--iqn", "iqn.2003-01.org.example:elsewhere", "--readonly"], "alice:s3cret-one-two\n",
         ["its size is 67108864 bytes, not 32M", "its target is iqn.2003-01.org.linux-iscsi."]),
    ]
    for args, stdin, needles in cases:
        r = lioctl("export", image, "--exist-ok", *args, input=stdin)
        assert r.returncode == 5, (args, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and "differs" in err, err
        for n in needles:
            assert n in err, (n, err)
        assert "s3cret-one-two" not in err and "another-secret1" not in err, err
    r = lioctl("--json", "export", image, "--exist-ok", "-p", "127.0.0.1:3261")
    assert r.returncode == 5
    assert json.loads(r.stdout)["error"]["code"] == "conflict"
    assert cfs.tree() == before
    assert lioctl("unexport", image).returncode == 0
    assert cfs.snapshot() == []


def test_rollback_midway_leaves_nothing(lioctl, image):
    before = cfs.tree()
    r = lioctl("export", image, env={"LIOCTL_FAULT_AT": "15"})
    assert r.returncode == 1 and "fault injected" in r.stderr
    assert cfs.snapshot() == []
    assert cfs.tree() == before
