"""Read and check a saveconfig file before anything changes; errors name the JSON path."""

from __future__ import annotations

import json
import os
import sys

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
    for i, so in enumerate(sos):
        p = f"storage_objects[{i}]"
        _type(so, dict, p, "a storage object")
        _unknown(so, "so", p, warnings)
        name = _type(so.get("name"), str, p + ".name", "name") if "name" in so else _err(p, "name is missing")
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
        if plugin in ("block",) and not os.path.exists(so["dev"]):
            _err(p + ".dev", f"block device {so['dev']} does not exist")
        if plugin in ("fileio", "ramdisk", "user"):
            _type(so.get("size"), int, p + ".size", "size")
            if so["size"] <= 0 and not (plugin == "fileio" and so["size"] == 0):
                _err(p + ".size", "size must be positive")
        if plugin == "user":
            _type(so.get("config"), str, p + ".config", "config")
        _type(so.get("attributes", {}), dict, p + ".attributes", "attributes")
        for j, a in enumerate(_type(so.get("alua_tpgs", []), list, p + ".alua_tpgs", "alua_tpgs")):
            _type(a, dict, f"{p}.alua_tpgs[{j}]", "an ALUA group")
            _type(a.get("name"), str, f"{p}.alua_tpgs[{j}].name", "name")
    tseen = set()
    for i, t in enumerate(_type(data.get("targets", []), list, "targets", "targets")):
        p = f"targets[{i}]"
        _type(t, dict, p, "a target")
        _unknown(t, "target", p, warnings)
        _type(t.get("wwn"), str, p + ".wwn", "wwn")
        _type(t.get("fabric"), str, p + ".fabric", "fabric")
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
                _type(tpg.get(key, {}), dict, f"{q}.{key}", key)
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
            for k, portal in enumerate(_type(tpg.get("portals", []), list, q + ".portals", "portals")):
                r = f"{q}.portals[{k}]"
                _type(portal, dict, r, "a portal")
                _unknown(portal, "portal", r, warnings)
                _type(portal.get("ip_address"), str, r + ".ip_address", "ip_address")
                _type(portal.get("port"), int, r + ".port", "port")
            for k, acl in enumerate(_type(tpg.get("node_acls", []), list, q + ".node_acls", "node_acls")):
                r = f"{q}.node_acls[{k}]"
                _type(acl, dict, r, "an ACL")
                _unknown(acl, "acl", r, warnings)
                _type(acl.get("node_wwn"), str, r + ".node_wwn", "node_wwn")
                midx = set()
                for m, ml in enumerate(_type(acl.get("mapped_luns", []), list, r + ".mapped_luns", "mapped_luns")):
                    s = f"{r}.mapped_luns[{m}]"
                    _type(ml, dict, s, "a mapped LUN")
                    _unknown(ml, "mapped_lun", s, warnings)
                    mi = _type(ml.get("index"), int, s + ".index", "index")
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
    return data, warnings


def report_unknown(warnings: list[str]) -> None:
    for w in warnings:
        print(f"lioctl: warning: unknown key {w} is not applied (kept in the file)", file=sys.stderr)
