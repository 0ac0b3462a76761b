"""CHAP secrets kept out of argv (every local user reads it through ps and /proc/PID/cmdline):
read from a file only its owner can read, from an environment variable, or asked on a
terminal without echo. The old argv forms still work, with a warning."""

from __future__ import annotations

import os
import re
import stat
import sys

from lioctl.errors import LioError, UsageError
from lioctl.grammar import split
from lioctl.tree.snapshot import SECRET_KEYS  # the auth groups' secret attributes

MASK = "********"
FILE_SUFFIX = "_file"


def warn_if_in_argv(secret: str, what: str, instead: str) -> None:
    """One line on stderr when the secret came on our own command line."""
    if secret and any(secret in a for a in sys.argv[1:]):
        print(f"lioctl: warning: {what} on the command line is visible to every local user "
              f"(ps, /proc/PID/cmdline); use {instead}", file=sys.stderr)


def read_secret_file(path: str, what: str) -> str:
    """The first line of `path` (`-`: standard input). Like ssh with its keys, refuse a file
    that group or others may read or that someone else owns: the secret may be known already."""
    if path == "-":
        line = sys.stdin.readline()
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            raise LioError(f"{what} {path}: {e.strerror}") from None
        with os.fdopen(fd, "r", errors="strict") as f:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                if st.st_mode & 0o077:
                    raise LioError(f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others "
                                   f"may read it; chmod 600 {path}")
                if st.st_uid not in (os.geteuid(), 0):
                    raise LioError(f"{what} {path} belongs to uid {st.st_uid}, not to you or root")
            try:
                line = f.readline()
            except UnicodeDecodeError:
                raise LioError(f"{what} {path} is not text") from None
    secret = line.rstrip("\n").rstrip("\r")
    if not secret:
        raise LioError(f"{what} {path}: the first line is empty")
    return secret


def prompt_secret(prompt: str, fallback: str) -> str:
    """Ask on the terminal without echo; off a terminal say how else to give it."""
    if not sys.stdin.isatty():
        raise UsageError(f"standard input is not a terminal to ask for the secret; {fallback}")
    import getpass  # start-up: termios and pwd only when a prompt is needed
    secret = getpass.getpass(prompt)
    if not secret:
        raise UsageError("no secret given")
    return secret


def parse_creds(text: str, source: str) -> tuple[str, str]:
    user, sep, secret = text.partition(":")
    if not sep or not user or not secret:
        raise UsageError(f"{source} wants USER:SECRET")
    return user, secret


def resolve_creds(arg: str | None, file: str | None, env_name: str, opt: str,
                  need_before_prompt=None) -> tuple[str, str] | None:
    """CHAP credentials from --OPT USER[:SECRET], --OPT-file FILE or $ENV_NAME (in that order
    of preference; giving both options is an error). `need_before_prompt` runs before asking,
    so that a command that will fail anyway does not ask first."""
    if arg is not None and file is not None:
        raise UsageError(f"give {opt} or {opt}-file, not both")
    if file is not None:
        return parse_creds(read_secret_file(file, f"{opt}-file"), f"{opt}-file {file}")
    if arg is not None:
        if ":" in arg:
            user, secret = parse_creds(arg, opt)
            warn_if_in_argv(arg, f"{opt} USER:SECRET", f"{opt}-file FILE, {env_name}=USER:SECRET "
                                                      f"or {opt} USER (asks on the terminal)")
            return user, secret
        if not arg:
            raise UsageError(f"{opt} wants USER:SECRET")
        if need_before_prompt:
            need_before_prompt()
        return arg, prompt_secret(f"CHAP secret for {arg} ({opt}): ",
                                  f"give {opt}-file FILE or {env_name}=USER:SECRET ({opt} wants USER:SECRET)")
    env = os.environ.get(env_name)
    if env:
        return parse_creds(env, env_name)
    return None


def resolve_auth_values(tokens: list[str], stdin_is_batch: bool = False) -> list[str]:
    """`set auth` KEY=VALUE tokens with the secrets resolved before the write lock is taken:
    `password=-` reads standard input (asks on a terminal), `password_file=FILE` reads FILE
    (same for password_mutual); a literal password=SECRET from argv gets a warning."""
    out = []
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if eq and key in SECRET_KEYS and value == "-":
            if stdin_is_batch:
                raise UsageError(f"{key}=- reads standard input, which is this batch; "
                                 f"use {key}{FILE_SUFFIX}=FILE")
            if sys.stdin.isatty():
                value = prompt_secret(f"{key}: ", f"use {key}{FILE_SUFFIX}=FILE")
            else:
                value = read_secret_file("-", f"{key}=-")
        elif eq and key.endswith(FILE_SUFFIX) and key[:-len(FILE_SUFFIX)] in SECRET_KEYS:
            key = key[:-len(FILE_SUFFIX)]
            value = read_secret_file(value, f"{key}{FILE_SUFFIX}")
        elif eq and key in SECRET_KEYS and value:
            warn_if_in_argv(tok, f"{key}=SECRET", f"{key}=- (standard input or a prompt) "
                                                  f"or {key}{FILE_SUFFIX}=FILE")
        out.append(f"{key}={value}" if eq else tok)
    return out


def line_has_secret(line: str) -> bool:
    """Whether a shell line carries a literal secret (kept out of the saved history)."""
    try:
        tokens = split(line)
    except LioError:  # unbalanced quotes: judge the raw text, erring on the safe side
        return bool(re.search(r"password(_mutual)?=(?!-?(\s|$))|chap[= ]\S*:", line))
    for i, tok in enumerate(tokens):
        key, eq, value = tok.partition("=")
        if eq and key in SECRET_KEYS and value not in ("", "-"):
            return True
        if key in ("--chap", "--mutual-chap") and (":" in value or
                                                  not eq and i + 1 < len(tokens) and ":" in tokens[i + 1]):
            return True
    return False


def secret_safe_history(path: str):
    """prompt_toolkit's FileHistory that keeps lines with a literal secret in memory (this
    session's Up arrow) but never writes them to the history file."""
    from prompt_toolkit.history import FileHistory  # start-up: prompt_toolkit only for the shell

    class SecretSafeHistory(FileHistory):
        def store_string(self, string: str) -> None:
            if not line_has_secret(string):
                super().store_string(string)

    return SecretSafeHistory(path)
