"""Where the saved configuration lives, and writing it safely: temp file + fsync + rename, mode
0600, gzip backups of the previous version rotated in backup/ beside it, nothing written when
nothing changed. A kill or a full disk mid-save leaves the previous file intact."""

from __future__ import annotations

import datetime
import glob
import gzip
import json
import os
import re
import shutil

from lioctl.errors import LioError

UPSTREAM_FILE = "/etc/target/saveconfig.json"
DEBIAN_FILE = "/etc/rtslib-fb-target/saveconfig.json"
# top-level keys whose entries are configuration objects (an empty file has none)
OBJECT_KEYS = ("storage_objects", "targets", "fabric_modules")

# where distributions install rtslib-fb (Debian/Ubuntu first, then RHEL/Fedora/SUSE, then pip)
_RTSLIB_ROOTS = ("usr/lib/python3/dist-packages/rtslib_fb/root.py",
                 "usr/lib/python3/dist-packages/rtslib/root.py",
                 "usr/lib/python3*/site-packages/rtslib_fb/root.py",
                 "usr/lib/python3*/site-packages/rtslib/root.py",
                 "usr/lib64/python3*/site-packages/rtslib_fb/root.py",
                 "usr/local/lib/python3*/dist-packages/rtslib_fb/root.py",
                 "usr/local/lib/python3*/site-packages/rtslib_fb/root.py")
_SAVE_FILE_LINE = re.compile(r"""^default_save_file\s*=\s*(?:Path\()?["']([^"']+)["']""", re.M)


def rtslib_save_file(root: str = "/") -> str | None:
    """The file the distribution's rtslib-fb saves to and restores from: its root.py names it
    in default_save_file (Debian patches that line to /etc/rtslib-fb-target; upstream,
    RHEL and Fedora keep /etc/target). Read as text: importing rtslib costs a second."""
    for pattern in _RTSLIB_ROOTS:
        for path in sorted(glob.glob(os.path.join(root, pattern)), reverse=True):
            try:
                with open(path) as f:
                    m = _SAVE_FILE_LINE.search(f.read())
            except OSError:
                continue
            if m and m.group(1).startswith("/"):
                return m.group(1)
    return None


def _debian_like(root: str) -> bool:
    try:
        with open(os.path.join(root, "etc/os-release")) as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return False
    ids = (fields.get("ID", "") + " " + fields.get("ID_LIKE", "")).replace('"', "").split()
    return "debian" in ids or "ubuntu" in ids


def default_path(root: str = "/") -> str:
    """The distribution's saved configuration: the one its rtslib-fb (hence targetcli and
    targetctl) uses; without rtslib-fb installed, Debian's packaging choice on Debian and
    Ubuntu, /etc/target/saveconfig.json elsewhere. `root` is for tests."""
    found = rtslib_save_file(root)
    if found:
        return found
    return DEBIAN_FILE if _debian_like(root) else UPSTREAM_FILE


# the default of save, restore and diff on this host (and the shell's saveconfig and
# auto-save); LIOCTL_SAVECONFIG overrides it, for tests above all
DEFAULT = os.environ.get("LIOCTL_SAVECONFIG") or default_path()


def render(config: dict) -> str:
    """json.dumps(config, indent=2, sort_keys=True), byte for byte, several times faster: with
    indent, the standard library falls back to its pure-Python encoder (a generator per value),
    which was a third of saving the large configuration under emulation."""
    try:
        return _indented(config, "\n") + "\n"
    except _Unusual:
        return json.dumps(config, indent=2, sort_keys=True) + "\n"


class _Unusual(Exception):
    """A value this encoder leaves to the standard library (non-finite float, non-str key...)."""


_quote = json.encoder.encode_basestring_ascii  # the C one


def _indented(o, nl: str) -> str:
    if isinstance(o, str):
        return _quote(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        if o != o or o in (float("inf"), float("-inf")):
            raise _Unusual
        return float.__repr__(o)
    inner = nl + "  "
    if isinstance(o, dict):
        if not o:
            return "{}"
        if not all(isinstance(k, str) for k in o):
            raise _Unusual
        return ("{" + inner + ("," + inner).join(_quote(k) + ": " + _indented(v, inner)
                                                for k, v in sorted(o.items())) + nl + "}")
    if isinstance(o, (list, tuple)):
        if not o:
            return "[]"
        return "[" + inner + ("," + inner).join(_indented(v, inner) for v in o) + nl + "]"
    raise _Unusual


def _same(path: str, text: str) -> bool:
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return False
    if old == text:
        return True
    try:
        return json.loads(old) == json.loads(text)
    except ValueError:
        return False


def backup(path: str, keep: int) -> str | None:
    if keep <= 0 or not os.path.exists(path):
        return None
    bdir = os.path.join(os.path.dirname(path), "backup")
    os.makedirs(bdir, mode=0o700, exist_ok=True)
    base = os.path.basename(path).removesuffix(".json")
    # fixed-width stamp down to microseconds: names sort in the order they were made
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    dest = os.path.join(bdir, f"{base}-{stamp}.json.gz")
    tmp = os.path.join(bdir, f".{base}-{stamp}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(path, "rb") as src, open(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", filename="") as out:
                shutil.copyfileobj(src, out)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, dest)
    mine = re.compile(re.escape(base) + r"-\d{8}-\d{6}-\d{6}\.json\.gz$")
    olds = sorted(f for f in os.listdir(bdir) if mine.match(f))
    for f in olds[:-keep]:
        os.unlink(os.path.join(bdir, f))
    return dest


def _remove_stale_temps(d: str, name: str) -> None:
    """Temp files of saves that were killed (their process is gone) are removed."""
    pat = re.compile(r"\." + re.escape(name) + r"\.(\d+)\.tmp$")
    for f in os.listdir(d):
        m = pat.match(f)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # a save still running
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.unlink(os.path.join(d, f))
        except OSError:
            pass


def save(config: dict, path: str, keep: int = 10) -> bool:
    """Return False (and write nothing) when the file already says exactly this."""
    text = render(config)
    if _same(path, text):
        return False
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        _remove_stale_temps(d, os.path.basename(path))
        backup(path, keep)
        tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            os.unlink(tmp)  # never reuse a file (and its mode) someone else made
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            data = text.encode()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise LioError(f"cannot save {path}: {e.strerror}; the previous file is unchanged") from None
    return True
