"""Start the bundled handler in the background when a user backstore needs it, and wait
until it serves the devices (so the LUN answers as soon as the command returns)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import lioctl
from lioctl.errors import LioError
from lioctl.tcmu import daemon

# The handler runs as root on initiators' input: it must import only the standard library and
# this lioctl, never a module planted in the caller's working directory or named by the
# caller's PYTHON* variables. `python -I` adds neither the working directory (nor a script's)
# nor PYTHONPATH nor the user's site-packages; the directory holding the lioctl that is
# running goes right after the standard library, so the same checkout serves (a venv's
# editable install or a tree on PYTHONPATH alike) and cannot shadow a standard module.
_BOOT = ("import site, sys; "
         "sites = set(site.getsitepackages()); "
         "sys.path.insert(next((i for i, p in enumerate(sys.path) if p in sites), len(sys.path)), sys.argv[1]); "
         "from lioctl.tcmu.daemon import main; "
         "sys.exit(main(sys.argv[2:]))")
# what the handler reads from its environment; everything else is left behind
_KEEP_ENV = ("LIOCTL_TCMU_", "LIOCTL_RUN_DIR")
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
        log = open_log()
        try:
            proc = spawn(["--idle-exit"], log)
        finally:
            os.close(log)
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


def handler_argv(args: list[str]) -> list[str]:
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lioctl.__file__)))
    return [sys.executable, "-I", "-c", _BOOT, package_root, *args]


def handler_env(environ=None) -> dict[str, str]:
    """PATH (for modprobe) and the handler's own knobs only."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith(_KEEP_ENV)}
    env["PATH"] = _SAFE_PATH
    return env


def spawn(args: list[str], log_fd: int) -> subprocess.Popen:
    """Start the handler detached, in /, with a scrubbed environment and only stdio open."""
    return subprocess.Popen(handler_argv(args), cwd="/", env=handler_env(), stdin=subprocess.DEVNULL,
                            stdout=log_fd, stderr=log_fd, start_new_session=True, close_fds=True)


def open_log() -> int:
    """The handler's log in lioctl's private runtime directory, appended to; a link planted in
    its place is refused, not followed."""
    try:
        return daemon.open_run_file(daemon.LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as e:
        raise LioError(f"cannot open the TCMU handler's log {daemon.LOG}: {e.strerror or e}")


def _last_log_line() -> str:
    try:
        fd = os.open(daemon.LOG, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no log"
    except OSError:
        return f"no log at {daemon.LOG}"
