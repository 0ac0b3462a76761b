"""`lioctl apply FILE`: converge what a saveconfig document names, whole or partial (one
target with its TPGs, LUNs and ACLs; one storage object; several), and nothing else. The
orchestrator's "desired state" form of restore: restore's planner, scoped to the document."""

from __future__ import annotations

import argparse
import sys

from lioctl import configfs, render, results
from lioctl.commands import save as save_cmd
from lioctl.errors import UsageError
from lioctl.lock import write_lock
from lioctl.plan import executor, script
from lioctl.saveconfig import load, restore_plan
from lioctl.tree import snapshot

HELP = "make what a (partial) saveconfig document names match it, nothing else"
EPILOG = """examples:
  lioctl apply volume-7.json                  one target with its LUNs and ACLs, as the file has it
  lioctl save - | jq '{targets: [.targets[0]]}' | lioctl apply - --prune
  lioctl apply volume-7.json --dry-run        the configfs operations, as sh
  lioctl apply volume-7.json --json           what was created, changed, removed (lioctl-json(7))
  lioctl --save apply volume-7.json           and save the configuration after it

The document is lioctl.json(5)'s format; any part of it may be left out. The storage
objects and targets it lists are made, or changed where they differ (an object already
right is not touched: its sessions keep running). A LUN may use a running storage object the
document does not list. Nothing else changes: other targets, their sessions and other
storage objects stay as they are. With --prune, inside each listed target the TPGs, LUNs,
portals, ACLs and mapped LUNs the document lacks are removed (and a listed storage object's
ALUA groups); objects the document does not list are never removed. All or nothing: on any
failure nothing changes (exit 1)."""


def configure(p):
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file", help="the desired state, a saveconfig document (- for standard input)")
    p.add_argument("--prune", action="store_true",
                   help="also remove the children of the listed objects that the document lacks")


def converge(desired: dict, opts, prune: bool = False) -> tuple[str, dict, object]:
    """The checked document applied (or, with opts.dry_run, planned): (the kind of --json
    document, its content, the plan). Shared with lioctl.api."""
    if opts.dry_run:
        ch = restore_plan.plan_apply(snapshot.read(), desired, prune=prune)
        return "plan", {"changes": ch.lines, "operations": len(ch.plan)}, ch.plan
    configfs.ensure_ready()
    with write_lock():
        snap = snapshot.read()
        ch = restore_plan.plan_apply(snap, desired, prune=prune)
        tracker = results.Tracker(ch.plan, snap) if opts.json else None
        executor.execute(ch.plan)
        saved = save_cmd.after_write(opts, bool(ch.plan))
    data = {"changes": ch.lines, "operations": len(ch.plan), **saved}
    return "write", tracker.result("apply", data=data) if tracker else data, ch.plan


def run(args) -> int:
    if args.file == "-" and getattr(args, "batch", False):
        raise UsageError("lioctl apply -: standard input is this batch; give the document's file")
    # every check of the document before any module loads or the lock is taken
    desired, unknown = load.read(args.file, partial=True)
    load.report_unknown(unknown)
    name = "standard input" if args.file == "-" else args.file
    kind, data, plan = converge(desired, args, args.prune)
    if args.json:
        render.print_json(data, kind)
    elif args.dry_run:
        sys.stdout.write(script.render(plan, f"apply {name}", args.show_secrets))
    else:
        render.print_text(f"Applied {name}: {len(data['changes'])} change(s)" if data["operations"]
                          else f"{name}: the running configuration already matches")
    return 0
