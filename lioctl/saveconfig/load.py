"""Read and check a saveconfig file before anything changes; errors name the JSON path."""

from __future__ import annotations

import json
import os
import stat
import sys

from lioctl import configfs, wwn as wwnmod
from lioctl.errors import LioError

PLUGINS = ("fileio", "block", "ramdisk", "pscsi", "user")
KNOWN = {
    "": {"storage_objects", "targets", "fabric_modules"},
    "so": {"attributes", "name", "plugin", "alua_tpgs", "write_back", "wwn", "dev", "size", "aio",
           "readonly", "exclusive", "nullio", "config", "hw_max_sectors", "control"},
    "target": {"wwn", "fabric", "tpgs", "attributes", "parameters"},
    "tpg": {"attributes", "parameters", "tag", "enable", "luns", "portals", "node_acls",
            "chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"},
    "lun": {"storage_object", "index", "alias", "alua_tg_pt_gp_name"},
    "portal": {"port", "ip_address", "iser", "offload"},
    "acl": {"attributes", "node_wwn", "mapped_luns", "tag", "chap_userid", "chap_password",
            "chap_mutual_userid", "chap_mutual_password"},
    "mapped_lun": {"write_protect", "index", "tpg_lun", "alias"},
    "alua": {"name", "tg_pt_gp_id", "alua_access_state", "alua_access_status", "alua_write_metadata",
             "alua_access_type", "preferred", "nonop_delay_msecs", "trans_delay_msecs",
             "implicit_trans_secs", "alua_support_offline", "alua_support_standby",
             "alua_support_transitioning", "alua_support_active_nonoptimized",
             "alua_support_unavailable", "alua_support_active_optimized"},
    "fabric": {"name", "discovery_userid", "discovery_password", "discovery_mutual_userid",
               "discovery_mutual_password", "discovery_enable_auth"},
}


class ConfigError(LioError):
    pass


def _err(path: str, msg: str):
    raise ConfigError(f"{path or 'top level'}: {msg}")


def _type(v, t, path, what):
    if t is int and isinstance(v, bool) or not isinstance(v, t):
        name = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true/false"}
        _err(path, f"{what} must be {name.get(t, t.__name__)}, not {type(v).__name__}")
    return v


def _values(d: dict, path: str, what: str):
    """attributes/parameters: a flat object of numbers, strings or booleans (what configfs takes)."""
    _type(d, dict, path, what)
    for k, v in d.items():
        if isinstance(v, (dict, list)) or v is None:
            _err(f"{path}.{k}", f"must be a number, a string or true/false, not {type(v).__name__}")
        if not k or "/" in k or k.startswith("."):
            _err(f"{path}.{k}", "is not a valid setting name")


def _wwn(spec, value: str, path: str, what: str):
    try:
        wwnmod.normalize(spec.wwn_types, value, what)
    except LioError as e:
        _err(path, str(e))


def _int_range(v, lo: int, hi: int, path: str, what: str):
    _type(v, int, path, what)
    if not lo <= v <= hi:
        _err(path, f"{what} {v} is out of range ({lo}-{hi})")


def _unknown(d: dict, kind: str, path: str, warnings: list[str]):
    for k in d:
        if k not in KNOWN[kind]:
            warnings.append(f"{path}.{k}" if path else k)


def read(path: str) -> tuple[dict, list[str]]:
    """Parsed and checked config + the unknown keys found (reported, and kept by save)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise LioError(f"{path}: no such file") from None
    except OSError as e:
        raise LioError(f"{path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LioError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return check(data)


def check(data) -> tuple[dict, list[str]]:
    warnings: list[str] = []
    if not isinstance(data, dict) or not ({"storage_objects", "targets"} & set(data) or data == {}):
        raise LioError("not a saveconfig file: expected an object with storage_objects and targets")
    _unknown(data, "", "", warnings)
    sos = _type(data.get("storage_objects", []), list, "storage_objects", "storage_objects")
    seen = set()
    alua_groups: dict[tuple[str, str], set[str]] = {}
    for i, so in enumerate(sos):
        p = f"storage_objects[{i}]"
        _type(so, dict, p, "a storage object")
        _unknown(so, "so", p, warnings)
        name = _type(so.get("name"), str, p + ".name", "name") if "name" in so else _err(p, "name is missing")
        if not name or "/" in name or name.startswith(".") or "\n" in name:
            _err(p + ".name", f"{name!r} is not a valid storage object name")
        plugin = so.get("plugin")
        if plugin not in PLUGINS:
            _err(p + ".plugin", f"{plugin!r} is not one of {', '.join(PLUGINS)}")
        if (plugin, name) in seen:
            _err(p, f"duplicate storage object {plugin}/{name}")
        seen.add((plugin, name))
        if plugin in ("fileio", "block", "pscsi"):
            _type(so.get("dev"), str, p + ".dev", "dev")
        if plugin == "fileio":
            dev = so["dev"]
            if not os.path.exists(dev):
                _err(p + ".dev", f"backing file {dev} does not exist")
        if plugin in ("block",):
            try:
                st = os.stat(so["dev"])
            except OSError:
                _err(p + ".dev", f"block device {so['dev']} does not exist")
            if not stat.S_ISBLK(st.st_mode):
                _err(p + ".dev", f"{so['dev']} is not a block device")
        if plugin in ("fileio", "ramdisk", "user"):
            _type(so.get("size"), int, p + ".size", "size")
            if so["size"] <= 0 and not (plugin == "fileio" and so["size"] == 0):
                _err(p + ".size", "size must be positive")
        if plugin == "user":
            _type(so.get("config"), str, p + ".config", "config")
        for key in ("write_back", "readonly", "nullio", "aio", "exclusive"):
            if key in so and not isinstance(so[key], bool):
                _err(f"{p}.{key}", f"{key} must be true/false, not {type(so[key]).__name__}")
        if so.get("wwn") is not None:
            _type(so["wwn"], str, p + ".wwn", "wwn")
        _values(so.get("attributes", {}), p + ".attributes", "attributes")
        groups = set()
        for j, a in enumerate(_type(so.get("alua_tpgs", []), list, p + ".alua_tpgs", "alua_tpgs")):
            q = f"{p}.alua_tpgs[{j}]"
            _type(a, dict, q, "an ALUA group")
            _unknown(a, "alua", q, warnings)
            _type(a.get("name"), str, q + ".name", "name")
            if a["name"] in groups:
                _err(q + ".name", f"duplicate ALUA group {a['name']}")
            groups.add(a["name"])
            _int_range(a.get("tg_pt_gp_id", 0), 0, 65535, q + ".tg_pt_gp_id", "tg_pt_gp_id")
            for k, v in a.items():
                if k not in ("name",) and v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    _err(f"{q}.{k}", f"{k} must be a number, not {type(v).__name__}")
        alua_groups[(plugin, name)] = groups | {"default_tg_pt_gp"}
    tseen = set()
    for i, t in enumerate(_type(data.get("targets", []), list, "targets", "targets")):
        p = f"targets[{i}]"
        _type(t, dict, p, "a target")
        _unknown(t, "target", p, warnings)
        _type(t.get("wwn"), str, p + ".wwn", "wwn")
        _type(t.get("fabric"), str, p + ".fabric", "fabric")
        spec = _fabric(t["fabric"], p + ".fabric")
        _wwn(spec, t["wwn"], p + ".wwn", f"{t['fabric']} WWN")
        for key in ("attributes", "parameters"):
            _values(t.get(key, {}), f"{p}.{key}", key)
        if (t["fabric"], t["wwn"]) in tseen:
            _err(p, f"duplicate target {t['fabric']}/{t['wwn']}")
        tseen.add((t["fabric"], t["wwn"]))
        tags = set()
        for j, tpg in enumerate(_type(t.get("tpgs", []), list, p + ".tpgs", "tpgs")):
            q = f"{p}.tpgs[{j}]"
            _type(tpg, dict, q, "a TPG")
            _unknown(tpg, "tpg", q, warnings)
            tag = _type(tpg.get("tag"), int, q + ".tag", "tag")
            if tag in tags or not 1 <= tag <= 65535:
                _err(q + ".tag", f"TPG tag {tag} is duplicated or out of range")
            tags.add(tag)
            for key in ("attributes", "parameters"):
                _values(tpg.get(key, {}), f"{q}.{key}", key)
            if "enable" in tpg and not isinstance(tpg["enable"], (bool, int)):
                _err(q + ".enable", f"enable must be true/false, not {type(tpg['enable']).__name__}")
            _chap(tpg, q)
            lidx = set()
            for k, lun in enumerate(_type(tpg.get("luns", []), list, q + ".luns", "luns")):
                r = f"{q}.luns[{k}]"
                _type(lun, dict, r, "a LUN")
                _unknown(lun, "lun", r, warnings)
                idx = _type(lun.get("index"), int, r + ".index", "index")
                if idx in lidx:
                    _err(r + ".index", f"duplicate LUN index {idx}")
                if not 0 <= idx <= 65535:
                    _err(r + ".index", f"LUN {idx} is out of range (0-65535)")
                lidx.add(idx)
                so_path = _type(lun.get("storage_object"), str, r + ".storage_object", "storage_object")
                parts = so_path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "backstores" or (parts[1], parts[2]) not in seen:
                    _err(r + ".storage_object", f"{so_path} is not a storage object of this file")
                gp = lun.get("alua_tg_pt_gp_name")
                if gp is not None:
                    _type(gp, str, r + ".alua_tg_pt_gp_name", "alua_tg_pt_gp_name")
                    if gp not in alua_groups[(parts[1], parts[2])]:
                        _err(r + ".alua_tg_pt_gp_name", f"{so_path} has no ALUA group {gp}")
            for k, portal in enumerate(_type(tpg.get("portals", []), list, q + ".portals", "portals")):
                r = f"{q}.portals[{k}]"
                _type(portal, dict, r, "a portal")
                _unknown(portal, "portal", r, warnings)
                _type(portal.get("ip_address"), str, r + ".ip_address", "ip_address")
                _int_range(portal.get("port"), 1, 65535, r + ".port", "port")
            acls: set[str] = set()
            for k, acl in enumerate(_type(tpg.get("node_acls", []), list, q + ".node_acls", "node_acls")):
                r = f"{q}.node_acls[{k}]"
                _type(acl, dict, r, "an ACL")
                _unknown(acl, "acl", r, warnings)
                _type(acl.get("node_wwn"), str, r + ".node_wwn", "node_wwn")
                if t["fabric"] == "iscsi":
                    _wwn(spec, acl["node_wwn"], r + ".node_wwn", "initiator name")
                if acl["node_wwn"] in acls:
                    _err(r + ".node_wwn", f"duplicate ACL {acl['node_wwn']}")
                acls.add(acl["node_wwn"])
                _values(acl.get("attributes", {}), r + ".attributes", "attributes")
                _chap(acl, r)
                midx = set()
                for m, ml in enumerate(_type(acl.get("mapped_luns", []), list, r + ".mapped_luns", "mapped_luns")):
                    s = f"{r}.mapped_luns[{m}]"
                    _type(ml, dict, s, "a mapped LUN")
                    _unknown(ml, "mapped_lun", s, warnings)
                    mi = _type(ml.get("index"), int, s + ".index", "index")
                    _int_range(mi, 0, 65535, s + ".index", "mapped LUN")
                    if mi in midx:
                        _err(s + ".index", f"duplicate mapped LUN {mi}")
                    midx.add(mi)
                    tl = _type(ml.get("tpg_lun"), int, s + ".tpg_lun", "tpg_lun")
                    if tl not in lidx:
                        _err(s + ".tpg_lun", f"LUN {tl} is not in this TPG")
    for i, fm in enumerate(_type(data.get("fabric_modules", []), list, "fabric_modules", "fabric_modules")):
        _type(fm, dict, f"fabric_modules[{i}]", "a fabric module")
        _unknown(fm, "fabric", f"fabric_modules[{i}]", warnings)
        _type(fm.get("name"), str, f"fabric_modules[{i}].name", "name")
        _fabric(fm["name"], f"fabric_modules[{i}].name")
        for k, v in fm.items():
            if k.startswith("discovery_") and k != "discovery_enable_auth" and v is not None:
                _type(v, str, f"fabric_modules[{i}].{k}", k)
    return data, warnings


def _fabric(name: str, path: str):
    from lioctl.tree.fabrics import KNOWN, spec_for
    if name not in KNOWN and not os.path.isdir(os.path.join(configfs.ROOT, name)):
        _err(path, f"unknown fabric {name!r} (known: {', '.join(sorted(KNOWN))})")
    return spec_for(name)


def _chap(d: dict, path: str):
    for key in ("chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"):
        if d.get(key) is not None:
            _type(d[key], str, f"{path}.{key}", key)


def report_unknown(warnings: list[str]) -> None:
    for w in warnings:
        print(f"lioctl: warning: unknown key {w} is not applied (kept in the file)", file=sys.stderr)


# How the objects of each list are matched between an old file and a new dump.
CHILDREN = {
    "": {"storage_objects": ("so", lambda d: (d.get("plugin"), d.get("name"))),
         "targets": ("target", lambda d: (d.get("fabric"), d.get("wwn"))),
         "fabric_modules": ("fabric", lambda d: d.get("name"))},
    "so": {"alua_tpgs": ("alua", lambda d: d.get("name"))},
    "target": {"tpgs": ("tpg", lambda d: d.get("tag"))},
    "tpg": {"luns": ("lun", lambda d: d.get("index")),
            "portals": ("portal", lambda d: (str(d.get("ip_address")).strip("[]"), d.get("port"))),
            "node_acls": ("acl", lambda d: d.get("node_wwn"))},
    "acl": {"mapped_luns": ("mapped_lun", lambda d: d.get("index"))},
}


def carry_unknown(old: dict, new: dict, kind: str = "", path: str = "") -> list[str]:
    """Copy into a fresh dump the keys of the previous file that lioctl does not know (and the
    settings this kernel lacks) on objects that still exist, so saving never silently drops
    what another tool or a newer kernel wrote. Returns the JSON paths carried over."""
    out: list[str] = []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return out
    for k, v in old.items():
        if k not in KNOWN[kind] and k not in new:
            new[k] = v
            out.append(f"{path}.{k}" if path else k)
    for group in ("attributes", "parameters"):
        o, n = old.get(group), new.get(group)
        if isinstance(o, dict) and o and kind not in ("", "fabric", "alua", "lun", "portal", "mapped_lun"):
            if n is None:
                n = new[group] = {}
            if isinstance(n, dict):
                for k, v in o.items():
                    if k not in n:
                        n[k] = v
                        out.append(f"{path}.{group}.{k}")
    for key, (ckind, ident) in CHILDREN.get(kind, {}).items():
        olds, news = old.get(key), new.get(key)
        if not isinstance(olds, list) or not isinstance(news, list):
            continue
        index = {}
        for o in olds:
            if isinstance(o, dict):
                try:
                    index[ident(o)] = o
                except TypeError:  # an unhashable identity: such an object cannot be matched
                    pass
        for j, n in enumerate(news):
            o = index.get(ident(n))
            if o is not None:
                out += carry_unknown(o, n, ckind, f"{path}.{key}[{j}]" if path else f"{key}[{j}]")
    return out
