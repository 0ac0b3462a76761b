"""Sizes as admins type them (10G, 512M, 1.5T, 4096) and back."""

from __future__ import annotations

import re

from lioctl.errors import LioError

_MULT = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str | int, what: str = "size") -> int:
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise LioError(f"{what} {text!r} is not a size (use e.g. 4096, 512M, 10G, 1T)")
    n = int(float(m.group(1)) * _MULT[m.group(2)])
    if n <= 0:
        raise LioError(f"{what} {text!r} must be greater than zero")
    return n


def human(n: int) -> str:
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            v = n / mult
            return f"{v:.1f}{unit}" if v != int(v) else f"{int(v)}{unit}"
    return f"{n}B"


def parse_bool(text, what: str) -> bool:
    v = str(text).strip().lower()
    if v in ("1", "true", "yes", "on", "y", "enable", "enabled"):
        return True
    if v in ("0", "false", "no", "off", "n", "disable", "disabled"):
        return False
    raise LioError(f"{what} {text!r} is not a boolean (use true or false)")
