"""The bottom toolbar: what the current object is doing (TPG enabled, sessions...)."""

from __future__ import annotations

from lioctl.tree import sessions
from lioctl.tree.nodes import resolve


def toolbar_text(session) -> str:
    try:
        node = resolve(session.root(), session.cwd)
        text, ok = node.summary()
        state = {True: "ok", False: "attention", None: ""}[ok]
        n_sessions = len(sessions.collect(session.snap()))
        bits = [node.path, text, state, f"{n_sessions} session(s)", "Tab: complete  Ctrl-R: search  Ctrl-D: exit"]
        return "  |  ".join(b for b in bits if b)
    except Exception:  # noqa: BLE001 - a toolbar must never break the prompt
        return session.cwd
