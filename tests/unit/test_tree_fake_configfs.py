"""Snapshot, nodes, plan builders and sessions over a fake configfs tree (host, no kernel)."""

from __future__ import annotations

import os

import pytest

from lioctl import configfs
from lioctl.errors import LioError, UsageError
from lioctl.plan import Mkdir, Rmdir, Symlink, Unlink
from lioctl.backstores import fileio, ramdisk
from lioctl.tree import fabrics, snapshot, targets as tg
from lioctl.tree.nodes import Context, Root, resolve

IQN = "iqn.2003-01.org.example:t1"
C1 = "iqn.1994-05.com.example:c1"
C2 = "iqn.1994-05.com.example:c2"
LB = "naa.5001405000000abc"

ACL_INFO = """InitiatorName: iqn.1994-05.com.example:c1
InitiatorAlias: host1
LIO Session ID: 3   ISID: 0x400001370000  TSIH: 1  SessionType: Normal
Session State: TARG_SESS_STATE_LOGGED_IN
---------------------[iSCSI Session Values]-----------------------
  CmdSN/WR  :  CmdSN/WC  :  ExpCmdSN  :  MaxCmdSN  :     ITT    :     TTT
 0x00000047   0x00000047   0x00000047   0x000000c6   0x00000049   0xffffffff
----------------------[iSCSI Connections]-------------------------
CID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN
   Address 127.0.0.1 TCP  StatSN: 0x00000042
"""


def put(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A configfs-shaped tree: 2 fileio objects (one in use), an iSCSI target with 2 LUNs,
    2 ACLs (one logged in), a demo-mode session, a portal, and a loopback target with a nexus."""
    r = str(tmp_path / "target")
    core = f"{r}/core"
    for i, name in enumerate(("d1", "d2")):
        so = f"{core}/fileio_{i}/{name}"
        put(f"{so}/info", f"Status: ACTIVATED  Max Queue Depth: 0  SectorSize: 512  "
                          f"HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /srv/my {name}.img  "
                          f"Size: 8388608  Mode: O_DSYNC\n")
        put(f"{so}/enable", "1\n")
        put(f"{so}/udev_path", f"/srv/my {name}.img\n")
        put(f"{so}/wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: 1234-abcd\n")
        put(f"{so}/attrib/emulate_write_cache", "0\n")
        put(f"{so}/attrib/block_size", "512\n")
        os.makedirs(f"{so}/alua/default_tg_pt_gp")
    tpg = f"{r}/iscsi/{IQN}/tpgt_1"
    put(f"{tpg}/enable", "1\n")
    put(f"{tpg}/dynamic_sessions", "iqn.1994-05.com.example:demo\0\n\0")  # as the kernel shows it
    put(f"{tpg}/attrib/generate_node_acls", "1\n")
    put(f"{tpg}/param/HeaderDigest", "CRC32C,None\n")
    put(f"{tpg}/auth/password", "\n")
    os.makedirs(f"{tpg}/np/0.0.0.0:3260")
    os.makedirs(f"{tpg}/lun/lun_0")
    os.symlink(f"{core}/fileio_0/d1", f"{tpg}/lun/lun_0/aaaa")
    os.makedirs(f"{tpg}/lun/lun_2")
    for acl, info in ((C1, ACL_INFO), (C2, "No active iSCSI Session for Initiator Endpoint: x\n")):
        put(f"{tpg}/acls/{acl}/info", info)
        put(f"{tpg}/acls/{acl}/auth/password", "s3cret\n")
        os.makedirs(f"{tpg}/acls/{acl}/lun_0")
        os.symlink(f"{tpg}/lun/lun_0", f"{tpg}/acls/{acl}/lun_0/bbbb")
    put(f"{r}/iscsi/discovery_auth/enforce_discovery_auth", "0\n")
    put(f"{r}/loopback/{LB}/tpgt_1/nexus", "naa.5001405000000def\n")
    os.makedirs(f"{r}/loopback/{LB}/tpgt_1/lun")
    monkeypatch.setattr(configfs, "ROOT", r)
    monkeypatch.setattr(configfs, "CORE", core)
    monkeypatch.setattr(configfs, "module_loaded", lambda m: False)
    monkeypatch.delenv("LIOCTL_GENERIC_FABRICS", raising=False)
    return r


def node(path, **kw):
    return resolve(Root(Context(snapshot.read(), **kw)), path)


def test_snapshot_reads_objects_links_and_users(root):
    snap = snapshot.read()
    d1, d2 = snap.so("fileio", "d1"), snap.so("fileio", "d2")
    assert d1.udev_path == "/srv/my d1.img" and d1.size == 8 << 20 and d1.wwn == "1234-abcd"
    assert [lun.index for lun in d1.luns] == [0] and d2.luns == []
    tpg = snap.fabrics["iscsi"].targets[IQN].tpgs[1]
    assert list(tpg.luns) == [0, 2] and tpg.luns[2].storage_object is None
    assert list(tpg.acls) == [C1, C2] and tpg.acls[C1].mapped_luns[0].tpg_lun == 0
    assert list(tpg.portals) == ["0.0.0.0:3260"]
    assert snap.fabrics["loopback"].targets[LB].tpgs[1].nexus == "naa.5001405000000def"


def test_ls_json_tree_has_targetcli_paths(root):
    data = node("/").ui_ls().data
    names = [c["name"] for c in data["children"]]
    assert names[0] == "backstores" and "iscsi" in names and "loopback" in names
    tpg1 = node(f"/iscsi/{IQN}/tpg1").ui_ls().data
    assert [c["name"] for c in tpg1["children"]] == ["acls", "luns", "portals"]
    assert node(f"/iscsi/{IQN}/tpg1/luns/lun0").path == f"/iscsi/{IQN}/tpg1/luns/lun0"
    assert node("/backstores/fileio", ).ui_ls(depth="0").data.get("children") is None


def test_resolve_names_the_missing_part(root):
    with pytest.raises(LioError, match=r"'nope' not found under /iscsi"):
        node("/iscsi/nope/tpg1")
    assert node("/iscsi/../backstores/./fileio").path == "/backstores/fileio"


def test_get_hides_secrets_unless_asked(root):
    acl = f"/iscsi/{IQN}/tpg1/acls/{C1}"
    assert node(acl).ui_get("auth").data == {"auth": {"password": "********"}}
    assert node(acl, show_secrets=True).ui_get("auth").data == {"auth": {"password": "s3cret"}}
    with pytest.raises(UsageError, match="no group 'bogus'"):
        node(acl).ui_get("bogus")
    with pytest.raises(LioError, match="no 'nosuch'"):
        node(acl).ui_get("auth", "nosuch")


def test_set_validates_before_planning(root):
    tpg = node(f"/iscsi/{IQN}/tpg1")
    plan = tpg.ui_set("attribute", generate_node_acls="off").plan
    assert [(op.path.rsplit("/", 1)[1], op.value) for op in plan] == [("generate_node_acls", "0")]
    with pytest.raises(LioError, match="not one of"):
        tpg.ui_set("parameter", HeaderDigest="MD5")
    with pytest.raises(LioError, match="no 'nosuch'"):
        tpg.ui_set("attribute", nosuch="1")


def test_new_lun_maps_to_every_acl_and_takes_the_first_free_index(root):
    snap = snapshot.read()
    tpg = snap.fabrics["iscsi"].targets[IQN].tpgs[1]
    plan, idx = tg.plan_lun(tpg, snap.so("fileio", "d2").path)
    assert idx == 1
    kinds = [type(op).__name__ for op in plan]
    assert kinds == ["Mkdir", "Symlink"] + ["Mkdir", "Symlink"] * 2
    ml = [op.path for op in plan if isinstance(op, Mkdir)][1:]
    assert ml == [f"{tpg.path}/acls/{C1}/lun_1", f"{tpg.path}/acls/{C2}/lun_1"]


@pytest.mark.parametrize("index,text", [("65536", "out of range"), ("-1", "out of range"),
                                        ("x", "not a number"), ("0", "already exists")])
def test_bad_lun_indexes_are_refused(root, index, text):
    with pytest.raises(LioError, match=text):
        node(f"/iscsi/{IQN}/tpg1/luns").ui_create("/backstores/fileio/d2", lun=index)


def test_new_acl_maps_every_lun_and_rejects_duplicates(root):
    luns = node(f"/iscsi/{IQN}/tpg1/acls")
    plan = luns.ui_create("IQN.1994-05.com.example:C3").plan
    assert plan.ops[0].path.endswith("/acls/iqn.1994-05.com.example:c3")
    assert sum(isinstance(op, Symlink) for op in plan) == 2
    with pytest.raises(LioError, match="already exists"):
        luns.ui_create(C1)
    with pytest.raises(LioError, match="not valid"):
        luns.ui_create("iqn.bogus")


def test_backstore_in_use_refused_naming_the_user_then_forced(root):
    kind = node("/backstores/fileio")
    with pytest.raises(LioError, match=rf"used by LUN 0 of {IQN} tpg1; delete the LUN first"):
        kind.ui_delete("d1")
    forced = node("/backstores/fileio", force=True).ui_delete("d1").plan
    paths = [(type(op).__name__, op.path.split("/target/", 1)[1]) for op in forced]
    # mapped LUNs, then the LUN, then the object and its HBA
    assert paths[-2:] == [("RemoveStorageObject", "core/fileio_0/d1"), ("Rmdir", "core/fileio_0")]
    assert paths.index(("Rmdir", f"iscsi/{IQN}/tpgt_1/lun/lun_0")) > \
        paths.index(("Rmdir", f"iscsi/{IQN}/tpgt_1/acls/{C1}/lun_0"))


def test_delete_target_children_first(root):
    plan = node("/iscsi").ui_delete(IQN).plan
    removed = [op.path for op in plan if isinstance(op, (Rmdir, Unlink))]
    for i, p in enumerate(removed):
        assert not any(q.startswith(p + "/") for q in removed[i + 1:]), f"{p} removed before a child"
    assert removed[-1].endswith(f"/iscsi/{IQN}")
    assert plan.ops[0].path.endswith("tpgt_1/enable") and plan.ops[0].value == "0"


@pytest.mark.parametrize("name,text", [("a/b", "'/'"), ("..", "'.'"), ("", "empty"),
                                       ("x" * 200, "at most"), ("a b", "spaces")])
def test_bad_backstore_names(root, name, text):
    with pytest.raises(LioError, match=text):
        ramdisk.plan_ramdisk(snapshot.read(), name, "1M")


def test_duplicate_backstore_and_file_in_use(root, tmp_path):
    with pytest.raises(LioError, match="fileio/d1 already exists"):
        fileio.plan_fileio(snapshot.read(), "d1", str(tmp_path / "x.img"), "1M")
    with pytest.raises(LioError, match="already used by backstore fileio/d2"):
        fileio.plan_fileio(snapshot.read(), "d3", "/srv/my d2.img")


def test_fileio_plan_creates_a_sparse_file_with_spaces_in_its_name(root, tmp_path):
    f = tmp_path / "new disk.img"
    plan = fileio.plan_fileio(snapshot.read(), "n1", str(f), "10M", write_back=False)
    assert type(plan.ops[0]).__name__ == "CreateFile" and plan.ops[0].size == 10 << 20
    ctl = [op.value for op in plan if op.path.endswith("/control")]
    assert ctl[0] == f"fd_dev_name={f},fd_dev_size={10 << 20}"
    assert not any("fd_buffered_io" in v for v in ctl)
    mkdirs = [op.path for op in plan if isinstance(op, Mkdir)]
    assert mkdirs[-1].endswith("core/fileio_2/n1")  # the next free HBA index


@pytest.mark.parametrize("text,expect", [
    ("10.0.0.1", ("10.0.0.1", 3260, "10.0.0.1:3260")),
    ("10.0.0.1:3261", ("10.0.0.1", 3261, "10.0.0.1:3261")),
    ("::1", ("::1", 3260, "[::1]:3260")),
    ("[fe80::0001]:3262", ("fe80::1", 3262, "[fe80::1]:3262")),
])
def test_portal_parsing(text, expect):
    assert tg.parse_portal(text) == expect


@pytest.mark.parametrize("text", ["10.0.0.1:0", "10.0.0.1:70000", "[::1", "host.example", "[::1]x"])
def test_bad_portals(text):
    with pytest.raises(LioError):
        tg.parse_portal(text)


def test_sessions_explicit_generated_and_nexus(root):
    from lioctl.tree import sessions
    found = sessions.collect(snapshot.read())
    got = {(s["fabric"], s["initiator"], s["acl"]) for s in found}
    assert got == {("iscsi", C1, "explicit"), ("iscsi", "iqn.1994-05.com.example:demo", "generated"),
                   ("loopback", "naa.5001405000000def", "nexus")}
    s1 = next(s for s in found if s["initiator"] == C1)
    assert s1["sid"] == 3 and s1["state"] == "logged_in" and s1["addresses"] == ["127.0.0.1"]
    assert "info" not in s1
    text = sessions.text(found, False)
    assert C1 in text and "generated acl" in text
    detail = sessions.collect(snapshot.read(), detail=True, sid="3")
    assert [s["initiator"] for s in detail] == [C1] and "CmdSN" in detail[0]["info"]
    assert sessions.text(sessions.collect(snapshot.read(), sid="99"), False) == "(no open sessions)"


def test_generic_fabric_spec_learned_from_configfs(root, monkeypatch):
    monkeypatch.setenv("LIOCTL_GENERIC_FABRICS", "loopback")
    spec = fabrics.spec_for("loopback")
    assert spec.known is False and "nexus" in spec.features and "acls" not in spec.features
    assert fabrics.spec_for("iscsi").known is True
    monkeypatch.setenv("LIOCTL_GENERIC_FABRICS", "all")
    iscsi = fabrics.spec_for("iscsi")
    assert {"acls", "auth", "nps", "discovery_auth"} <= iscsi.features


def test_fc_wwns_shown_as_naa_stored_with_colons():
    spec = fabrics.KNOWN["qla2xxx"]
    assert spec.cfs_wwn("naa.21000024ff314c48") == "21:00:00:24:ff:31:4c:48"
    assert spec.display_wwn("21:00:00:24:ff:31:4c:48") == "naa.21000024ff314c48"
