"""Rules for names the kernel turns into configfs directories, and for the values written
into configfs files: every error is one line, with the offending text repr-escaped."""

from __future__ import annotations

import re

from lioctl.errors import LioError

MAX_NAME = 128
# configfs takes one page per store; a value with a control character (a newline, a NUL)
# would be cut short or split into two settings by the kernel's option parsers
MAX_VALUE = 4095
# What `modprobe` and a configfs directory both take: no leading '-' (an option to modprobe)
FABRIC_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
# directories and files of /sys/kernel/config/target that are not fabrics
NOT_FABRICS = ("core", "version", "dbroot")
SETTING_RE = re.compile(r"[A-Za-z0-9_]{1,64}")


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


def check_fabric_name(name: str, known=()) -> str:
    """A known fabric, or what a fabric module's configfs directory can be called: a plain
    module-name identifier, never a path (`../../tmp`) nor one of target/'s own entries."""
    if name in known:
        return name
    if not FABRIC_RE.fullmatch(name) or name in NOT_FABRICS:
        raise LioError(f"fabric {name!r} is not a fabric module name"
                       " (letters, digits, _ and -, not starting with -)")
    return name


def check_setting_name(name: str, what: str = "setting") -> str:
    """Attribute and parameter names are configfs file names: C identifiers."""
    if not SETTING_RE.fullmatch(name):
        raise LioError(f"{what} name {name!r} is not a configfs setting name (letters, digits and _)")
    return name


def check_value(value: str, what: str = "value") -> str:
    """A text that goes into a configfs file as one store."""
    # isprintable: no ASCII control character, and none of Unicode's line separators (U+2028,
    # U+0085...), which split a listing of changes, nor lone surrogates, which cannot be encoded
    if not value.isprintable():
        raise LioError(f"{what} {value!r} must not contain a newline, NUL or other control character")
    if len(value.encode()) > MAX_VALUE:
        raise LioError(f"{what} {value[:20]!r}... is {len(value.encode())} bytes; at most {MAX_VALUE}")
    return value
