"""The one command grammar: shell-style quoting for batch files and the interactive shell,
then `[PATH] COMMAND [ARG...] [KEY=VALUE...]` binding. Nothing is ever silently dropped."""

from __future__ import annotations

import inspect
import re
import shlex

from lioctl.errors import UsageError

KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


def split(line: str) -> list[str]:
    """POSIX shell quoting; an unterminated quote is an error, not a truncation."""
    try:
        lex = shlex.shlex(line, posix=True, punctuation_chars=False)
        lex.whitespace_split = True
        lex.commenters = "#"
        return list(lex)
    except ValueError as e:
        raise UsageError(f"cannot parse {line!r}: {e}") from None


def bind(fn, tokens: list[str], command: str):
    """Map tokens to fn's parameters: KEY=VALUE for named ones, the rest positional; `--KEY`
    is KEY=true for a parameter of that name (`--create` = `create=true`)."""
    sig = inspect.signature(fn)
    params = sig.parameters
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    args, kwargs = [], {}
    for tok in tokens:
        if tok.startswith("--") and tok[2:].replace("-", "_") in params and tok[2:].replace("-", "_").isidentifier():
            tok = tok[2:].replace("-", "_") + "=true"
        m = KEY_RE.match(tok)
        if m and (m.group(1) in params or var_kw):
            key, value = m.groups()
            if key in kwargs:
                raise UsageError(f"{command}: parameter {key!r} given twice")
            kwargs[key] = value
        elif m and not var_kw and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
            names = [p for p in params if params[p].kind not in (inspect.Parameter.VAR_POSITIONAL,)]
            raise UsageError(f"{command}: unknown parameter {m.group(1)!r} in {tok!r}"
                             + (f" (parameters: {', '.join(names)})" if names else ""))
        else:
            if kwargs and not var_kw:
                raise UsageError(f"{command}: positional argument {tok!r} after KEY=VALUE ones")
            args.append(tok)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        msg = str(e).replace("got an unexpected keyword argument", "unknown parameter")
        raise UsageError(f"{command}: {msg}; usage: {usage(command, fn)}") from None
    return bound


def usage(name: str, fn) -> str:
    """A command's usage line from its signature: `create NAME [size=…] NAME=VALUE...`."""
    if getattr(fn, "usage", None):     # positionals that may be left out: said by the command
        return f"{name} {fn.usage}"
    parts = [name]
    for p in inspect.signature(fn).parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            parts.append(f"[{p.name.upper()}...]")
        elif p.kind == p.VAR_KEYWORD:
            parts.append("NAME=VALUE...")
        elif p.default is inspect.Parameter.empty:
            parts.append(p.name.upper())
        else:
            parts.append(f"[{p.name}=…]")
    return " ".join(parts)
