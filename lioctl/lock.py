"""The write lock: held only while one write command plans and runs, never by an idle shell.

Two flocks, always in this order so that two lioctl never deadlock:
- lioctl's own, in the root-only /run/lioctl (lioctl/rundir.py): a local user can neither
  pre-create and hold it nor plant a link there (the old /run/lock/lioctl.lock was in a
  world-writable directory, so any user could block every write, boot-time restore included);
- targetcli's /var/run/targetcli.lock, which targetcli holds for its whole run (its shell
  included), so that a targetcli and a lioctl never write configfs at the same time.

When either is busy, lioctl waits up to --wait SECONDS (LIOCTL_LOCK_WAIT, default 60) and
then fails with exit code 75 (EX_TEMPFAIL), naming the holder's pid and command line.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar

from lioctl import rundir
from lioctl.errors import LioError, LockBusy, UsageError

LOCK_NAME = "write.lock"
TARGETCLI_LOCK = os.environ.get("LIOCTL_TARGETCLI_LOCK", "/var/run/targetcli.lock")
DEFAULT_WAIT = 60.0
EXIT_LOCK_BUSY = LockBusy.exit_code  # 75, EX_TEMPFAIL from sysexits.h: try again later

_wait_override: float | None = None
# lioctl.api's calls: how long this call waits, polling (a library must not take the caller's
# SIGALRM); per thread and per call
_call_wait: ContextVar[float | None] = ContextVar("lioctl_call_wait", default=None)


def parse_wait(text: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"{source} wants a number of seconds (0 or more), got {text!r}")
    return value


def set_wait(seconds: float | None) -> None:
    """--wait SECONDS, for every write lock this process takes (one-shot, batch or shell)."""
    global _wait_override
    _wait_override = seconds


@contextmanager
def waiting(seconds: float):
    """Within: write locks wait at most `seconds`, by polling (lioctl.api)."""
    token = _call_wait.set(seconds)
    try:
        yield
    finally:
        _call_wait.reset(token)


def wait_seconds() -> float:
    if _call_wait.get() is not None:
        return _call_wait.get()
    if _wait_override is not None:
        return _wait_override
    env = os.environ.get("LIOCTL_LOCK_WAIT")
    if env:
        return parse_wait(env, "LIOCTL_LOCK_WAIT")
    return DEFAULT_WAIT


def _open_lioctl_lock() -> tuple[int, str]:
    override = os.environ.get("LIOCTL_LOCK")  # tests: a lock of their own
    try:
        if override:
            return os.open(override, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), override
        return (rundir.open_private(LOCK_NAME, directory=rundir.RUN_DIR),
                os.path.join(rundir.RUN_DIR, LOCK_NAME))
    except OSError as e:
        where = override or os.path.join(rundir.RUN_DIR, LOCK_NAME)
        raise LioError(f"cannot open the write lock {where}: {e.strerror or e}") from None


def _open_targetcli_lock() -> int:
    try:
        return os.open(TARGETCLI_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise LioError(f"cannot open targetcli's lock {TARGETCLI_LOCK}: {e.strerror or e}") from None


_SECRET_ARG = re.compile(r"^((?:--(?:mutual-)?chap)=?|password(?:_mutual)?=)(.*)$")


def _redact(args: list[str]) -> str:
    """A holder's command line, with the secrets old argv forms may carry replaced."""
    out, hide_next = [], False
    for a in args:
        if hide_next:
            user = a.partition(":")[0]
            out.append(f"{user}:********" if ":" in a else a)
            hide_next = False
            continue
        m = _SECRET_ARG.match(a)
        if m and m.group(1) in ("--chap", "--mutual-chap"):
            hide_next = True
            out.append(a)
        elif m and m.group(1).startswith("--"):
            user = m.group(2).partition(":")[0]
            out.append(m.group(1) + (f"{user}:********" if ":" in m.group(2) else m.group(2)))
        elif m:
            out.append(m.group(1) + "********")
        else:
            out.append(a)
    return " ".join(out)


def _one_line(text: str, limit: int = 240) -> str:
    """An error is one line: control characters escaped, long command lines cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def holders(fd: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes holding a flock on fd's file, from /proc/locks
    (flock keeps no owner in the file; targetcli writes no pid file)."""
    st = os.fstat(fd)
    found = []
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->" after the number
        if len(parts) < 6 or parts[1] == "->" or parts[1] != "FLOCK":
            continue
        try:
            pid = int(parts[4])
            major, minor, ino = parts[5].split(":")
            dev = os.makedev(int(major, 16), int(minor, 16))
        except ValueError:
            continue
        if int(ino) != st.st_ino or dev != st.st_dev or pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
            cmd = _one_line(_redact([a for a in args if a])) or "?"
        except OSError:
            cmd = "?"
        found.append((pid, cmd))
    return found


class _Timeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _Timeout


def _blocking_flock(fd: int, seconds: float) -> bool:
    """flock(LOCK_EX) that blocks in the kernel, interrupted by SIGALRM after `seconds`.

    Blocking matters: targetcli waits for its lock in a blocking flock, and the kernel hands a
    released lock to a blocked waiter before a poller's next try, so a lioctl that polled
    starved behind a queue of targetcli runs (seen: 600 s with 20 targetcli waiting)."""
    acquired = False
    old_handler = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        fcntl.flock(fd, fcntl.LOCK_EX)
        acquired = True
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        pass  # also when the alarm fired just after the lock was taken: `acquired` says which
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
    return acquired


def _flock(fd: int, name: str, deadline: float, wait: float) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    remaining = deadline - time.monotonic()
    if remaining > 0:
        if threading.current_thread() is threading.main_thread() and _call_wait.get() is None:
            if _blocking_flock(fd, remaining):
                return
        else:  # signals reach only the main thread, and lioctl.api leaves them alone: poll
            delay = 0.005
            while time.monotonic() < deadline:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    delay = min(delay * 2, 0.1)
    who = holders(fd)
    by = ("held by " + ", ".join(f"pid {p} ({c})" for p, c in who)) if who else "busy"
    waited = "did not wait (--wait 0)" if wait == 0 else f"waited {wait:g}s"
    raise LockBusy(f"{name} is {by}; {waited} (see --wait)")


@contextmanager
def write_lock(timeout: float | None = None):
    """Hold lioctl's and targetcli's locks for one command; wait at most `timeout` seconds
    (default: --wait, LIOCTL_LOCK_WAIT or 60) for both together."""
    wait = wait_seconds() if timeout is None else timeout
    deadline = time.monotonic() + wait
    with ExitStack() as stack:
        fd, path = _open_lioctl_lock()
        stack.callback(os.close, fd)
        _flock(fd, f"the write lock {path}", deadline, wait)
        tfd = _open_targetcli_lock()
        stack.callback(os.close, tfd)
        _flock(tfd, f"targetcli's lock {TARGETCLI_LOCK}", deadline, wait)
        yield
