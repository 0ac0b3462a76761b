"""`lioctl restore [FILE]`: apply a saved configuration by difference. Objects already right
are left alone (no LUN re-created, no session dropped); --prune removes what the file lacks;
--clear starts from empty like targetcli; --dry-run prints the plan (--script: as sh);
--boot restores what it can and names what it cannot (exit 3), for the boot unit."""

from __future__ import annotations

import argparse
import sys

from lioctl import configfs, render, results
from lioctl.backstores import common as bsc
from lioctl.commands import save as save_cmd
from lioctl.errors import LioError, PartialFailure, UsageError
from lioctl.lock import write_lock
from lioctl.plan import executor, script
from lioctl.saveconfig import load, restore_plan, store
from lioctl.tree import snapshot, targets as tg

HELP = "apply a saved configuration, changing only what differs"
EPILOG = f"""examples:
  lioctl restore                    the distribution's file ({store.DEFAULT})
  lioctl restore /root/lio-backup.json --dry-run
  lioctl restore --boot             best effort, as lioctl-restore.service does at boot
  lioctl restore --target iqn.2003-01.org.example:t1 --prune   # only that target
  lioctl restore saved.json storage_object=disk1               # targetcli's key form

Without --boot a restore is all-or-nothing: on any failure (a backing file or device that
is not there included) nothing changes (exit 1).
With --boot each object that cannot be made (a missing backing file or device, a portal
whose port is taken, a device another program holds) is rolled back alone and named on
standard error with its reason, what depends on it is skipped and named, the rest is
restored, and the exit status is 3."""
PARTIAL = PartialFailure.exit_code  # 3: restore --boot restored some objects, not all


def configure(p):
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"the saved configuration (default {store.DEFAULT})")
    p.add_argument("scope_keys", nargs="*", metavar="target=IQN|storage_object=NAME",
                   help="targetcli's restoreconfig forms of --target and --storage-object")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prune", action="store_true",
                   help="also remove objects the file lacks (only within --target/--storage-object if given)")
    g.add_argument("--clear", action="store_true",
                   help="start from an empty configuration (only that target/object if scoped)")
    g.add_argument("--boot", action="store_true",
                   help="best effort: restore every object that can be, name the others (exit 3)")
    p.add_argument("--target", metavar="IQN",
                   help="restore only this target (its TPGs, LUNs, ACLs, portals and the storage "
                        "objects its LUNs use); every other object and its sessions are left alone")
    p.add_argument("--storage-object", metavar="NAME",
                   help="restore only this storage object (NAME or PLUGIN/NAME)")
    # `restore FILE --prune target=IQN`: key forms may follow options, as in targetcli
    p.parse_args = p.parse_intermixed_args


SCOPE_KEYS = {"target": "target", "storage_object": "storage_object"}


def scope_of(args) -> dict:
    """--target/--storage-object, or targetcli's target=IQN storage_object=NAME tokens (which
    may stand where FILE goes: `restore target=IQN` restores from the default file)."""
    tokens = list(args.scope_keys)
    if args.file and "=" in args.file and args.file.split("=", 1)[0] in SCOPE_KEYS:
        tokens.insert(0, args.file)
        args.file = store.DEFAULT
    out = {"target": args.target, "storage_object": args.storage_object}
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if not eq or key not in SCOPE_KEYS or not value:
            raise UsageError(f"lioctl restore: {tok!r} is not target=IQN or storage_object=NAME")
        if out[key] not in (None, value):
            raise UsageError(f"lioctl restore: {key} given twice ({out[key]} and {value})")
        out[key] = value
    return {k: v for k, v in out.items() if v}


def compute(args, loaded=None):
    """The plan from what runs to the file; `loaded` is load.read's answer when the caller
    has it already (the large configuration's file takes seconds to check under emulation)."""
    desired, unknown = loaded or load.read(args.file)
    snap = snapshot.read()
    scope = args.scope if hasattr(args, "scope") else scope_of(args)
    if scope:
        ch = _compute_scoped(args, snap, desired, scope)
    elif args.clear:
        ch = restore_plan.Change(restore_plan.plan_clear(snap))
        ch.lines.append("- everything (--clear)")
        rest = restore_plan.plan_restore(snapshot.Snapshot(mounted=snap.mounted), desired)
        ch.plan.extend(rest.plan)
        ch.lines += [ln for ln in rest.lines]
    else:
        ch = restore_plan.plan_restore(snap, desired, prune=args.prune)
    ch.before = snap
    return ch, unknown


def _compute_scoped(args, snap, desired, scope) -> restore_plan.Change:
    view, part, label = restore_plan.scope(snap, desired, **scope)
    if args.clear:  # remove what is in scope, then make it as the file has it
        ch = restore_plan.Change(tg.plan_delete_targets(list(view.targets())))
        for so in view.storage_objects.values():
            for lun in so.luns:  # LUNs of other targets: check_within refuses them below
                if lun.path not in ch.plan.removed:
                    ch.plan.extend(tg.plan_delete_lun(lun))
        ch.plan.extend(bsc.plan_remove_objects(snap, list(view.storage_objects.values())))
        ch.lines.append(f"- {label} (--clear)")
        rest = restore_plan.plan_restore(snapshot.Snapshot(mounted=snap.mounted), part)
        ch.plan.extend(rest.plan)
        ch.lines += rest.lines
    else:
        ch = restore_plan.plan_restore(view, part, prune=args.prune)
    restore_plan.check_within(ch, view, f"restoring only {label}")
    return ch


def progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(n, total):
        if total > 50 and (n % 25 == 0 or n == total):
            sys.stderr.write(f"\rlioctl: restoring {n}/{total}")
            if n == total:
                sys.stderr.write("\n")
    return show


def _serve_user_backstores() -> None:
    """Objects restore left alone still need a handler (after a crash of the old one, say)."""
    from lioctl.tcmu.device import lioctl_devices  # start-up: the handler's modules only here
    keys = lioctl_devices()
    if keys:
        from lioctl.tcmu import launcher  # start-up: as above
        launcher.ensure_serving(keys)


def run(args) -> int:
    args.scope = scope_of(args)  # usage errors first; `restore target=IQN` reads the default file
    if args.boot and args.scope:
        raise UsageError("lioctl restore: --boot restores the whole file; it takes no target or storage object")
    if args.dry_run:
        ch, unknown = compute(args)
        load.report_unknown(unknown)
        if args.script:
            sys.stdout.write(script.render(ch.plan, f"restore {args.file}", args.show_secrets))
        elif args.json:
            render.print_json({"changes": ch.lines, "operations": len(ch.plan)}, "plan")
        else:
            render.print_text("\n".join(ch.lines) or "nothing to change")
        return 0
    loaded = load.read(args.file, boot=args.boot)  # every check before any module loads or lock is taken
    configfs.ensure_ready()
    if args.boot:
        return _run_boot(args, loaded)
    with write_lock():
        ch, unknown = compute(args, loaded)
        load.report_unknown(unknown)
        tracker = results.Tracker(ch.plan, ch.before) if args.json else None
        executor.execute(ch.plan, progress_printer())
        saved = save_cmd.after_write(args, bool(ch.plan))
    _serve_user_backstores()
    if tracker is not None:
        render.print_json(tracker.result("restore", data={"file": args.file, "changes": ch.lines,
                                                          "operations": len(ch.plan), **saved}), "write")
    else:
        render.print_text(f"Restored {args.file}: {len(ch.lines)} change(s)" if ch.plan
                          else f"{args.file}: the running configuration already matches")
    return 0


def _run_boot(args, loaded) -> int:
    """The whole file as one plan first (the usual case, and as fast as restore); if that
    fails, object group by object group (saveconfig/besteffort.py)."""
    from lioctl.saveconfig import besteffort  # start-up: only for restore --boot
    with write_lock():
        try:
            ch, unknown = compute(args, loaded)
            load.report_unknown(unknown)
            executor.execute(ch.plan, progress_printer())
            outcome = besteffort.Outcome(changes=ch.lines)
        except LioError:
            outcome = besteffort.restore(loaded[0])
    try:
        _serve_user_backstores()
    except LioError as e:
        outcome.failed.append(f"TCMU handler for user backstores: {e}")
    for line in outcome.failed:
        print(f"lioctl: not restored: {line}", file=sys.stderr)
    for line in outcome.skipped:
        print(f"lioctl: skipped: {line}", file=sys.stderr)
    if args.json:
        render.print_json(results.write_result(
            "restore --boot", changed=bool(outcome.changes),
            data={"file": args.file, "changes": outcome.changes, "failed": outcome.failed,
                  "skipped": outcome.skipped, "partial": outcome.partial}), "write")
    elif outcome.partial:
        render.print_text(f"Restored {args.file} partly: {len(outcome.changes)} change(s); "
                          f"{len(outcome.failed)} object(s) not restored, "
                          f"{len(outcome.skipped)} skipped")
    else:
        render.print_text(f"Restored {args.file}: {len(outcome.changes)} change(s)" if outcome.changes
                          else f"{args.file}: the running configuration already matches")
    return PARTIAL if outcome.partial else 0
