"""Targets, TPGs, LUNs, portals, ACLs and mapped LUNs: validation and configfs plans.

The one way each of them is made: the `plan_*_at` planners take configfs paths (an object
that exists, or one an earlier step of the same plan makes) and return a Plan plus what they
made. The tree's commands (plan_target, plan_lun, plan_acl, plan_portal: checked against the
snapshot first), `export` and restore (saveconfig/restore_plan.py) all build on them.
"""

from __future__ import annotations

import ipaddress
import os
import shlex

from lioctl import configfs, wwn as wwnmod
from lioctl.backstores import common as bsc
from lioctl.errors import AlreadyExists, LioError, NotFound
from lioctl.plan import Modprobe, Plan, Write
from lioctl.tree.fabrics import FabricSpec, spec_for
from lioctl.tree.snapshot import TPG, Lun, MappedLun, NodeACL, Snapshot, StorageObject, Target

MAX_LUN = 65535


def _alias() -> str:
    return os.urandom(5).hex()   # 10 hex digits, as targetcli names them


def fabric_path(name: str) -> str:
    return f"{configfs.ROOT}/{name}"


def plan_fabric(snap: Snapshot, spec: FabricSpec, made=frozenset()) -> Plan:
    """Its module, and its directory unless it exists or `made` (an earlier step) makes it."""
    plan = Plan()
    if spec.module:
        plan.add(Modprobe(spec.module))
    path = fabric_path(spec.name)
    if spec.name not in snap.fabrics and not os.path.isdir(path) and path not in made:
        plan.mkdir(path)
    return plan


def plan_target_at(snap: Snapshot, spec: FabricSpec, cfs_wwn: str, made=frozenset()) -> tuple[Plan, str]:
    """A target directory (and its fabric's); returns its path."""
    plan = plan_fabric(snap, spec, made)
    tpath = f"{fabric_path(spec.name)}/{cfs_wwn}"
    plan.mkdir(tpath)
    return plan, tpath


def normalize_target_wwn(spec: FabricSpec, wwn: str | None) -> str:
    if not wwn:
        if spec.wwns_from:
            raise LioError(f"{spec.name} targets need a port WWN; available: "
                           + (", ".join(spec.hardware_wwns()) or "none (no such ports on this host)"))
        return wwnmod.generate(spec.wwn_types[0] if spec.wwn_types[0] != "free" else "naa")
    if wwn.startswith(wwnmod.FROM) and not spec.wwns_from:  # a port's WWN is the hardware's
        return wwnmod.derive(spec.wwn_types[0] if spec.wwn_types[0] != "free" else "naa",
                             wwn[len(wwnmod.FROM):])
    w, _ = wwnmod.normalize(spec.wwn_types, wwn, f"{spec.name} WWN")
    if spec.wwns_from:
        hw = spec.hardware_wwns()
        if w not in hw:
            raise NotFound(f"{spec.name}: no port with WWN {w} on this host"
                           + (f" (ports: {', '.join(hw)})" if hw else " (no such ports found)"))
    return w


def plan_target(snap: Snapshot, fabric: str, wwn: str | None, *, tpg: bool = True,
                default_portal: bool = True, enable: bool = True) -> tuple[Plan, str]:
    """Create a target (and, as targetcli does, TPG 1 with the default portal)."""
    spec = spec_for(fabric)
    w = normalize_target_wwn(spec, wwn)
    cfs_w = spec.cfs_wwn(w)
    fab = snap.fabrics.get(fabric)
    if fab and cfs_w in fab.targets:
        raise AlreadyExists(f"target {w} already exists in /{fabric}", obj=f"/{fabric}/{w}")
    plan, tpath = plan_target_at(snap, spec, cfs_w)
    if tpg:
        plan.extend(plan_tpg_at(spec, tpath, 1, default_portal=default_portal, enable=enable))
    return plan, w


def plan_tpg_at(spec: FabricSpec, tpath: str, tag: int, *, default_portal: bool = True,
                enable: bool = True, nexus: str | None = None) -> Plan:
    plan = Plan()
    path = f"{tpath}/tpgt_{tag}"
    plan.mkdir(path)
    if "nexus" in spec.features:
        plan.write(f"{path}/nexus", nexus or wwnmod.generate("naa"), undoable=False)
    # the default portal is iSCSI's; a fabric lioctl does not know has an np group whether or
    # not it implements portals (the kernel refuses them with ENOSYS when it does not)
    if spec.default_portal and default_portal:
        plan.mkdir(f"{path}/np/{spec.default_portal}")
    if enable and spec.enable_tpg:
        plan.write(f"{path}/enable", "1", undoable=False)
    elif enable and not spec.known:
        plan.add(WriteIfOffered(f"{path}/enable", "1", undoable=False))
    return plan


class WriteIfOffered(Write):
    """Whether a fabric lioctl does not know gives its TPGs an enable switch shows only once
    the TPG directory exists (the kernel adds it when the fabric implements enabling)."""

    def apply(self):
        return super().apply() if os.path.exists(self.path) else None

    def sh(self):
        return f"[ ! -e {shlex.quote(self.path)} ] || {super().sh()}"


def check_lun_index(index) -> int:
    try:
        i = int(index)
    except (TypeError, ValueError):
        raise LioError(f"LUN {index!r} is not a number") from None
    if not 0 <= i <= MAX_LUN:
        raise LioError(f"LUN {i} is out of range (0-{MAX_LUN})")
    return i


def free_lun(tpg: TPG) -> int:
    for i in range(MAX_LUN + 1):
        if i not in tpg.luns:
            return i
    raise LioError(f"{tpg.tree_path}: no free LUN index")


def tpg_lun_path(tpg_path: str, index: int) -> str:
    return f"{tpg_path}/lun/lun_{index}"


def plan_luns_at(tpg_path: str, luns: list[tuple[int, str, str | None]], *,
                 concurrent: bool = False) -> Plan:
    """LUNs (index, storage object path, link name or None for a generated one): the
    directories, then the links. A LUN's link waits in the kernel (~17 ms under emulation):
    with concurrent, adjacent links go on threads."""
    plan = Plan()
    for index, _, _ in luns:
        plan.mkdir(tpg_lun_path(tpg_path, index))
    for index, so_path, alias in luns:
        plan.symlink(f"{tpg_lun_path(tpg_path, index)}/{alias or _alias()}", so_path,
                     concurrent=concurrent)
    return plan


def plan_lun(tpg: TPG, so_path: str, index=None, *, add_mapped_luns: bool = True,
             alias: str | None = None) -> tuple[Plan, int]:
    """A LUN on storage object `so_path` (an enabled one: see backstores.common.check_enabled,
    or one the same plan makes), mapped for every ACL unless add_mapped_luns is false."""
    idx = free_lun(tpg) if index is None else check_lun_index(index)
    if idx in tpg.luns:
        raise AlreadyExists(f"LUN {idx} already exists in {tpg.tree_path}", obj=f"{tpg.tree_path}/luns/lun{idx}")
    plan = plan_luns_at(tpg.path, [(idx, so_path, alias)])
    lpath = tpg_lun_path(tpg.path, idx)
    if add_mapped_luns and tpg.target.fabric.has("acls"):
        for acl in tpg.acls.values():
            ml = free_mapped_lun(acl, prefer=idx)
            plan.extend(plan_mapped_lun_at(acl.path, ml, lpath, False))
    return plan, idx


def free_mapped_lun(acl: NodeACL, prefer: int, taken: set[int] = frozenset()) -> int:
    used = set(acl.mapped_luns) | set(taken)
    if prefer not in used:
        return prefer
    for i in range(MAX_LUN + 1):
        if i not in used:
            return i
    raise LioError(f"{acl.tree_path}: no free mapped LUN index")


def plan_mapped_lun_at(acl_path: str, index: int, tpg_lun: str, write_protect: bool,
                       alias: str | None = None) -> Plan:
    plan = Plan()
    mpath = f"{acl_path}/lun_{index}"
    plan.mkdir(mpath)
    plan.symlink(f"{mpath}/{alias or _alias()}", tpg_lun)
    if write_protect:
        plan.write(f"{mpath}/write_protect", "1", undoable=False)
    return plan


def plan_delete_lun(lun: Lun, removed: set[str] = frozenset()) -> Plan:
    """Remove a LUN and every mapped LUN pointing at it (targetcli does the same), except those
    in `removed`: directories the caller's plan removes already (unlinking twice fails)."""
    plan = Plan()
    for acl in lun.tpg.acls.values():
        if acl.path in removed:
            continue
        for ml in acl.mapped_luns.values():
            if ml.tpg_lun == lun.index and ml.path not in removed:
                plan.extend(plan_delete_mapped_lun(ml))
    if lun.alias:
        plan.unlink(f"{lun.path}/{lun.alias}")     # keeps the LUN's ALUA settings
    plan.rmdir(lun.path, keep=False)
    return plan


def plan_delete_storage_object(snap: Snapshot, so: StorageObject, force: bool = False) -> Plan:
    """A storage object; in use it fails naming the user, unless force (then its LUNs go first)."""
    bsc.check_unused(so, force)
    plan = Plan()
    for lun in list(so.luns):
        plan.extend(plan_delete_lun(lun))
    plan.extend(bsc.plan_remove_objects(snap, [so]))
    return plan


def plan_delete_mapped_lun(ml: MappedLun) -> Plan:
    plan = Plan()
    if ml.alias:
        plan.unlink(f"{ml.path}/{ml.alias}")       # keeps write_protect, set again after relinking
    plan.rmdir(ml.path, keep=False)
    return plan


def plan_acl(tpg: TPG, node_wwn: str, *, add_mapped_luns: bool = True, tag: str | None = None) -> tuple[Plan, str]:
    spec = tpg.target.fabric.spec
    w, _ = wwnmod.normalize(spec.wwn_types, node_wwn, "initiator WWN")
    w = spec.cfs_wwn(w) if spec.colon_wwn else w
    if w in tpg.acls:
        raise AlreadyExists(f"ACL {w} already exists in {tpg.tree_path}", obj=f"{tpg.tree_path}/acls/{w}")
    plan, apath = plan_acl_at(tpg.path, w, tag)
    if add_mapped_luns:
        for lun in tpg.luns.values():
            plan.extend(plan_mapped_lun_at(apath, lun.index, lun.path, False))
    return plan, w


def plan_acl_at(tpg_path: str, cfs_wwn: str, tag: str | None = None) -> tuple[Plan, str]:
    """An ACL directory (and its tag); returns its path."""
    plan = Plan()
    apath = f"{tpg_path}/acls/{cfs_wwn}"
    plan.mkdir(apath)
    if tag:
        plan.write(f"{apath}/tag", tag, undoable=False)
    return plan, apath


def plan_delete_acl(acl: NodeACL) -> Plan:
    plan = Plan()
    for ml in acl.mapped_luns.values():
        plan.extend(plan_delete_mapped_lun(ml))
    plan.rmdir(acl.path)
    return plan


def parse_portal(text: str, default_port: int = 3260) -> tuple[str, int, str]:
    """'1.2.3.4', '1.2.3.4:3261', '[::1]:3260', '::1', '[::1]' -> (ip, port, configfs name)."""
    t = text.strip()
    port = default_port
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        if not sep:
            raise LioError(f"portal {text!r}: missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise LioError(f"portal {text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
    elif t.count(":") == 1:
        host, p = t.split(":")
        port = _port(p, text)
    else:
        host = t
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LioError(f"portal {text!r}: {host!r} is not an IP address") from None
    return ip.compressed, port, portal_name(ip.compressed, port)


def portal_name(ip: str, port) -> str:
    """A portal as configfs names it: 192.0.2.1:3260, [::1]:3260 (an IPv6 address may come
    with or without its brackets)."""
    ip = ip.strip("[]")
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _port(p: str, text: str) -> int:
    if not p.isdigit() or not 1 <= int(p) <= 65535:
        raise LioError(f"portal {text!r}: port {p!r} is not in 1-65535")
    return int(p)


def local_addresses() -> set[str]:
    """Addresses configured on this host (for portal validation and completion)."""
    addrs = set()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                h = line.split()[0]
                addrs.add(ipaddress.ip_address(int(h, 16)).compressed)
    except OSError:
        pass
    try:
        with open("/proc/net/fib_trie") as f:
            last = None
            for line in f:
                line = line.strip()
                if line.startswith("|--"):
                    last = line[3:].strip()
                elif line.startswith("/32 host LOCAL") and last:
                    addrs.add(last)
    except OSError:
        pass
    addrs.add("127.0.0.1")
    return addrs


def check_portal_address(ip: str) -> None:
    if ip in ("0.0.0.0", "::", "::1") or ip.startswith("127."):
        return  # wildcard and loopback addresses are always bindable
    if ip not in local_addresses():
        raise LioError(f"portal address {ip} is not configured on this host")


def plan_portal(tpg: TPG, text: str, *, check_local: bool = True) -> tuple[Plan, str]:
    ip, port, name = parse_portal(text)
    if name in tpg.portals:
        raise AlreadyExists(f"portal {name} already exists in {tpg.tree_path}", obj=f"{tpg.tree_path}/portals/{name}")
    if check_local:
        check_portal_address(ip)
    return plan_portal_at(tpg.path, name), name


def plan_portal_at(tpg_path: str, name: str, *, iser: bool = False, offload: bool = False) -> Plan:
    plan = Plan()
    path = f"{tpg_path}/np/{name}"
    plan.mkdir(path)
    if iser:
        plan.write(f"{path}/iser", "1", undoable=False)
    if offload:
        plan.write(f"{path}/cxgbit", "1", undoable=False)
    return plan


def plan_delete_tpg(tpg: TPG) -> Plan:
    return plan_delete_tpgs([tpg])


def plan_delete_tpgs(tpgs: list[TPG]) -> Plan:
    """TPGs and everything in them. Unlinking a LUN and removing a TPG each wait out an RCU
    grace period in the kernel, so those steps are grouped across all the TPGs and marked
    concurrent (deleting 32 targets: 256 LUN links went from 9 s to about 1 s in the guest).
    Every removal keeps the settings of what it removes (see Rmdir.keep), and disabling is
    undone last, so a failure anywhere puts the TPGs back as they were."""
    plan = Plan()
    for tpg in tpgs:
        if os.path.exists(f"{tpg.path}/enable") and tpg.enabled and tpg.target.fabric.spec.enable_tpg:
            plan.write(f"{tpg.path}/enable", "0")    # undone last of all: enabled once whole
        for acl in tpg.acls.values():
            plan.extend(plan_delete_acl(acl))
    for tpg in tpgs:
        for lun in tpg.luns.values():
            if lun.alias:
                plan.unlink(f"{lun.path}/{lun.alias}", concurrent=True)
    for tpg in tpgs:
        for lun in tpg.luns.values():
            plan.rmdir(lun.path, keep=False)
        for portal in tpg.portals.values():
            plan.rmdir(portal.path)
    for tpg in tpgs:
        plan.rmdir(tpg.path, concurrent=True)
    return plan


def plan_delete_target(target: Target) -> Plan:
    return plan_delete_targets([target])


def plan_delete_targets(targets: list[Target]) -> Plan:
    plan = plan_delete_tpgs([tpg for t in targets for tpg in t.tpgs.values()])
    for t in targets:
        plan.rmdir(t.path)
    return plan


def plan_chap(path: str, userid: str | None, password: str | None,
              mutual_userid: str | None = None, mutual_password: str | None = None) -> Plan:
    """Write CHAP credentials to an auth group (ACL auth/, TPG auth/ or discovery_auth/)."""
    plan = Plan()
    for key, value, secret in (("userid", userid, False), ("password", password, True),
                               ("userid_mutual", mutual_userid, False),
                               ("password_mutual", mutual_password, True)):
        if value is not None:
            if len(value) > 255:
                raise LioError(f"CHAP {key} is longer than 255 characters")
            if "\n" in value:
                raise LioError(f"CHAP {key} must not contain a newline")
            plan.write(f"{path}/{key}", value, secret=secret)
    return plan
