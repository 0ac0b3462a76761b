"""Key bindings beyond prompt_toolkit's emacs/vi defaults."""

from __future__ import annotations

from prompt_toolkit.key_binding import KeyBindings


def bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("c-c")
    def _(event):
        """Ctrl-C cancels the line being typed, never the shell."""
        event.app.current_buffer.reset()

    @kb.add("c-l")
    def _(event):
        event.app.renderer.clear()

    return kb
