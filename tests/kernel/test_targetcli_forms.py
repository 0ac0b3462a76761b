"""What targetcli users reach for (issue #17): scoped restore, exclusive=, control=,
/backstores/user:HANDLER, changemedium, untag, prefs, refresh, delete save=. Against real LIO."""

from __future__ import annotations

import json

import pytest

import cfs
import initiator

MiB = 1 << 20
T1 = "iqn.2003-01.org.example:scope1"
T2 = "iqn.2003-01.org.example:scope2"
T3 = "iqn.2003-01.org.example:scope3"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def one_line_error(r, code, text):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def _attr(target, name):
    return (cfs.ROOT / "iscsi" / target / "tpgt_1/attrib" / name).read_text().strip()


def _tpg(cfg, wwn):
    return next(t for t in cfg["targets"] if t["wwn"] == wwn)["tpgs"][0]


def test_scoped_restore_leaves_the_other_target_and_its_session(lioctl, tmp_path):
    ok(lioctl("export", tmp_path / "t2.img", "--lun-size", "8M", "--iqn", T2))
    ok(lioctl(input="\n".join([
        "/backstores/ramdisk create r1 2M",
        f"/iscsi create {T1}",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
    ]) + "\n"))
    f = tmp_path / "saved.json"
    ok(lioctl("save", f))
    cfg = json.loads(f.read_text())
    # the file differs from what runs in both targets, and names a third one
    cfg["storage_objects"] += [{"name": "r3", "plugin": "ramdisk", "size": MiB, "attributes": {}},
                               {"name": "r4", "plugin": "ramdisk", "size": MiB, "attributes": {}}]
    _tpg(cfg, T1)["attributes"]["default_cmdsn_depth"] = 33
    _tpg(cfg, T1)["luns"].append({"index": 1, "storage_object": "/backstores/ramdisk/r3"})
    _tpg(cfg, T2)["attributes"]["default_cmdsn_depth"] = 44
    _tpg(cfg, T2)["luns"] = []
    cfg["targets"].append({"wwn": T3, "fabric": "iscsi", "tpgs": [{"tag": 1, "luns": [],
                                                                   "portals": [], "node_acls": []}]})
    f.write_text(json.dumps(cfg))
    t2_depth = _attr(T2, "default_cmdsn_depth")
    initiator.start()
    initiator.discover()
    initiator.login(T2)
    try:
        dev = initiator.disk_for(T2)
        sessions_before = initiator.sh("iscsiadm", "-m", "session").stdout
        dry = ok(lioctl("restore", f, "--target", T1, "--prune", "--dry-run")).stdout
        assert T1 in dry and T2 not in dry and T3 not in dry and "r4" not in dry, dry
        ok(lioctl("restore", f, "--target", T1, "--prune"))
        assert _attr(T1, "default_cmdsn_depth") == "33"
        assert (cfs.ROOT / "iscsi" / T1 / "tpgt_1/lun/lun_1").is_dir()
        assert list(cfs.ROOT.glob("core/rd_mcp_*/r3")) and not list(cfs.ROOT.glob("core/rd_mcp_*/r4"))
        # the other target: untouched (its LUN kept despite --prune), the third not made
        assert _attr(T2, "default_cmdsn_depth") == t2_depth
        assert (cfs.ROOT / "iscsi" / T2 / "tpgt_1/lun/lun_0").is_dir()
        assert not (cfs.ROOT / "iscsi" / T3).exists()
        # targetcli's key form; one storage object only
        ok(lioctl("restore", f, "storage_object=r4"))
        assert list(cfs.ROOT.glob("core/rd_mcp_*/r4")) and not (cfs.ROOT / "iscsi" / T3).exists()
        # the session on the other target is the same one (same sid), still doing I/O
        assert initiator.sh("iscsiadm", "-m", "session").stdout == sessions_before
        with open(dev, "rb", buffering=0) as d:
            assert len(d.read(4096)) == 4096
    finally:
        initiator.logout(T2)
    ok(lioctl("clear", "--yes"))


def test_scoped_restore_clear_remakes_only_that_target(lioctl, tmp_path):
    ok(lioctl(input="\n".join([
        "/backstores/ramdisk create r1 1M", "/backstores/ramdisk create r2 1M",
        "/backstores/ramdisk create r3 1M",
        f"/iscsi create {T1}", f"/iscsi create {T2}",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"/iscsi/{T2}/tpg1/luns create /backstores/ramdisk/r2",
    ]) + "\n"))
    f = tmp_path / "saved.json"
    ok(lioctl("save", f))
    ok(lioctl(input="\n".join([
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r3",
        f"/iscsi/{T2}/tpg1/luns create /backstores/ramdisk/r3",
        f"/iscsi/{T1}/tpg1 set attribute default_cmdsn_depth=77",
    ]) + "\n"))
    r1_before = next(cfs.ROOT.glob("core/rd_mcp_*/r1"))
    ok(lioctl("restore", f, "--clear", f"target={T1}"))
    t1 = cfs.ROOT / "iscsi" / T1 / "tpgt_1"
    assert sorted(p.name for p in (t1 / "lun").iterdir()) == ["lun_0"]
    assert _attr(T1, "default_cmdsn_depth") != "77"
    assert not r1_before.exists() and list(cfs.ROOT.glob("core/rd_mcp_*/r1")), "r1 re-made"
    assert sorted(p.name for p in (cfs.ROOT / "iscsi" / T2 / "tpgt_1/lun").iterdir()) == ["lun_0", "lun_1"]
    ok(lioctl("clear", "--yes"))


def test_scoped_restore_refuses_to_reach_outside(lioctl, tmp_path):
    """A storage object the target needs re-created while another target uses it: one line,
    nothing changed."""
    ok(lioctl(input="\n".join([
        "/backstores/ramdisk create r1 2M",
        f"/iscsi create {T1}", f"/iscsi create {T2}",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"/iscsi/{T2}/tpg1/luns create /backstores/ramdisk/r1",
    ]) + "\n"))
    f = tmp_path / "saved.json"
    ok(lioctl("save", f))
    cfg = json.loads(f.read_text())
    next(s for s in cfg["storage_objects"] if s["name"] == "r1")["size"] = 4 * MiB
    f.write_text(json.dumps(cfg))
    before = cfs.tree()
    one_line_error(lioctl("restore", f, f"target={T1}"), 1, "outside")
    one_line_error(lioctl("restore", f, "--target", "iqn.2003-01.org.example:absent"), 4,
                   "is not in the file")
    one_line_error(lioctl("restore", f, "tgt=x"), 2, "is not target=IQN")
    assert cfs.tree() == before
    ok(lioctl("clear", "--yes"))


def _handler_stopped(lioctl):
    from lioctl.tcmu import daemon
    pid = daemon.running_pid()
    if pid and pid > 0:
        lioctl("tcmu", "stop")


def _read_direct(dev: str, offset: int, length: int) -> bytes:
    import mmap
    import os
    buf = mmap.mmap(-1, length)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buf], offset)
    finally:
        os.close(fd)
    return bytes(buf)


def _disk_by_serial(so_dir) -> str:
    import os
    serial = (so_dir / "wwn/vpd_unit_serial").read_text().split(":")[1].strip()

    def find():
        for d in os.listdir("/sys/block"):
            try:
                if serial.encode() in open(f"/sys/block/{d}/device/vpd_pg80", "rb").read() \
                        and initiator.opens(f"/dev/{d}"):
                    return f"/dev/{d}"
            except OSError:
                continue
    return initiator.wait_for(find, f"a disk with unit serial {serial}")


def test_block_exclusive_parameter(lioctl, tmp_path):
    with initiator.loop_disk(tmp_path / "loop.img", MiB) as dev:
        ok(lioctl("/backstores/block", "create", "b1", dev, "exclusive=true"))
        b1 = next(cfs.ROOT.glob("core/iblock_*/b1"))
        assert (b1 / "enable").read_text().strip() == "1"
        ok(lioctl("/backstores/block", "delete", "b1"))
        r = lioctl("/backstores/block", "create", "b2", dev, "exclusive=false")
        info = ""
        if r.returncode == 0:   # Linux 6.17+: the device is opened shared
            info = next(cfs.ROOT.glob("core/iblock_*/b2")).joinpath("info").read_text()
            assert "exclusive: 0" in info
            ok(lioctl("/backstores/block", "delete", "b2"))
        else:                   # older kernels ignore exclusive=0: refused, rolled back
            one_line_error(r, 1, "exclusive=false needs Linux 6.17")
        one_line_error(lioctl("/backstores/block", "create", "b3", dev, "exclusive=maybe"), 1, "exclusive")
    assert cfs.snapshot() == []


def test_user_handler_paths_control_and_changemedium(lioctl, tmp_path):
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(b"A" * 8 * MiB)
    b.write_bytes(b"B" * 16 * MiB)
    try:
        kinds = [c["name"] for c in json.loads(ok(lioctl("/backstores", "ls", "--json")).stdout)["children"]]
        assert {"user:lioctl_file", "user:lioctl_ram"} <= set(kinds)
        bad = lioctl("/backstores/user:lioctl_file", "create", "u0", "8M", a, "control=max_data_area=1")
        one_line_error(bad, 1, "is not KEY=VALUE")
        assert cfs.snapshot() == []
        ok(lioctl("/backstores/user:lioctl_file", "create", "u1", "8M", a, "control=max_data_area_mb=64"))
        u1 = next(cfs.ROOT.glob("core/user_*/u1"))
        info = (u1 / "info").read_text()
        assert "MaxDataAreaMB: 64" in info and f"lioctl_file/{a}" in info, info
        tree = json.loads(ok(lioctl("/backstores/user:lioctl_file", "ls", "--json")).stdout)
        assert [c["name"] for c in tree["children"]] == ["u1"]
        assert json.loads(ok(lioctl("/backstores/user:lioctl_ram", "ls", "--json")).stdout)["children"] == []
        wwn = json.loads(ok(lioctl("/loopback", "create", "--json")).stdout)["wwn"]
        ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/user:lioctl_file/u1"))
        dev = _disk_by_serial(u1)
        assert _read_direct(dev, 0, 4096) == b"A" * 4096
        ok(lioctl("/backstores/user:lioctl_file", "changemedium", "u1", "16M", b))
        initiator.wait_for(lambda: _read_direct(dev, 0, 4096) == b"B" * 4096, "the new medium")
        assert (u1 / "attrib/dev_config").read_text().strip() == f"lioctl_file/{b}"
        assert "Last LBA=32767" in initiator.sg("sg_readcap", dev).stdout
        # the initiator sees the new size once it rescans; the data past the old end is there
        with open(f"/sys/block/{dev[5:]}/device/rescan", "w") as f:
            f.write("1")
        initiator.wait_for(lambda: open(f"/sys/block/{dev[5:]}/size").read().strip() == str(32768),
                           "the initiator to see 16 MiB")
        assert _read_direct(dev, 12 * MiB, 4096) == b"B" * 4096
        one_line_error(lioctl("/backstores/user:lioctl_file", "changemedium", "nope", "1M", b), 4,
                       "does not exist")
        ok(lioctl("/loopback", "delete", wwn))
        ok(lioctl("/backstores/user:lioctl_file", "delete", "u1"))
    finally:
        _handler_stopped(lioctl)
    assert cfs.snapshot() == []


I1 = "iqn.1994-05.com.example:tag1"
I2 = "iqn.1994-05.com.example:tag2"
I3 = "iqn.1994-05.com.example:tag3"


def test_untag(lioctl):
    acls = f"/iscsi/{T1}/tpg1/acls"
    ok(lioctl(input="\n".join([
        "/backstores/ramdisk create r1 1M", f"/iscsi create {T1}",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"{acls} create {I1} tag=grp", f"{acls} create {I2} tag=grp", f"{acls} create {I3} tag=other",
    ]) + "\n"))
    base = cfs.ROOT / "iscsi" / T1 / "tpgt_1/acls"
    assert (base / I1 / "tag").read_text().strip() == "grp"
    out = json.loads(ok(lioctl(acls, "untag", "grp", "--json")).stdout)
    assert out["schema"] == 1 and out["untagged"] == [I1, I2] and out["changed"] is True
    assert [(base / i / "tag").read_text().strip() for i in (I1, I2, I3)] == ["", "", "other"]
    assert (base / I1 / "lun_0").is_dir(), "untag kept the ACL's settings"
    ok(lioctl(f"{acls}/{I3}", "untag"))
    assert (base / I3 / "tag").read_text().strip() == ""
    one_line_error(lioctl(acls, "untag", "nosuch"), 4, "no ACL named or tagged nosuch")
    ok(lioctl("clear", "--yes"))


def _shell(tmp_path, monkeypatch):
    from lioctl.shell.session import ShellSession
    from lioctl.verbs import Options
    monkeypatch.setenv("HOME", str(tmp_path))
    return ShellSession(Options())


def test_prefs_auto_cd_logfile_and_max_backup_files(tmp_path, monkeypatch, capsys):
    from lioctl import prefs
    from lioctl.errors import LioError
    sh = _shell(tmp_path, monkeypatch)
    log = tmp_path / "ops.log"
    sh.execute(f"set global auto_cd_after_create=true logfile={log} loglevel=debug max_backup_files=2")
    assert prefs.load()["backup_count"] == 2 and prefs.load().get("max_backup_files") == 2
    sh.execute("get global max_backup_files backup_count")
    assert "max_backup_files=2\nbackup_count=2" in capsys.readouterr().out
    try:
        sh.execute("/backstores/ramdisk create r1 1M")
        assert sh.cwd == "/backstores/ramdisk/r1"
        sh.execute(f"/iscsi create {T1}")
        assert sh.cwd == f"/iscsi/{T1}"
        sh.execute("tpg1/acls create " + I1)
        assert sh.cwd == f"/iscsi/{T1}/tpg1/acls/{I1}"
        sh.execute("set auth userid=u1 password=secretpass123")
        sh.execute("cd /")
        sh.execute("/backstores/ramdisk create r2 1M")
        text = log.read_text()
        assert "create /sys/kernel/config/target/core/rd_mcp_" in text and f"/iscsi/{T1}" in text
        assert "write '********' to" in text and "secretpass123" not in text
        assert oct(log.stat().st_mode & 0o777) == "0o600"
        # backup_count (set as max_backup_files) bounds save's backups
        saved = tmp_path / "etc" / "saveconfig.json"
        saved.parent.mkdir()
        for i in range(4):
            sh.execute(f"/backstores/ramdisk create x{i} 1M")
            sh.execute(f"save {saved}")
        assert len(list((saved.parent / "backup").iterdir())) == 2
        with pytest.raises(LioError, match="loglevel is one of"):
            sh.execute("set global loglevel=loud")
    finally:
        sh.opts.yes = True
        sh.execute("clear")
    assert "remove /sys/kernel/config/target/core/rd_mcp_" in log.read_text()


def test_refresh_and_delete_save(lioctl, tmp_path, monkeypatch):
    from lioctl.saveconfig import store
    saved = tmp_path / "saveconfig.json"
    monkeypatch.setattr(store, "DEFAULT", str(saved))
    ok(lioctl(input="\n".join([
        "/backstores/ramdisk create r1 1M", "/backstores/ramdisk create r2 1M", f"/iscsi create {T1}",
        f"/iscsi/{T1}/tpg1/acls create {I1}",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r2",
    ]) + "\n"))
    ok(lioctl("save", saved))
    got = json.loads(ok(lioctl("/backstores/ramdisk", "refresh", "--json")).stdout)
    assert got["schema"] == 1 and got["output"] == "refresh"
    assert {k: got[k] for k in ("path", "storage_objects", "targets", "children")} == {
        "path": "/backstores/ramdisk", "storage_objects": 2, "targets": 1, "children": 2}
    assert "re-read configfs: 2 storage object(s), 1 target(s)" in ok(lioctl("/", "refresh")).stdout
    ok(lioctl("/backstores/ramdisk", "delete", "r1", "save=true", "--force"))
    cfg = json.loads(saved.read_text())
    assert [s["name"] for s in cfg["storage_objects"]] == ["r2"]
    tpg = cfg["targets"][0]["tpgs"][0]
    assert [lw["storage_object"] for lw in tpg["luns"]] == ["/backstores/ramdisk/r2"]
    assert [m["tpg_lun"] for m in tpg["node_acls"][0]["mapped_luns"]] == [1]
    assert len(list((tmp_path / "backup").iterdir())) == 1
    # without save= the file is left alone
    ok(lioctl("/backstores/ramdisk", "delete", "r2", "--force"))
    assert [s["name"] for s in json.loads(saved.read_text())["storage_objects"]] == ["r2"]
    ok(lioctl("clear", "--yes"))
