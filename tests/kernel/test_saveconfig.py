"""save / restore / diff / clear against real LIO, with rtslib and targetcli as oracles."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

import cfs
import initiator

MiB = 1 << 20
T1 = "iqn.2003-01.org.example:save1"
T2 = "iqn.2003-01.org.example:save2"
I1 = "iqn.1994-05.com.example:init1"
I2 = "iqn.1994-05.com.example:init2"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def rtslib_dump() -> dict:
    code = "import json, rtslib_fb; print(json.dumps(rtslib_fb.RTSRoot().dump()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def canon(d: dict) -> dict:
    """Order-independent form; generated aliases are not configuration."""
    def walk(x):
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items() if k != "alias"}
        if isinstance(x, list):
            items = [walk(v) for v in x]
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        return x
    return walk(d)


def build(lioctl, tmp_path, loopdev=None):
    """A configuration touching every kind the format has (one batch: forks are slow here)."""
    img = tmp_path / "f1.img"
    lines = [
        f"/backstores/fileio create f1 {img} 8M",
        "/backstores/ramdisk create r1 4M",
        f"/iscsi create {T1}",
        f"/iscsi/{T1} create 2",
        f"/iscsi/{T1}/tpg1/luns create /backstores/fileio/f1",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"/iscsi/{T1}/tpg1/portals create 127.0.0.1 3261",
        f"/iscsi/{T1}/tpg1/acls create {I1}",
        f"/iscsi/{T1}/tpg1/acls/{I1} set auth userid=u1 password=p1secret12 userid_mutual=m1 password_mutual=m1secret12",
        f"/iscsi/{T1}/tpg1 set attribute authentication=1",
        f"/iscsi/{T1}/tpg2/luns create /backstores/ramdisk/r1",
        "/iscsi set discovery_auth enforce_discovery_auth=1 userid=disc password=discsecret1",
        "/backstores/ramdisk/r1/alua create ag1 7",
    ]
    if loopdev:
        lines.insert(0, f"/backstores/block create b1 {loopdev}")
    r = lioctl(input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr


def test_save_matches_rtslib_and_restore_reproduces(lioctl, tmp_path):
    build(lioctl, tmp_path)
    ok(lioctl("/loopback", "create", "naa.5001405000000a01"))     # a TPG with no enable file
    ok(lioctl("/loopback/naa.5001405000000a01/luns", "create", "/backstores/ramdisk/r1"))
    f = tmp_path / "saved.json"
    ok(lioctl("save", f))
    assert oct(os.stat(f).st_mode & 0o777) == "0o600"
    saved = json.loads(f.read_text())
    oracle = rtslib_dump()
    for key in ("storage_objects", "targets", "fabric_modules"):
        assert canon(saved[key]) == canon(oracle[key]), key
    r = ok(lioctl("save", f))
    assert "nothing written" in r.stdout
    ok(lioctl("clear", "--yes"))
    assert cfs.snapshot() == []
    r = ok(lioctl("restore", f))
    assert r.stderr == ""           # no warning for tcm_loop's TPG, which is on without an enable file
    assert canon(json.loads(ok(lioctl("save", "-")).stdout)) == canon(saved)
    # unchanged: a no-op
    r = ok(lioctl("diff", f))
    assert r.stdout == ""
    d = ok(lioctl("restore", f, "--dry-run"))
    assert d.stdout.strip() == "nothing to change"
    ok(lioctl("clear", "--yes"))


def test_restore_by_difference_and_prune(lioctl, tmp_path):
    build(lioctl, tmp_path)
    f = tmp_path / "s.json"
    ok(lioctl("save", f))
    cfg = json.loads(f.read_text())
    tpg = next(t for t in cfg["targets"] if t["wwn"] == T1)["tpgs"][0]
    tpg["attributes"]["default_cmdsn_depth"] = 77
    cfg["targets"].append({"wwn": T2, "fabric": "iscsi", "tpgs": [{"tag": 1, "enable": True,
                           "luns": [], "portals": [], "node_acls": [], "attributes": {}}]})
    f.write_text(json.dumps(cfg))
    lun_dir = cfs.ROOT / "iscsi" / T1 / "tpgt_1/lun/lun_0"
    ino = os.stat(lun_dir).st_ino
    r = lioctl("diff", f)
    assert r.returncode == 1
    assert f"+ target {T2}" in r.stdout and "default_cmdsn_depth" in r.stdout
    ok(lioctl("restore", f))
    assert (cfs.ROOT / "iscsi" / T2 / "tpgt_1").is_dir()
    assert (cfs.ROOT / "iscsi" / T1 / "tpgt_1/attrib/default_cmdsn_depth").read_text().strip() == "77"
    assert os.stat(lun_dir).st_ino == ino, "an unchanged LUN was re-created"
    # an object absent from the file stays without --prune, goes with it
    ok(lioctl("/backstores/ramdisk", "create", "extra", "1M"))
    r = lioctl("diff", f)      # listed, though restore removes it only with --prune
    assert r.returncode == 1 and r.stdout.splitlines() == ["- storage object ramdisk/extra"]
    ok(lioctl("restore", f))
    assert any(p.name == "extra" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    ok(lioctl("restore", f, "--prune"))
    assert not any(p.name == "extra" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    ok(lioctl("clear", "--yes"))


def test_dry_run_script_and_clear(lioctl, tmp_path):
    """--dry-run changes nothing; --dry-run --script, run by sh on an empty kernel, makes the
    same tree restore makes; --clear starts from empty like targetcli."""
    build(lioctl, tmp_path)
    f = tmp_path / "s.json"
    ok(lioctl("save", f))
    want = cfs.tree()
    ok(lioctl("clear", "--yes"))
    r = ok(lioctl("restore", f, "--dry-run"))
    assert cfs.snapshot() == []
    assert f"+ target {T1}" in r.stdout and "+ backstore fileio/f1" in r.stdout.replace("storage object", "backstore")
    assert "p1secret12" not in r.stdout                       # secrets stay hidden in the plan
    masked = ok(lioctl("restore", f, "--dry-run", "--script")).stdout
    assert "p1secret12" not in masked and "LIOCTL_SECRET_1" in masked
    script = ok(lioctl("restore", f, "--dry-run", "--script", "--show-secrets")).stdout
    assert script.startswith("#!/bin/sh") and cfs.snapshot() == []
    sh = subprocess.run(["sh", "-e"], input=script, capture_output=True, text=True)
    assert sh.returncode == 0, sh.stderr[-2000:]
    def strip(t):
        """Generated names are not configuration: HBA info, and the random names of mapped
        LUN links (the link's target is what matters)."""
        out = {}
        hba = re.compile(r"\b(fileio|iblock|rd_mcp|pscsi|user)_\d+")   # allocated, not saved
        for k, v in t.items():
            if k.endswith(("hba_info", "/info")):
                continue
            if v.startswith("link->") and "/acls/" in k:
                k = k.rsplit("/", 1)[0] + "/<link>"
            k, v = hba.sub(r"\1_N", k), hba.sub(r"\1_N", v)
            out[k] = v
        return out
    assert strip(cfs.tree()) == strip(want)
    assert lioctl("diff", f).returncode == 0
    ok(lioctl("/backstores/ramdisk", "create", "extra", "1M"))
    ok(lioctl("restore", f, "--clear"))
    assert not any(p.name == "extra" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    assert strip(cfs.tree()) == strip(want)
    p = lioctl("clear")                                        # stdin is not a terminal
    assert p.returncode == 1 and "--yes" in p.stderr
    ok(lioctl("clear", "--yes"))


BAD_FILES = [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a saveconfig"),
    ('{"storage_objects": [], "targets": 5}', "targets: targets must be a list"),
    ('{"storage_objects": [{"name": "r", "plugin": "ramdisk", "size": 1048576}], "targets": ['
     '{"wwn": "iqn.2003-01.org.example:b", "fabric": "iscsi", "tpgs": [{"tag": 1, "luns": ['
     '{"index": 0, "storage_object": "/backstores/ramdisk/r"},'
     '{"index": 0, "storage_object": "/backstores/ramdisk/r"}]}]}]}',
     "targets[0].tpgs[0].luns[1].index: duplicate LUN index 0"),
    ('{"storage_objects": [], "targets": [{"wwn": "iqn.2003-01.org.example:b", "fabric": "iscsi",'
     '"tpgs": [{"tag": 1, "luns": [{"index": 0, "storage_object": "/backstores/fileio/missing"}]}]}]}',
     "targets[0].tpgs[0].luns[0].storage_object"),
    ('{"storage_objects": [{"name": "f", "plugin": "fileio", "dev": "/nonexistent.img", "size": 1}],'
     '"targets": []}', "storage_objects[0].dev: backing file /nonexistent.img of storage object fileio/f does not exist"),
]


@pytest.mark.parametrize("text,msg", BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_files_one_line_nothing_changed(lioctl, tmp_path, text, msg):
    f = tmp_path / "bad.json"
    f.write_text(text)
    before = cfs.tree()
    r = lioctl("restore", f)
    assert r.returncode == (4 if msg.endswith("does not exist") else 1), r  # not found, or failed
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert cfs.tree() == before


def test_restore_keeps_a_live_session(lioctl, tmp_path):
    """An initiator keeps reading and writing while restore adds a target elsewhere."""
    img = tmp_path / "live.img"
    ok(lioctl("export", img, "--lun-size", "16M", "--iqn", T1))
    f = tmp_path / "live.json"
    ok(lioctl("save", f))
    cfg = json.loads(f.read_text())
    cfg["storage_objects"].append({"name": "r9", "plugin": "ramdisk", "size": MiB, "attributes": {}})
    cfg["targets"].append({"wwn": T2, "fabric": "iscsi", "tpgs": [{"tag": 1, "luns": [
        {"index": 0, "storage_object": "/backstores/ramdisk/r9"}], "portals": [], "node_acls": []}]})
    cfg["targets"][0]["tpgs"][0]["attributes"]["default_cmdsn_depth"] = 33
    f.write_text(json.dumps(cfg))
    initiator.start()
    initiator.discover()
    initiator.login(T1)
    try:
        dev = initiator.disk_for(T1)
        sessions_before = initiator.sh("iscsiadm", "-m", "session").stdout
        data = os.urandom(MiB)
        fd = os.open(dev, os.O_RDWR | os.O_SYNC)
        try:
            os.pwrite(fd, data, 0)
            ok(lioctl("restore", f))
            os.pwrite(fd, data[::-1], MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        with open("/proc/sys/vm/drop_caches", "w") as dc:
            dc.write("3")
        fd = os.open(dev, os.O_RDONLY)
        try:
            assert os.pread(fd, MiB, 0) == data and os.pread(fd, MiB, MiB) == data[::-1]
        finally:
            os.close(fd)
        # the same session (same sid) is still logged in: restore did not drop it
        assert initiator.sh("iscsiadm", "-m", "session").stdout == sessions_before
        assert (cfs.ROOT / "iscsi" / T2 / "tpgt_1/lun/lun_0").is_dir()
    finally:
        initiator.logout(T1)
    ok(lioctl("clear", "--yes"))


def test_sigkill_during_save_leaves_previous_file_intact(lioctl, tmp_path):
    ok(lioctl("/backstores/ramdisk", "create", "k1", "1M"))
    f = tmp_path / "k.json"
    ok(lioctl("save", f))
    old = f.read_text()
    ok(lioctl("/backstores/ramdisk", "create", "k2", "1M"))
    rng = random.Random(7)
    for _ in range(6):
        p = subprocess.Popen([sys.executable, "-m", "lioctl", "save", str(f)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2))
        p.send_signal(signal.SIGKILL)
        p.wait()
        text = f.read_text()
        assert text == old or '"k2"' in text and json.loads(text)
    ok(lioctl("clear", "--yes"))


def test_full_disk_during_save(lioctl, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)], check=True)
    try:
        f = mnt / "s.json"
        ok(lioctl("save", f))
        old = f.read_text()
        lines = [f"/backstores/ramdisk create disk_with_a_long_name_{i} 1M" for i in range(40)]
        ok(lioctl(input="\n".join(lines) + "\n"))
        r = lioctl("save", f)
        assert r.returncode == 1 and "previous file is unchanged" in r.stderr
        assert f.read_text() == old
    finally:
        subprocess.run(["umount", str(mnt)])
    ok(lioctl("clear", "--yes"))


def test_targetcli_roundtrip_both_ways(lioctl, tmp_path, dbus):
    build(lioctl, tmp_path)
    theirs = tmp_path / "targetcli.json"
    r = subprocess.run(["targetcli", "saveconfig", str(theirs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ok(lioctl("clear", "--yes"))
    ok(lioctl("restore", theirs))
    again = tmp_path / "again.json"
    subprocess.run(["targetcli", "saveconfig", str(again)], capture_output=True, check=True)
    assert canon(json.loads(again.read_text())) == canon(json.loads(theirs.read_text()))
    # and the other way: lioctl's file restored by targetcli
    ours = tmp_path / "ours.json"
    ok(lioctl("save", ours))
    ok(lioctl("clear", "--yes"))
    r = subprocess.run(["targetcli", "restoreconfig", str(ours)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert canon(json.loads(ok(lioctl("save", "-")).stdout)) == canon(json.loads(ours.read_text()))
    ok(lioctl("clear", "--yes"))
