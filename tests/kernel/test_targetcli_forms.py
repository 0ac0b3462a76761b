"""What targetcli users reach for (issue #17): scoped restore, exclusive=, control=,
/backstores/user:HANDLER, changemedium, untag, prefs, refresh, delete save=. Against real LIO."""

from __future__ import annotations

import json

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
    one_line_error(lioctl("restore", f, "--target", "iqn.2003-01.org.example:absent"), 1,
                   "is not in the file")
    one_line_error(lioctl("restore", f, "tgt=x"), 2, "is not target=IQN")
    assert cfs.tree() == before
    ok(lioctl("clear", "--yes"))
