"""What can go wrong, as programs see it: each class has its exit status and a stable machine
name (the `code` of `{"error": ...}` with --json), documented in lioctl(8), EXIT STATUS, and
lioctl-json(7). A program branches on these, never on the message's words."""

from __future__ import annotations


class LioError(Exception):
    """An operation failed; the message names the object and the reason. `obj` is that
    object (a tree path, a WWN, a file) when one is known, for the --json error."""

    exit_code = 1
    code = "failed"

    def __init__(self, message: str = "", *, obj: str | None = None):
        super().__init__(message)
        self.obj = obj


class UsageError(LioError):
    """The command line itself is wrong."""

    exit_code = 2
    code = "usage"


class PartialFailure(LioError):
    """Some objects were made and others not (restore --boot names each one)."""

    exit_code = 3
    code = "partial"


class NotFound(LioError):
    """The object named (a path, a backstore, a target, a LUN, a file, a device) does not exist."""

    exit_code = 4
    code = "not-found"


class AlreadyExists(LioError):
    """An object of that name (or that index, or on that device) is already there."""

    exit_code = 5
    code = "exists"


class Conflict(AlreadyExists):
    """It is there, but not as asked (--exist-ok): the message names what differs. The same exit
    status as AlreadyExists: in both cases the caller must choose another name or remove it."""

    code = "conflict"


class InUse(LioError):
    """The object (or its device, its file, its RBD image) is used by another object."""

    exit_code = 6
    code = "in-use"


class KernelUnavailable(LioError):
    """The kernel target cannot be reached: target_core_mod or a fabric module will not load,
    configfs is not mounted and cannot be."""

    exit_code = 7
    code = "no-kernel-target"


class NotPermitted(LioError):
    """The command needs root (EX_NOPERM)."""

    exit_code = 77
    code = "permission"


class LockBusy(LioError):
    """Another process held a write lock for longer than --wait allowed (EX_TEMPFAIL)."""

    exit_code = 75
    code = "lock-busy"


def reworded(e: LioError, message: str) -> LioError:
    """The same failure (class, exit status, object) with a message that says where it came
    from: a wrapper must not turn a not-found into a plain failure."""
    new = e.__class__.__new__(e.__class__)
    new.__dict__.update(e.__dict__)
    new.args = (message,)
    return new


INTERRUPTED = 130  # Ctrl-C, after the rollback: code "interrupted"
INTERNAL = "internal"  # an unexpected exception (a bug): exit 1

# every class a program may see, for documentation checks and lioctl.api
ALL = (LioError, UsageError, PartialFailure, NotFound, AlreadyExists, Conflict, InUse,
       KernelUnavailable, NotPermitted, LockBusy)
