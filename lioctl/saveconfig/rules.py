"""The checks a saveconfig field goes through, shared by the loader and each backstore kind's
own check (lioctl/backstores/): every failure is one line naming the JSON path, with the
offending text repr-escaped."""

from __future__ import annotations

from lioctl import names
from lioctl.errors import LioError

U64 = (1 << 64) - 1
S64 = 1 << 63


class ConfigError(LioError):
    pass


def err(path: str, msg: str, cls: type[LioError] = ConfigError):
    """cls: NotFound for a backing file or device that is not there (lioctl(8), EXIT STATUS)."""
    raise cls(f"{path or 'top level'}: {msg}")


def at(path: str, key) -> str:
    """The JSON path of a key; a key that is not a plain word is shown quoted and escaped."""
    if isinstance(key, str) and names.SETTING_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def kind_of(v) -> str:
    return {type(None): "null", bool: "true/false", int: "a number", float: "a fraction",
            str: "a string", list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


def typed(v, t, path, what):
    if t is int and isinstance(v, bool) or not isinstance(v, t):
        name = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true/false"}
        err(path, f"{what} must be {name.get(t, t.__name__)}, not {kind_of(v)}")
    return v


def rule(path: str, fn, *a):
    """Apply a names/wwn rule; its one-line error is prefixed with the JSON path."""
    try:
        return fn(*a)
    except LioError as e:
        err(path, str(e))


def text(v, path: str, what: str) -> str:
    """A string written into a configfs file."""
    typed(v, str, path, what)
    return rule(path, names.check_value, v, what)


def shown(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def int_range(v, lo: int, hi: int, path: str, what: str):
    typed(v, int, path, what)
    if not lo <= v <= hi:
        err(path, f"{what} {v} is out of range ({lo}-{hi})")
    return v
