"""Read and check a saveconfig file before anything changes; errors name the JSON path."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys

from lioctl import configfs, names, wwn as wwnmod
from lioctl.backstores import KINDS
from lioctl.errors import LioError, NotFound
from lioctl.tree import fabrics
from lioctl.saveconfig.rules import (S64, U64, at, err, int_range, kind_of, rule, shown,
                                     text, typed)

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


# Every field below that becomes a configfs path component or a value written to configfs is
# checked here, before anything is touched; each failure is one line naming the JSON path,
# with the offending text repr-escaped. The planner (restore_plan.py) relies on what is checked here.
MAX_DIGITS = 20          # any number a saveconfig holds fits in 64 bits


def _flag(d: dict, key: str, path: str) -> None:
    if key in d and d[key] is not None and not isinstance(d[key], bool) and d[key] not in (0, 1):
        err(at(path, key), f"{key} must be true/false, not {shown(d[key])}")


def _values(d, path: str, what: str):
    """attributes/parameters: a flat object of whole numbers, strings or booleans (what
    configfs takes); the names are configfs file names."""
    typed(d, dict, path, what)
    for k, v in d.items():
        kp = at(path, k)
        rule(kp, names.check_setting_name, k, what[:-1] if what.endswith("s") else what)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            if not -S64 <= v <= U64:
                err(kp, f"{v} is out of range")
        elif isinstance(v, str):
            rule(kp, names.check_value, v, "value")
        else:
            err(kp, f"must be a whole number, a string or true/false, not {kind_of(v)}")


def _wwn(types, value: str, path: str, what: str) -> str:
    """The WWN as rtslib normalises it (lower case, type prefix): what the planner names
    configfs directories after."""
    return rule(path, lambda: wwnmod.normalize(types, value, what)[0])


def _unknown(d: dict, kind: str, path: str, warnings: list[str]):
    for k in d:
        if k not in KNOWN[kind]:
            warnings.append(at(path, k))


def _name(d: dict, key: str, path: str, what: str) -> str:
    if key not in d:
        err(path, f"{key} is missing")
    typed(d[key], str, at(path, key), key)
    return rule(at(path, key), names.check_object_name, d[key], what)


def _printable_path(path: str) -> str:
    return path if path.isprintable() else repr(path)


def _reject_constant(name: str):
    raise _BadNumber(f"{name} is not a number lioctl accepts")


class _BadNumber(ValueError):
    pass


def read(path: str, boot: bool = False, partial: bool = False) -> tuple[dict, list[str]]:
    """Parsed and checked config + the unknown keys found (reported, and kept by save).
    `-` is standard input. boot, partial: see check."""
    shown = "standard input" if path == "-" else _printable_path(path)
    try:
        if path == "-":
            stdin = getattr(sys.stdin, "buffer", None)  # a text stream in place of stdin: its text
            raw = stdin.read() if stdin is not None else sys.stdin.read().encode()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"{shown}: no such file") from None
    except OSError as e:
        raise LioError(f"{shown}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise LioError(f"{shown}: not valid UTF-8 (line {line}, byte {e.start + 1} of the file)") from None
    return check(parse(text, shown), boot, partial)


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


def check(data, boot: bool = False, partial: bool = False) -> tuple[dict, list[str]]:
    """The checked document (WWNs normalised in place) and the JSON paths of its unknown keys.
    Each object is checked by its own function below; a storage object's own keys by its kind.
    boot: a backing file or device that is not there is no fault of the file (Kind.check_backing).
    partial: a LUN may use a storage object the document does not list (apply's partial
    documents): the planner finds it among the running ones, the kernel checks its ALUA group."""
    warnings: list[str] = []
    if not isinstance(data, dict) or not ({"storage_objects", "targets"} & set(data) or data == {}):
        raise LioError("not a saveconfig file: expected an object with storage_objects and targets")
    _unknown(data, "", "", warnings)
    sos = typed(data.get("storage_objects", []), list, "storage_objects", "storage_objects")
    alua_groups: dict[tuple[str, str], set[str]] = {}  # each storage object's ALUA group names
    for i, so in enumerate(sos):
        _storage_object(so, f"storage_objects[{i}]", sos[:i], alua_groups, warnings, boot)
    tseen: set[tuple[str, str]] = set()
    usable = _OrRunning(alua_groups) if partial else alua_groups
    for i, t in enumerate(typed(data.get("targets", []), list, "targets", "targets")):
        _target(t, f"targets[{i}]", tseen, usable, warnings)
    fseen: set[str] = set()
    for i, fm in enumerate(typed(data.get("fabric_modules", []), list, "fabric_modules", "fabric_modules")):
        _fabric_module(fm, f"fabric_modules[{i}]", fseen, warnings)
    return data, warnings


class _OrRunning(dict):
    """The storage objects a LUN of a partial document may name: the document's (with their
    ALUA groups), or any other, which must be running (restore_plan.plan_apply checks)."""

    def __contains__(self, key):
        return True

    def __missing__(self, key):
        return None


def _storage_object(so, p: str, earlier: list[dict], alua_groups: dict, warnings: list[str],
                    boot: bool) -> None:
    typed(so, dict, p, "a storage object")
    _unknown(so, "so", p, warnings)
    name = _name(so, "name", p, "storage object name")
    plugin = so.get("plugin")
    if plugin not in KINDS:
        err(p + ".plugin", f"{shown(plugin)} is not one of {', '.join(KINDS)}")
    if (plugin, name) in alua_groups:
        err(p, f"duplicate storage object {plugin}/{name}")
    KINDS[plugin].check_saved(so, p, [e for e in earlier if e["plugin"] == plugin])
    if not boot:
        KINDS[plugin].check_backing(so, p)
    for key in ("write_back", "readonly", "nullio", "aio", "exclusive"):
        if key in so and not isinstance(so[key], bool):
            err(f"{p}.{key}", f"{key} must be true/false, not {shown(so[key])}")
    if so.get("wwn") is not None:
        text(so["wwn"], p + ".wwn", "wwn")
        if not so["wwn"].isascii() or len(so["wwn"]) >= 254:
            err(p + ".wwn", f"unit serial {shown(so['wwn'])} must be ASCII, at most 253 characters")
    _values(so.get("attributes", {}), p + ".attributes", "attributes")
    groups = {"default_tg_pt_gp"}
    for j, a in enumerate(typed(so.get("alua_tpgs", []), list, p + ".alua_tpgs", "alua_tpgs")):
        groups.add(_alua_group(a, f"{p}.alua_tpgs[{j}]", groups - {"default_tg_pt_gp"}, warnings))
    alua_groups[(plugin, name)] = groups


def _alua_group(a, q: str, groups: set[str], warnings: list[str]) -> str:
    typed(a, dict, q, "an ALUA group")
    _unknown(a, "alua", q, warnings)
    gname = _name(a, "name", q, "ALUA group name")
    if gname in groups:
        err(q + ".name", f"duplicate ALUA group {gname}")
    int_range(a.get("tg_pt_gp_id", 0), 0, 65535, q + ".tg_pt_gp_id", "tg_pt_gp_id")
    for k, v in a.items():  # unknown keys are reported, not applied: not checked
        if k in KNOWN["alua"] and k != "name" and v is not None:
            int_range(v, 0, U64, at(q, k), k)
    return gname


def _target(t, p: str, tseen: set, alua_groups: dict, warnings: list[str]) -> None:
    typed(t, dict, p, "a target")
    _unknown(t, "target", p, warnings)
    typed(t.get("wwn"), str, p + ".wwn", "wwn")
    fabric = typed(t.get("fabric"), str, p + ".fabric", "fabric")
    spec = _fabric(fabric, p + ".fabric")
    t["wwn"] = _wwn(spec.wwn_types, t["wwn"], p + ".wwn", f"{fabric} WWN")
    for key in ("attributes", "parameters"):
        _values(t.get(key, {}), f"{p}.{key}", key)
    if (fabric, t["wwn"]) in tseen:
        err(p, f"duplicate target {fabric}/{t['wwn']}")
    tseen.add((fabric, t["wwn"]))
    tags: set[int] = set()
    for j, tpg in enumerate(typed(t.get("tpgs", []), list, p + ".tpgs", "tpgs")):
        _tpg(tpg, f"{p}.tpgs[{j}]", spec, tags, alua_groups, warnings)


def _tpg(tpg, q: str, spec, tags: set, alua_groups: dict, warnings: list[str]) -> None:
    typed(tpg, dict, q, "a TPG")
    _unknown(tpg, "tpg", q, warnings)
    tag = typed(tpg.get("tag"), int, q + ".tag", "tag")
    if tag in tags or not 1 <= tag <= 65535:
        err(q + ".tag", f"TPG tag {tag} is duplicated or out of range")
    tags.add(tag)
    for key in ("attributes", "parameters"):
        _values(tpg.get(key, {}), f"{q}.{key}", key)
    _flag(tpg, "enable", q)
    _chap(tpg, q)
    lidx: set[int] = set()
    for k, lun in enumerate(typed(tpg.get("luns", []), list, q + ".luns", "luns")):
        lidx.add(_lun(lun, f"{q}.luns[{k}]", lidx, alua_groups, warnings))
    for k, portal in enumerate(typed(tpg.get("portals", []), list, q + ".portals", "portals")):
        _portal(portal, f"{q}.portals[{k}]", warnings)
    acls: set[str] = set()
    for k, acl in enumerate(typed(tpg.get("node_acls", []), list, q + ".node_acls", "node_acls")):
        acls.add(_acl(acl, f"{q}.node_acls[{k}]", spec, acls, lidx, warnings))


def _lun(lun, r: str, lidx: set[int], alua_groups: dict, warnings: list[str]) -> int:
    typed(lun, dict, r, "a LUN")
    _unknown(lun, "lun", r, warnings)
    idx = typed(lun.get("index"), int, r + ".index", "index")
    if idx in lidx:
        err(r + ".index", f"duplicate LUN index {idx}")
    if not 0 <= idx <= 65535:
        err(r + ".index", f"LUN {idx} is out of range (0-65535)")
    so_path = typed(lun.get("storage_object"), str, r + ".storage_object", "storage_object")
    parts = so_path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "backstores" or (parts[1], parts[2]) not in alua_groups:
        err(r + ".storage_object", f"{so_path!r} is not a storage object of this file")
    if lun.get("alias") is not None:
        _name(lun, "alias", r, "LUN alias")
    gp = lun.get("alua_tg_pt_gp_name")
    if gp is not None:
        typed(gp, str, r + ".alua_tg_pt_gp_name", "alua_tg_pt_gp_name")
        groups = alua_groups[(parts[1], parts[2])]
        if groups is not None and gp not in groups:
            err(r + ".alua_tg_pt_gp_name", f"{so_path} has no ALUA group {gp!r}")
    return idx


def _portal(portal, r: str, warnings: list[str]) -> None:
    typed(portal, dict, r, "a portal")
    _unknown(portal, "portal", r, warnings)
    ip = typed(portal.get("ip_address"), str, r + ".ip_address", "ip_address")
    bare = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        err(r + ".ip_address", f"{ip!r} is not an IP address")
    # Python takes any text as an IPv6 scope (fe80::1%<newline>): an interface name only
    if "%" in bare and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", bare.partition("%")[2]):
        err(r + ".ip_address", f"{ip!r} has a scope that is not an interface name")
    int_range(portal.get("port"), 1, 65535, r + ".port", "port")
    for key in ("iser", "offload"):
        _flag(portal, key, r)


def _acl(acl, r: str, spec, acls: set[str], lidx: set[int], warnings: list[str]) -> str:
    typed(acl, dict, r, "an ACL")
    _unknown(acl, "acl", r, warnings)
    typed(acl.get("node_wwn"), str, r + ".node_wwn", "node_wwn")
    # an initiator's name: iSCSI's are IQN/NAA/EUI; other fabrics' are their port names in
    # whatever spelling their ACL directories take
    acl["node_wwn"] = _wwn(spec.initiator_wwn_types, acl["node_wwn"], r + ".node_wwn", "initiator name")
    if acl["node_wwn"] in acls:
        err(r + ".node_wwn", f"duplicate ACL {acl['node_wwn']}")
    if acl.get("tag") is not None:
        text(acl["tag"], r + ".tag", "tag")
    _values(acl.get("attributes", {}), r + ".attributes", "attributes")
    _chap(acl, r)
    midx: set[int] = set()
    for m, ml in enumerate(typed(acl.get("mapped_luns", []), list, r + ".mapped_luns", "mapped_luns")):
        midx.add(_mapped_lun(ml, f"{r}.mapped_luns[{m}]", midx, lidx, warnings))
    return acl["node_wwn"]


def _mapped_lun(ml, s: str, midx: set[int], lidx: set[int], warnings: list[str]) -> int:
    typed(ml, dict, s, "a mapped LUN")
    _unknown(ml, "mapped_lun", s, warnings)
    mi = typed(ml.get("index"), int, s + ".index", "index")
    int_range(mi, 0, 65535, s + ".index", "mapped LUN")
    if mi in midx:
        err(s + ".index", f"duplicate mapped LUN {mi}")
    tl = typed(ml.get("tpg_lun"), int, s + ".tpg_lun", "tpg_lun")
    if tl not in lidx:
        err(s + ".tpg_lun", f"LUN {tl} is not in this TPG")
    _flag(ml, "write_protect", s)
    if ml.get("alias") is not None:
        _name(ml, "alias", s, "mapped LUN alias")
    return mi


def _fabric_module(fm, p: str, fseen: set[str], warnings: list[str]) -> None:
    typed(fm, dict, p, "a fabric module")
    _unknown(fm, "fabric", p, warnings)
    typed(fm.get("name"), str, p + ".name", "name")
    _fabric(fm["name"], p + ".name")
    if fm["name"] in fseen:
        err(p + ".name", f"duplicate fabric module {fm['name']}")
    fseen.add(fm["name"])
    for k, v in fm.items():
        if k in KNOWN["fabric"] and k.startswith("discovery_") and k != "discovery_enable_auth" and v is not None:
            _secret(v, at(p, k), k) if "password" in k else text(v, at(p, k), k)
    _flag(fm, "discovery_enable_auth", p)


def _fabric(name: str, path: str):
    rule(path, names.check_fabric_name, name, fabrics.KNOWN)
    if name not in fabrics.KNOWN and not os.path.isdir(os.path.join(configfs.ROOT, name)):
        err(path, f"unknown fabric {name!r} (known: {', '.join(sorted(fabrics.KNOWN))})")
    return fabrics.spec_for(name)


def _chap(d: dict, path: str):
    for key in ("chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"):
        if d.get(key) is not None:
            _secret(d[key], f"{path}.{key}", key) if "password" in key else text(d[key], f"{path}.{key}", key)
            if len(d[key].encode()) > 255:
                err(f"{path}.{key}", f"{key} is {len(d[key].encode())} bytes; the kernel takes at most 255")


def _secret(v, path: str, what: str) -> None:
    """As _text, but the error never shows the secret."""
    typed(v, str, path, what)
    try:
        names.check_value(v, what)
    except LioError:
        err(path, f"{what} must be text without a newline, NUL or other control character")


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
