"""`lioctl save [FILE|-]`: the running configuration in targetcli's saveconfig.json format."""

from __future__ import annotations

import argparse
import json
import sys

from lioctl import configfs, prefs, render
from lioctl.errors import KernelUnavailable, LioError
from lioctl.saveconfig import dump, load, store
from lioctl.tree import snapshot

HELP = "save the running configuration (targetcli's saveconfig.json)"
EPILOG = """examples:
  lioctl save                       to the distribution's file (see lioctl(8), FILES)
  lioctl save /root/lio-backup.json
  lioctl save --force               also when the running configuration is empty
  lioctl save - | jq .targets

Saving refuses (exit 1, file unchanged) when the kernel's configuration cannot be read
(target_core_mod not loaded or configfs not mounted), and when the running configuration is
empty but FILE holds one, unless --force."""


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


def _holds_configuration(path: str) -> bool:
    """A saved file with any object in it: replacing it with nothing loses an admin's work."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and any(old.get(k) for k in store.OBJECT_KEYS)


def configure(p):
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file", nargs="?", default=store.DEFAULT,
                   help=f"where to save (default {store.DEFAULT}; - for standard output)")


def running_config() -> dict:
    """The kernel's configuration, or an error: an unreadable kernel is not an empty one."""
    snap = snapshot.read()
    if not snap.mounted:
        raise KernelUnavailable(f"cannot read the running configuration: {configfs.ROOT} does not exist "
                       "(target_core_mod not loaded or configfs not mounted); nothing saved")
    return dump.dump(snap)


def run(args) -> int:
    path = args.file
    config = running_config()
    if path == "-":
        sys.stdout.write(store.render(config))
        return 0
    if not args.force and not any(config.get(k) for k in store.OBJECT_KEYS) \
            and _holds_configuration(path):
        raise LioError(f"{path} holds a configuration and the running one is empty; "
                       "not replaced (use --force to save the empty configuration)")
    carried = _carry_from_previous(path, config)
    keep = int(prefs.load().get("backup_count", 10))
    changed = store.save(config, path, keep)
    if args.json:
        render.print_json({"file": path, "written": changed, "kept_unknown": carried})
    else:
        print(f"Configuration saved to {path}" if changed
              else f"{path} is already up to date; nothing written")
    return 0
