"""Rules for names the kernel turns into configfs directories."""

from __future__ import annotations

import re

from lioctl.errors import LioError

MAX_NAME = 128


def check_object_name(name: str, what: str = "name") -> str:
    if not name:
        raise LioError(f"{what} must not be empty")
    if len(name) > MAX_NAME:
        raise LioError(f"{what} {name[:20]!r}... is {len(name)} characters; at most {MAX_NAME}")
    if "/" in name:
        raise LioError(f"{what} {name!r} must not contain '/'")
    if name in (".", "..") or name.startswith("."):
        raise LioError(f"{what} {name!r} must not start with '.'")
    if re.search(r"\s", name):
        raise LioError(f"{what} {name!r} must not contain spaces")
    if not re.fullmatch(r"[A-Za-z0-9_.:+@-]+", name):
        raise LioError(f"{what} {name!r} may only hold letters, digits and _ . : + @ -")
    return name
