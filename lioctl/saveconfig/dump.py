"""The running configuration as rtslib's RTSRoot.dump() writes it (targetcli saveconfig)."""

from __future__ import annotations

import os

from lioctl import configfs
from lioctl.backstores.common import dump_storage_object, rw_group
from lioctl.tree.snapshot import TPG, NodeACL, Snapshot

AUTH = (("userid", "userid"), ("password", "password"),
        ("mutual_userid", "userid_mutual"), ("mutual_password", "password_mutual"))


def _unset(v: str | None) -> bool:
    return not v or v == "NULL"  # the kernel shows an unset CHAP value as NULL


def _auth(path: str, d: dict) -> None:
    values = configfs.read_group(path + "/auth", [fname for _, fname in AUTH])
    for key, fname in AUTH:
        v = values[fname]
        if not _unset(v):
            d["chap_" + key] = v


def settings(path: str, params: bool = True) -> dict:
    """A target's, TPG's or ACL's saved attributes (numbers) and parameters (text), when any."""
    d = {"attributes": rw_group(path + "/attrib")}
    if params:
        d["parameters"] = rw_group(path + "/param", as_text=True)
    return {k: v for k, v in d.items() if v}


def dump_acl(acl: NodeACL) -> dict:
    d = settings(acl.path, params=False)
    d["node_wwn"] = acl.tpg.target.fabric.spec.display_wwn(acl.wwn)
    d["mapped_luns"] = [{"write_protect": m.write_protect, "index": m.index, "tpg_lun": m.tpg_lun,
                         "alias": m.alias} for m in acl.mapped_luns.values()]
    if acl.tag:
        d["tag"] = acl.tag
    if acl.tpg.target.fabric.has("auth"):
        _auth(acl.path, d)
    return d


def dump_tpg(tpg: TPG) -> dict:
    d = settings(tpg.path)
    d["tag"] = tpg.tag
    d["enable"] = tpg.enabled
    d["luns"] = [{"storage_object": lun.storage_object.tree_path if lun.storage_object else None,
                  "index": lun.index, "alias": lun.alias, "alua_tg_pt_gp_name": lun.alua_tg_pt_gp or None}
                 for lun in tpg.luns.values()]
    d["portals"] = [{"port": p.port, "ip_address": p.ip, "iser": p.iser, "offload": p.offload}
                    for p in tpg.portals.values()] if tpg.target.fabric.has("nps") else []
    d["node_acls"] = [dump_acl(a) for a in tpg.acls.values()]
    if tpg.target.fabric.has("auth"):
        _auth(tpg.path, d)
    return d


def dump(snap: Snapshot) -> dict:
    """rtslib's RTSRoot.dump(): storage_objects, targets, fabric_modules (discovery auth on)."""
    targets = []
    for fab in snap.fabrics.values():
        for t in fab.targets.values():
            d = settings(t.path)
            d.update(wwn=fab.spec.display_wwn(t.wwn), fabric=fab.name,
                     tpgs=[dump_tpg(tpg) for tpg in t.tpgs.values()])
            targets.append(d)
    fabric_modules = []
    for fab in snap.fabrics.values():
        da = fab.path + "/discovery_auth"
        if fab.has("discovery_auth") and os.path.isdir(da) and \
                configfs.read(da + "/enforce_discovery_auth") == "1":
            d = {"name": fab.name}
            for key, fname in AUTH:
                v = configfs.read(f"{da}/{fname}")
                if not _unset(v):
                    d["discovery_" + key] = v
            d["discovery_enable_auth"] = True
            fabric_modules.append(d)
    return {"fabric_modules": fabric_modules,
            "storage_objects": [dump_storage_object(so) for so in snap.storage_objects.values()],
            "targets": targets}
