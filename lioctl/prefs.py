"""Global preferences (~/.lioctl/prefs.json): readable JSON, never a pickle."""

from __future__ import annotations

import json
import os

DEFAULTS = {
    "auto_add_default_portal": True,
    "auto_add_mapped_luns": True,
    "auto_enable_tpgt": True,
    "export_backstore_name_as_model": True,
    "editing_mode": "emacs",
    "backup_count": 10,
    "color": True,
    "auto_save_on_exit": True,  # targetcli's name and default: the shell saves when it exits
}


def path() -> str:
    return os.path.join(os.path.expanduser("~"), ".lioctl", "prefs.json")


def load() -> dict:
    d = dict(DEFAULTS)
    try:
        with open(path()) as f:
            d.update(json.load(f))
    except (OSError, ValueError):
        pass
    return d


def save(values: dict) -> None:
    p = path()
    os.makedirs(os.path.dirname(p), mode=0o700, exist_ok=True)
    tmp = p + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({k: v for k, v in values.items()}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, p)
