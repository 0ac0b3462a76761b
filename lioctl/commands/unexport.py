"""`lioctl unexport TARGET_IQN|DEVICE|FILE`: remove the target and, if nothing else uses it,
its backstore; nothing is left behind."""

from __future__ import annotations


from lioctl import configfs, render
from lioctl.backstores import common as bsc, media
from lioctl.errors import NotFound
from lioctl.plan import Plan
from lioctl.tree import snapshot, targets as tg

HELP = "remove a target made by export, and its backstore if unused"


EXAMPLES = "\n  ".join(["examples:", "lioctl unexport iqn.2003-01.org.linux-iscsi.host:disk",
                         "lioctl unexport /srv/disk.img", *(e for m in media.MEDIA for e in m.unexport_examples)]) + "\n"


def configure(p):
    p.add_argument("what", metavar="|".join(["TARGET_IQN"] + [m.form for m in media.by_form()]))


def build(snap, what: str) -> tuple[Plan, dict]:
    iscsi = snap.fabrics.get("iscsi")
    targets, served = [], []
    if iscsi and what.lower() in iscsi.targets:
        targets = [iscsi.targets[what.lower()]]
    elif what.startswith("iqn.") or what.startswith(("naa.", "eui.")):
        raise NotFound(f"target {what} does not exist")
    else:
        served = media.of(what).exports(snap, what, {}, loose=True)
        if not served:
            raise NotFound(f"{what} is not exported")
        for so in served:
            for lun in so.luns:
                if lun.tpg.target.fabric.name == "iscsi" and lun.tpg.target not in targets:
                    targets.append(lun.tpg.target)
    plan = Plan()
    sos = []
    for t in targets:
        plan.extend(tg.plan_delete_target(t))
        for tpg in t.tpgs.values():
            for lun in tpg.luns.values():
                if lun.storage_object and lun.storage_object not in sos:
                    sos.append(lun.storage_object)
    if not targets:
        sos = served
    kept, removed = [], []
    for so in sos:
        others = [lun for lun in so.luns if lun.tpg.target not in targets]
        if others:
            kept.append(so.tree_path)
            continue
        plan.extend(bsc.plan_remove_objects(snap, [so]))
        removed.append(so.tree_path)
    return plan, {"targets": [t.wwn for t in targets], "backstores_removed": removed,
                  "backstores_kept": kept}


def run(args) -> int:
    from lioctl.lock import write_lock  # start-up: completion builds this verb's parser only
    from lioctl.plan import executor
    if args.dry_run:
        plan, info = build(snapshot.read(), args.what)
        from lioctl import results  # start-up: as executor
        results.print_dry_run(plan, f"unexport {args.what}", args)
        return 0
    configfs.ensure_ready()
    with write_lock():
        snap = snapshot.read()
        try:
            plan, info = build(snap, args.what)
        except NotFound as e:
            if not args.missing_ok:
                raise
            plan, info = Plan(), {"targets": [], "backstores_removed": [], "backstores_kept": [],
                                  "missing": True, "message": f"{e}; nothing to remove"}
        from lioctl import results  # start-up: as executor
        tracker = results.Tracker(plan, snap) if args.json else None
        executor.execute(plan)
        from lioctl.commands import save as save_cmd  # start-up: as executor
        info.update(save_cmd.after_write(args, bool(plan)))
    if tracker is not None:
        render.print_json(tracker.result("unexport", data=info, message=info.pop("message", None)), "write")
    elif "message" in info:
        print(info["message"])
    else:
        for t in info["targets"]:
            print(f"Removed target {t}")
        for b in info["backstores_removed"]:
            print(f"Removed backstore {b}")
        for b in info["backstores_kept"]:
            print(f"Kept backstore {b} (still used by other targets)")
    return 0
