"""Batch mode: `lioctl < script.txt` runs each line through the same grammar as argv and the
shell; it stops at the first failing line (reporting its number) unless --keep-going."""

from __future__ import annotations

import sys
import traceback

from lioctl import dispatch, render
from lioctl.errors import LioError, UsageError
from lioctl.grammar import split
from lioctl.shell import targetcli_forms
from lioctl.tree.nodes import resolve
from lioctl.verbs import VERBS, run_verb


def run_line(tokens: list[str], opts, cwd: str) -> tuple[int, str]:
    """Run one parsed line; return (exit status, new cwd)."""
    if tokens[0] == "cd":
        if len(tokens) > 2:
            raise UsageError("cd takes one PATH")
        target = tokens[1] if len(tokens) == 2 else "/"
        root = dispatch.Root(dispatch.make_context(opts))
        start = resolve(root, cwd)
        return 0, resolve(start, target).path
    if tokens[0] in ("exit", "quit"):
        raise EOFError
    if targetcli_forms.form_of(tokens):
        return targetcli_forms.run(tokens, opts), cwd
    if tokens[0] in VERBS and tokens[0] not in ("shell",):
        return run_verb(tokens[0], tokens[1:], opts), cwd
    return dispatch.run_tokens(tokens, opts, cwd), cwd


def run_batch(opts, stream=None) -> int:
    # standard input is the batch: `set auth password=-` must not read it
    opts.batch = stream is None or stream is sys.stdin
    stream = stream or sys.stdin
    cwd = "/"
    failed = 0
    for lineno, line in enumerate(stream, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tokens = split(line)
            if not tokens:
                continue
            rc, cwd = run_line(tokens, opts, cwd)
        except EOFError:
            break
        except LioError as e:
            if opts.debug:
                traceback.print_exc()
            print(f"lioctl: line {lineno}: {e}", file=sys.stderr)
            if opts.json:
                render.print_error(e.code, e.exit_code, f"line {lineno}: {e}", e.obj)
            rc = e.exit_code
        if rc:
            failed = failed or rc
            if not opts.keep_going:
                return rc
    return failed
