"""The `logfile` preference: a record of every change lioctl makes to configfs (targetcli keeps
one too). At `loglevel` info, what was created, removed or linked; at debug, also each value
written (secrets shown as ********); failures and rollbacks at every level. Off when logfile
is empty (the default)."""

from __future__ import annotations

import os

from lioctl import prefs
from lioctl.plan.ops import Write

# logging is imported only when a logfile is set: every write runs through here while holding
# the write lock, and an import costs tenths of a second under emulation
_logger = None
_opened: tuple[str, str] | None = None


def logger():
    """The file logger the preferences ask for, or None; opened once per process and file."""
    global _logger, _opened
    p = prefs.load()
    logfile = os.path.expanduser(str(p.get("logfile") or ""))
    if not logfile:
        return None
    level = str(p.get("loglevel") or "info")
    import logging  # start-up: see above
    if _opened != (logfile, level):
        log = logging.getLogger("lioctl.oplog")
        log.propagate = False
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()
        try:
            os.close(os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            handler = logging.FileHandler(logfile)
        except OSError:
            return None     # an unwritable log must not stop the change itself
        handler.setFormatter(logging.Formatter("%(asctime)s lioctl[%(process)d] %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(getattr(logging, level.upper(), logging.INFO) if level in prefs.CHOICES["loglevel"]
                     else logging.INFO)
        _logger, _opened = log, (logfile, level)
    return _logger


def applied(plan) -> None:
    if not plan.ops:
        return
    log = logger()
    if log is None:
        return
    for op in plan:
        (log.debug if isinstance(op, Write) else log.info)("%s", op.describe())
    log.info("applied %d operation(s)", len(plan.ops))


def failed(plan, error) -> None:
    log = logger()
    if log is not None:
        log.error("failed after %d of %d operation(s), rolled back: %s",
                  getattr(error, "rolled_back", 0), len(plan.ops), error)
