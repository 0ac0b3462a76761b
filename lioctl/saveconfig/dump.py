"""The running configuration as rtslib's RTSRoot.dump() writes it (targetcli saveconfig)."""

from __future__ import annotations

import os
import re

from lioctl import configfs
from lioctl.tree.snapshot import TPG, NodeACL, Snapshot, StorageObject

AUTH = (("userid", "userid"), ("password", "password"),
        ("mutual_userid", "userid_mutual"), ("mutual_password", "password_mutual"))
ALUA_RW = ("alua_access_state", "alua_access_status", "alua_write_metadata", "alua_access_type",
           "preferred", "nonop_delay_msecs", "trans_delay_msecs", "implicit_trans_secs",
           "alua_support_offline", "alua_support_standby", "alua_support_transitioning",
           "alua_support_active_nonoptimized", "alua_support_unavailable",
           "alua_support_active_optimized")


def _value(v: str):
    try:
        return int(v)
    except ValueError:
        return v


# Every group of one kind shows the same files with the same modes (they come from the
# kernel's attribute table for that kind), so a layout's writable names are found once per
# process: a saved configuration has thousands of groups and an lstat per file was a quarter
# of reading them.
_WRITABLE_BY_LAYOUT: dict[tuple[str, ...], frozenset[str]] = {}


def rw_group(path: str, as_text: bool = False) -> dict:
    """Readable and writable files of a group; attributes as ints where they parse, parameters
    as text (as rtslib does). Listed and read through one directory descriptor."""
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        with os.scandir(dfd) as it:
            files = sorted((e for e in it if e.is_file(follow_symlinks=False)), key=lambda e: e.name)
        layout = tuple(e.name for e in files)
        writable = _WRITABLE_BY_LAYOUT.get(layout)
        if writable is None:
            writable = frozenset(e.name for e in files
                                 if e.stat(follow_symlinks=False).st_mode & 0o600 == 0o600)
            _WRITABLE_BY_LAYOUT[layout] = writable
        out = {}
        for name in layout:
            if name in writable:
                v = configfs.read(name, None, dfd)
                if v is not None:
                    out[name] = v if as_text else _value(v)
        return out
    finally:
        os.close(dfd)


def _parse_info(so: StorageObject, key: str) -> str | None:
    m = re.search(rf"(?<![A-Za-z]){re.escape(key)}: ([^: ]+)", " ".join(so.info.get("_raw", "").split()))
    return m.group(1) if m else None


def dump_storage_object(so: StorageObject) -> dict:
    d: dict = {}
    attrs = rw_group(so.path + "/attrib")
    if attrs:
        d["attributes"] = attrs
    d["name"] = so.name
    d["plugin"] = so.plugin
    d["alua_tpgs"] = [dump_alua(so, name) for name in so.alua_tpgs]
    if so.plugin == "fileio":
        d.update(write_back=so.write_back, wwn=so.wwn, dev=so.udev_path, size=so.size,
                 aio=_parse_info(so, "async") == "1" or "Async: 1" in so.info.get("_raw", ""))
    elif so.plugin == "block":
        d.update(write_back=so.write_back, readonly=_parse_info(so, "readonly") == "1",
                 wwn=so.wwn, dev=so.udev_path)
        # Only rtslib-fb 2.2.4 and later take `exclusive` (Debian bookworm's 2.1.75 refuses the
        # whole object for it, dropping its LUNs); exclusive is the default of every version and
        # all a kernel before 6.17 can do (no `exclusive` in its info), so it is written only
        # when off, the one case an older rtslib could not reproduce anyway.
        if _parse_info(so, "exclusive") == "0":
            d["exclusive"] = False
    elif so.plugin == "ramdisk":
        d.update(wwn=so.wwn, size=so.size)
        if _parse_info(so, "nullio") == "1":
            d["nullio"] = True
    elif so.plugin == "pscsi":
        d["dev"] = so.udev_path
    elif so.plugin == "user":
        cfg = _parse_info(so, "Config")
        control = []
        mda = _parse_info(so, "MaxDataAreaMB")
        if mda and mda != "NULL":
            control.append(f"max_data_area_mb={mda}")
        # rtslib writes `control` before enable and every other attribute after it. A handler
        # that never answers netlink (lioctl's) needs enable not to wait for a reply: with a
        # tcmu-runner running (Debian's targetcli starts one over D-Bus) the kernel waits, and
        # tcmu-runner, which has no such handler, answers ENOENT and fails the enable.
        nl_reply = (attrs or {}).get("nl_reply_supported")
        if isinstance(nl_reply, int) and nl_reply <= 0:
            control.append(f"nl_reply_supported={nl_reply}")
        d.update(wwn=so.wwn, size=so.size,
                 config=None if cfg == "NULL" else cfg,
                 hw_max_sectors=int(_parse_info(so, "HwMaxSectors") or 0), control=",".join(control))
    return d


ALUA_NAMED = {"alua_access_type": ["None", "Implicit", "Explicit", "Implicit and Explicit"],
              "alua_access_status": ["None", "Altered by Explicit STPG", "Altered by Implicit ALUA"]}


def dump_alua(so: StorageObject, name: str) -> dict:
    """The kernel shows access type and status as words; the format stores their index."""
    values = configfs.read_group(f"{so.path}/alua/{name}", ("tg_pt_gp_id",) + ALUA_RW)
    d = {"name": name, "tg_pt_gp_id": _value(values["tg_pt_gp_id"] or "0")}
    for p in ALUA_RW:
        v = values[p]
        if v is not None and p in ALUA_NAMED and v in ALUA_NAMED[p]:
            d[p] = ALUA_NAMED[p].index(v)
        else:
            d[p] = _value(v) if v is not None else None
    return d


def _unset(v: str | None) -> bool:
    return not v or v == "NULL"  # the kernel shows an unset CHAP value as NULL


def _auth(path: str, d: dict) -> None:
    values = configfs.read_group(path + "/auth", [fname for _, fname in AUTH])
    for key, fname in AUTH:
        v = values[fname]
        if not _unset(v):
            d["chap_" + key] = v


def dump_acl(acl: NodeACL) -> dict:
    d: dict = {}
    attrs = rw_group(acl.path + "/attrib")
    if attrs:
        d["attributes"] = attrs
    d["node_wwn"] = acl.tpg.target.fabric.spec.display_wwn(acl.wwn)
    d["mapped_luns"] = [{"write_protect": m.write_protect, "index": m.index, "tpg_lun": m.tpg_lun,
                         "alias": m.alias} for m in acl.mapped_luns.values()]
    if acl.tag:
        d["tag"] = acl.tag
    if acl.tpg.target.fabric.has("auth"):
        _auth(acl.path, d)
    return d


def dump_tpg(tpg: TPG) -> dict:
    d: dict = {}
    attrs = rw_group(tpg.path + "/attrib")
    if attrs:
        d["attributes"] = attrs
    params = rw_group(tpg.path + "/param", as_text=True)
    if params:
        d["parameters"] = params
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
            d = {}
            attrs = rw_group(t.path + "/attrib")
            if attrs:
                d["attributes"] = attrs
            params = rw_group(t.path + "/param", as_text=True)
            if params:
                d["parameters"] = params
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
