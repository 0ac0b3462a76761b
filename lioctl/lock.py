"""The write lock: held only while one write command plans and runs, never by an idle shell."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager

from lioctl.errors import LioError

LOCK_PATH = os.environ.get("LIOCTL_LOCK", "/run/lock/lioctl.lock")


@contextmanager
def write_lock(timeout: float = 60.0):
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LioError(f"another lioctl holds {LOCK_PATH} for over {timeout:.0f}s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)
