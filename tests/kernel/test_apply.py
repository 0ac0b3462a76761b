"""`lioctl apply` (issue #19): a partial document converges only what it names, against real
LIO: the other target's session survives, a second apply changes nothing, --prune stays inside
the named target, a failure rolls everything back."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

import cfs
import initiator

SCHEMA = jsonschema.Draft202012Validator(
    json.loads(resources.files("lioctl").joinpath("schema/lioctl.schema.json").read_text()))

T1 = "iqn.2003-01.org.example:apply1"
T2 = "iqn.2003-01.org.example:apply2"
C1 = "iqn.1994-05.com.example:c1"
C2 = "iqn.1994-05.com.example:c2"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def doc(r) -> dict:
    """apply's --json output: one document of lioctl-json(7)."""
    d = json.loads(ok(r).stdout)
    SCHEMA.validate(d)
    return d


def _doc(luns, acls, extra_sos=()):
    """T1 with ramdisk r1 at LUN 0 (and r0, which runs already, at LUN 1 when asked)."""
    return {
        "storage_objects": [{"plugin": "ramdisk", "name": "r1", "size": 1 << 20, "attributes": {}},
                            *extra_sos],
        "targets": [{"fabric": "iscsi", "wwn": T1, "tpgs": [{
            "tag": 1, "enable": True, "attributes": {"authentication": 0},
            "luns": luns, "portals": [{"ip_address": "0.0.0.0", "port": 3260}],
            "node_acls": acls}]}],
    }


LUN0 = {"index": 0, "storage_object": "/backstores/ramdisk/r1"}
LUN1 = {"index": 1, "storage_object": "/backstores/ramdisk/r0"}  # not in the document: running


def _acl(wwn, *mapped):
    return {"node_wwn": wwn, "mapped_luns": [{"index": i, "tpg_lun": i, "write_protect": False}
                                             for i in mapped]}


def test_apply_converges_only_what_the_document_names(lioctl, tmp_path):
    ok(lioctl("export", tmp_path / "t2.img", "--lun-size", "8M", "--iqn", T2))
    ok(lioctl("/backstores/ramdisk", "create", "r0", "1M"))
    path = tmp_path / "t1.json"
    path.write_text(json.dumps(_doc([LUN0, LUN1], [_acl(C1, 0, 1), _acl(C2, 0)])))
    initiator.start()
    initiator.discover()
    initiator.login(T2)
    try:
        before = initiator.sh("iscsiadm", "-m", "session").stdout
        t2_tree = cfs.tree(cfs.ROOT / "iscsi" / T2)
        dry = ok(lioctl("apply", path, "--dry-run")).stdout
        assert "mkdir" in dry and T1 in dry and T2 not in dry, dry
        planned = doc(lioctl("--json", "--dry-run", "apply", path))
        assert planned["output"] == "plan" and planned["operations"] > 0
        assert not (cfs.ROOT / "iscsi" / T1).exists()
        first = doc(lioctl("--json", "apply", path))
        assert first["operations"] > 0 and any(T1 in c for c in first["changes"])
        tpg = cfs.ROOT / "iscsi" / T1 / "tpgt_1"
        assert (tpg / "lun/lun_0").is_dir() and (tpg / "lun/lun_1").is_dir()
        assert (tpg / "acls" / C1 / "lun_1").is_dir() and (tpg / "acls" / C2 / "lun_0").is_dir()
        assert (tpg / "enable").read_text().strip() == "1"
        # the same document again: nothing to do
        again = doc(lioctl("--json", "apply", path))
        assert (again["changed"], again["changes"], again["operations"], again["created"]) == (False, [], 0, [])
        assert {o["type"] for o in first["created"]} >= {"storage_object", "target", "lun", "acl", "portal"}
        # a smaller document from stdin: without --prune nothing goes, with it C2 and LUN 1 go
        small = json.dumps(_doc([LUN0], [_acl(C1, 0)]))
        assert doc(lioctl("--json", "apply", "-", input=small))["operations"] == 0
        pruned = doc(lioctl("--json", "apply", "-", "--prune", input=small))
        assert {(o["type"], o.get("node_wwn")) for o in pruned["deleted"]} >= {("acl", C2)}, pruned
        assert not (tpg / "acls" / C2).exists() and not (tpg / "lun/lun_1").exists()
        assert not (tpg / "acls" / C1 / "lun_1").exists(), pruned
        assert list(cfs.ROOT.glob("core/rd_mcp_*/r0")), "an object the document does not list stays"
        # the other target: not one file changed, its session the same one, still doing I/O
        assert cfs.tree(cfs.ROOT / "iscsi" / T2) == t2_tree
        assert initiator.sh("iscsiadm", "-m", "session").stdout == before
        with open(initiator.disk_for(T2), "rb", buffering=0) as d:
            assert len(d.read(4096)) == 4096
    finally:
        initiator.logout(T2)
        ok(lioctl("clear", "--yes"))


def test_apply_failure_rolls_back_and_refusals_name_the_object(lioctl, tmp_path):
    ok(lioctl("/backstores/ramdisk", "create", "r0", "1M"))
    try:
        _refused_and_rolled_back(lioctl)
    finally:
        ok(lioctl("clear", "--yes"))


def _refused_and_rolled_back(lioctl):
    before = cfs.snapshot()
    # a LUN on a storage object neither in the document nor running: refused before anything
    bad = json.dumps(_doc([{"index": 0, "storage_object": "/backstores/ramdisk/nope"}], []))
    r = lioctl("apply", "-", input=bad)
    assert r.returncode == 4 and "neither in the document nor running" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    # a TPG attribute the kernel refuses, late in the plan: everything made before it undone
    bad = _doc([LUN0], [_acl(C1, 0)])
    bad["targets"][0]["tpgs"][0]["attributes"]["default_cmdsn_depth"] = 0
    r = lioctl("apply", "-", input=json.dumps(bad))
    assert r.returncode == 1 and "default_cmdsn_depth" in r.stderr, r.stderr
    assert cfs.snapshot() == before
