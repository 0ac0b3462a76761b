"""The object tree from the command line, against real configfs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import cfs
from initiator import loop_disk, opens, wait_for

MiB = 1 << 20
IQN = "iqn.2003-01.org.example:t1"
INIT = "iqn.1994-05.com.example:c1"
TPG = f"/iscsi/{IQN}/tpg1"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def one_line_error(r, code, text):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert text in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_backstores_each_kind_create_list_delete(lioctl, tmp_path):
    img = tmp_path / "with space.img"
    ok(lioctl("/backstores/fileio", "create", "f1", img, "16M", "write_back=false"))
    assert os.path.getsize(img) == 16 * MiB and os.stat(img).st_blocks == 0, "not sparse"
    ok(lioctl("/backstores/ramdisk", "create", "r1", "8M", "nullio=true"))
    with loop_disk(tmp_path / "loop.img", MiB, read_only=True) as dev:
        ok(lioctl("/backstores/block", "create", "b1", dev))
        data = json.loads(ok(lioctl("/backstores", "ls", "--json")).stdout)
        kinds = {c["name"]: c for c in data["children"]}
        assert [c["name"] for c in kinds["fileio"]["children"]] == ["f1"]
        assert "write-thru" in kinds["fileio"]["children"][0]["summary"]
        assert "ro" in kinds["block"]["children"][0]["summary"].split(), "read-only not detected"
        info = json.loads(ok(lioctl("/backstores/fileio/f1", "info", "--json")).stdout)
        assert info["dev"] == str(img) and info["size"] == 16 * MiB and info["write_back"] is False
        so = next(cfs.ROOT.glob("core/fileio_*/f1"))
        assert (so / "attrib/emulate_model_alias").read_text().strip() == "1"
        for kind, name in (("fileio", "f1"), ("ramdisk", "r1"), ("block", "b1")):
            ok(lioctl(f"/backstores/{kind}", "delete", name))
    assert cfs.snapshot() == []


def test_iscsi_target_tpg_lun_acl_portal_lifecycle(lioctl, tmp_path):
    ok(lioctl("/backstores/fileio", "create", "d1", tmp_path / "d1.img", "8M"))
    r = ok(lioctl("/iscsi", "create", IQN))
    assert "Created TPG 1" in r.stdout
    tpg = cfs.ROOT / "iscsi" / IQN / "tpgt_1"
    assert (tpg / "enable").read_text().strip() == "1"
    assert (tpg / "np/0.0.0.0:3260").is_dir()
    ok(lioctl(f"{TPG}/acls", "create", INIT))
    ok(lioctl(f"{TPG}/luns", "create", "/backstores/fileio/d1"))
    # new LUNs map to every ACL
    assert (tpg / "acls" / INIT / "lun_0").is_dir()
    ok(lioctl(f"{TPG}/portals", "create", "127.0.0.1", "3261"))
    ok(lioctl(f"{TPG}/portals", "create", "::1", "3262"))
    assert (tpg / "np/127.0.0.1:3261").is_dir() and (tpg / "np/[::1]:3262").is_dir()
    ok(lioctl(f"{TPG}/acls/{INIT}", "create", "5", "0", "write_protect=true"))
    assert (tpg / "acls" / INIT / "lun_5/write_protect").read_text().strip() == "1"
    tree = json.loads(ok(lioctl(f"/iscsi/{IQN}", "ls", "--json")).stdout)
    tpg1 = tree["children"][0]
    assert {c["name"] for c in tpg1["children"]} == {"acls", "luns", "portals"}
    ok(lioctl(TPG, "disable"))
    assert (tpg / "enable").read_text().strip() == "0"
    ok(lioctl(TPG, "enable"))
    # deleting a backstore in use names its user
    one_line_error(lioctl("/backstores/fileio", "delete", "d1"), 6, f"used by LUN 0 of {IQN}")
    ok(lioctl("/iscsi", "delete", IQN))
    ok(lioctl("/backstores/fileio", "delete", "d1"))
    assert cfs.snapshot() == []


def test_force_delete_in_use_backstore_takes_its_luns(lioctl):
    ok(lioctl("/backstores/ramdisk", "create", "r1", "4M"))
    ok(lioctl("/iscsi", "create", IQN))
    ok(lioctl(f"{TPG}/acls", "create", INIT))
    ok(lioctl(f"{TPG}/luns", "create", "/backstores/ramdisk/r1"))
    ok(lioctl("/backstores/ramdisk", "delete", "r1", "--force"))
    tpg = cfs.ROOT / "iscsi" / IQN / "tpgt_1"
    assert not list((tpg / "lun").iterdir())
    assert not list((tpg / "acls" / INIT).glob("lun_*"))
    ok(lioctl("/iscsi", "delete", IQN))


def test_get_set_groups_and_quoted_password(lioctl):
    ok(lioctl("/iscsi", "create", IQN))
    ok(lioctl(f"{TPG}/acls", "create", INIT))
    pw = "p@ss%w'rd \"x\" $HOME"
    ok(lioctl(f"{TPG}/acls/{INIT}", "set", "auth", "userid=alice", f"password={pw}"))
    auth = cfs.ROOT / "iscsi" / IQN / "tpgt_1" / "acls" / INIT / "auth"
    assert (auth / "password").read_text().rstrip("\n") == pw
    shown = ok(lioctl(f"{TPG}/acls/{INIT}", "get", "auth", "--json")).stdout
    assert pw not in shown and "********" in shown
    shown = ok(lioctl(f"{TPG}/acls/{INIT}", "get", "auth", "--json", "--show-secrets")).stdout
    assert json.loads(shown)["auth"]["password"] == pw
    ok(lioctl(TPG, "set", "attribute", "generate_node_acls=true", "cache_dynamic_acls=1"))
    got = json.loads(ok(lioctl(TPG, "get", "attribute", "generate_node_acls", "--json")).stdout)
    assert got["schema"] == 1 and got["attribute"] == {"generate_node_acls": "1"}
    ok(lioctl(TPG, "set", "parameter", "HeaderDigest=CRC32C"))
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1/param/HeaderDigest").read_text().strip() == "CRC32C"
    ok(lioctl("/iscsi", "delete", IQN))



def test_target_wide_parameter_set_saved_and_restored(lioctl, tmp_path):
    """The target's own param/ (cmd_completion_affinity: where the kernel completes commands,
    #15) on a fabric with TPG tags and one without: set, read, saved, restored."""
    wwn = json.loads(ok(lioctl("/loopback", "create", "--json")).stdout)["wwn"]
    ok(lioctl("/iscsi", "create", IQN))
    targets = {f"/loopback/{wwn}": cfs.ROOT / "loopback" / wwn / "param",
               f"/iscsi/{IQN}": cfs.ROOT / "iscsi" / IQN / "param"}
    if not (cfs.ROOT / "iscsi" / IQN / "param" / "cmd_completion_affinity").exists():
        ok(lioctl("clear", "--yes"))
        pytest.skip("this kernel has no cmd_completion_affinity (5.14 on)")
    for path, param in targets.items():
        assert (param / "cmd_completion_affinity").read_text().strip() == "-1"
        ok(lioctl(path, "set", "parameter", "cmd_completion_affinity=-2"))
        assert (param / "cmd_completion_affinity").read_text().strip() == "-2"
        got = json.loads(ok(lioctl(path, "get", "parameter", "cmd_completion_affinity", "--json")).stdout)
        assert got["parameter"] == {"cmd_completion_affinity": "-2"}
    # loopback's TPG param/ is empty, so the target's takes the name; its TPG attributes stay
    groups = json.loads(ok(lioctl(f"/loopback/{wwn}", "get", "--json")).stdout)
    assert "attribute" in groups and "target-parameter" not in groups
    saved = tmp_path / "saved.json"
    ok(lioctl("save", saved))
    doc = json.loads(saved.read_text())
    assert {t["wwn"]: t.get("parameters", {}).get("cmd_completion_affinity") for t in doc["targets"]} == \
        {wwn: "-2", IQN: "-2"}
    ok(lioctl("clear", "--yes"))
    ok(lioctl("restore", saved))
    for param in targets.values():
        assert (param / "cmd_completion_affinity").read_text().strip() == "-2"
    ok(lioctl("clear", "--yes"))

BAD = [
    (["/iscsi", "create", "iqn.bogus"], 1, "not valid"),
    (["/iscsi", "create", "naa.12"], 1, "not valid"),
    (["/backstores/ramdisk", "create", "a/b", "1M"], 1, "'/'"),
    (["/backstores/ramdisk", "create", "..", "1M"], 1, "'.'"),
    (["/backstores/ramdisk", "create", "r", "lots"], 1, "not a size"),
    (["/backstores/ramdisk", "create", "r", "1M", "colour=red"], 2, "unknown parameter"),
    (["/backstores/ramdisk", "create"], 2, "usage"),
    (["/backstores/fileio", "create", "f", "/nonexistent/dir/x.img", "1M"], 1, "does not exist"),
    (["/iscsi/iqn.2003-01.org.example:none/tpg1/luns", "create", "/backstores/ramdisk/x"], 4,
     "no such path"),
    (["/backstores/bogus", "create", "x"], 4, "no such path"),
    (["/", "frobnicate"], 2, "no command"),
    (["/", "set", "attribute", "x=1"], 2, "no group"),
    (["/backstores/ramdisk", "create", "r", "1M", "nullio='yes"], 1, "not a boolean"),
]


@pytest.mark.parametrize("args,code,text", BAD, ids=[" ".join(a)[:50] for a, _, _ in BAD])
def test_bad_input_one_line_nothing_changed(lioctl, args, code, text):
    before = cfs.tree()
    one_line_error(lioctl(*args), code, text)
    assert cfs.tree() == before


def test_bad_input_on_existing_objects(lioctl):
    ok(lioctl("/backstores/ramdisk", "create", "r1", "4M"))
    ok(lioctl("/iscsi", "create", IQN))
    before = cfs.tree()
    one_line_error(lioctl("/backstores/ramdisk", "create", "r1", "4M"), 5, "already exists")
    one_line_error(lioctl("/iscsi", "create", IQN), 5, "already exists")
    one_line_error(lioctl(f"{TPG}/luns", "create", "/backstores/ramdisk/r1", "lun=65536"), 1,
                   "out of range")
    one_line_error(lioctl(TPG, "set", "attribute", "no_such_attr=1"), 1, "no 'no_such_attr'")
    one_line_error(lioctl(TPG, "set", "parameter", "HeaderDigest=MD5"), 1, "not one of")
    one_line_error(lioctl(TPG, "set", "parameter", "MaxConnections=0"), 1, "out of range")
    one_line_error(lioctl(TPG, "set", "attribute", "default_cmdsn_depth="), 1, "give a value")
    one_line_error(lioctl(f"{TPG}/portals", "create", "192.0.2.99"), 1, "not configured")
    one_line_error(lioctl(f"{TPG}/acls", "create", "not-an-iqn"), 1, "not valid")
    assert cfs.tree() == before
    ok(lioctl("/iscsi", "delete", IQN))
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


def test_rollback_after_fault_midway_restores_everything(lioctl):
    ok(lioctl("/backstores/ramdisk", "create", "r1", "4M"))
    ok(lioctl("/iscsi", "create", IQN))
    ok(lioctl(f"{TPG}/acls", "create", INIT))
    ok(lioctl(f"{TPG}/acls", "create", INIT.replace("c1", "c2")))
    before = cfs.tree()
    # lun mkdir, link, 2 x (mapped lun mkdir, link): fail at the 4th step
    r = lioctl(f"{TPG}/luns", "create", "/backstores/ramdisk/r1", env={"LIOCTL_FAULT_AT": "4"})
    one_line_error(r, 1, "fault injected")
    assert cfs.tree() == before
    # a delete that fails midway is undone too
    r = lioctl("/iscsi", "delete", IQN, env={"LIOCTL_FAULT_AT": "3"})
    assert r.returncode == 1
    assert set(cfs.tree()) == set(before)
    ok(lioctl("/iscsi", "delete", IQN))
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


def test_dry_run_changes_nothing_and_prints_sh(lioctl):
    before = cfs.tree()
    r = ok(lioctl("/backstores/ramdisk", "create", "r1", "4M", "--dry-run"))
    assert r.stdout.startswith("#!/bin/sh") and "rd_pages=1024" in r.stdout
    assert cfs.tree() == before


def test_parallel_invocations_all_succeed(lioctl):
    """20 writers at once queue on the write lock and all succeed. Under emulation on a busy
    machine the last one may wait minutes, which is not what this test is about: the bound
    (tested in test_lock.py) is set past anything the queue can take here."""
    n = 20
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: lioctl("--wait", "1800", "/backstores/ramdisk", "create",
                                                 f"p{i}", "1M", subprocess_=True),
                                range(n)))
    for r in results:
        ok(r)
    names = sorted(p.name for p in cfs.ROOT.glob("core/rd_mcp_*/*") if p.is_dir())
    assert names == sorted(f"p{i}" for i in range(n))
    # all in one batch to keep the guest fast
    script = "\n".join(f"/backstores/ramdisk delete p{i}" for i in range(n)) + "\n"
    r = lioctl(input=script)
    assert r.returncode == 0, r.stderr
    assert cfs.snapshot() == []


def test_loopback_lun_is_a_local_disk(lioctl, tmp_path):
    img = tmp_path / "lb.img"
    ok(lioctl("/backstores/fileio", "create", "lb", img, "16M"))
    r = ok(lioctl("/loopback", "create", "--json"))
    wwn = json.loads(r.stdout)["wwn"]
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/fileio/lb"))
    sessions = json.loads(ok(lioctl("sessions", "--json")).stdout)["sessions"]
    assert any(s["fabric"] == "loopback" and s["acl"] == "nexus" for s in sessions)

    def find_disk():
        for d in os.listdir("/sys/block"):
            try:
                vendor = open(f"/sys/block/{d}/device/vendor").read().strip()
                model = open(f"/sys/block/{d}/device/model").read().strip()
            except OSError:
                continue
            if vendor == "LIO-ORG" and model == "lb" and opens(f"/dev/{d}"):
                return f"/dev/{d}"
    dev = wait_for(find_disk, "the loopback LUN as /dev/sdX")
    data = os.urandom(4 * MiB)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, len(data))
        buf.write(data)
        os.pwritev(fd, [buf], 0)
        back = mmap.mmap(-1, len(data))
        os.preadv(fd, [back], 0)
    finally:
        os.close(fd)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    with open(img, "rb") as f:
        assert f.read(len(data)) == data
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/fileio", "delete", "lb"))


def test_generic_fabric_vhost(lioctl):
    """vhost_scsi managed with lioctl's knowledge of it switched off."""
    subprocess.run(["modprobe", "vhost_scsi"], check=True)
    env = {"LIOCTL_GENERIC_FABRICS": "vhost"}
    ok(lioctl("/backstores/ramdisk", "create", "v1", "4M"))
    wwn = "naa.5001405000000abc"
    os.makedirs(cfs.ROOT / "vhost", exist_ok=True)
    ok(lioctl("/vhost", "create", wwn, env=env))
    info = json.loads(ok(lioctl("/vhost", "info", "--json", env=env)).stdout)
    assert info["known"] is False
    ok(lioctl(f"/vhost/{wwn}/tpg1/luns", "create", "/backstores/ramdisk/v1", env=env))
    lun = cfs.ROOT / "vhost" / wwn / "tpgt_1/lun/lun_0"
    assert lun.is_dir() and any(p.is_symlink() for p in lun.iterdir())
    tree = json.loads(ok(lioctl(f"/vhost/{wwn}", "ls", "--json", env=env)).stdout)
    assert tree["children"][0]["name"] == "tpg1"
    ok(lioctl("/vhost", "delete", wwn, env=env))
    ok(lioctl("/backstores/ramdisk", "delete", "v1"))
    assert cfs.snapshot() == []


def test_user_backstore_created_listed_and_checked(lioctl, tmp_path):
    img = tmp_path / "u.img"
    img.write_bytes(b"")
    one_line_error(lioctl("/backstores/user", "create", "u0", "16M", "a:b"), 1, "must not contain ':'")
    one_line_error(lioctl("/backstores/user", "create", "u0", "16M", "x", "subtype=nosuch"), 1,
                   "unknown user backstore subtype")
    one_line_error(lioctl("/backstores/user", "create", "u0", "16M", "/" + "x" * 300), 1, "at most 255")
    ok(lioctl("/backstores/user", "create", "u1", "16M", img))
    so = next(cfs.ROOT.glob("core/user_*/u1"))
    assert (so / "attrib/nl_reply_supported").read_text().strip() == "-1"
    info = json.loads(ok(lioctl("/backstores/user/u1", "info", "--json")).stdout)
    assert info["config"] == f"lioctl_file/{img}" and info["size"] == 16 * MiB
    one_line_error(lioctl("/backstores/user", "create", "u2", "16M", img), 6, "already uses")
    ok(lioctl("/backstores/user", "delete", "u1"))
    assert cfs.snapshot() == []


def test_pscsi_backstore_on_a_scsi_debug_disk(lioctl):
    subprocess.run(["modprobe", "scsi_debug", "dev_size_mb=8"], check=True)
    try:
        def find():
            for d in os.listdir("/sys/block"):
                try:
                    if open(f"/sys/block/{d}/device/model").read().strip() == "scsi_debug":
                        return f"/dev/{d}" if opens(f"/dev/{d}") else None
                except OSError:
                    continue
        dev = wait_for(find, "the scsi_debug disk")
        ok(lioctl("/backstores/pscsi", "create", "p1", dev))
        info = json.loads(ok(lioctl("/backstores/pscsi/p1", "info", "--json")).stdout)
        assert info["plugin"] == "pscsi" and info["dev"] == dev
        ok(lioctl("/backstores/pscsi", "delete", "p1"))
    finally:
        subprocess.run(["rmmod", "scsi_debug"])
    assert cfs.snapshot() == []
