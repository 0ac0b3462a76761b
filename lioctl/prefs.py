"""Global preferences (~/.lioctl/prefs.json): readable JSON, never a pickle."""

from __future__ import annotations

import json
import os

DEFAULTS = {
    "auto_add_default_portal": True,
    "auto_add_mapped_luns": True,
    "auto_enable_tpgt": True,
    "auto_cd_after_create": False,
    "export_backstore_name_as_model": True,
    "editing_mode": "emacs",
    "backup_count": 10,
    "max_backup_files": 10,
    "color": True,
    "auto_save_on_exit": True,  # targetcli's name and default: the shell saves when it exits
    "auto_save": False,  # save after every successful write, as --save does
    "logfile": "",
    "loglevel": "info",
}
# targetcli's name for a setting -> lioctl's: both read and set the one stored value
ALIASES = {"max_backup_files": "backup_count"}
# settings that take one of a few words
CHOICES = {"editing_mode": ("emacs", "vi"), "loglevel": ("debug", "info", "warning", "error")}


class Prefs(dict):
    """The preferences, with targetcli's names (ALIASES) reading and writing lioctl's keys, so a
    targetcli user's `set global max_backup_files=5` changes backup_count."""

    def __getitem__(self, key):
        return super().__getitem__(ALIASES.get(key, key))

    def __setitem__(self, key, value):
        super().__setitem__(ALIASES.get(key, key), value)

    def __contains__(self, key):
        return super().__contains__(ALIASES.get(key, key))

    def get(self, key, default=None):
        return super().get(ALIASES.get(key, key), default)


def path() -> str:
    return os.path.join(os.path.expanduser("~"), ".lioctl", "prefs.json")


def load() -> Prefs:
    d = Prefs()
    for k, v in DEFAULTS.items():
        if k not in ALIASES:
            d[k] = v
    try:
        with open(path()) as f:
            for k, v in json.load(f).items():
                d[k] = v
    except (OSError, ValueError, AttributeError):
        pass
    return d


def save(values: dict) -> None:
    p = path()
    os.makedirs(os.path.dirname(p), mode=0o700, exist_ok=True)
    tmp = p + ".tmp"
    stored = {ALIASES.get(k, k): v for k, v in dict.items(values) if k not in ALIASES}
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(stored, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, p)
