"""saveconfig validation names the JSON path of each problem; planning from empty is sane."""

from __future__ import annotations

import json

import pytest

from lioctl.errors import LioError
from lioctl.plan import Mkdir, Symlink
from lioctl.saveconfig import load, restore_plan, store
from lioctl.tree.snapshot import Snapshot


def cfg(**over):
    base = {"storage_objects": [{"name": "r1", "plugin": "ramdisk", "size": 1 << 20, "attributes": {}}],
            "targets": [{"wwn": "iqn.2003-01.org.example:t", "fabric": "iscsi", "tpgs": [
                {"tag": 1, "enable": True, "attributes": {"authentication": 0},
                 "luns": [{"index": 0, "storage_object": "/backstores/ramdisk/r1"}],
                 "portals": [{"ip_address": "0.0.0.0", "port": 3260}],
                 "node_acls": [{"node_wwn": "iqn.1994-05.com.example:c",
                                "mapped_luns": [{"index": 0, "tpg_lun": 0, "write_protect": False}]}]}]}],
            "fabric_modules": []}
    base.update(over)
    return base


def test_valid_config_passes_and_unknown_keys_are_reported():
    c = cfg()
    c["targets"][0]["tpgs"][0]["colour"] = "red"
    data, unknown = load.check(c)
    assert unknown == ["targets[0].tpgs[0].colour"]


@pytest.mark.parametrize("mutate,msg", [
    (lambda c: c["storage_objects"][0].update(plugin="floppy"), "storage_objects[0].plugin"),
    (lambda c: c["storage_objects"].append(dict(c["storage_objects"][0])), "duplicate storage object"),
    (lambda c: c["targets"][0]["tpgs"][0]["luns"][0].update(index="0"), "luns[0].index: index must be a number"),
    (lambda c: c["targets"][0]["tpgs"][0]["luns"][0].update(index=70000), "out of range"),
    (lambda c: c["targets"][0]["tpgs"][0]["node_acls"][0]["mapped_luns"][0].update(tpg_lun=5),
     "targets[0].tpgs[0].node_acls[0].mapped_luns[0].tpg_lun: LUN 5 is not in this TPG"),
    (lambda c: c["targets"][0]["tpgs"][0].update(tag=0), "tpgs[0].tag"),
    (lambda c: c.update(targets={}), "targets must be a list"),
])
def test_errors_name_the_json_path(mutate, msg):
    c = cfg()
    mutate(c)
    with pytest.raises(LioError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load.check(c)


def test_not_a_saveconfig():
    with pytest.raises(LioError, match="not a saveconfig"):
        load.check([1, 2])


def test_plan_from_empty_creates_in_dependency_order():
    ch = restore_plan.plan_restore(Snapshot(), cfg())
    ops = ch.plan.ops
    so_mkdir = next(i for i, op in enumerate(ops) if isinstance(op, Mkdir) and "/core/rd_mcp_" in op.path
                    and op.path.count("/") == 7)
    lun_link = next(i for i, op in enumerate(ops) if isinstance(op, Symlink) and "/lun/lun_0/" in op.path)
    ml_link = next(i for i, op in enumerate(ops) if isinstance(op, Symlink) and "/acls/" in op.path)
    assert so_mkdir < lun_link < ml_link
    assert ops[-1].path.endswith("tpgt_1/enable")


def test_store_is_atomic_0600_and_skips_unchanged(tmp_path):
    f = tmp_path / "s.json"
    assert store.save(cfg(), str(f), keep=2)
    assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert json.loads(f.read_text()) == cfg()
    assert not store.save(cfg(), str(f), keep=2)  # nothing changed: nothing written
    for n in range(4):
        c = cfg()
        c["storage_objects"][0]["size"] = (n + 2) << 20
        assert store.save(c, str(f), keep=2)
    backups = sorted((tmp_path / "backup").iterdir())
    assert len(backups) == 2 and all(oct(b.stat().st_mode & 0o777) == "0o600" for b in backups)
