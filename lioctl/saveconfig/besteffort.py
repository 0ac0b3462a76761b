"""Boot-time restore, best effort: everything that can be restored is, and each object that
cannot is named with its reason (a portal on an address that is not up yet must not undo the
whole configuration at boot). Built from small plans run by the ordinary all-or-nothing
executor, one per object group: a group that fails is rolled back alone, and what depends on
it is skipped and named. Each group is planned from a fresh snapshot, so this costs more than
one plan: restore tries the whole file as one plan first and comes here only if that fails."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lioctl.errors import LioError
from lioctl.plan import executor
from lioctl.saveconfig import restore_plan
from lioctl.tree import snapshot
from lioctl.tree.fabrics import spec_for
from lioctl.tree.targets import portal_name


_SUB_PATH = re.compile(r"^(storage_objects|targets|fabric_modules)\[0\]: ")


@dataclass
class Outcome:
    changes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)    # "object: reason", one per object
    skipped: list[str] = field(default_factory=list)   # "object (why)": a parent failed

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.skipped)


def _attempt(out: Outcome, label: str, sub: dict, record: bool = True) -> bool:
    """Plan `sub` against the running configuration and run it; False (rolled back) if it fails."""
    try:
        ch = restore_plan.plan_restore(snapshot.read(), sub)
        executor.execute(ch.plan)
    except LioError as e:
        if record:
            # the label names the object; the JSON path planning put first is the one of this
            # one-object piece (always [0]), not of the saved file, and would only mislead
            out.failed.append(f"{label}: {_SUB_PATH.sub('', str(e))}")
        return False
    out.changes += ch.lines
    return True


def restore(desired: dict) -> Outcome:
    out = Outcome()
    sos_ok = set()
    for w in desired.get("storage_objects", []):
        key = (w["plugin"], w["name"])
        if _attempt(out, f"storage object {key[0]}/{key[1]}", {"storage_objects": [w]}):
            sos_ok.add(key)
    for fm in desired.get("fabric_modules", []):
        _attempt(out, f"{fm['name']} discovery authentication", {"fabric_modules": [fm]})
    for t in desired.get("targets", []):
        _target(out, t, sos_ok)
    return out


def _target(out: Outcome, t: dict, sos_ok: set) -> None:
    label = f"target {t['wwn']}"
    snap = snapshot.read()
    fab = snap.fabrics.get(t["fabric"])
    running = fab.targets.get(spec_for(t["fabric"]).cfs_wwn(t["wwn"])) if fab else None
    tpgs = t.get("tpgs", [])
    # a TPG made here stays disabled until its children are in (as one whole plan does)
    hold = {tw["tag"]: tw.get("enable", True) if running and tw["tag"] in running.tpgs else False
            for tw in tpgs}

    def bare(tw, enable, luns=(), portals=(), acls=()):
        return dict(tw, enable=enable, luns=list(luns), portals=list(portals), node_acls=list(acls))

    def only(tw, enable, **children):
        """A saved configuration of this target with one TPG holding just these children."""
        return {"targets": [dict(t, tpgs=[bare(tw, enable, **children)])]}

    shells = {"targets": [dict(t, tpgs=[bare(tw, hold[tw["tag"]]) for tw in tpgs])]}
    if not _attempt(out, label, shells):
        for tw in tpgs:
            n = len(tw.get("luns", [])) + len(tw.get("portals", [])) + len(tw.get("node_acls", []))
            if n:
                out.skipped.append(f"{label} TPG {tw['tag']}: its {n} LUN(s), portal(s) and "
                                   "ACL(s) (the target was not restored)")
        return
    for tw in tpgs:
        _tpg(out, t, tw, hold[tw["tag"]], sos_ok, only)


def _tpg(out: Outcome, t: dict, tw: dict, held: bool, sos_ok: set, only) -> None:
    label = f"{t['wwn']} TPG {tw['tag']}"
    luns, bad_luns = [], set()
    for lw in tw.get("luns", []):
        if restore_plan.so_key(lw["storage_object"]) in sos_ok:
            luns.append(lw)
        else:
            bad_luns.add(lw["index"])
            out.skipped.append(f"{label} LUN {lw['index']} (its storage object "
                               f"{lw['storage_object']} was not restored)")
    acls = [_acl_without(out, label, aw, bad_luns) for aw in tw.get("node_acls", [])]
    portals = tw.get("portals", [])
    if not _attempt(out, label, only(tw, held, luns=luns, portals=portals, acls=acls), record=False):
        for lw in luns:
            if not _attempt(out, f"{label} LUN {lw['index']}", only(tw, held, luns=[lw])):
                bad_luns.add(lw["index"])
        for pw in portals:
            _attempt(out, f"{label} portal {portal_name(pw['ip_address'], pw['port'])}", only(tw, held, portals=[pw]))
        for aw in acls:
            _attempt(out, f"{label} ACL {aw['node_wwn']}",
                     only(tw, held, acls=[_acl_without(out, label, aw, bad_luns)]))
    if tw.get("enable", True) != held:
        _attempt(out, f"{label} enable", only(tw, tw.get("enable", True)))


def _acl_without(out: Outcome, label: str, aw: dict, bad_luns: set) -> dict:
    """The ACL with the mapped LUNs whose TPG LUN is there; the others named as skipped."""
    keep = []
    for mw in aw.get("mapped_luns", []):
        if mw["tpg_lun"] in bad_luns:
            out.skipped.append(f"{label} ACL {aw['node_wwn']} mapped LUN {mw['index']} "
                               f"(TPG LUN {mw['tpg_lun']} was not restored)")
        else:
            keep.append(mw)
    return dict(aw, mapped_luns=keep)
