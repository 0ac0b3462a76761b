"""Read and check a saveconfig file before anything changes; errors name the JSON path."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import sys

from lioctl import configfs, names, wwn as wwnmod
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


# Every field below that becomes a configfs path component or a value written to configfs is
# checked here, before anything is touched; each failure is one line naming the JSON path,
# with the offending text repr-escaped. The planner (diff.py) relies on what is checked here.
MAX_DIGITS = 20          # any number a saveconfig holds fits in 64 bits
U64 = (1 << 64) - 1
S64 = 1 << 63


def _err(path: str, msg: str):
    raise ConfigError(f"{path or 'top level'}: {msg}")


def _at(path: str, key) -> str:
    """The JSON path of a key; a key that is not a plain word is shown quoted and escaped."""
    if isinstance(key, str) and names.SETTING_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _type(v, t, path, what):
    if t is int and isinstance(v, bool) or not isinstance(v, t):
        name = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true/false"}
        _err(path, f"{what} must be {name.get(t, t.__name__)}, not {_kind(v)}")
    return v


def _kind(v) -> str:
    return {type(None): "null", bool: "true/false", int: "a number", float: "a fraction",
            str: "a string", list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def _rule(path: str, fn, *a):
    """Apply a names/wwn rule; its one-line error is prefixed with the JSON path."""
    try:
        return fn(*a)
    except LioError as e:
        _err(path, str(e))


def _text(v, path: str, what: str) -> str:
    """A string written into a configfs file."""
    _type(v, str, path, what)
    return _rule(path, names.check_value, v, what)


def _flag(d: dict, key: str, path: str) -> None:
    if key in d and d[key] is not None and not isinstance(d[key], bool) and d[key] not in (0, 1):
        _err(_at(path, key), f"{key} must be true/false, not {_shown(d[key])}")


def _shown(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _values(d, path: str, what: str):
    """attributes/parameters: a flat object of whole numbers, strings or booleans (what
    configfs takes); the names are configfs file names."""
    _type(d, dict, path, what)
    for k, v in d.items():
        kp = _at(path, k)
        _rule(kp, names.check_setting_name, k, what[:-1] if what.endswith("s") else what)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            if not -S64 <= v <= U64:
                _err(kp, f"{v} is out of range")
        elif isinstance(v, str):
            _rule(kp, names.check_value, v, "value")
        else:
            _err(kp, f"must be a whole number, a string or true/false, not {_kind(v)}")


def _wwn(types, value: str, path: str, what: str) -> str:
    """The WWN as rtslib normalises it (lower case, type prefix): what the planner names
    configfs directories after."""
    return _rule(path, lambda: wwnmod.normalize(types, value, what)[0])


def _int_range(v, lo: int, hi: int, path: str, what: str):
    _type(v, int, path, what)
    if not lo <= v <= hi:
        _err(path, f"{what} {v} is out of range ({lo}-{hi})")
    return v


def _unknown(d: dict, kind: str, path: str, warnings: list[str]):
    for k in d:
        if k not in KNOWN[kind]:
            warnings.append(_at(path, k))


def _name(d: dict, key: str, path: str, what: str) -> str:
    if key not in d:
        _err(path, f"{key} is missing")
    _type(d[key], str, _at(path, key), key)
    return _rule(_at(path, key), names.check_object_name, d[key], what)


def _printable_path(path: str) -> str:
    return path if path.isprintable() else repr(path)


def _reject_constant(name: str):
    raise _BadNumber(f"{name} is not a number lioctl accepts")


class _BadNumber(ValueError):
    pass


def read(path: str, boot: bool = False) -> tuple[dict, list[str]]:
    """Parsed and checked config + the unknown keys found (reported, and kept by save).
    boot: a missing backing file or device is left for the restore to name (see check)."""
    shown = _printable_path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise LioError(f"{shown}: no such file") from None
    except OSError as e:
        raise LioError(f"{shown}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise LioError(f"{shown}: not valid UTF-8 (line {line}, byte {e.start + 1} of the file)") from None
    return check(parse(text, shown), boot)


def parse(text: str, shown: str = "saveconfig"):
    """json.loads, refusing what Python's json takes but no saveconfig holds: NaN and
    Infinity (and numbers too large for a float), integers of thousands of digits (slow, and
    over Python's digit limit), nesting deeper than Python's stack."""
    def big_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_DIGITS:
            raise _BadNumber(f"an integer of {len(s.lstrip('-'))} digits is too large{_where(text, s)}")
        return int(s)

    def finite(s: str) -> float:
        v = float(s)
        if v in (float("inf"), float("-inf")):
            raise _BadNumber(f"number {s[:20]!r} is too large{_where(text, s)}")
        return v
    try:
        return json.loads(text, parse_int=big_int, parse_float=finite, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise LioError(f"{shown}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except _BadNumber as e:
        raise LioError(f"{shown}: {e}") from None
    except RecursionError:
        raise LioError(f"{shown}: nested too deeply to be a saveconfig file") from None
    except ValueError as e:  # anything else json refuses
        raise LioError(f"{shown}: not valid JSON ({str(e).splitlines()[0]!r})") from None


def _where(text: str, token: str) -> str:
    at = text.find(token)
    if at < 0:
        return ""
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    return f" (line {line}, column {column})"


def check(data, boot: bool = False) -> tuple[dict, list[str]]:
    """boot: a backing file or device that is not there is no fault of the file: at boot the
    restore names that object, skips what needs it and restores the rest."""
    warnings: list[str] = []
    if not isinstance(data, dict) or not ({"storage_objects", "targets"} & set(data) or data == {}):
        raise LioError("not a saveconfig file: expected an object with storage_objects and targets")
    _unknown(data, "", "", warnings)
    sos = _type(data.get("storage_objects", []), list, "storage_objects", "storage_objects")
    seen = set()
    user_configs: list[str] = []
    alua_groups: dict[tuple[str, str], set[str]] = {}
    for i, so in enumerate(sos):
        p = f"storage_objects[{i}]"
        _type(so, dict, p, "a storage object")
        _unknown(so, "so", p, warnings)
        name = _name(so, "name", p, "storage object name")
        plugin = so.get("plugin")
        if plugin not in PLUGINS:
            _err(p + ".plugin", f"{_shown(plugin)} is not one of {', '.join(PLUGINS)}")
        if (plugin, name) in seen:
            _err(p, f"duplicate storage object {plugin}/{name}")
        seen.add((plugin, name))
        if plugin in ("fileio", "block", "pscsi"):
            dev = _text(so.get("dev"), p + ".dev", "dev")
            if not dev or "," in dev:
                _err(p + ".dev", f"{dev!r} is not a device path the kernel can take (empty or with ',')")
        if plugin == "fileio" and not boot:
            if not os.path.exists(dev):  # dev has no control characters
                _err(p + ".dev", f"backing file {dev} of storage object fileio/{name} does not exist")
        if plugin == "block" and not boot:
            try:
                st = os.stat(dev)
            except OSError:
                _err(p + ".dev", f"block device {dev} of storage object block/{name} does not exist")
            if not stat.S_ISBLK(st.st_mode):
                _err(p + ".dev", f"{dev} of storage object block/{name} is not a block device")
        if plugin in ("fileio", "ramdisk", "user"):
            _int_range(so.get("size"), 0, S64 - 1, p + ".size", "size")
            if so["size"] == 0 and plugin != "fileio":
                _err(p + ".size", "size must be positive")
        for key in ("write_back", "readonly", "nullio", "aio", "exclusive"):
            if key in so and not isinstance(so[key], bool):
                _err(f"{p}.{key}", f"{key} must be true/false, not {_shown(so[key])}")
        if plugin == "user":
            _user(so, p, user_configs)
        if so.get("wwn") is not None:
            _text(so["wwn"], p + ".wwn", "wwn")
            if not so["wwn"].isascii() or len(so["wwn"]) >= 254:
                _err(p + ".wwn", f"unit serial {_shown(so['wwn'])} must be ASCII, at most 253 characters")
        _values(so.get("attributes", {}), p + ".attributes", "attributes")
        groups = set()
        for j, a in enumerate(_type(so.get("alua_tpgs", []), list, p + ".alua_tpgs", "alua_tpgs")):
            q = f"{p}.alua_tpgs[{j}]"
            _type(a, dict, q, "an ALUA group")
            _unknown(a, "alua", q, warnings)
            gname = _name(a, "name", q, "ALUA group name")
            if gname in groups:
                _err(q + ".name", f"duplicate ALUA group {gname}")
            groups.add(gname)
            _int_range(a.get("tg_pt_gp_id", 0), 0, 65535, q + ".tg_pt_gp_id", "tg_pt_gp_id")
            for k, v in a.items():  # unknown keys are reported, not applied: not checked
                if k in KNOWN["alua"] and k != "name" and v is not None:
                    _int_range(v, 0, U64, _at(q, k), k)
        alua_groups[(plugin, name)] = groups | {"default_tg_pt_gp"}
    tseen = set()
    for i, t in enumerate(_type(data.get("targets", []), list, "targets", "targets")):
        p = f"targets[{i}]"
        _type(t, dict, p, "a target")
        _unknown(t, "target", p, warnings)
        _type(t.get("wwn"), str, p + ".wwn", "wwn")
        fabric = _type(t.get("fabric"), str, p + ".fabric", "fabric")
        spec = _fabric(fabric, p + ".fabric")
        t["wwn"] = _wwn(spec.wwn_types, t["wwn"], p + ".wwn", f"{fabric} WWN")
        for key in ("attributes", "parameters"):
            _values(t.get(key, {}), f"{p}.{key}", key)
        if (fabric, t["wwn"]) in tseen:
            _err(p, f"duplicate target {fabric}/{t['wwn']}")
        tseen.add((fabric, t["wwn"]))
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
            _flag(tpg, "enable", q)
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
                    _err(r + ".storage_object", f"{so_path!r} is not a storage object of this file")
                if lun.get("alias") is not None:
                    _name(lun, "alias", r, "LUN alias")
                gp = lun.get("alua_tg_pt_gp_name")
                if gp is not None:
                    _type(gp, str, r + ".alua_tg_pt_gp_name", "alua_tg_pt_gp_name")
                    if gp not in alua_groups[(parts[1], parts[2])]:
                        _err(r + ".alua_tg_pt_gp_name", f"{so_path} has no ALUA group {gp!r}")
            for k, portal in enumerate(_type(tpg.get("portals", []), list, q + ".portals", "portals")):
                r = f"{q}.portals[{k}]"
                _type(portal, dict, r, "a portal")
                _unknown(portal, "portal", r, warnings)
                ip = _type(portal.get("ip_address"), str, r + ".ip_address", "ip_address")
                bare = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
                try:
                    ipaddress.ip_address(bare)
                except ValueError:
                    _err(r + ".ip_address", f"{ip!r} is not an IP address")
                # Python takes any text as an IPv6 scope (fe80::1%<newline>): an interface name only
                if "%" in bare and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", bare.partition("%")[2]):
                    _err(r + ".ip_address", f"{ip!r} has a scope that is not an interface name")
                _int_range(portal.get("port"), 1, 65535, r + ".port", "port")
                for key in ("iser", "offload"):
                    _flag(portal, key, r)
            acls: set[str] = set()
            for k, acl in enumerate(_type(tpg.get("node_acls", []), list, q + ".node_acls", "node_acls")):
                r = f"{q}.node_acls[{k}]"
                _type(acl, dict, r, "an ACL")
                _unknown(acl, "acl", r, warnings)
                _type(acl.get("node_wwn"), str, r + ".node_wwn", "node_wwn")
                # an initiator's name: iSCSI's are IQN/NAA/EUI; other fabrics' are their port
                # names in whatever spelling their ACL directories take
                types = ("iqn", "naa", "eui") if fabric == "iscsi" else ("free",)
                acl["node_wwn"] = _wwn(types, acl["node_wwn"], r + ".node_wwn", "initiator name")
                if acl["node_wwn"] in acls:
                    _err(r + ".node_wwn", f"duplicate ACL {acl['node_wwn']}")
                acls.add(acl["node_wwn"])
                if acl.get("tag") is not None:
                    _text(acl["tag"], r + ".tag", "tag")
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
                    _flag(ml, "write_protect", s)
                    if ml.get("alias") is not None:
                        _name(ml, "alias", s, "mapped LUN alias")
    fseen = set()
    for i, fm in enumerate(_type(data.get("fabric_modules", []), list, "fabric_modules", "fabric_modules")):
        p = f"fabric_modules[{i}]"
        _type(fm, dict, p, "a fabric module")
        _unknown(fm, "fabric", p, warnings)
        _type(fm.get("name"), str, p + ".name", "name")
        _fabric(fm["name"], p + ".name")
        if fm["name"] in fseen:
            _err(p + ".name", f"duplicate fabric module {fm['name']}")
        fseen.add(fm["name"])
        for k, v in fm.items():
            if k in KNOWN["fabric"] and k.startswith("discovery_") and k != "discovery_enable_auth" and v is not None:
                _secret(v, _at(p, k), k) if "password" in k else _text(v, _at(p, k), k)
        _flag(fm, "discovery_enable_auth", p)
    return data, warnings


def _user(so: dict, p: str, configs: list[str]) -> None:
    """The rules `/backstores/user create` applies: the config string goes into the control
    file, where ',' and a newline start another option."""
    from lioctl.tcmu import config as tcmu_config
    cfg = _type(so.get("config"), str, p + ".config", "config")
    subtype, _, rest = cfg.partition("/")
    _rule(p + ".config", tcmu_config.validate, subtype, rest, so["size"], configs)
    configs.append(cfg)
    hw = so.get("hw_max_sectors")
    if hw is not None:
        _int_range(hw, 0, (1 << 32) - 1, p + ".hw_max_sectors", "hw_max_sectors")
    if so.get("control") is not None:
        _text(so["control"], p + ".control", "control")


def _fabric(name: str, path: str):
    from lioctl.tree.fabrics import KNOWN, spec_for
    _rule(path, names.check_fabric_name, name, KNOWN)
    if name not in KNOWN and not os.path.isdir(os.path.join(configfs.ROOT, name)):
        _err(path, f"unknown fabric {name!r} (known: {', '.join(sorted(KNOWN))})")
    return spec_for(name)


def _chap(d: dict, path: str):
    for key in ("chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"):
        if d.get(key) is not None:
            _secret(d[key], f"{path}.{key}", key) if "password" in key else _text(d[key], f"{path}.{key}", key)
            if len(d[key].encode()) > 255:
                _err(f"{path}.{key}", f"{key} is {len(d[key].encode())} bytes; the kernel takes at most 255")


def _secret(v, path: str, what: str) -> None:
    """As _text, but the error never shows the secret."""
    _type(v, str, path, what)
    try:
        names.check_value(v, what)
    except LioError:
        _err(path, f"{what} must be text without a newline, NUL or other control character")


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
