"""lioctl for Python programs (Cinder, os-brick, ansible modules): the command line's operations
as functions, run in-process by the same code.

Each function runs exactly what the matching command line runs (the same tree command or verb,
planner and all-or-nothing executor) and returns what that command prints with ``--json``, as
plain dicts and lists. Failures raise the exceptions of :mod:`lioctl.errors`, re-exported
here: ``LioError`` and its subclasses ``NotFound``, ``AlreadyExists`` (``Conflict``: there,
but not as asked), ``InUse``, ``LockBusy``, ``KernelUnavailable``, ``NotPermitted``,
``UsageError``, ``PartialFailure``; each has the command line's ``exit_code``, a stable
machine name ``code`` and the object ``obj`` when known. Nothing is half-made after one (the
executor rolls back). Example::

    from lioctl import api
    api.create_backstore("block", "vol-1", dev="/dev/vg0/vol-1")
    api.create_target("iqn.2010-10.org.openstack:vol-1")
    lun = api.create_lun("iqn.2010-10.org.openstack:vol-1", "/backstores/block/vol-1")
    api.create_acl("iqn.2010-10.org.openstack:vol-1", "iqn.1994-05.com.example:host1")
    api.set_chap("iqn.2010-10.org.openstack:vol-1", "user", secret,
                 initiator="iqn.1994-05.com.example:host1")

Importing this module does nothing else: no configfs access, no lock, no logging set up, no
signal handler. Calls need root, as the command line does.

Threads and processes: every write takes lioctl's write lock and targetcli's for that call
only, on file descriptors of its own, so writes of two threads of one process run one after
the other, exactly as writes of two processes (or of a lioctl and a targetcli) do; each plans
against the configuration as it is once it holds the lock. Reads take no lock. A call waits
for the lock at most ``wait`` seconds (default: LIOCTL_LOCK_WAIT or 60; 0: not at all) by
polling, leaving the caller's signals alone, then raises ``LockBusy`` naming the holder. The
lock is advisory: it orders lioctl and targetcli, not a program writing configfs itself.

Secrets (CHAP passwords) are passed as arguments and written to configfs as they are: never
read from standard input, never put in an error message, a log line or a result.
"""

from __future__ import annotations

import copy

from lioctl.errors import (AlreadyExists, Conflict, InUse, KernelUnavailable, LioError, LockBusy,
                           NotFound, NotPermitted, PartialFailure, UsageError)

__all__ = [
    "LioError", "UsageError", "PartialFailure", "NotFound", "AlreadyExists", "Conflict", "InUse",
    "KernelUnavailable", "NotPermitted", "LockBusy",
    "ls", "info", "get", "sessions", "running_config",
    "create_backstore", "delete_backstore", "create_target", "delete_target", "create_tpg",
    "delete_tpg", "enable_tpg", "create_lun", "delete_lun", "create_portal", "delete_portal",
    "create_acl", "delete_acl", "create_mapped_lun", "delete_mapped_lun", "set_chap", "set_values",
    "export", "unexport", "save", "restore", "apply", "command",
]


def _opts(**kw):
    from lioctl.verbs import Options  # no import-time work: see the module's docstring
    opts = Options()
    opts.json = True
    opts.literal_secrets = True
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def _collected(out: list):
    return out[-1] if out else {}


def _run(fn, wait: float | None):
    """fn() with --json output collected, and this call's lock wait."""
    from contextlib import ExitStack
    from lioctl import lock, render
    with ExitStack() as stack:
        out = stack.enter_context(render.collecting())
        stack.enter_context(lock.waiting(lock.wait_seconds() if wait is None else float(wait)))
        fn()
    return _collected(out)


def _tokens(args, params) -> list[str]:
    return [str(a) for a in args] + [f"{k}={_word(v)}" for k, v in params.items() if v is not None]


def _word(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def command(path: str, name: str, *args, wait: float | None = None, force: bool = False,
            exist_ok: bool = False, missing_ok: bool = False, save: bool = False, **params):
    """Any tree command, as ``lioctl [--force] [--exist-ok] [--missing-ok] [--save] PATH NAME
    ARGS... KEY=VALUE...`` runs it; returns its --json document. Positional ARGS and KEY=VALUE
    parameters are given separately; a value is passed as one word, never split or read from
    a file. exist_ok: a create of what is there as asked changes nothing (what differs raises
    Conflict); missing_ok: a delete of what is not there changes nothing; save: save the
    configuration after the write (as the auto_save preference does)."""
    from lioctl import dispatch
    tokens = [path, name, *_tokens(args, params)]
    opts = _opts(force=force, exist_ok=exist_ok, missing_ok=missing_ok, save=save)
    return _run(lambda: dispatch.run_tokens(tokens, opts), wait)


def _verb(verb: str, argv: list[str], wait: float | None = None, **flags):
    from lioctl.verbs import run_verb
    return _run(lambda: run_verb(verb, [str(a) for a in argv], _opts(**flags)), wait)


def _tpg(wwn: str, tpg: int, fabric: str) -> str:
    return f"/{fabric}/{wwn}/tpg{tpg}"


# --- reads ---------------------------------------------------------------------------------

def ls(path: str = "/", depth: int | None = None) -> dict:
    """The tree under PATH, as ``lioctl PATH ls --json``."""
    return command(path, "ls", depth=depth)


def info(path: str) -> dict:
    """One object's details, as ``lioctl PATH info --json``."""
    return command(path, "info")


def get(path: str, group: str | None = None, *names: str) -> dict:
    """Attribute groups of PATH (all, one GROUP, or some NAMEs of it), as ``PATH get --json``."""
    return command(path, "get", *([group] if group else []), *names)


def sessions(detail: bool = False) -> dict:
    """Logged-in initiator sessions (its "sessions" list), as ``lioctl sessions [detail] --json``."""
    return _verb("sessions", ["detail" if detail else "list"])


def running_config() -> dict:
    """The running configuration as a saveconfig document (what ``lioctl save -`` prints)."""
    from lioctl.commands.save import running_config as dump
    return dump()


# --- backstores ----------------------------------------------------------------------------

def create_backstore(kind: str, name: str, *args, exist_ok: bool = False, save: bool = False,
                     wait: float | None = None, **params) -> dict:
    """``/backstores/KIND create NAME ...``: e.g. ("fileio", "d1", file_or_dev="/srv/d1.img",
    size="1G"), ("block", "v1", dev="/dev/vg/v1"), ("ramdisk", "r1", size="64M")."""
    return command(f"/backstores/{kind}", "create", name, *args, wait=wait, exist_ok=exist_ok, save=save, **params)


def delete_backstore(kind: str, name: str, *, force: bool = False, missing_ok: bool = False,
                     save: bool = False, wait: float | None = None) -> dict:
    """``/backstores/KIND delete NAME`` (refused while LUNs use it, unless force)."""
    return command(f"/backstores/{kind}", "delete", name, wait=wait, missing_ok=missing_ok, save=save, force=force)


# --- targets, TPGs, LUNs, portals, ACLs ------------------------------------------------------

def create_target(wwn: str | None = None, *, fabric: str = "iscsi", exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    """``/FABRIC create [WWN]`` (iSCSI: TPG 1 and the default portal with it)."""
    return command(f"/{fabric}", "create", *([wwn] if wwn else []), wait=wait, exist_ok=exist_ok, save=save)


def delete_target(wwn: str, *, fabric: str = "iscsi", missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    """``/FABRIC delete WWN``, with everything under it (sessions on it end)."""
    return command(f"/{fabric}", "delete", wwn, wait=wait, missing_ok=missing_ok, save=save)


def create_tpg(wwn: str, tag: int | None = None, *, fabric: str = "iscsi",
               exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(f"/{fabric}/{wwn}", "create", *([tag] if tag is not None else []), wait=wait, exist_ok=exist_ok, save=save)


def delete_tpg(wwn: str, tag: int, *, fabric: str = "iscsi", missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(f"/{fabric}/{wwn}", "delete", tag, wait=wait, missing_ok=missing_ok, save=save)


def enable_tpg(wwn: str, enabled: bool = True, *, tpg: int = 1, fabric: str = "iscsi",
               save: bool = False, wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, fabric), "enable" if enabled else "disable", wait=wait, save=save)


def create_lun(wwn: str, storage_object: str, lun: int | None = None, *, tpg: int = 1,
               fabric: str = "iscsi", add_mapped_luns: bool | None = None,
               exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    """``.../tpgN/luns create STORAGE_OBJECT [lun=N]``; the result holds the LUN index chosen."""
    return command(_tpg(wwn, tpg, fabric) + "/luns", "create", storage_object, lun=lun,
                   add_mapped_luns=add_mapped_luns, wait=wait, exist_ok=exist_ok, save=save)


def delete_lun(wwn: str, lun: int, *, tpg: int = 1, fabric: str = "iscsi",
               missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, fabric) + "/luns", "delete", lun, wait=wait, missing_ok=missing_ok, save=save)


def create_portal(wwn: str, ip_address: str = "0.0.0.0", port: int | None = None, *, tpg: int = 1,
                  exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, "iscsi") + "/portals", "create", ip_address,
                   *([port] if port is not None else []), wait=wait, exist_ok=exist_ok, save=save)


def delete_portal(wwn: str, ip_address: str, port: int | None = None, *, tpg: int = 1,
                  missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, "iscsi") + "/portals", "delete", ip_address,
                   *([port] if port is not None else []), wait=wait, missing_ok=missing_ok, save=save)


def create_acl(wwn: str, initiator: str, *, tpg: int = 1, fabric: str = "iscsi",
               add_mapped_luns: bool | None = None, exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, fabric) + "/acls", "create", initiator,
                   add_mapped_luns=add_mapped_luns, wait=wait, exist_ok=exist_ok, save=save)


def delete_acl(wwn: str, initiator: str, *, tpg: int = 1, fabric: str = "iscsi",
               missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(_tpg(wwn, tpg, fabric) + "/acls", "delete", initiator, wait=wait, missing_ok=missing_ok, save=save)


def create_mapped_lun(wwn: str, initiator: str, mapped_lun: int, tpg_lun: int, *,
                      write_protect: bool = False, tpg: int = 1, fabric: str = "iscsi",
                      exist_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(f"{_tpg(wwn, tpg, fabric)}/acls/{initiator}", "create", mapped_lun, tpg_lun,
                   write_protect=write_protect, wait=wait, exist_ok=exist_ok, save=save)


def delete_mapped_lun(wwn: str, initiator: str, mapped_lun: int, *, tpg: int = 1,
                      fabric: str = "iscsi", missing_ok: bool = False, save: bool = False,
        wait: float | None = None) -> dict:
    return command(f"{_tpg(wwn, tpg, fabric)}/acls/{initiator}", "delete", mapped_lun, wait=wait, missing_ok=missing_ok, save=save)


def set_chap(wwn: str, userid: str, password: str, *, initiator: str | None = None,
             mutual_userid: str | None = None, mutual_password: str | None = None, tpg: int = 1,
             save: bool = False, wait: float | None = None) -> dict:
    """CHAP of an ACL (initiator given) or of the TPG (its demo mode): ``set auth``. The
    secrets are written as given and appear in no message and no result."""
    path = _tpg(wwn, tpg, "iscsi") + (f"/acls/{initiator}" if initiator else "")
    return command(path, "set", "auth", wait=wait, save=save, userid=userid, password=password,
                   mutual_userid=mutual_userid, mutual_password=mutual_password)


def set_values(path: str, group: str, *, save: bool = False, wait: float | None = None,
               **values) -> dict:
    """``PATH set GROUP NAME=VALUE...`` (attribute, parameter, auth...)."""
    return command(path, "set", group, wait=wait, save=save, **values)


# --- verbs -----------------------------------------------------------------------------------

def export(device: str, *, save: bool = False, wait: float | None = None, **options) -> dict:
    """``lioctl export DEVICE --OPTION VALUE...``: options by their long names with _ for -,
    e.g. export("/srv/d.img", iqn=..., portal=["192.0.2.1"], acl=[...], lun_size="1G",
    exist_ok=True). True is a flag; a list repeats the option."""
    return _verb("export", [device, *_options(options)], wait, save=save)


def unexport(what: str, *, save: bool = False, wait: float | None = None, **options) -> dict:
    """``lioctl unexport DEVICE|IQN`` (missing_ok=True: nothing there is fine)."""
    return _verb("unexport", [what, *_options(options)], wait, save=save)


def _options(options: dict) -> list[str]:
    argv: list[str] = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is False or v is None:
            continue
        else:
            for one in v if isinstance(v, (list, tuple)) else [v]:
                argv += [flag, str(one)]
    return argv


def save(file: str | None = None, *, force: bool = False) -> dict:
    """``lioctl save [FILE]`` (default: the distribution's file)."""
    return _verb("save", [*([file] if file else []), *(["--force"] if force else [])])


def restore(file: str | None = None, *, prune: bool = False, clear: bool = False,
            target: str | None = None, storage_object: str | None = None,
            dry_run: bool = False, save: bool = False, wait: float | None = None) -> dict:
    """``lioctl restore [FILE] [--prune|--clear] [--target IQN] [--storage-object NAME]``."""
    from lioctl.verbs import run_verb
    argv = [*([file] if file else []), *(["--prune"] if prune else []),
            *(["--clear"] if clear else []), *(["--target", target] if target else []),
            *(["--storage-object", storage_object] if storage_object else [])]
    return _run(lambda: run_verb("restore", argv, _opts(dry_run=dry_run, save=save)), wait)


def apply(document: dict | str, *, prune: bool = False, dry_run: bool = False,
          save: bool = False, wait: float | None = None) -> dict:
    """``lioctl apply``: make what DOCUMENT (a saveconfig dict, or a file's path) names match it,
    nothing else. Returns the write document (its "changes" and "operations" too; a "plan"
    document when dry_run). The dict is not modified."""
    from lioctl import lock, render
    from lioctl.commands import apply as verb
    from lioctl.saveconfig import load
    if isinstance(document, str):
        desired, unknown = load.read(document, partial=True)
    else:
        desired, unknown = load.check(copy.deepcopy(document), partial=True)
    load.report_unknown(unknown)
    with lock.waiting(lock.wait_seconds() if wait is None else float(wait)):
        kind, data, _ = verb.converge(desired, _opts(dry_run=dry_run, save=save), prune)
    return render.document(kind, data)
