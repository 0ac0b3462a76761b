"""Writing the saved configuration safely: temp file + fsync + rename, mode 0600, gzip
backups of the previous version rotated in /etc/target/backup/, nothing written when
nothing changed. A kill or a full disk mid-save leaves the previous file intact."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time

from lioctl.errors import LioError

DEFAULT = "/etc/target/saveconfig.json"


def render(config: dict) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


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
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.basename(path).removesuffix(".json")
    dest = os.path.join(bdir, f"{base}-{stamp}.json.gz")
    n = 1
    while os.path.exists(dest):
        n += 1
        dest = os.path.join(bdir, f"{base}-{stamp}-{n}.json.gz")
    tmp = dest + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(path, "rb") as src, open(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(tmp, dest)
    olds = sorted(f for f in os.listdir(bdir) if f.startswith(base + "-") and f.endswith(".json.gz"))
    for f in olds[:-keep]:
        os.unlink(os.path.join(bdir, f))
    return dest


def save(config: dict, path: str = DEFAULT, keep: int = 10) -> bool:
    """Return False (and write nothing) when the file already says exactly this."""
    text = render(config)
    if _same(path, text):
        return False
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        backup(path, keep)
        tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
