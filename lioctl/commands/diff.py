"""`lioctl diff [FILE]`: what restore would change; exit 0 when nothing differs, 1 when
something does (like diff(1)). Objects the file lacks are always listed (`-` lines; restore
removes them only with --prune)."""

from __future__ import annotations

from lioctl import render
from lioctl.saveconfig import load, restore_plan, store
from lioctl.tree import snapshot

HELP = "show what restore would change (exit 1 if anything differs)"


def configure(p):
    p.add_argument("file", nargs="?", default=store.DEFAULT)
    p.add_argument("--prune", action="store_true",
                   help="accepted for symmetry with restore; objects the file lacks are always listed")


def run(args) -> int:
    desired, unknown = load.read(args.file)
    load.report_unknown(unknown)
    # one pass with prune: its lines are restore's plus the objects the file lacks (reading the
    # running configuration twice doubled diff's time on a large configuration)
    ch = restore_plan.plan_restore(snapshot.read(), desired, prune=True)
    if args.json:
        render.print_json({"differs": bool(ch.lines), "changes": ch.lines}, "diff")
    elif ch.lines:
        render.print_text("\n".join(ch.lines))
    return 1 if ch.lines else 0
