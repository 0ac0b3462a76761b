"""Output: rich trees/tables on a terminal, plain text when piped, JSON with --json.

rich is imported only when it will be used, so piped and --json runs start fast.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar

# lioctl.api's calls: what a command would print with --json is handed to the caller instead
# (per thread and per call: a ContextVar, never sys.stdout swapped under other threads)
_collected: ContextVar[list | None] = ContextVar("lioctl_collected", default=None)


@contextmanager
def collecting():
    """Within: print_json appends to the list yielded, print_text prints nothing."""
    out: list = []
    token = _collected.set(out)
    try:
        yield out
    finally:
        _collected.reset(token)


def color_ok() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


# --json documents (lioctl-json(7), lioctl/schema/lioctl.schema.json): every one is an object
# that starts with the schema version and what kind of output it is
SCHEMA = 1


def document(output: str, data: dict) -> dict:
    doc = {"schema": SCHEMA, "output": output}
    doc.update((k, v) for k, v in data.items() if k not in doc)
    return doc


def print_json(data: dict, output: str) -> None:
    """One --json document on stdout: `output` says which (read name, "write" or "error")."""
    sink = _collected.get()
    if sink is not None:
        sink.append(document(output, data))
        return
    sys.stdout.write(json.dumps(document(output, data), indent=2, sort_keys=False) + "\n")


def print_error(code: str, exit_status: int, message: str, obj: str | None = None) -> None:
    """With --json a failure is a document on stdout too (the one line on stderr stays): a
    program parses one stream whatever the exit status."""
    print_json({"error": {"code": code, "exit": exit_status, "object": obj, "message": message}}, "error")


def tree_lines(node, depth: int | None = None, width: int = 78) -> list[str]:
    """targetcli's layout: 'o- name ........ [summary]'."""
    lines: list[str] = []

    def walk(n, prefix: str, last: bool, level: int):
        text, ok = n.summary()
        name = n.name or "/"
        head = f"{prefix}o- {name} "
        tag = f" [{text}]" if text else ""
        dots = max(3, width - len(head) - len(tag))
        lines.append(head + "." * dots + tag if tag else head.rstrip())
        if depth is not None and level >= depth:
            return
        kids = n.children()
        for i, c in enumerate(kids):
            walk(c, prefix + ("  " if last else "| "), i == len(kids) - 1, level + 1)

    walk(node, "", True, 0)
    return lines


def print_tree(node, depth: int | None = None) -> None:
    if not color_ok():
        sys.stdout.write("\n".join(tree_lines(node, depth)) + "\n")
        return
    from rich.console import Console  # start-up: rich (tens of ms) only for a terminal
    from rich.tree import Tree
    from rich.markup import escape

    def label(n):
        text, ok = n.summary()
        style = {True: "green", False: "red", None: "dim"}[ok]
        return f"[bold]{escape(n.name or '/')}[/bold] [{style}]{escape(text)}[/{style}]" if text \
            else f"[bold]{escape(n.name or '/')}[/bold]"

    def build(n, t, level):
        if depth is not None and level >= depth:
            return
        for c in n.children():
            build(c, t.add(label(c)), level + 1)

    root = Tree(label(node))
    build(node, root, 0)
    Console().print(root)


def print_text(text: str) -> None:
    if text and _collected.get() is None:
        sys.stdout.write(text.rstrip("\n") + "\n")
