"""`lioctl clear`: remove the whole target configuration (asks on a terminal)."""

from __future__ import annotations

import sys

from lioctl import configfs, render, results
from lioctl.commands import save as save_cmd
from lioctl.errors import LioError
from lioctl.lock import write_lock
from lioctl.plan import executor
from lioctl.saveconfig import restore_plan
from lioctl.tree import snapshot

HELP = "remove the whole target configuration"


def configure(p):
    pass


def run(args) -> int:
    if args.dry_run:
        results.print_dry_run(restore_plan.plan_clear(snapshot.read()), "clear", args)
        return 0
    snap = snapshot.read()
    n_t = sum(1 for _ in snap.targets())
    n_s = len(snap.storage_objects)
    if not args.yes:
        if not sys.stdin.isatty():
            raise LioError("clear removes every target and backstore; confirm with --yes")
        answer = input(f"Remove {n_t} target(s) and {n_s} storage object(s)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing removed.")
            return 1
    configfs.ensure_ready()
    with write_lock():
        snap = snapshot.read()
        plan = restore_plan.plan_clear(snap)
        tracker = results.Tracker(plan, snap) if args.json else None
        executor.execute(plan)
        saved = save_cmd.after_write(args, bool(plan))
    if tracker is not None:
        render.print_json(tracker.result("clear", data={"targets_removed": n_t, "storage_objects_removed": n_s,
                                                        **saved}), "write")
    else:
        print(f"Removed {n_t} target(s) and {n_s} storage object(s).")
    return 0
