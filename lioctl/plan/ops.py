"""The configfs operations a plan is made of, each knowing how to run, undo and print itself."""

from __future__ import annotations

import errno
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from lioctl import configfs


def _q(s: str) -> str:
    return shlex.quote(s)


@dataclass(frozen=True)
class Op:
    path: str
    # The planner's promise that this op and the ops next to it that carry the flag are
    # independent, so the executor may run them at once. Only for ops that wait in the kernel
    # (a LUN's link or a TPG waits out an RCU grace period, ~35 ms under emulation); cheap
    # ops run faster one after another.
    concurrent: bool = field(default=False, compare=False, repr=False, kw_only=True)
    # False where path is no configfs path (a module name, a backing file, a device key)
    in_configfs: ClassVar[bool] = True

    def apply(self) -> "Op | None":
        """Run the operation; return the operation that undoes it (None: nothing to undo)."""
        raise NotImplementedError

    def configfs_paths(self) -> tuple[str, ...]:
        """The configfs paths apply() changes: the executor refuses the op, before anything
        runs, when one is outside configfs.ROOT. Every op changes its path unless its class
        says otherwise (in_configfs), so a new op, or a subclass with an apply of its own, is
        checked by default."""
        return (self.path,) if self.in_configfs else ()

    def sh(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Mkdir(Op):
    def apply(self):
        os.mkdir(self.path)
        return Rmdir(self.path)

    def sh(self):
        return f"mkdir {_q(self.path)}"

    def describe(self):
        return f"create {self.path}"


@dataclass(frozen=True)
class Rmdir(Op):
    # Read the directory's settings (its own and its default groups') before removing it, so
    # that the inverse re-creates the object as it was and not an empty one. Off only where the
    # planner knows there is nothing to keep (a LUN's directory: its settings go with its link).
    keep: bool = field(default=True, kw_only=True, compare=False)

    def apply(self):
        values = capture(self.path) if self.keep else ()
        os.rmdir(self.path)
        return Recreate(self.path, values) if values else Mkdir(self.path)

    def sh(self):
        return f"rmdir {_q(self.path)}"

    def describe(self):
        return f"remove {self.path}"


@dataclass(frozen=True)
class Write(Op):
    value: str
    # Secrets are written for real but never printed.
    secret: bool = False
    # Restoring the old value makes no sense for one-shot files (control, enable of a backstore).
    undoable: bool = True

    def apply(self):
        old = configfs.read(self.path) if self.undoable else None
        configfs.write(self.path, self.value)
        if old is None or old == self.value:
            return None
        return Write(self.path, old, secret=self.secret, undoable=False)

    def sh(self):
        return f"printf '%s' {_q(self.value)} > {_q(self.path)}"

    def describe(self):
        shown = "********" if self.secret else self.value
        return f"write {shown!r} to {self.path}"


@dataclass(frozen=True)
class Symlink(Op):
    target: str = ""

    def apply(self):
        os.symlink(self.target, self.path)
        return Unlink(self.path)

    def sh(self):
        return f"ln -s {_q(self.target)} {_q(self.path)}"

    def describe(self):
        return f"link {self.path} -> {self.target}"


@dataclass(frozen=True)
class Unlink(Op):
    # A LUN's or mapped LUN's settings (write_protect, ALUA membership) only exist while its
    # link does: read them from the link's directory before unlinking, set them after relinking.
    keep: bool = field(default=True, kw_only=True, compare=False)

    def apply(self):
        target = os.readlink(self.path)
        if self.path.startswith(configfs.ROOT + "/") and not os.path.isabs(target):
            # configfs shows a link relative to its directory but resolves a new link's target
            # from the current one: re-made from what readlink said, it fails with ENOENT
            target = os.path.normpath(os.path.join(os.path.dirname(self.path), target))
        values = capture(os.path.dirname(self.path), recursive=False) if self.keep else ()
        os.unlink(self.path)
        return Relink(self.path, target, values) if values else Symlink(self.path, target)

    def sh(self):
        return f"rm {_q(self.path)}"

    def describe(self):
        return f"unlink {self.path}"


@dataclass(frozen=True)
class Modprobe(Op):
    """Load a kernel module (path holds the module name); never undone."""

    in_configfs = False

    def apply(self):
        configfs.modprobe(self.path)
        return None

    def sh(self):
        return f"[ -d /sys/module/{self.path} ] || modprobe {_q(self.path)}"

    def describe(self):
        return f"load kernel module {self.path}"


@dataclass(frozen=True)
class Mount(Op):
    """Mount configfs if needed (path holds the mount point); never undone."""

    in_configfs = False

    def apply(self):
        if not os.path.ismount(self.path):
            configfs.ensure_ready()
        return None

    def sh(self):
        return f"mountpoint -q {_q(self.path)} || mount -t configfs none {_q(self.path)}"

    def describe(self):
        return f"mount configfs on {self.path}"


@dataclass(frozen=True)
class ServeUser(Op):
    """Have a TCMU handler serve a user backstore (path holds 'user_N/NAME'): `serve` (the
    planner's: lioctl.tcmu.launcher.ensure_serving) starts it when none runs and waits until
    it answers for the device; handed in so that a plan knows nothing of the handler. Never
    undone: the handler lets go of a device when it is removed."""

    serve: Callable[[list[str]], object] = field(kw_only=True, compare=False, repr=False)
    in_configfs = False

    def apply(self):
        self.serve([self.path])
        return None

    def sh(self):
        return f"lioctl tcmu start {_q(self.path)}"

    def describe(self):
        return f"have lioctl's TCMU handler serve {self.path}"


class Incomplete(Exception):
    """An inverse re-made its object but could not set some of its values back: each entry is
    (file, reason). The object exists; those values differ from before the plan ran."""

    def __init__(self, failures: list[tuple[str, str]]):
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in failures))
        self.failures = failures


# Files whose shown value is not what one writes to set it: words for an index, or a
# description around a name. Anything else is written back as read.
_WORDS = {"alua_access_type": ("None", "Implicit", "Explicit", "Implicit and Explicit"),
          "alua_access_status": ("None", "Altered by Explicit STPG", "Altered by Implicit ALUA")}
_SKIP_GROUPS = {"statistics", "fabric_statistics"}


def _writable_form(name: str, shown: str) -> str | None:
    if name in _WORDS:
        return str(_WORDS[name].index(shown)) if shown in _WORDS[name] else None
    if name == "alua_tg_pt_gp":
        m = re.search(r"TG Port Alias:\s*(\S+)", shown)
        return m.group(1) if m else None
    if name == "vpd_unit_serial":
        return shown.partition(":")[2].strip() or None
    return shown


def capture(path: str, recursive: bool = True) -> tuple[tuple[str, str], ...]:
    """(file, value to write) for every readable and writable attribute of a configfs directory
    and, recursive, of the default groups below it (statistics left out: read-only). Values,
    CHAP secrets included, stay in memory and are never printed."""
    out: list[tuple[str, str]] = []
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        with os.scandir(dfd) as it:
            entries = sorted(it, key=lambda e: e.name)
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        writable = configfs.writable_names(files)
        for name in (e.name for e in files):
            if name in writable:
                shown = configfs.read(name, None, dfd)
                value = None if shown is None else _writable_form(name, shown)
                if value is not None:
                    out.append((f"{path}/{name}", value))
        subdirs = [e.name for e in entries if recursive and e.is_dir(follow_symlinks=False)
                   and e.name not in _SKIP_GROUPS]
    finally:
        os.close(dfd)
    for name in subdirs:
        out[:0] = capture(f"{path}/{name}")   # groups before the directory's own files
    return tuple(out)


def _restore_order(item: tuple[str, str]) -> int:
    """An ALUA state change needs implicit ALUA allowed first; enable goes last, once the rest
    is set (a TPG serving with half its settings would be worse than one not serving)."""
    name = os.path.basename(item[0])
    if name == "tg_pt_gp_id":
        return 0
    if name == "alua_access_type":
        return 1 if item[1] in ("1", "3") else 3
    if name == "alua_access_state":
        return 2
    if name == "enable":
        return 5
    return 4


def restore(values) -> list[tuple[str, str]]:
    """Write back each value the object does not show already; return (file, reason) for each
    that could not be set, after trying them all."""
    failures = []
    for path, value in sorted(values, key=_restore_order):
        shown = configfs.read(path)
        if shown is not None and _writable_form(os.path.basename(path), shown) == value:
            continue
        try:
            configfs.write(path, value)
        except OSError as exc:
            failures.append((path, "not set back: " + ERRNO_REASONS.get(exc.errno, exc.strerror or str(exc))))
    return failures


@dataclass(frozen=True)
class Recreate(Op):
    """The inverse of removing a directory: make it again, then set what it held."""

    values: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def apply(self):
        os.mkdir(self.path)
        failures = restore(self.values)
        if failures:
            raise Incomplete(failures)
        return Rmdir(self.path)

    def sh(self):
        return f"mkdir {_q(self.path)}"

    def describe(self):
        return f"re-create {self.path}"


@dataclass(frozen=True)
class Relink(Op):
    """The inverse of unlinking a LUN or mapped LUN: link again, then set what the link carried."""

    target: str = ""
    values: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def apply(self):
        os.symlink(self.target, self.path)
        failures = restore(self.values)
        if failures:
            raise Incomplete(failures)
        return Unlink(self.path)

    def sh(self):
        return f"ln -s {_q(self.target)} {_q(self.path)}"

    def describe(self):
        return f"link {self.path} -> {self.target}"


@dataclass
class Plan:
    """An ordered list of operations plus what to tell the user it does."""

    ops: list[Op] = field(default_factory=list)
    # directories the plan makes / removes, kept as ops come in: planners ask "is this LUN
    # re-created / already gone?" once per mapped LUN, and scanning the ops was quadratic
    made: set[str] = field(default_factory=set, repr=False, compare=False)
    removed: set[str] = field(default_factory=set, repr=False, compare=False)

    def add(self, op: Op) -> Op:
        self.ops.append(op)
        self._index(op)
        return op

    def _index(self, op: Op) -> None:
        if type(op) is Mkdir:
            self.made.add(op.path)
        elif isinstance(op, Rmdir):
            self.removed.add(op.path)

    def mkdir(self, path: str) -> None:
        self.add(Mkdir(path))

    def rmdir(self, path: str, *, concurrent: bool = False, keep: bool = True) -> None:
        self.add(Rmdir(path, concurrent=concurrent, keep=keep))

    def write(self, path: str, value, *, secret: bool = False, undoable: bool = True) -> None:
        self.add(Write(path, str(value), secret=secret, undoable=undoable))

    def symlink(self, path: str, target: str, *, concurrent: bool = False) -> None:
        self.add(Symlink(path, target, concurrent=concurrent))

    def unlink(self, path: str, *, concurrent: bool = False, keep: bool = True) -> None:
        self.add(Unlink(path, concurrent=concurrent, keep=keep))

    def extend(self, other: "Plan") -> None:
        self.ops.extend(other.ops)
        self.made |= other.made
        self.removed |= other.removed

    def __iter__(self):
        return iter(self.ops)

    def __len__(self):
        return len(self.ops)

    def __bool__(self):
        return bool(self.ops)


ERRNO_REASONS = {
    errno.EEXIST: "it already exists",
    errno.ENOENT: "it does not exist",
    errno.EBUSY: "it is in use",
    errno.EINVAL: "the kernel rejected it as invalid",
    errno.ENOTEMPTY: "it is not empty",
    errno.EPERM: "permission denied",
    errno.EACCES: "permission denied",
    errno.ENODEV: "no such device",
    errno.EADDRNOTAVAIL: "the address is not available on this host",
    errno.EADDRINUSE: "the address is already in use",
}


@dataclass(frozen=True)
class CreateFile(Op):
    """A fileio backing file made by lioctl (sparse or fully allocated); removed on rollback."""

    in_configfs = False

    size: int = 0
    sparse: bool = True

    def apply(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if self.sparse:
                os.ftruncate(fd, self.size)
            else:
                os.posix_fallocate(fd, 0, self.size)
        except OSError:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        return RemoveFile(self.path)

    def sh(self):
        if self.sparse:
            return f"truncate -s {self.size} {_q(self.path)}"
        return f"fallocate -l {self.size} {_q(self.path)}"

    def describe(self):
        return f"create file {self.path} ({self.size} bytes{', sparse' if self.sparse else ''})"


@dataclass(frozen=True)
class RemoveFile(Op):
    in_configfs = False

    def apply(self):
        os.unlink(self.path)
        return None

    def sh(self):
        return f"rm -f {_q(self.path)}"

    def describe(self):
        return f"remove file {self.path}"

