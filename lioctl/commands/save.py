"""`lioctl save [FILE|-]`: the running configuration in targetcli's saveconfig.json format."""

from __future__ import annotations

import sys

from lioctl import prefs
from lioctl.saveconfig import dump, store
from lioctl.tree import snapshot

HELP = "save the running configuration (targetcli's saveconfig.json)"


def configure(p):
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"where to save (default {store.DEFAULT}; - for standard output)")


def run(args) -> int:
    config = dump.dump(snapshot.read())
    if args.file == "-":
        sys.stdout.write(store.render(config))
        return 0
    keep = int(prefs.load().get("backup_count", 10))
    changed = store.save(config, args.file, keep)
    if args.json:
        from lioctl import render
        render.print_json({"file": args.file, "written": changed})
    else:
        print(f"Configuration saved to {args.file}" if changed
              else f"{args.file} is already up to date; nothing written")
    return 0
