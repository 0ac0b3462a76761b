"""The lioctl command line: argv to a verb (lioctl/verbs.py), a targetcli form, help, or a
tree command `lioctl PATH COMMAND ...` (lioctl/dispatch.py); with no command, the interactive
shell (or a batch from stdin). Nothing imports this module but the console script."""

from __future__ import annotations

import codecs
import os
import sys
import traceback

from lioctl import __version__
from lioctl import render
from lioctl.errors import INTERNAL, INTERRUPTED, LioError, UsageError
from lioctl.verbs import ROOT_COMMANDS, TARGETCLI_FORMS, VERBS, Options, print_help, run_verb, split_globals


def _degrade_output_encoding() -> None:
    """Under a Latin-1 or ASCII locale, help and names must print, never crash: characters the
    terminal cannot show become ASCII look-alikes (… as ...) or '?'."""
    try:
        codecs.lookup_error("lioctl-ascii")
    except LookupError:
        codecs.register_error("lioctl-ascii", _ascii_fallback)
    for stream in (sys.stdout, sys.stderr):
        enc = getattr(stream, "encoding", None)
        if enc and codecs.lookup(enc).name != "utf-8" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="lioctl-ascii")
            except (ValueError, OSError):
                pass


_LOOKALIKES = {"\u2026": "...", "\u2013": "-", "\u2014": "--", "\u2018": "'", "\u2019": "'",
               "\u201c": '"', "\u201d": '"', "\u2192": "->", "\u2500": "-", "\u2502": "|"}


def _ascii_fallback(err: UnicodeError):
    bad = err.object[err.start:err.end]
    return "".join(_LOOKALIKES.get(c, "?") for c in bad), err.end


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = Options()
    _degrade_output_encoding()
    try:
        opts, rest = split_globals(argv)
        if opts.no_color:
            os.environ["NO_COLOR"] = "1"
        if opts.wait is not None:
            from lioctl import lock  # start-up: each branch below loads only what it runs
            lock.set_wait(opts.wait)
        if rest[:1] in (["--version"], ["-V"]):
            print(f"lioctl {__version__}")
            return 0
        if rest[:1] in (["--help"], ["-h"]):
            print_help()
            return 0
        if not rest:
            if not sys.stdin.isatty():
                from lioctl.batch import run_batch  # start-up: the tree loads only when used
                return run_batch(opts)
            from lioctl.shell.session import run_shell  # start-up: prompt_toolkit only for the shell
            return run_shell(opts)
        if rest[0] == "__complete":
            from lioctl.completion.scripts import complete_main  # start-up: each Tab waits for it
            return complete_main(rest[1:])
        if rest[0] in VERBS:
            return run_verb(rest[0], rest[1:], opts)
        if rest[0] == "help":
            from lioctl.help import run_help  # start-up: help reaches the tree for PATH help
            return run_help(rest[1:], opts)
        if rest[0] in TARGETCLI_FORMS or rest[1:2] and rest[1] in TARGETCLI_FORMS:
            from lioctl.shell import targetcli_forms  # start-up: only for targetcli's forms
            if targetcli_forms.form_of(rest):
                return targetcli_forms.run(rest, opts)
        if rest[0].startswith(("/", ".")) or rest[0] in ROOT_COMMANDS:
            from lioctl.dispatch import run_tokens  # start-up: --help and --version skip the tree
            return run_tokens(rest, opts)
        if rest[0].startswith("-"):
            raise UsageError(f"unknown option {rest[0]!r} (see lioctl --help)")
        raise UsageError(f"unknown command {rest[0]!r} (see lioctl --help)")
    except LioError as e:
        if opts.debug:
            traceback.print_exc()
        print(f"lioctl: {e}", file=sys.stderr)
        if opts.json:
            render.print_error(e.code, e.exit_code, str(e), e.obj)
        return e.exit_code
    except KeyboardInterrupt:
        print("lioctl: interrupted", file=sys.stderr)
        if opts.json:
            render.print_error("interrupted", INTERRUPTED, "interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the one place a bug becomes a one-line error
        if opts.debug:
            traceback.print_exc()
        message = f"internal error: {type(e).__name__}: {e} (rerun with --debug)"
        print(f"lioctl: {message}", file=sys.stderr)
        if opts.json:
            render.print_error(INTERNAL, 1, message)
        return 1
