"""`lioctl save [FILE|-]`: the running configuration in targetcli's saveconfig.json format."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from lioctl import configfs, prefs, render
from lioctl.errors import KernelUnavailable, LioError
from lioctl.lock import write_lock
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


def wanted(opts) -> bool:
    """--save, or the auto_save preference: save after every successful write."""
    return bool(getattr(opts, "save", False)) or bool(prefs.load().get("auto_save"))


def autosave() -> str:
    """Save to the distribution's file right after a write, still under the write lock (the
    caller holds it), so two writers' saves cannot interleave and the file is the configuration
    as this write left it; store.save writes a 0600 temp file, fsyncs and renames it. An empty
    configuration is saved too: a write emptied it on purpose. Returns the path."""
    path = store.DEFAULT
    config = running_config()
    _carry_from_previous(path, config)
    store.save(config, path, int(prefs.load().get("backup_count", 10)))
    return path


def after_write(opts, changed: bool = True) -> dict:
    """For a write command, under its write lock after its plan ran: {"saved": path} when
    --save or auto_save asked for it (and something changed), else {}."""
    return {"saved": autosave()} if changed and wanted(opts) else {}


def run(args) -> int:
    path = args.file
    if path == "-":
        config = running_config()
        if args.json:  # the configuration inside a document: every --json output is one
            render.print_json({"config": config}, "config")
        else:
            sys.stdout.write(store.render(config))
        return 0
    # under the write lock, as autosave: saves of several programs at once (Proxmox saves
    # after each LUN) must not interleave their backups' rotation, and the file must be the
    # configuration as the last write left it (only root may take the lock)
    with write_lock() if os.geteuid() == 0 else contextlib.nullcontext():
        config = running_config()
        if not args.force and not any(config.get(k) for k in store.OBJECT_KEYS) \
                and _holds_configuration(path):
            raise LioError(f"{path} holds a configuration and the running one is empty; "
                           "not replaced (use --force to save the empty configuration)")
        carried = _carry_from_previous(path, config)
        keep = int(prefs.load().get("backup_count", 10))
        changed = store.save(config, path, keep)
    if args.json:
        from lioctl import results  # start-up: only for --json
        render.print_json(results.write_result(
            "save", changed=changed, modified=[{"type": "file", "path": path}] if changed else [],
            data={"file": path, "written": changed, "kept_unknown": carried}), "write")
    else:
        print(f"Configuration saved to {path}" if changed
              else f"{path} is already up to date; nothing written")
    return 0
