"""Every planner run against a configfs tree captured from the real kernel (host, no kernel).

tests/unit/data/live_configfs.json is what tests/kernel/capture_configfs.py recorded in the
guest: every backstore kind, an iSCSI target with two TPGs, LUNs, mapped LUNs, ACLs with CHAP,
a tag, portals (IPv4 and IPv6), discovery auth and an ALUA group, plus a loopback target. It is
laid out again under a temporary directory and read through lioctl's own snapshot reader, so
these tests plan against what the kernel really shows; that the plans apply is the kernel
tests' business.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lioctl import configfs
from lioctl.errors import LioError
from lioctl.plan import Symlink, Write
from lioctl.tree import snapshot
from test_export_plan import args_for

DATA = Path(__file__).parent / "data" / "live_configfs.json"
T1 = "iqn.2003-01.org.example:live1"
H1 = "iqn.1994-05.com.example:host1"
H2 = "iqn.1994-05.com.example:host2"
LB = "naa.5001405000000abc"


@pytest.fixture
def live(tmp_path, monkeypatch):
    """The captured tree under tmp_path/target, configfs.ROOT pointed at it. Files the kernel
    would not let be read (control, some statistics) are left out: reading them gives nothing
    either way."""
    data = json.loads(DATA.read_text())
    root = tmp_path / "target"
    root.mkdir()
    for d in data["dirs"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f, (mode, value) in data["files"].items():
        if value is None:
            continue
        p = root / f
        p.write_text(value)
        p.chmod(int(mode, 8))
    for link, target in data["links"].items():
        os.symlink(root / target, root / link)
    monkeypatch.setattr(configfs, "ROOT", str(root))
    monkeypatch.setattr(configfs, "CORE", str(root / "core"))
    monkeypatch.setattr(configfs, "module_loaded", lambda m: False)
    monkeypatch.delenv("LIOCTL_GENERIC_FABRICS", raising=False)
    return str(root)


def rel(live, path):
    return os.path.relpath(path, live)


def ops_of(plan, live):
    return [(type(op).__name__, rel(live, op.path)) for op in plan]


def test_snapshot_reads_every_kind_and_link(live):
    snap = snapshot.read()
    assert sorted(snap.storage_objects) == [
        ("block", "b1"), ("fileio", "f1"), ("fileio", "f2"), ("pscsi", "p1"),
        ("ramdisk", "r1"), ("ramdisk", "r2"), ("user", "u1"), ("user", "u2")]
    so = snap.storage_objects
    assert so[("fileio", "f1")].size == 8 << 20 and so[("fileio", "f1")].write_back
    assert not so[("fileio", "f2")].write_back
    assert so[("ramdisk", "r1")].size == 4 << 20 and so[("ramdisk", "r2")].size == 2 << 20
    assert so[("user", "u1")].user_config == "lioctl_file//tmp/lioctl-capture/u1.img"
    assert so[("user", "u2")].size == 2 << 20
    assert so[("block", "b1")].udev_path == "/dev/loop0"
    assert so[("fileio", "f1")].udev_path == "/tmp/lioctl-capture/f1.img"
    t = snap.fabrics["iscsi"].targets[T1]
    tpg1 = t.tpgs[1]
    assert [lun.storage_object.name for lun in tpg1.luns.values()] == ["f1", "b1", "r1", "u1"]
    assert sorted(tpg1.portals) == ["0.0.0.0:3260", "127.0.0.1:3261", "[::1]:3260"]
    assert tpg1.acls[H2].tag == "group1"
    assert {i: m.tpg_lun for i, m in tpg1.acls[H2].mapped_luns.items()} == {5: 2}
    assert tpg1.acls[H2].mapped_luns[5].write_protect
    assert [len(lun.storage_object.luns) for lun in tpg1.luns.values()] == [1, 1, 1, 1]
    assert tpg1.luns[2].alua_tg_pt_gp == "ag1"
    assert snap.fabrics["loopback"].targets[LB].tpgs[1].nexus.startswith("naa.")


def test_ls_summarises_each_kind(live):
    from lioctl.tree.nodes import Context, Root, resolve
    root = Root(Context(snapshot.read()))
    lines = {c.name: c.summary()[0] for k in resolve(root, "/backstores").children()
             for c in k.children()}
    assert lines["f1"] == "/tmp/lioctl-capture/f1.img (8MiB) write-back activated"
    assert lines["f2"] == "/tmp/lioctl-capture/f2.img (4MiB) write-thru activated"
    assert lines["r2"] == "(2MiB) activated"
    assert lines["u1"] == "lioctl_file//tmp/lioctl-capture/u1.img (4MiB) activated"
    assert lines["b1"].startswith("/dev/loop0")
    assert resolve(root, f"/iscsi/{T1}/tpg1").summary() == ("no-gen-acls, auth", True)
    handlers = [c.name for c in resolve(root, "/backstores").children()]
    assert "user:lioctl_file" in handlers and "user:lioctl_ram" in handlers


def dumped():
    from lioctl.saveconfig.dump import dump
    return dump(snapshot.read())


def test_dump_holds_each_kinds_own_keys(live):
    d = dumped()
    so = {s["name"]: s for s in d["storage_objects"]}
    assert (so["f1"]["dev"], so["f1"]["size"], so["f1"]["write_back"]) == ("/tmp/lioctl-capture/f1.img", 8 << 20, True)
    assert so["f2"]["write_back"] is False
    assert so["b1"]["dev"] == "/dev/loop0" and so["b1"]["readonly"] is False and "exclusive" not in so["b1"]
    assert so["r2"]["nullio"] is True and "nullio" not in so["r1"]
    assert so["p1"]["dev"].startswith("/dev/sd")
    assert so["u1"]["config"] == "lioctl_file//tmp/lioctl-capture/u1.img"
    assert so["u2"]["size"] == 2 << 20 and so["u2"]["hw_max_sectors"] == 2048
    assert so["u1"]["control"] == "max_data_area_mb=1024,nl_reply_supported=-1"  # Debian targetcli: no wait on enable
    assert [g["name"] for g in so["r1"]["alua_tpgs"]] == ["ag1", "default_tg_pt_gp"]
    t = next(t for t in d["targets"] if t["fabric"] == "iscsi")
    tpg1 = t["tpgs"][0]
    acl = {a["node_wwn"]: a for a in tpg1["node_acls"]}
    assert acl[H1]["chap_password"] == "p1secret12" and acl[H1]["chap_mutual_userid"] == "m1"
    assert acl[H2]["mapped_luns"][0]["write_protect"] is True and acl[H2]["tag"] == "group1"
    assert tpg1["chap_userid"] == "tpguser"
    assert sorted((p["ip_address"], p["port"]) for p in tpg1["portals"]) == [
        ("0.0.0.0", 3260), ("127.0.0.1", 3261), ("::1", 3260)]
    assert d["fabric_modules"] == [{"name": "iscsi", "discovery_userid": "disc",
                                    "discovery_password": "discsecret1", "discovery_enable_auth": True}]


def restore_plan(snap, desired, prune=False):
    from lioctl.saveconfig import restore_plan
    return restore_plan.plan_restore(snap, desired, prune=prune)


@pytest.mark.parametrize("prune", [False, True])
def test_restoring_its_own_dump_plans_nothing(live, prune):
    ch = restore_plan(snapshot.read(), dumped(), prune)
    assert list(ch.plan) == [] and ch.lines == []


def test_a_changed_attribute_plans_exactly_that_write(live):
    d = dumped()
    so = next(s for s in d["storage_objects"] if s["name"] == "r1")
    so["attributes"]["emulate_tpu"] = 1
    tpg1 = next(t for t in d["targets"] if t["fabric"] == "iscsi")["tpgs"][0]
    tpg1["parameters"]["MaxConnections"] = "4"
    ch = restore_plan(snapshot.read(), d)
    assert ops_of(ch.plan, live) == [
        ("Write", "core/rd_mcp_0/r1/attrib/emulate_tpu"),
        ("Write", f"iscsi/{T1}/tpgt_1/param/MaxConnections")]
    assert [op.value for op in ch.plan] == ["1", "4"]
    assert ch.lines == ["~ storage object ramdisk/r1 attribute emulate_tpu (0 -> 1)",
                        f"~ iscsi/{T1}/tpgt_1 parameter MaxConnections (1 -> 4)"]


def test_an_acl_left_out_is_removed_only_with_prune(live):
    d = dumped()
    tpg1 = next(t for t in d["targets"] if t["fabric"] == "iscsi")["tpgs"][0]
    tpg1["node_acls"] = [a for a in tpg1["node_acls"] if a["node_wwn"] != H2]
    assert list(restore_plan(snapshot.read(), d).plan) == []
    ch = restore_plan(snapshot.read(), d, prune=True)
    acl = f"iscsi/{T1}/tpgt_1/acls/{H2}"
    assert [(k, p) for k, p in ops_of(ch.plan, live)] == [
        ("Unlink", next(rel(live, os.path.join(live, acl, "lun_5", n))
                        for n in os.listdir(os.path.join(live, acl, "lun_5"))
                        if os.path.islink(os.path.join(live, acl, "lun_5", n)))),
        ("Rmdir", f"{acl}/lun_5"), ("Rmdir", acl)]
    assert ch.lines == [f"- /iscsi/{T1}/tpg1/acls/{H2}"]


def test_a_new_lun_and_mapped_lun_in_the_file_are_made(live):
    d = dumped()
    tpg2 = next(t for t in d["targets"] if t["fabric"] == "iscsi")["tpgs"][1]
    tpg2["luns"].append({"storage_object": "/backstores/fileio/f1", "index": 7, "alias": "abc"})
    tpg1 = next(t for t in d["targets"] if t["fabric"] == "iscsi")["tpgs"][0]
    next(a for a in tpg1["node_acls"] if a["node_wwn"] == H2)["mapped_luns"].append(
        {"index": 9, "tpg_lun": 0, "write_protect": False})
    ch = restore_plan(snapshot.read(), d)
    got = ops_of(ch.plan, live)
    acl = f"iscsi/{T1}/tpgt_1/acls/{H2}"
    assert got[0] == ("Mkdir", f"{acl}/lun_9") and got[1][0] == "Symlink"
    assert got[2:] == [("Mkdir", f"iscsi/{T1}/tpgt_2/lun/lun_7"),
                       ("Symlink", f"iscsi/{T1}/tpgt_2/lun/lun_7/abc")]
    assert ch.plan.ops[3].target == os.path.join(live, "core/fileio_0/f1")
    assert ch.lines == [f"+ iscsi/{T1}/tpgt_1 ACL {H2} mapped LUN 9", f"+ iscsi/{T1}/tpgt_2 LUN 7"]


def test_a_storage_object_whose_size_changed_is_remade_with_its_luns(live):
    d = dumped()
    so = next(s for s in d["storage_objects"] if s["name"] == "r2")
    so["size"] = 8 << 20
    ch = restore_plan(snapshot.read(), d)
    got = ops_of(ch.plan, live)
    assert ("RemoveStorageObject", "core/rd_mcp_1/r2") in got
    assert ("Mkdir", "core/rd_mcp_2/r2") in got         # a free HBA; the old one goes
    assert ("Rmdir", "core/rd_mcp_1") in got
    assert ch.lines[0] == f"~ storage object ramdisk/r2 (size {2 << 20} -> {8 << 20}: re-created)"
    assert ("Mkdir", f"iscsi/{T1}/tpgt_2/lun/lun_0") in got   # its LUN made again
    assert any(p.endswith("rd_pages=2048") for p in
               [f"{op.path}={op.value}" for op in ch.plan if isinstance(op, Write)])


def test_restore_into_an_empty_configfs_makes_everything(live, tmp_path):
    from lioctl.tree.snapshot import Snapshot
    d = dumped()      # less the block and pscsi objects: their devices are the guest's
    d["storage_objects"] = [s for s in d["storage_objects"] if s["plugin"] not in ("block", "pscsi")]
    for so in d["storage_objects"]:     # and its files are here
        if so["plugin"] == "fileio" or so["name"] == "u1":
            f = tmp_path / f"{so['name']}.img"
            f.write_bytes(b"")
            os.truncate(f, so["size"])
            so.update(dev=str(f)) if so["plugin"] == "fileio" else so.update(config=f"lioctl_file/{f}")
    for t in d["targets"]:
        for tpg in t["tpgs"]:
            gone = {lun["index"] for lun in tpg["luns"] if lun["storage_object"].split("/")[2] in ("block", "pscsi")}
            tpg["luns"] = [lun for lun in tpg["luns"] if lun["index"] not in gone]
            for a in tpg["node_acls"]:
                a["mapped_luns"] = [m for m in a["mapped_luns"] if m["tpg_lun"] not in gone]
    empty = Snapshot()
    ch = restore_plan(empty, d)
    made = [p for k, p in ops_of(ch.plan, live) if k == "Mkdir"]
    assert len([p for p in made if p.startswith("core/") and p.count("/") == 2]) == 6
    assert sum(1 for k, _ in ops_of(ch.plan, live) if k == "Symlink") == 10
    assert f"iscsi/{T1}/tpgt_1/np/[::1]:3260" in made and f"iscsi/{T1}/tpgt_1/np/127.0.0.1:3261" in made
    assert f"loopback/{LB}/tpgt_1" in made


def test_delete_target_removes_children_first_and_disables_first(live):
    from lioctl.tree import targets as tg
    snap = snapshot.read()
    got = ops_of(tg.plan_delete_target(snap.fabrics["iscsi"].targets[T1]), live)
    assert got[0] == ("Write", f"iscsi/{T1}/tpgt_1/enable")
    assert got[-1] == ("Rmdir", f"iscsi/{T1}")
    removed = [p for k, p in got if k == "Rmdir"]
    for p in removed:       # nothing is removed before what is inside it
        assert not any(q.startswith(p + "/") for q in removed[removed.index(p) + 1:]), p
    assert sum(1 for k, _ in got if k == "Unlink") == 12


def test_clear_removes_lossy_objects_last(live):
    from lioctl.saveconfig import restore_plan
    got = ops_of(restore_plan.plan_clear(snapshot.read()), live)
    sos = [p for k, p in got if k == "RemoveStorageObject"]
    assert [p.split("/")[1].rpartition("_")[0] for p in sos] == \
        ["iblock", "fileio", "fileio", "pscsi", "rd_mcp", "rd_mcp", "user", "user"]
    assert got[-1] == ("Write", "iscsi/discovery_auth/enforce_discovery_auth")
    assert all(k == "Rmdir" for k, p in got if p.count("/") == 1 and p.startswith("core/"))


def test_create_planners_against_the_live_tree(live, tmp_path):
    from lioctl.tree import targets as tg
    snap = snapshot.read()
    tpg1 = snap.fabrics["iscsi"].targets[T1].tpgs[1]
    plan, idx = tg.plan_lun(tpg1, snap.so("fileio", "f2").path)
    assert idx == 4
    got = ops_of(plan, live)
    assert got[:2] == [("Mkdir", f"iscsi/{T1}/tpgt_1/lun/lun_4"), ("Symlink", got[1][1])]
    assert [p for k, p in got if k == "Mkdir"][1:] == [f"iscsi/{T1}/tpgt_1/acls/{H1}/lun_4",
                                                        f"iscsi/{T1}/tpgt_1/acls/{H2}/lun_4"]
    plan, w = tg.plan_acl(tpg1, "iqn.1994-05.com.example:host3")
    assert len([op for op in plan if isinstance(op, Symlink)]) == 4
    with pytest.raises(LioError, match="already exists"):
        tg.plan_portal(tpg1, "[::1]:3260")
    with pytest.raises(LioError, match="already exists"):
        tg.plan_acl(tpg1, H1)
    plan, w = tg.plan_target(snap, "iscsi", "iqn.2003-01.org.example:live2")
    assert [k for k, _ in ops_of(plan, live)] == ["Modprobe", "Mkdir", "Mkdir", "Mkdir", "Write"]
    with pytest.raises(LioError, match="already exists"):
        tg.plan_target(snap, "iscsi", T1)


def test_export_beside_the_live_tree(live, tmp_path):
    from lioctl.commands import export
    img = tmp_path / "new.img"
    img.write_bytes(b"\0" * 8192)
    snap = snapshot.read()
    plan, info = export.build(args_for(img, "--acl", H1), snap)
    made = [p for k, p in ops_of(plan, live) if k == "Mkdir"]
    assert made[:2] == ["core/fileio_2", "core/fileio_2/new.img"]       # the next free HBA
    assert info["portals"] == ["0.0.0.0:3260"] and info["acls"] == [H1]
    with pytest.raises(LioError, match="already exists"):
        export.build(args_for(img, "--iqn", T1), snap)
    with pytest.raises(LioError, match="already used"):
        export.build(args_for("/tmp/lioctl-capture/f1.img", "--lun-size", "1M"), snap)


def test_delete_backstore_in_use_names_its_user(live):
    from lioctl.tree.nodes import Context, Root, resolve
    root = Root(Context(snapshot.read()))
    with pytest.raises(LioError, match=f"used by LUN 1 of {T1} tpg2"):
        resolve(root, "/backstores/pscsi").ui_delete("p1")
    root = Root(Context(snapshot.read(), force=True))
    got = ops_of(resolve(root, "/backstores/pscsi").ui_delete("p1").plan, live)
    assert [k for k, _ in got] == ["Unlink", "Rmdir", "RemoveStorageObject", "Rmdir"]


def test_verb_completion_on_the_live_tree(live):
    """unexport offers the running targets (a medium's spec of a served image once ran over
    the verb's spec and completion came back empty); tcmu start offers the user backstores."""
    from lioctl.completion import scripts
    assert scripts.candidates("lioctl unexport iqn.2003-01.org.example:li")[:1] == ["iqn.2003-01.org.example:live1"]
    assert scripts.candidates("lioctl tcmu start ") == ["user_0/u1", "user_1/u2"]
