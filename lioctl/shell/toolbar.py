"""The bottom toolbar: what the current object is doing (TPG enabled, sessions...)."""

from __future__ import annotations


def toolbar_text(session) -> str:
    try:
        from lioctl.tree.nodes import resolve
        node = resolve(session.root(), session.cwd)
        text, ok = node.summary()
        state = {True: "ok", False: "attention", None: ""}[ok]
        n_sessions = sum(1 for _ in _sessions(session))
        bits = [node.path, text, state, f"{n_sessions} session(s)", "Tab: complete  Ctrl-R: search  Ctrl-D: exit"]
        return "  |  ".join(b for b in bits if b)
    except Exception:  # noqa: BLE001 - a toolbar must never break the prompt
        return session.cwd


def _sessions(session):
    from lioctl.commands.sessions import collect
    return collect(session.snap())
