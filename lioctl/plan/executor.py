"""Run a plan all-or-nothing: on the first failure, undo what ran, in reverse."""

from __future__ import annotations

import os
import sys
from typing import Callable

from lioctl import configfs
from lioctl.errors import LioError
from lioctl.plan.ops import ERRNO_REASONS, Mkdir, Op, Plan, Write

# Test hook: LIOCTL_FAULT_AT=N makes the N-th operation (1-based) fail as if the kernel
# refused it, so the kernel tests can prove rollback on real configfs.
FAULT_ENV = "LIOCTL_FAULT_AT"


class PlanFailed(LioError):
    def __init__(self, message: str, op: Op, rolled_back: int, leftovers: list[str]):
        super().__init__(message)
        self.op = op
        self.rolled_back = rolled_back
        self.leftovers = leftovers


def _reason(exc: OSError) -> str:
    return ERRNO_REASONS.get(exc.errno, exc.strerror or str(exc))


def _short(path: str) -> str:
    return path[len(configfs.ROOT) + 1:] if path.startswith(configfs.ROOT + "/") else path


def execute(plan: Plan, progress: Callable[[int, int], None] | None = None) -> int:
    """Run every operation; return how many ran. On failure roll back and raise PlanFailed."""
    fault_at = int(os.environ.get(FAULT_ENV, "0") or 0)
    undo: list[Op] = []
    created: set[str] = set()
    total = len(plan)
    for n, op in enumerate(plan, 1):
        try:
            if fault_at and n == fault_at:
                raise OSError(5, f"fault injected by {FAULT_ENV}")
            # Writes inside a directory this plan created vanish with it: no undo needed.
            if isinstance(op, Write) and op.undoable and _inside(op.path, created):
                op = Write(op.path, op.value, secret=op.secret, undoable=False)
            inverse = op.apply()
        except OSError as exc:
            leftovers = rollback(undo)
            what = _describe_failure(op, exc)
            msg = what
            if leftovers:
                msg += f"; rollback could not undo: {', '.join(_short(p) for p in leftovers)}"
            raise PlanFailed(msg, op, len(undo), leftovers) from exc
        except LioError as exc:
            leftovers = rollback(undo)
            raise PlanFailed(str(exc), op, len(undo), leftovers) from exc
        if isinstance(op, Mkdir):
            created.add(op.path)
        if inverse is not None:
            undo.append(inverse)
        if progress:
            progress(n, total)
    return total


def _inside(path: str, created: set[str]) -> bool:
    parent = os.path.dirname(path)
    while len(parent) > len(configfs.ROOT):
        if parent in created:
            return True
        parent = os.path.dirname(parent)
    return False


def _describe_failure(op: Op, exc: OSError) -> str:
    path = _short(op.path)
    reason = _reason(exc)
    if isinstance(op, Write):
        shown = "********" if op.secret else op.value
        return f"cannot set {path} to {shown!r}: {reason}"
    verb = {"Mkdir": "cannot create", "Rmdir": "cannot remove", "Symlink": "cannot link",
            "Unlink": "cannot unlink"}.get(type(op).__name__, "cannot change")
    return f"{verb} {path}: {reason}"


def rollback(undo: list[Op]) -> list[str]:
    """Undo in reverse; return the paths that could not be undone (reported, never hidden)."""
    failed = []
    for op in reversed(undo):
        try:
            op.apply()
        except OSError as exc:
            if isinstance(op, Write):
                continue  # a value we could not put back leaves no object behind
            failed.append(op.path)
            print(f"lioctl: rollback: {_describe_failure(op, exc)}", file=sys.stderr)
    return failed
