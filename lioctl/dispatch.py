"""Run one tree command (`PATH COMMAND ARGS`): shared by argv, batch files and the shell."""

from __future__ import annotations

import functools
import os

import lioctl.tree.nodes as nodes
from lioctl import configfs, prefs, render
from lioctl.errors import Conflict, LioError, NotFound, UsageError
from lioctl.grammar import bind
from lioctl.lock import write_lock
from lioctl.secrets import resolve_auth_values
from lioctl.tree import snapshot
from lioctl.tree.nodes import Context, Node, Result, Root, resolve
from lioctl.units import parse_bool


def make_context(opts) -> Context:
    return Context(snapshot.read(), prefs.load(), force=bool(getattr(opts, "force", False)),
                   show_secrets=bool(getattr(opts, "show_secrets", False)))


def split_path(tokens: list[str]) -> tuple[str | None, str, list[str]]:
    if tokens and tokens[0].startswith(("/", ".")):
        path, rest = tokens[0], tokens[1:]
    else:
        path, rest = None, tokens
    if not rest:
        return path, "ls", []
    return path, rest[0], rest[1:]


HELP_FLAGS = ("--help", "-h")


def run_tokens(tokens: list[str], opts, cwd: str = "/") -> int:
    path, cmd, args = split_path(tokens)
    if cmd in ("set", "get") and args[:1] == ["global"]:
        global_prefs(cmd, args[1:], opts, prefs.load())
        return 0
    if cmd in HELP_FLAGS or any(a in HELP_FLAGS for a in args):
        # `PATH --help`, `PATH COMMAND ... --help ...`: that help, and nothing run or locked
        node = _node(make_context(opts), path, cwd)
        show(node.ui_help(None if cmd in HELP_FLAGS else cmd), opts, "help")
        return 0
    if cmd == "set" and args[:1] in (["auth"], ["discovery_auth"]) and not getattr(opts, "literal_secrets", False):
        # secrets from stdin, a prompt or a file: read now, never with the write lock held
        # (lioctl.api passes them as they are: `password=-` is then the password "-")
        args = args[:1] + resolve_auth_values(args[1:], bool(getattr(opts, "batch", False)))
    if cmd in _write_verbs() and not opts.dry_run and os.geteuid() == 0 and configfs.is_mounted():
        # Likely a write and nothing to set up first: lock, then read the tree once (a large
        # configuration takes seconds to read under emulation; reading it twice was most of a
        # write's time). A usage error still exits 2 and changes nothing.
        with write_lock():
            ctx = make_context(opts)
            command, writes_, result = _run(ctx, path, cwd, cmd, args, opts)
            if writes_:
                return apply(result, opts, command, ctx.snap)
        show(result, opts, cmd)
        return 0
    ctx = make_context(opts)
    try:
        node = _node(ctx, path, cwd)
    except NotFound:
        if cmd == "delete" and getattr(opts, "missing_ok", False):
            return _missing(opts, " ".join([path or cwd, cmd, *args]))
        raise
    fn = node.command(cmd)
    if getattr(fn, "writes", False):
        if opts.dry_run:
            command, _, result = _run(ctx, path, cwd, cmd, args, opts)
            return apply(result, opts, command, ctx.snap)
        bind(fn, args, cmd)  # usage errors (exit 2) before any root or kernel check
        configfs.ensure_ready()
        with write_lock():
            ctx = make_context(opts)  # re-read under the lock: plan against what is really there
            command, _, result = _run(ctx, path, cwd, cmd, args, opts)
            return apply(result, opts, command, ctx.snap)
    result = _call(node, cmd, args)
    show(result, opts, cmd)
    return 0


def global_prefs(cmd: str, args: list[str], opts, stored: prefs.Prefs) -> bool:
    """`get global [NAME...]` and `set global NAME=VALUE...`: lioctl's own preferences
    (~/.lioctl/prefs.json), at any path as in targetcli; stored is changed and saved."""
    if cmd == "get":
        for k in args:
            if k not in prefs.DEFAULTS:
                raise LioError(f"no global preference {k!r} (known: {', '.join(sorted(prefs.DEFAULTS))})")
        values = {k: stored.get(k) for k in args or sorted(prefs.DEFAULTS)}
        if getattr(opts, "json", False):
            render.print_json({"prefs": values}, "prefs")
        else:
            print("".join(f"{k}={v}\n" for k, v in values.items()), end="")
        return True
    if not args:
        raise UsageError("set global NAME=VALUE...")
    for a in args:
        k, eq, v = a.partition("=")
        if not eq or k not in prefs.DEFAULTS:
            raise LioError(f"no global preference {k!r} (known: {', '.join(sorted(prefs.DEFAULTS))})")
        default = prefs.DEFAULTS[k]
        if isinstance(default, bool):
            stored[k] = parse_bool(v, k)
        elif isinstance(default, int):
            if not v.isdigit():
                raise LioError(f"{k} wants a number")
            stored[k] = int(v)
        elif k in prefs.CHOICES and v not in prefs.CHOICES[k]:
            raise LioError(f"{k} is one of {', '.join(prefs.CHOICES[k])}")
        else:
            stored[k] = v
    prefs.save(stored)
    if getattr(opts, "json", False):
        from lioctl import results  # start-up: as in apply
        changed = [{"type": "preference", "path": "global/" + k, "name": k, "value": stored[k]}
                   for k in dict.fromkeys(a.partition("=")[0] for a in args)]
        render.print_json(results.write_result("set global", changed=True, modified=changed), "write")
        return True
    for a in args:
        k = a.partition("=")[0]
        print(f"Parameter {k} is now {stored[k]!r}.")
    return True


@functools.cache
def _write_verbs() -> frozenset[str]:
    """Every verb that writes on some node class (create, delete, set, enable, ...)."""
    verbs = set()
    for cls in vars(nodes).values():
        if isinstance(cls, type) and issubclass(cls, Node):
            verbs.update(n[3:] for n in dir(cls)
                         if n.startswith("ui_") and getattr(getattr(cls, n), "writes", False))
    return frozenset(verbs)


def _node(ctx: Context, path: str | None, cwd: str) -> Node:
    root = Root(ctx)
    start = resolve(root, cwd) if cwd != "/" else root
    return resolve(start, path) if path else start


def _run(ctx: Context, path: str | None, cwd: str, cmd: str, args: list[str], opts) -> tuple[str, bool, Result]:
    """Resolve and call, with the idempotent forms: `create --exist-ok` finds the object the
    create names (the node's exist_ok_create) and, when it is there as asked, changes nothing;
    there but different: Conflict naming what differs. `delete --missing-ok`: an object (or a
    path) that is not there is nothing to delete. Returns (the command as the result names it,
    whether it writes, its result)."""
    try:
        node = _node(ctx, path, cwd)
        command = f"{node.path} {cmd}"
        writes_ = bool(getattr(node.command(cmd), "writes", False))
        if cmd == "create" and getattr(opts, "exist_ok", False) and hasattr(node, "exist_ok_create"):
            bound = bind(node.command(cmd), args, cmd)
            found = node.exist_ok_create(*bound.args, **bound.kwargs)
            if found is not None:
                return command, writes_, _unchanged(*found)
        return command, writes_, _call(node, cmd, args)
    except NotFound:
        if cmd == "delete" and getattr(opts, "missing_ok", False):
            what = " ".join([path or cwd, cmd, *args])
            return what, True, Result(message=f"{what}: not there; nothing to delete", data={"missing": True})
        raise


def _unchanged(kind: str, obj, differences: list[str], data: dict | None = None) -> Result:
    from lioctl import results  # start-up: only for --exist-ok
    described = results.describe(kind, obj)
    if differences:
        raise Conflict(f"{described['path']} exists but differs: {'; '.join(differences)}",
                       obj=described["path"])
    return Result(message=f"{described['path']} already exists as asked; nothing changed",
                  data={"unchanged": [described], **(data or {})})


def _missing(opts, what: str) -> int:
    return apply(Result(message=f"{what}: not there; nothing to delete", data={"missing": True}),
                 opts, what, None)


def _call(node: Node, cmd: str, args: list[str]) -> Result:
    fn = node.command(cmd)
    bound = bind(fn, args, cmd)
    return fn(*bound.args, **bound.kwargs)


def apply(result: Result, opts, command: str, before: snapshot.Snapshot) -> int:
    """Run (or, with --dry-run, print) a write command's plan, then report; with --json, what it
    made, changed and removed (lioctl/results.py), `before` being what the plan was made from."""
    from lioctl import results  # start-up: reads (ls, info) never load the executor
    from lioctl.plan import executor
    if result.plan is None:
        data = result.data if isinstance(result.data, dict) else {}
        if opts.json:
            render.print_json(results.write_result(command, changed=False, message=result.message,
                                                   unchanged=data.get("unchanged"), data=data), "write")
        elif result.message:
            render.print_text(result.message)
        else:
            show(result, opts, command)
        return 0
    if opts.dry_run:
        results.print_dry_run(result.plan, None, opts)
        return 0
    tracker = results.Tracker(result.plan, before) if opts.json else None
    executor.execute(result.plan)
    if result.after:
        result.after()
    from lioctl.commands import save as save_cmd  # start-up: as the executor
    saved = None
    if save_cmd.wanted(opts):  # under the write lock still: the caller holds it
        saved = save_cmd.autosave()
    if tracker is not None:
        data = dict(result.data or {}, **({"saved": saved} if saved else {}))
        render.print_json(tracker.result(command, message=result.message, data=data), "write")
    elif result.message:
        render.print_text(result.message)
    return 0


def show(result: Result, opts, output: str) -> None:
    """A read's answer; with --json its document, `output` naming the read."""
    if opts.json:
        data = result.data
        render.print_json(data if isinstance(data, dict) else {output: data}, output)
    elif result.tree is not None:
        render.print_tree(result.tree, result.depth)
    elif result.text is not None:
        render.print_text(result.text)
