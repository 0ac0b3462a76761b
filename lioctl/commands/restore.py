"""`lioctl restore [FILE]`: apply a saved configuration by difference. Objects already right
are left alone (no LUN re-created, no session dropped); --prune removes what the file lacks;
--clear starts from empty like targetcli; --dry-run prints the plan (--script: as sh)."""

from __future__ import annotations

import sys

from lioctl import configfs, render
from lioctl.lock import write_lock
from lioctl.plan import executor, script
from lioctl.saveconfig import diff, load, store
from lioctl.tree import snapshot

HELP = "apply a saved configuration, changing only what differs"


def configure(p):
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"the saved configuration (default {store.DEFAULT})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prune", action="store_true", help="also remove objects the file lacks")
    g.add_argument("--clear", action="store_true", help="start from an empty configuration")


def compute(args, loaded=None):
    """The plan from what runs to the file; `loaded` is load.read's answer when the caller
    has it already (the large configuration's file takes seconds to check under emulation)."""
    desired, unknown = loaded or load.read(args.file)
    snap = snapshot.read()
    if args.clear:
        ch = diff.Change(diff.plan_clear(snap))
        ch.lines.append("- everything (--clear)")
        rest = diff.plan_restore(snapshot.Snapshot(mounted=snap.mounted), desired)
        ch.plan.extend(rest.plan)
        ch.lines += [ln for ln in rest.lines]
        return ch, unknown
    return diff.plan_restore(snap, desired, prune=args.prune), unknown


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
    from lioctl.tcmu.device import lioctl_devices
    keys = lioctl_devices()
    if keys:
        from lioctl.tcmu import launcher
        launcher.ensure_serving(keys)


def run(args) -> int:
    if args.dry_run:
        ch, unknown = compute(args)
        load.report_unknown(unknown)
        if args.script:
            sys.stdout.write(script.render(ch.plan, f"restore {args.file}", args.show_secrets))
        elif args.json:
            render.print_json({"changes": ch.lines, "operations": len(ch.plan)})
        else:
            render.print_text("\n".join(ch.lines) or "nothing to change")
        return 0
    loaded = load.read(args.file)  # every check before any module loads or lock is taken
    configfs.ensure_ready()
    with write_lock():
        ch, unknown = compute(args, loaded)
        load.report_unknown(unknown)
        executor.execute(ch.plan, progress_printer())
    _serve_user_backstores()
    if args.json:
        render.print_json({"changes": ch.lines, "operations": len(ch.plan)})
    else:
        render.print_text(f"Restored {args.file}: {len(ch.lines)} change(s)" if ch.plan
                          else f"{args.file}: the running configuration already matches")
    return 0
