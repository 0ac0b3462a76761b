"""Where LIO lives in configfs, and getting it there: kernel modules and the mount."""

from __future__ import annotations

import os
import subprocess

from lioctl.errors import KernelUnavailable, LioError, NotPermitted

CONFIGFS_MOUNT = "/sys/kernel/config"
ROOT = CONFIGFS_MOUNT + "/target"
CORE = ROOT + "/core"

def module_loaded(module: str) -> bool:
    return os.path.isdir("/sys/module/" + module)


def modprobe(module: str) -> None:
    if module_loaded(module):
        return
    try:
        proc = subprocess.run(["modprobe", module], capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelUnavailable(f"cannot load kernel module {module}: modprobe not found") from None
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or ["modprobe failed"]
        raise KernelUnavailable(f"cannot load kernel module {module}: {reason[0]}")


def is_mounted() -> bool:
    return os.path.isdir(ROOT)


def ensure_ready(modules: tuple[str, ...] | list[str] = ()) -> None:
    """Load target_core_mod (+ the given modules) and mount configfs, as the export script does."""
    if os.geteuid() != 0:
        raise NotPermitted("lioctl must run as root to change the kernel target configuration")
    modprobe("target_core_mod")
    if not os.path.ismount(CONFIGFS_MOUNT):
        modprobe("configfs")
        proc = subprocess.run(["mount", "-t", "configfs", "none", CONFIGFS_MOUNT],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise KernelUnavailable(f"cannot mount configfs on {CONFIGFS_MOUNT}: {proc.stderr.strip()}")
    for m in modules:
        modprobe(m)
    if not os.path.isdir(ROOT):
        raise KernelUnavailable(f"{ROOT} is missing although target_core_mod is loaded")


def read(path: str, default: str | None = None, dir_fd: int | None = None) -> str | None:
    """Read a configfs attribute, stripped; default when it is absent or unreadable.

    Three system calls, not the six of open()/read()/close(): a saved configuration is
    tens of thousands of these. configfs shows an attribute in one page, so one read of
    4096 bytes gets all of it (a second read only returns the end of file). With dir_fd,
    path is relative to that directory (see read_group)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return default
    try:
        data = os.read(fd, 4096)
        if len(data) == 4096:           # not configfs after all: read the rest
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data.decode("utf-8", "replace").strip()
    except OSError:
        return default
    finally:
        os.close(fd)


# Every group of one kind shows the same files with the same modes (they come from the
# kernel's attribute table for that kind), so a layout's writable names are found once per
# process: a saved configuration has thousands of groups and an lstat per file was a quarter
# of reading them.
_WRITABLE_BY_LAYOUT: dict[tuple[str, ...], frozenset[str]] = {}


def writable_names(files: list[os.DirEntry]) -> frozenset[str]:
    """The read-write ones among a group's files (sorted by name)."""
    layout = tuple(e.name for e in files)
    rw = _WRITABLE_BY_LAYOUT.get(layout)
    if rw is None:
        rw = frozenset(e.name for e in files if e.stat(follow_symlinks=False).st_mode & 0o600 == 0o600)
        _WRITABLE_BY_LAYOUT[layout] = rw
    return rw


def read_group(path: str, names=None, *, writable: bool = False) -> dict[str, str | None]:
    """Attributes of one group (attrib/, param/, auth/...): the directory is opened once and each
    file opened relative to it. configfs keeps no dentries for attributes, so every absolute
    open walks the whole path again; in the emulated guest that walk was a third of each read.

    With names, those files (None for one that is absent or unreadable); without, every file
    that reads, or with writable=True only the read-write ones (what a saved configuration
    keeps)."""
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return {} if names is None else dict.fromkeys(names)
    try:
        if names is not None:
            return {n: read(n, None, dfd) for n in names}
        with os.scandir(dfd) as it:
            files = sorted((e for e in it if e.is_file(follow_symlinks=False)), key=lambda e: e.name)
        layout = tuple(e.name for e in files)
        if writable:
            rw = writable_names(files)
            layout = tuple(n for n in layout if n in rw)
        out = {}
        for n in layout:
            v = read(n, None, dfd)
            if v is not None:
                out[n] = v
        return out
    finally:
        os.close(dfd)


def confine(*paths: str) -> None:
    """The last line of defence under every change lioctl makes: whatever a planner was
    handed (a crafted saveconfig file, say), nothing is created, removed, linked or written
    outside ROOT. The executor calls it for every op's configfs paths before running a plan,
    write() for every write. ROOT is read at each call (the fake-configfs tests move it)."""
    for path in paths:
        if ".." in path.split("/") or "\0" in path or not os.path.normpath(path).startswith(ROOT + "/"):
            raise LioError(f"refusing to change {path!r}: it is not under {ROOT}")


def write(path: str, value: str) -> None:
    """One write(2) of exactly `value`: configfs takes each write as a whole store."""
    confine(path)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
