"""`lioctl restore [FILE]`: apply a saved configuration by difference. Objects already right
are left alone (no LUN re-created, no session dropped); --prune removes what the file lacks;
--clear starts from empty like targetcli; --dry-run prints the plan (--script: as sh);
--boot restores what it can and names what it cannot (exit 3), for the boot unit."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from lioctl import configfs, render
from lioctl.errors import LioError
from lioctl.lock import write_lock
from lioctl.plan import Plan, Write, executor, script
from lioctl.saveconfig import diff, load, store
from lioctl.tree import snapshot

HELP = "apply a saved configuration, changing only what differs"
EPILOG = f"""examples:
  lioctl restore                    the distribution's file ({store.DEFAULT})
  lioctl restore /root/lio-backup.json --dry-run
  lioctl restore --boot             best effort, as lioctl-restore.service does at boot

Without --boot a restore is all-or-nothing: on any failure nothing changes (exit 1).
With --boot each object the kernel refuses (a portal whose address is not up yet, a device
it cannot open) is rolled back alone and named on standard error with its reason, what
depends on it is skipped and named, the rest is restored, and the exit status is 3."""
PARTIAL = 3  # restore --boot restored some objects, not all (lioctl(8), EXIT STATUS)


def configure(p):
    import argparse
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"the saved configuration (default {store.DEFAULT})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prune", action="store_true", help="also remove objects the file lacks")
    g.add_argument("--clear", action="store_true", help="start from an empty configuration")
    g.add_argument("--boot", action="store_true",
                   help="best effort: restore every object that can be, name the others (exit 3)")


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


@dataclass(frozen=True)
class _SecretFromEnv(Write):
    """In a printed script a CHAP secret is read from an environment variable (value holds its
    name), so the script runs but never shows the secret unless --show-secrets."""
    optional: bool = False

    def sh(self):
        q = shlex.quote(self.path)
        line = f"printf '%s' \"${{{self.value}:?set {self.value} or print with --show-secrets}}\" > {q}"
        return f"[ ! -e {q} ] || {line}" if self.optional else line


def script_text(plan: Plan, comment: str, show_secrets: bool) -> str:
    if show_secrets:
        return script.render(plan, comment)
    masked = Plan()
    names = []
    for op in plan:
        if isinstance(op, Write) and op.secret:
            names.append(f"LIOCTL_SECRET_{len(names) + 1}")
            op = _SecretFromEnv(op.path, names[-1], secret=True,
                                optional=isinstance(op, diff.OptionalWrite))
        masked.add(op)
    text = script.render(masked, comment)
    if names:
        head, _, rest = text.partition("set -e\n")
        note = "".join(f"# {n}: the CHAP secret written to "
                       f"{op.path}\n" for n, op in zip(names, (o for o in masked if isinstance(o, _SecretFromEnv))))
        text = head + note + "set -e\n" + rest
    return text


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
            sys.stdout.write(script_text(ch.plan, f"restore {args.file}", args.show_secrets))
        elif args.json:
            render.print_json({"changes": ch.lines, "operations": len(ch.plan)})
        else:
            render.print_text("\n".join(ch.lines) or "nothing to change")
        return 0
    loaded = load.read(args.file)  # every check before any module loads or lock is taken
    configfs.ensure_ready()
    if args.boot:
        return _run_boot(args, loaded)
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


def _run_boot(args, loaded) -> int:
    """The whole file as one plan first (the usual case, and as fast as restore); if that
    fails, object group by object group (saveconfig/besteffort.py)."""
    from lioctl.saveconfig import besteffort
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
        render.print_json({"file": args.file, "changes": outcome.changes, "failed": outcome.failed,
                           "skipped": outcome.skipped, "partial": outcome.partial})
    elif outcome.partial:
        render.print_text(f"Restored {args.file} partly: {len(outcome.changes)} change(s); "
                          f"{len(outcome.failed)} object(s) not restored, "
                          f"{len(outcome.skipped)} skipped")
    else:
        render.print_text(f"Restored {args.file}: {len(outcome.changes)} change(s)" if outcome.changes
                          else f"{args.file}: the running configuration already matches")
    return PARTIAL if outcome.partial else 0
