"""`lioctl save [FILE|-]`: the running configuration in targetcli's saveconfig.json format."""

from __future__ import annotations

import json
import sys

from lioctl import prefs
from lioctl.saveconfig import dump, load, store
from lioctl.tree import snapshot

HELP = "save the running configuration (targetcli's saveconfig.json)"


def _carry_from_previous(path: str, config: dict) -> list[str]:
    """Keys of the previous file that lioctl does not apply are kept, and said so."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return []
    carried = load.carry_unknown(old, config)
    for c in carried:
        print(f"lioctl: note: kept {c} from the previous {path} (not applied to the kernel)",
              file=sys.stderr)
    return carried


def configure(p):
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"where to save (default {store.DEFAULT}; - for standard output)")


def run(args) -> int:
    config = dump.dump(snapshot.read())
    if args.file == "-":
        sys.stdout.write(store.render(config))
        return 0
    carried = _carry_from_previous(args.file, config)
    keep = int(prefs.load().get("backup_count", 10))
    changed = store.save(config, args.file, keep)
    if args.json:
        from lioctl import render
        render.print_json({"file": args.file, "written": changed, "kept_unknown": carried})
    else:
        print(f"Configuration saved to {args.file}" if changed
              else f"{args.file} is already up to date; nothing written")
    return 0
