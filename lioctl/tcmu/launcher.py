"""Start the bundled handler in the background when a user backstore needs it, and wait
until it serves the devices (so the LUN answers as soon as the command returns)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from lioctl.errors import LioError
from lioctl.tcmu import daemon


def served(status: dict | None) -> set[str]:
    """'user_N/NAME' of the devices a handler's status says it serves."""
    if not status:
        return set()
    return {f"{d['hba']}/{d['name']}" for d in status.get("devices", [])}


def ensure_serving(keys: list[str], timeout: float = 120.0) -> dict:
    """keys are 'user_N/NAME'. Starts `lioctl tcmu run --idle-exit` unless a handler runs
    (ours, started by systemd or another lioctl), then polls its status socket."""
    want = set(keys)
    proc = None
    if daemon.running_pid() is None:
        os.makedirs(daemon.RUN_DIR, exist_ok=True)
        log = open(daemon.LOG, "ab")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "lioctl.tcmu.daemon", "--idle-exit"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        finally:
            log.close()
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        status = daemon.query()
        if want <= served(status):
            return status
        for f in (status or {}).get("failed", []):
            if f["device"] in want:
                raise LioError(f"the lioctl TCMU handler cannot serve {f['device']}: {f['error']}")
        if proc is not None and proc.poll() is not None and daemon.running_pid() is None:
            raise LioError(f"the lioctl TCMU handler exited ({proc.returncode}): {_last_log_line()}")
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(want - served(status)))
            raise LioError(f"the lioctl TCMU handler does not serve {missing} after {timeout:.0f} s: "
                           f"{_last_log_line()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _last_log_line() -> str:
    try:
        with open(daemon.LOG, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no log"
    except OSError:
        return f"no log at {daemon.LOG}"
