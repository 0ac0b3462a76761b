"""`lioctl diff [FILE]`: what restore would change; exit 0 when nothing differs, 1 when
something does (like diff(1)). --prune also lists what the file lacks."""

from __future__ import annotations

from lioctl import render
from lioctl.saveconfig import diff, load, store
from lioctl.tree import snapshot

HELP = "show what restore would change (exit 1 if anything differs)"


def configure(p):
    p.add_argument("file", nargs="?", default=store.DEFAULT)
    p.add_argument("--prune", action="store_true", help="also list objects the file lacks")


def run(args) -> int:
    desired, unknown = load.read(args.file)
    load.report_unknown(unknown)
    ch = diff.plan_restore(snapshot.read(), desired, prune=args.prune)
    if not args.prune:
        extra = diff.plan_restore(snapshot.read(), desired, prune=True)
        ch.lines += [ln for ln in extra.lines if ln.startswith("-") and ln not in ch.lines]
    if args.json:
        render.print_json({"differs": bool(ch.lines), "changes": ch.lines})
    elif ch.lines:
        render.print_text("\n".join(ch.lines))
    return 1 if ch.lines else 0
