"""Restore by difference: (running snapshot, desired saveconfig) -> a Plan that changes only what
differs, plus one `+ / - / ~` line per object or attribute. Objects absent from the file are
removed only with prune; objects already right are not touched, so their sessions keep running.

It decides what to make, change or remove; the making itself is the shared planners': each
backstore kind's plan_saved (lioctl/backstores/) and tree/targets.py's plan_*_at."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field, replace

from lioctl import configfs
from lioctl.errors import LioError, NotFound, reworded
from lioctl.plan import Modprobe, Plan, Rmdir, Unlink, Write
from lioctl.backstores import KINDS, common as bsc
from lioctl.saveconfig.dump import AUTH, dump_storage_object, rw_group
from lioctl.tree import targets as tg
from lioctl.tree.fabrics import spec_for
from lioctl.tree.snapshot import TPG, Snapshot, Target

# attributes the kernel derives or refuses to change once set; never written by restore
SO_SKIP_ATTRS = {"hw_block_size", "hw_max_sectors", "hw_pi_prot_type", "hw_queue_depth"}


@dataclass(frozen=True)
class OptionalWrite(Write):
    """A setting of an object this plan creates. Which files the kernel offers is only known once
    the directory exists, so a setting this kernel lacks (a file saved on a newer kernel) is
    reported and skipped, as rtslib does, instead of failing the whole restore. A file whose
    absence already means the value asked (`enable` = 1 of a TPG that is always on, tcm_loop's)
    is skipped without a word."""

    absent_means_done: bool = False

    def apply(self):
        if not os.path.exists(self.path):
            if self.absent_means_done:
                return None
            short = self.path[len(configfs.ROOT) + 1:] if self.path.startswith(configfs.ROOT) else self.path
            print(f"lioctl: warning: the kernel has no {short}; not applied", file=sys.stderr)
            return None
        return super().apply()

    def sh(self):
        return f"[ ! -e {shlex.quote(self.path)} ] || {super().sh()}"


def _context(where: str, fn, *a, **kw):
    """Plan-building errors name the JSON path of the object they come from."""
    try:
        return fn(*a, **kw)
    except LioError as e:
        raise reworded(e, f"{where}: {e}") from None


@dataclass
class Change:
    plan: Plan = field(default_factory=Plan)
    lines: list[str] = field(default_factory=list)
    before: Snapshot | None = field(default=None, repr=False)  # what the plan was made from

    def add(self, sign: str, what: str, detail: str = ""):
        self.lines.append(f"{sign} {what}" + (f" ({detail})" if detail else ""))


def _str(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _write_group(ch: Change, label: str, cfs_dir: str, desired: dict, current: dict | None,
                 skip=frozenset(), secret_keys=frozenset()):
    """Write the values that differ (all of them for a new object, current=None)."""
    for k, v in desired.items():
        if k in skip:
            continue
        if current is not None and k not in current and not os.path.exists(f"{cfs_dir}/{k}"):
            print(f"lioctl: warning: {label}: the kernel has no {k}; not applied", file=sys.stderr)
            continue
        secret = k.startswith("password") or k in secret_keys
        if current is None:
            ch.plan.add(OptionalWrite(f"{cfs_dir}/{k}", _str(v), secret=secret, undoable=False))
            continue
        cur = current.get(k)
        if cur is None or _str(cur) != _str(v):
            ch.plan.write(f"{cfs_dir}/{k}", _str(v), secret=secret)
            if secret:
                ch.add("~", f"{label} {k}", "secret changed")
            else:
                ch.add("~", f"{label} {k}", f"{cur} -> {_str(v)}")


def so_key(path: str) -> tuple[str, str]:
    """/backstores/KIND/NAME (a LUN's storage_object) -> the (kind, name) key of a storage object."""
    parts = path.strip("/").split("/")
    return parts[1], parts[2]


def plan_restore(snap: Snapshot, desired: dict, prune: bool = False,
                 refs: dict[tuple[str, str], str] | None = None) -> Change:
    """refs: where storage objects outside `snap` are, that LUNs of `desired` may use (apply's
    partial document names a target whose LUNs use objects it does not name)."""
    ch = Change()
    want_sos = {(s["plugin"], s["name"]): s for s in desired.get("storage_objects", [])}
    replaced: set[tuple[str, str]] = set()
    dumped: dict[tuple[str, str], dict] = {}  # each kept object's attributes read once
    # --- storage objects: which exist but differ in what only creation can set
    for key, so in snap.storage_objects.items():
        w = want_sos.get(key)
        if w is None:
            continue
        cur = dumped[key] = dump_storage_object(so)
        for k in so.kind.identity:     # what only creation sets: a change re-creates it
            if k in w and _norm(k, w[k]) != _norm(k, cur.get(k)):
                replaced.add(key)
                ch.add("~", f"storage object {key[0]}/{key[1]}", f"{k} {cur.get(k)} -> {w[k]}: re-created")
                break

    want_targets = {(t["fabric"], t["wwn"]): t for t in desired.get("targets", [])}
    # --- removals first (children before parents)
    gone_targets = []
    for fab in snap.fabrics.values():
        for t in fab.targets.values():
            key = (fab.name, fab.spec.display_wwn(t.wwn))
            w = want_targets.get(key)
            if w is None:
                if prune:
                    gone_targets.append(t)
                    ch.add("-", f"target {key[1]}")
                continue
            _prune_target(ch, t, w, prune, replaced)
    if gone_targets:
        ch.plan.extend(tg.plan_delete_targets(gone_targets))
    gone_sos = []
    for key, so in snap.storage_objects.items():
        if key in replaced or (key not in want_sos and prune):
            luns_left = [lun for lun in so.luns if lun.path not in ch.plan.removed]
            for lun in luns_left:
                ch.plan.extend(tg.plan_delete_lun(lun, ch.plan.removed))
                ch.add("-", f"LUN {lun.tree_path}", "its storage object goes")
            gone_sos.append(so)
            if key not in replaced:
                ch.add("-", f"storage object {key[0]}/{key[1]}")
    if gone_sos:
        ch.plan.extend(bsc.plan_remove_objects(snap, gone_sos))
    # --- storage objects to create or adjust; where each is (or will be) in configfs
    taken_hbas: set[str] = set()
    so_paths = {**(refs or {}), **{k: so.path for k, so in snap.storage_objects.items()}}
    for n, (key, w) in enumerate(want_sos.items()):
        so = snap.storage_objects.get(key)
        if so is None or key in replaced:
            if key not in replaced:
                ch.add("+", f"storage object {key[0]}/{key[1]}")
            made, so_paths[key] = _context(f"storage_objects[{n}]", _create_so, snap, w, taken_hbas)
            ch.plan.extend(made.plan)
            ch.lines += made.lines
        else:
            cur = dumped[key]
            _write_group(ch, f"storage object {key[0]}/{key[1]} attribute", so.path + "/attrib",
                         {k: v for k, v in w.get("attributes", {}).items() if k not in SO_SKIP_ATTRS},
                         cur.get("attributes", {}))
            if w.get("wwn") and w["wwn"] != so.wwn:
                ch.plan.write(so.path + "/wwn/vpd_unit_serial", w["wwn"])
                ch.add("~", f"storage object {key[0]}/{key[1]} wwn", f"{so.wwn} -> {w['wwn']}")
            _alua(ch, so.path, w.get("alua_tpgs", []), {g["name"]: g for g in cur["alua_tpgs"]},
                  f"{key[0]}/{key[1]}", prune)
    # --- targets
    for n, (key, w) in enumerate(want_targets.items()):
        fab = snap.fabrics.get(key[0])
        spec = spec_for(key[0])
        t = fab.targets.get(spec.cfs_wwn(key[1])) if fab else None
        if t is None:
            ch.add("+", f"target {key[1]}")
            _context(f"targets[{n}]", _create_target, ch, snap, w, so_paths)
        else:
            _context(f"targets[{n}]", _update_target, ch, t, w, so_paths, replaced)
    # --- discovery auth
    for fm in desired.get("fabric_modules", []):
        da = f"{configfs.ROOT}/{fm['name']}/discovery_auth"
        want = {fname: fm.get("discovery_" + key) for key, fname in AUTH if fm.get("discovery_" + key)}
        want["enforce_discovery_auth"] = 1 if fm.get("discovery_enable_auth") else 0
        # read what is there only if it is part of the starting point (restore --clear plans
        # from an empty snapshot, and clears discovery auth before this runs)
        cur = {k: configfs.read(f"{da}/{k}") for k in want} \
            if os.path.isdir(da) and fm["name"] in snap.fabrics else None
        if not os.path.isdir(f"{configfs.ROOT}/{fm['name']}"):
            ch.plan.add(Modprobe(spec_for(fm["name"]).module or fm["name"]))
            ch.plan.mkdir(f"{configfs.ROOT}/{fm['name']}")
        _write_group(ch, f"{fm['name']} discovery_auth", da, want, cur, secret_keys={"password", "password_mutual"})
    return ch


def _norm(k, v):
    if k == "dev" and isinstance(v, str):
        return os.path.realpath(v)
    if k in ("write_back", "readonly", "nullio"):
        return bool(v)
    return v


def _create_so(snap: Snapshot, w: dict, taken: set[str]) -> tuple[Change, str]:
    """The object made as saved, in a free HBA; returns where it will be."""
    kind = KINDS[w["plugin"]]
    hba = bsc.free_hba(kind, taken)
    taken.add(hba)
    ch = Change(kind.plan_saved(w, hba))
    path = bsc.object_path(hba, w["name"])
    skip = SO_SKIP_ATTRS | kind.planned_attributes
    _write_group(ch, "", path + "/attrib",
                 {k: v for k, v in w.get("attributes", {}).items() if k not in skip}, None)
    _alua(ch, path, w.get("alua_tpgs", []), {}, f"{kind.name}/{w['name']}")
    return ch, path


ALUA_ORDER = ("alua_access_status", "alua_write_metadata", "preferred", "nonop_delay_msecs",
              "trans_delay_msecs", "implicit_trans_secs", "alua_support_offline",
              "alua_support_standby", "alua_support_transitioning",
              "alua_support_active_nonoptimized", "alua_support_unavailable",
              "alua_support_active_optimized")


def _alua_writes(want: dict, have: dict | None) -> list[tuple[str, str]]:
    """(file, value) pairs in an order the kernel accepts: a state change needs implicit ALUA in
    the access type, so the type goes first when it allows implicit and last otherwise."""
    def differs(k):
        return want.get(k) is not None and (have is None or _str(have.get(k)) != _str(want[k]))
    out = [(k, _str(want[k])) for k in ALUA_ORDER if differs(k)]
    state = [("alua_access_state", _str(want["alua_access_state"]))] if differs("alua_access_state") else []
    typ = [("alua_access_type", _str(want["alua_access_type"]))] if differs("alua_access_type") else []
    implicit = want.get("alua_access_type") in (1, 3)
    return (typ + state if implicit else state + typ) + out


def _alua(ch: Change, so_path: str, want: list[dict], have: dict[str, dict], label: str,
          prune: bool = False):
    """ALUA target port groups: new ones made and set, existing ones' differing settings
    written in place, ones the file lacks removed with prune. `have`: the object's groups as
    dumped, by name."""
    wanted = {g["name"] for g in want}
    for g in want:
        p = f"{so_path}/alua/{g['name']}"
        if g["name"] in have:
            cur = have[g["name"]]
            for k, v in _alua_writes(g, cur):
                ch.plan.write(f"{p}/{k}", v, undoable=False)  # read back as words: no undo
                ch.add("~", f"ALUA group {label}/{g['name']} {k}", f"{cur.get(k)} -> {v}")
            continue
        if g["name"] == "default_tg_pt_gp":
            continue  # the kernel makes it with the object
        ch.plan.mkdir(p)
        ch.plan.write(p + "/tg_pt_gp_id", str(g.get("tg_pt_gp_id", 0)), undoable=False)
        for k, v in _alua_writes(g, None):
            ch.plan.add(OptionalWrite(f"{p}/{k}", v, undoable=False))
        ch.add("+", f"ALUA group {label}/{g['name']}")
    if prune:
        for name in have:
            if name != "default_tg_pt_gp" and name not in wanted:
                ch.plan.rmdir(f"{so_path}/alua/{name}")
                ch.add("-", f"ALUA group {label}/{name}")


def _create_target(ch: Change, snap: Snapshot, w: dict, so_paths):
    spec = spec_for(w["fabric"])
    plan, tpath = tg.plan_target_at(snap, spec, spec.cfs_wwn(w["wwn"]), ch.plan.made)
    ch.plan.extend(plan)
    _target_groups(ch, tpath, w, None)
    for tw in w.get("tpgs", []):
        _create_tpg(ch, spec, tpath, tw, so_paths)


def _create_tpg(ch: Change, spec, tpath: str, tw: dict, so_paths):
    """As rtslib does: a fabric with a nexus (loopback, vhost) gets a generated one, written
    before any LUN so the LUNs show up as SCSI devices; the portal and enable come from the file."""
    path = f"{tpath}/tpgt_{tw['tag']}"
    ch.add("+", path[len(configfs.ROOT) + 1:])
    ch.plan.extend(tg.plan_tpg_at(spec, tpath, tw["tag"], default_portal=False, enable=False))
    _tpg_body(ch, path, tw, None, so_paths, set())


def _tpg_body(ch: Change, path: str, tw: dict, tpg: TPG | None, so_paths, replaced):
    """Everything inside a TPG, for a new TPG (tpg None) or the differences of an existing one."""
    label = path[len(configfs.ROOT) + 1:]
    _write_group(ch, f"{label} attribute", path + "/attrib", tw.get("attributes", {}),
                 rw_group(path + "/attrib") if tpg else None)
    _write_group(ch, f"{label} parameter", path + "/param", tw.get("parameters", {}),
                 rw_group(path + "/param", as_text=True) if tpg else None)
    cur_auth = configfs.read_group(path + "/auth", [k for _, k in AUTH]) if tpg else None
    auth = {fname: tw.get("chap_" + key) or "" for key, fname in AUTH
            if tw.get("chap_" + key) or tpg is not None and cur_auth.get(fname)}
    _write_group(ch, f"{label} auth", path + "/auth", auth,
                 {k: cur_auth[k] for k in auth} if tpg else None,
                 secret_keys={"password", "password_mutual"})
    have_luns = tpg.luns if tpg else {}
    new_luns = []
    for lw in tw.get("luns", []):
        lun = have_luns.get(lw["index"])
        key = so_key(lw["storage_object"])
        if lun is not None and lun.storage_object is not None and \
                (lun.storage_object.plugin, lun.storage_object.name) == key and key not in replaced:
            gp = lw.get("alua_tg_pt_gp_name")
            if gp and gp != lun.alua_tg_pt_gp:
                ch.plan.write(lun.path + "/alua_tg_pt_gp", gp, undoable=False)  # reads back as a report
                ch.add("~", f"{label} LUN {lw['index']} alua_tg_pt_gp_name", f"{lun.alua_tg_pt_gp} -> {gp}")
            continue
        if lun is not None and lun.path not in ch.plan.removed:
            ch.plan.extend(tg.plan_delete_lun(lun))
        new_luns.append(lw)
        ch.add("+", f"{label} LUN {lw['index']}")
    ch.plan.extend(tg.plan_luns_at(path, [(lw["index"], so_paths[so_key(lw["storage_object"])],
                                           lw.get("alias")) for lw in new_luns], concurrent=True))
    for lw in new_luns:
        if lw.get("alua_tg_pt_gp_name") and lw["alua_tg_pt_gp_name"] != "default_tg_pt_gp":
            ch.plan.write(tg.tpg_lun_path(path, lw["index"]) + "/alua_tg_pt_gp",
                          lw["alua_tg_pt_gp_name"], undoable=False)
    have_portals = tpg.portals if tpg else {}
    for pw in tw.get("portals", []):
        name = tg.portal_name(pw["ip_address"], pw["port"])
        if name in have_portals:
            continue
        ch.plan.extend(tg.plan_portal_at(path, name, iser=bool(pw.get("iser")),
                                         offload=bool(pw.get("offload"))))
        ch.add("+", f"{label} portal {name}")
    have_acls = tpg.acls if tpg else {}
    for aw in tw.get("node_acls", []):
        acl = have_acls.get(aw["node_wwn"])
        apath = f"{path}/acls/{aw['node_wwn']}"
        if acl is None:
            ch.plan.extend(tg.plan_acl_at(path, aw["node_wwn"], aw.get("tag"))[0])
            ch.add("+", f"{label} ACL {aw['node_wwn']}")
        cur_auth = configfs.read_group(apath + "/auth", [k for _, k in AUTH]) if acl else None
        want_auth = {fname: aw.get("chap_" + key) or "" for key, fname in AUTH
                     if aw.get("chap_" + key) or acl is not None and cur_auth.get(fname)}
        _write_group(ch, f"{label} ACL {aw['node_wwn']} auth", apath + "/auth", want_auth, cur_auth,
                     secret_keys={"password", "password_mutual"})
        _write_group(ch, f"{label} ACL {aw['node_wwn']} attribute", apath + "/attrib",
                     aw.get("attributes", {}), rw_group(apath + "/attrib") if acl else None)
        if aw.get("tag") and acl is not None and acl.tag != aw["tag"]:
            ch.plan.write(apath + "/tag", aw["tag"], undoable=False)
        have_ml = acl.mapped_luns if acl else {}
        for mw in aw.get("mapped_luns", []):
            ml = have_ml.get(mw["index"])
            relinked = tg.tpg_lun_path(path, mw["tpg_lun"]) in ch.plan.made
            if ml is not None and ml.tpg_lun == mw["tpg_lun"] and not relinked:
                if bool(mw.get("write_protect")) != ml.write_protect:
                    ch.plan.write(ml.path + "/write_protect", "1" if mw.get("write_protect") else "0")
                    ch.add("~", f"{label} ACL {aw['node_wwn']} mapped LUN {mw['index']} write_protect")
                continue
            if ml is not None and ml.path not in ch.plan.removed:
                ch.plan.extend(tg.plan_delete_mapped_lun(ml))
            ch.plan.extend(tg.plan_mapped_lun_at(apath, mw["index"], tg.tpg_lun_path(path, mw["tpg_lun"]),
                                                 bool(mw.get("write_protect"))))
            ch.add("+", f"{label} ACL {aw['node_wwn']} mapped LUN {mw['index']}")
    enable = tw.get("enable", True)
    if tpg is None:  # fabrics without an enable file are always on (rtslib skips it too)
        ch.plan.add(OptionalWrite(path + "/enable", "1" if enable else "0", undoable=False,
                                  absent_means_done=bool(enable)))
    elif os.path.exists(path + "/enable") and bool(tpg.enabled) != bool(enable):
        ch.plan.write(path + "/enable", "1" if enable else "0")
        ch.add("~", f"{label} enable", f"{int(bool(tpg.enabled))} -> {int(bool(enable))}")


def _prune_target(ch: Change, t: Target, w: dict, prune: bool, replaced):
    want_tpgs = {tw["tag"]: tw for tw in w.get("tpgs", [])}
    for tag, tpg in t.tpgs.items():
        tw = want_tpgs.get(tag)
        if tw is None:
            if prune:
                ch.plan.extend(tg.plan_delete_tpg(tpg))
                ch.add("-", f"{tpg.tree_path}")
            continue
        if not prune:
            continue
        want_acls = {a["node_wwn"]: a for a in tw.get("node_acls", [])}
        for wwn, acl in tpg.acls.items():
            aw = want_acls.get(wwn)
            if aw is None:
                ch.plan.extend(tg.plan_delete_acl(acl))
                ch.add("-", f"{acl.tree_path}")
                continue
            want_ml = {m["index"] for m in aw.get("mapped_luns", [])}
            for idx, ml in acl.mapped_luns.items():
                if idx not in want_ml:
                    ch.plan.extend(tg.plan_delete_mapped_lun(ml))
                    ch.add("-", f"{ml.tree_path}")
        want_luns = {lw["index"] for lw in tw.get("luns", [])}
        for idx, lun in tpg.luns.items():
            if idx not in want_luns:
                ch.plan.extend(tg.plan_delete_lun(lun, ch.plan.removed))
                ch.add("-", f"{lun.tree_path}")
        want_portals = {tg.portal_name(pw["ip_address"], pw["port"]) for pw in tw.get("portals", [])}
        for name, p in tpg.portals.items():
            if name not in want_portals:
                ch.plan.rmdir(p.path)
                ch.add("-", f"{p.tree_path}")


def _target_groups(ch: Change, tpath: str, w: dict, existing: bool | None):
    """Target-wide attrib/ and param/ (e.g. iSCSI's cmd_completion_affinity)."""
    label = tpath[len(configfs.ROOT) + 1:]
    for key, sub, text in (("attributes", "attrib", False), ("parameters", "param", True)):
        if w.get(key):
            _write_group(ch, f"{label} {key[:-1]}", f"{tpath}/{sub}", w[key],
                         rw_group(f"{tpath}/{sub}", as_text=text) if existing else None)


def _update_target(ch: Change, t: Target, w: dict, so_paths, replaced):
    spec = t.fabric.spec
    _target_groups(ch, t.path, w, True)
    for tw in w.get("tpgs", []):
        tpg = t.tpgs.get(tw["tag"])
        if tpg is None:
            _create_tpg(ch, spec, t.path, tw, so_paths)
        else:
            _tpg_body(ch, tpg.path, tw, tpg, so_paths, replaced)


def plan_clear(snap: Snapshot) -> Plan:
    """Everything, children first; a failure midway is rolled back like any plan."""
    plan = tg.plan_delete_targets(list(snap.targets()))
    plan.extend(bsc.plan_remove_objects(snap, list(snap.storage_objects.values())))
    for fab in snap.fabrics.values():
        da = fab.path + "/discovery_auth"
        if os.path.isdir(da) and configfs.read(da + "/enforce_discovery_auth") == "1":
            plan.write(da + "/enforce_discovery_auth", "0")
    return plan


def scope(snap: Snapshot, desired: dict, target: str | None = None,
          storage_object: str | None = None) -> tuple[Snapshot, dict, str]:
    """The part of both configurations that `restore target=IQN storage_object=NAME` may touch,
    as targetcli's restoreconfig scopes it: one target (with its TPGs, LUNs, ACLs and portals,
    plus the storage objects its LUNs use) and/or one storage object. Everything else is left
    out of both sides, so it is neither changed nor pruned. Returns (running part, file part,
    a label naming the scope)."""
    want_targets, so_keys, labels = [], set(), []
    file_sos = {(s["plugin"], s["name"]): s for s in desired.get("storage_objects", [])}
    if target:
        want_targets = [t for t in desired.get("targets", []) if t["wwn"].lower() == target.lower()]
        if not want_targets:
            names = ", ".join(t["wwn"] for t in desired.get("targets", [])) or "none"
            raise NotFound(f"target {target} is not in the file (its targets: {names})")
        for tw in want_targets:
            for tpg in tw.get("tpgs", []):
                for lw in tpg.get("luns", []):
                    so_keys.add(so_key(lw["storage_object"]))
        labels.append(f"target {target}")
    if storage_object:
        wanted = storage_object.removeprefix("/backstores/").strip("/")
        hits = [k for k in file_sos if wanted in (k[1], f"{k[0]}/{k[1]}", f"{k[0].split(':')[0]}/{k[1]}")]
        if not hits:
            raise NotFound(f"storage object {storage_object} is not in the file")
        if len(hits) > 1:
            raise LioError(f"storage object name {storage_object} is ambiguous in the file "
                           f"({', '.join('/'.join(k) for k in hits)}): give PLUGIN/NAME")
        so_keys.add(hits[0])
        labels.append(f"storage object {'/'.join(hits[0])}")
    part = {"storage_objects": [s for k, s in file_sos.items() if k in so_keys],
            "targets": want_targets, "fabric_modules": []}
    return _view(snap, so_keys, want_targets), part, " and ".join(labels)


def _view(snap: Snapshot, so_keys, want_targets: list[dict]) -> Snapshot:
    """The running objects of a scope: those storage objects and targets, nothing else."""
    view = Snapshot(mounted=snap.mounted,
                    storage_objects={k: so for k, so in snap.storage_objects.items() if k in so_keys})
    for tw in want_targets:
        fab = snap.fabrics.get(tw["fabric"])
        t = fab.targets.get(spec_for(tw["fabric"]).cfs_wwn(tw["wwn"])) if fab else None
        if t is not None:
            kept = view.fabrics.setdefault(fab.name, replace(fab, targets={}))
            kept.targets[t.wwn] = t
    return view


def plan_apply(snap: Snapshot, desired: dict, prune: bool = False) -> Change:
    """`lioctl apply`: converge exactly what a (partial) document names. Its scope is the
    storage objects and targets it lists (and the fabric modules' discovery auth it lists):
    those are made or changed to match, and with prune their children the document lacks
    (TPGs, LUNs, portals, ACLs, mapped LUNs, ALUA groups) go. Every other object, and its
    sessions, is outside the plan; its LUNs may use running storage objects it does not name."""
    so_keys = {(s["plugin"], s["name"]) for s in desired.get("storage_objects", [])}
    view = _view(snap, so_keys, desired.get("targets", []))
    refs = {k: so.path for k, so in snap.storage_objects.items() if k not in so_keys}
    for n, tw in enumerate(desired.get("targets", [])):
        for tpg in tw.get("tpgs", []):
            for lw in tpg.get("luns", []):
                if so_key(lw["storage_object"]) not in so_keys | set(refs):
                    raise NotFound(f"targets[{n}]: {lw['storage_object']} is neither in the "
                                   "document nor running", obj=lw["storage_object"])
    ch = plan_restore(view, desired, prune=prune, refs=refs)
    outside = {f"{configfs.ROOT}/{fm['name']}" for fm in desired.get("fabric_modules", [])}
    check_within(ch, view, "applying only the objects the document names", also=outside,
                 instead="name those targets in the document too")
    return ch


def check_within(ch: Change, view: Snapshot, label: str, also=frozenset(),
                 instead: str = "restore without a scope") -> None:
    """A scoped restore must not remove or rewrite anything outside its scope: a storage object
    it has to re-create while LUNs of other targets use it would take those LUNs along.
    also: more configfs directories inside the scope."""
    inside = set(ch.plan.made) | set(also)
    for so in view.storage_objects.values():
        inside |= {so.path, os.path.dirname(so.path)}
    for t in view.targets():
        inside.add(t.path)
    for op in ch.plan:
        if not isinstance(op, (Rmdir, Unlink, Write)):
            continue
        p = op.path
        while p not in inside and p not in ("/", ""):
            p = os.path.dirname(p)
        if p not in inside:
            short = op.path[len(configfs.ROOT) + 1:] if op.path.startswith(configfs.ROOT) else op.path
            raise LioError(f"{label} would also change {short}, which is outside it "
                           "(a storage object it needs must be re-created while other targets use "
                           f"it); {instead}, or remove those LUNs first")
