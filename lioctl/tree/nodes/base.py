"""The Node machinery: paths, commands (a method `ui_<verb>`: its signature is the grammar,
its docstring the help), get/set of configuration groups, help, and path resolution.

Reads return a Result with data (--json) and text; writes return a Result with a Plan that the
CLI runs under the write lock.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from lioctl import configfs
from lioctl.errors import LioError, NotFound, UsageError
from lioctl.grammar import usage
from lioctl.plan import Plan
from lioctl.tree import snapshot
from lioctl.tree.params import normalize_value, unset_or_value
from lioctl.tree.snapshot import SECRET_KEYS, Snapshot
from lioctl.units import parse_bool


@dataclass
class Result:
    data: Any = None
    text: str | None = None
    plan: Plan | None = None
    message: str | None = None
    after: Callable[[], None] | None = None
    tree: Any = None  # a node to render as a tree (ls)
    depth: int | None = None


@dataclass
class Context:
    snap: Snapshot
    prefs: dict = field(default_factory=dict)
    force: bool = False
    show_secrets: bool = False

    def pref(self, name: str, default=True):
        return self.prefs.get(name, default)


def writes(fn):
    fn.writes = True
    return fn


def _b(v, what) -> bool:
    return v if isinstance(v, bool) else parse_bool(v, what)


class Node:
    kind = "node"

    def __init__(self, ctx: Context, parent: "Node | None", name: str):
        self.ctx = ctx
        self.parent = parent
        self.name = name

    # ---- tree structure
    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        pp = self.parent.path
        return (pp if pp.endswith("/") else pp + "/") + self.name

    def children(self) -> list["Node"]:
        return []

    def child(self, name: str) -> "Node | None":
        for c in self.children():
            if c.name == name:
                return c
        low = name.lower()
        for c in self.children():
            if c.name.lower() == low:
                return c
        return None

    def summary(self) -> tuple[str, bool | None]:
        return "", None

    # ---- config groups for get/set: name -> configfs dir
    def groups(self) -> dict[str, str]:
        return {}

    def group_values(self, group: str) -> dict[str, str]:
        d = configfs.read_group(self.groups()[group])
        if group in ("auth", "discovery_auth") and not self.ctx.show_secrets:
            for k in SECRET_KEYS:
                if d.get(k):
                    d[k] = "********"
        return d

    # ---- commands
    @classmethod
    def command_names(cls) -> list[str]:
        return sorted(n[3:] for n in dir(cls) if n.startswith("ui_"))

    def command(self, name: str):
        fn = getattr(self, "ui_" + name, None)
        if fn is None:
            raise UsageError(f"{self.path}: no command {name!r} here (try: {', '.join(self.command_names())})")
        return fn

    def ui_ls(self, path: str | None = None, depth: str | None = None):
        """List this node (or PATH) and its children as a tree, DEPTH levels deep.
        Example: ls
        Example: ls /iscsi 2"""
        node = resolve(self, path) if path else self
        d = None
        if depth is not None:
            if not str(depth).isdigit():
                raise UsageError(f"ls: depth {depth!r} is not a number")
            d = int(depth)
        return Result(data=to_json_tree(node, d), tree=node, depth=d)

    def info_data(self) -> dict:
        return {"path": self.path, "kind": self.kind, "summary": self.summary()[0]}

    def ui_info(self):
        """Show what this object is and its main settings.
        Example: info
        Example: /backstores/fileio/disk1 info"""
        d = self.info_data()
        text = "\n".join(f"{k}: {_fmt(v)}" for k, v in d.items())
        return Result(data=d, text=text)

    def ui_status(self):
        """One line: this object's state.
        Example: status
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 status"""
        text, ok = self.summary()
        return Result(data={"path": self.path, "status": text, "ok": ok}, text=f"{self.path}: {text}")

    def ui_get(self, group: str | None = None, *names: str):
        """Show configuration GROUP values (attribute, parameter, auth...); all groups if none.
        Example: get
        Example: /backstores/fileio/disk1 get attribute block_size emulate_write_cache"""
        gs = self.groups()
        if group is None:
            data = {g: self.group_values(g) for g in gs}
            return Result(data=data, text=_fmt_groups(data))
        if group not in gs:
            raise UsageError(f"{self.path}: no group {group!r} here"
                             + (f" (groups: {', '.join(gs)})" if gs else " (it has no settings)"))
        vals = self.group_values(group)
        for n in names:
            if n not in vals:
                raise LioError(f"{self.path}: {group} has no {n!r}")
        if names:
            vals = {n: vals[n] for n in names}
        return Result(data={group: vals}, text=_fmt_groups({group: vals}))

    @writes
    def ui_set(self, group: str, **values: str):
        """Set NAME=VALUE pairs in configuration GROUP.

        CHAP secrets stay out of argv with password=- (standard input, or asked on a terminal)
        or password_file=FILE (same for password_mutual), e.g.
        set auth userid=alice password_file=/root/alice.chap
        An empty CHAP value unsets it (set auth userid= password=); any other value must
        not be empty.

        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 set attribute generate_node_acls=1 demo_mode_write_protect=0
        Example: /backstores/fileio/disk1 set attribute emulate_tpu=1"""
        gs = self.groups()
        if group not in gs:
            raise UsageError(f"{self.path}: no group {group!r} here"
                             + (f" (groups: {', '.join(gs)})" if gs else ""))
        if not values:
            raise UsageError(f"set {group}: give NAME=VALUE pairs")
        gdir = gs[group]
        existing = set(os.listdir(gdir))
        plan = Plan()
        for k, v in values.items():
            if k not in existing:
                raise LioError(f"{self.path}: {group} has no {k!r}")
            if not os.access(f"{gdir}/{k}", os.W_OK) or (os.stat(f"{gdir}/{k}").st_mode & 0o222) == 0:
                raise LioError(f"{self.path}: {group} {k} is read-only")
            value = unset_or_value(self.path, group, k, normalize_value(k, str(v)))
            if configfs.read(f"{gdir}/{k}") != value:  # the same value again changes nothing
                plan.write(f"{gdir}/{k}", value, secret=k in SECRET_KEYS)
        shown = ", ".join(f"{k}={'********' if k in SECRET_KEYS else v}" for k, v in values.items())
        return Result(plan=plan, message=f"{self.path}: set {group} {shown}")

    def help_target(self, command: str):
        """The function whose signature and docstring describe COMMAND here."""
        return self.command(command)

    def ui_help(self, command: str | None = None):
        """Show the commands available here, or one command's parameters and examples.
        Example: help
        Example: /backstores/fileio help create"""
        if command:
            fn = self.help_target(command)
            u = usage(command, fn)
            doc, examples = split_doc(inspect.getdoc(fn) or "")
            text = f"{u}\n" + "".join(f"  {ln}\n" for ln in doc.splitlines())
            if examples:
                text += "  Examples:\n" + "".join(f"    {e}\n" for e in examples)
            return Result(data={"command": command, "path": self.path, "usage": u, "help": doc,
                                "examples": examples}, text=text)
        rows = [(n, first_sentence(split_doc(inspect.getdoc(self.help_target(n)) or "")[0]))
                for n in self.command_names()]
        lines = []
        for n, d in rows:
            u = usage(n, self.help_target(n))
            lines += [f"  {u:<40} {d}"] if len(u) <= 40 else [f"  {u}", f"  {'':<40} {d}"]
        text = "\n".join(lines)
        return Result(data={"path": self.path, "commands": dict(rows)},
                      text=f"Commands at {self.path} (help COMMAND, or COMMAND --help, for "
                           f"its parameters and examples):\n{text}")

    def ui_pwd(self):
        """Print the current path.
        Example: pwd"""
        return Result(data={"path": self.path}, text=self.path)

    def ui_refresh(self):
        """Re-read the configuration from configfs, as targetcli's refresh does. lioctl reads it
        afresh for every command (the shell after every command too), so this only shows what
        is there now, e.g. after another tool changed it.
        Example: refresh"""
        snap = self.ctx.snap = snapshot.read()
        root = self
        while root.parent is not None:
            root = root.parent
        node = resolve(type(root)(self.ctx), self.path)
        counts = {"storage_objects": len(snap.storage_objects),
                  "targets": sum(1 for _ in snap.targets()), "children": len(node.children())}
        return Result(data={"path": self.path, **counts},
                      text=f"{self.path}: re-read configfs: {counts['storage_objects']} storage "
                           f"object(s), {counts['targets']} target(s); {counts['children']} here")


def split_doc(doc: str) -> tuple[str, list[str]]:
    """A command's docstring: its text, and the commands of its `Example:` lines."""
    text, examples = [], []
    for line in doc.splitlines():
        if line.startswith("Example:"):
            examples.append(line.removeprefix("Example:").strip())
        else:
            text.append(line)
    return "\n".join(text).strip(), examples


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[:end + 1]


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "-"
    return "-" if v is None else str(v)


def _fmt_groups(data: dict) -> str:
    out = []
    for g, vals in data.items():
        out.append(f"{g.upper()}:")
        out += [f"  {k}={v}" for k, v in vals.items()] or ["  (none)"]
    return "\n".join(out)


def to_json_tree(node: Node, depth: int | None = None) -> dict:
    text, ok = node.summary()
    d = {"name": node.name, "path": node.path, "summary": text, "ok": ok}
    if depth is None or depth > 0:
        d["children"] = [to_json_tree(c, None if depth is None else depth - 1) for c in node.children()]
    return d


def resolve(start: Node, path: str) -> Node:
    """Absolute or relative path, '..' and '.' as in targetcli; error names the missing part."""
    node = start
    if path.startswith("/"):
        while node.parent is not None:
            node = node.parent
    for part in [p for p in path.split("/") if p]:
        if part == ".":
            continue
        if part == "..":
            node = node.parent or node
            continue
        nxt = node.child(part)
        if nxt is None:
            where = node.path
            raise NotFound(f"no such path: {path} ({part!r} not found under {where})", obj=path)
        node = nxt
    return node
