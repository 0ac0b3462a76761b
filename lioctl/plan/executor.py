"""Run a plan all-or-nothing: on the first failure, undo what ran, in reverse. No op runs
whose configfs paths (Op.configfs_paths) leave configfs.ROOT: the whole plan is refused first,
and each inverse is checked again before rollback applies it."""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable

from lioctl import configfs, oplog
from lioctl.errors import LioError
from lioctl.plan.ops import ERRNO_REASONS, Incomplete, Mkdir, Op, Plan, Write

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


def execute(plan: Plan, progress: Callable[[int, int], None] | None = None, *,
            fault_hook: bool = True) -> int:
    """_execute, recorded in the `logfile` preference's log when one is set."""
    try:
        n = _execute(plan, progress, fault_hook=fault_hook)
    except PlanFailed as e:
        oplog.failed(plan, e)
        raise
    oplog.applied(plan)
    return n


def _execute(plan: Plan, progress: Callable[[int, int], None] | None = None, *,
             fault_hook: bool = True) -> int:
    """Run every operation; return how many ran. On any failure (an OSError, a LioError, any
    other exception, Ctrl-C) roll back what ran and raise: PlanFailed, or the interrupt itself
    once rolled back. A run of adjacent ops the planner marked concurrent runs on threads, all
    of it, before any failure in it is handled (so what ran is known and undone). fault_hook
    False: a plan run by an inverse during rollback, which the test hook must not hit."""
    fault_at = int(os.environ.get(FAULT_ENV, "0") or 0) if fault_hook else 0
    undo: list[Op] = []
    created: set[str] = set()
    ops = plan.ops
    total = len(ops)
    n = 0
    current: Op | None = None
    try:
        for current in ops:     # whatever a planner was handed (a crafted saveconfig file)
            configfs.confine(*current.configfs_paths())
        current = None
        while n < total:
            end = _run_end(ops, n)
            if end - n > 1:
                current = ops[n]
                results, interrupted = _apply_together(ops[n:end], n + 1, fault_at)
                failure = None
                for op, result in zip(ops[n:end], results):
                    if isinstance(result, BaseException):
                        failure = failure or (op, result)
                    elif isinstance(result, Op):
                        undo.append(result)
                if interrupted:
                    raise interrupted
                if failure:
                    current = failure[0]
                    raise failure[1]
                n = end
                if progress:
                    progress(n, total)
                continue
            op = current = ops[n]
            n += 1
            if fault_at and n == fault_at:
                raise OSError(5, f"fault injected by {FAULT_ENV}")
            # Writes inside a directory this plan created vanish with it: no undo needed.
            if isinstance(op, Write) and op.undoable and _inside(op.path, created):
                op = Write(op.path, op.value, secret=op.secret, undoable=False)
            inverse = op.apply()
            if isinstance(op, Mkdir):
                created.add(op.path)
            if inverse is not None:
                undo.append(inverse)
            if progress:
                progress(n, total)
    except BaseException as exc:  # noqa: BLE001 - every exit from a run finishes or rolls back
        _fail(current, exc, undo)
    return total


MAX_THREADS = 32    # a run of 256 LUN links: 35 ms each in turn, ~5 ms each 32 at a time


def _run_end(ops: list[Op], start: int) -> int:
    """End of the run of adjacent concurrent ops of one kind starting at `start`."""
    first = ops[start]
    end = start + 1
    if first.concurrent:
        while end < len(ops) and ops[end].concurrent and type(ops[end]) is type(first):
            end += 1
    return end


_NOT_RUN = object()


def _apply_together(batch: list[Op], first_number: int, fault_at: int):
    """Each op's inverse, the exception it raised, or _NOT_RUN, in plan order; and the
    interrupt (Ctrl-C) that stopped the wait, if any: ops not started by then are cancelled,
    the ones running are waited for, so that what ran is known."""
    def one(numbered):
        number, op = numbered
        try:
            if fault_at and number == fault_at:
                raise OSError(5, f"fault injected by {FAULT_ENV}")
            return op.apply()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller in plan order
            return exc
    results: list = [_NOT_RUN] * len(batch)
    interrupted = None
    with ThreadPoolExecutor(min(MAX_THREADS, len(batch))) as pool:
        futures = [pool.submit(one, numbered) for numbered in enumerate(batch, first_number)]
        try:
            for i, f in enumerate(futures):
                results[i] = f.result()
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C while waiting
            interrupted = exc
            with sigint_deferred():
                for f in futures:
                    f.cancel()
                for i, f in enumerate(futures):
                    if not f.cancelled():
                        results[i] = f.exception() or f.result()
    return results, interrupted


def _fail(op: Op | None, exc: BaseException, undo: list[Op]):
    with sigint_deferred():
        leftovers = rollback(undo)
    if not isinstance(exc, Exception):      # Ctrl-C (or an exit): undone, now let it through
        if leftovers:
            print(f"lioctl: interrupted; {len(leftovers)} change(s) could not be undone (above)",
                  file=sys.stderr)
        raise exc
    msg = str(exc) if isinstance(exc, LioError) else _describe_failure(op, exc)
    if leftovers:
        msg += f"; rollback could not undo: {', '.join(_short(p) for p in leftovers)}"
    raise PlanFailed(msg, op, len(undo), leftovers) from exc


_deferring = False


@contextmanager
def sigint_deferred():
    """A second Ctrl-C must not abandon a rollback half-way: while one runs, Ctrl-C only says
    it is noted. (Signal handlers belong to the main thread; elsewhere nothing changes.)"""
    global _deferring
    if _deferring or threading.current_thread() is not threading.main_thread():
        yield
        return

    def noted(signum, frame):
        print("lioctl: interrupted again; finishing the rollback first", file=sys.stderr)
    old = signal.signal(signal.SIGINT, noted)
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        signal.signal(signal.SIGINT, old)


def _inside(path: str, created: set[str]) -> bool:
    parent = os.path.dirname(path)
    while len(parent) > len(configfs.ROOT):
        if parent in created:
            return True
        parent = os.path.dirname(parent)
    return False


_VERBS = {"Mkdir": "cannot create", "Recreate": "cannot re-create",
          "RecreateStorageObject": "cannot re-create", "Rmdir": "cannot remove",
          "Symlink": "cannot link", "Relink": "cannot link", "Unlink": "cannot unlink"}


def _describe_failure(op: Op | None, exc: BaseException) -> str:
    reason = _reason(exc) if isinstance(exc, OSError) else (str(exc) or type(exc).__name__)
    if op is None:
        return reason
    path = _short(op.path)
    if isinstance(op, Write):
        shown = "********" if op.secret else op.value
        return f"cannot set {path} to {shown!r}: {reason}"
    verb = next((_VERBS[c.__name__] for c in type(op).__mro__ if c.__name__ in _VERBS), "cannot change")
    return f"{verb} {path}: {reason}"


def rollback(undo: list[Op]) -> list[str]:
    """Undo in reverse, all of it whatever fails; return the paths left other than they were,
    each also named on stderr (a value not set back, an object not re-made, a link not re-made)."""
    failed = []
    for op in reversed(undo):
        try:
            configfs.confine(*op.configfs_paths())
            op.apply()
        except Incomplete as exc:
            for path, reason in exc.failures:
                failed.append(path)
                print(f"lioctl: rollback: {_short(path)}: {reason}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - named below, and the rest still undone
            failed.append(op.path)
            print(f"lioctl: rollback: {_describe_failure(op, exc)}", file=sys.stderr)
    return failed
