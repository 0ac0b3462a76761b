"""The interactive shell: prompt_toolkit line editing over the same grammar and dispatch as
the one-shot command line. The write lock is taken per command, never while idle, and the
tree is re-read after every command so changes by other processes show at once."""

from __future__ import annotations

import copy
import os
import sys
import traceback

from lioctl import configfs, dispatch, prefs
from lioctl.batch import run_batch
from lioctl.errors import LioError, NotFound, UsageError
from lioctl.grammar import split
from lioctl.help import run_help
from lioctl.shell import targetcli_forms
from lioctl.tree import snapshot
from lioctl.tree.nodes import Context, Root, resolve
from lioctl.verbs import VERBS, run_verb

HISTORY = os.path.join(os.path.expanduser("~"), ".lioctl", "history")

HELP = ("start the interactive shell (what `lioctl` alone starts on a terminal); with standard "
        "input from a file or pipe, run its lines as a batch instead")
EXAMPLES = """\
examples:
  lioctl shell
  /> cd /backstores/fileio
  /backstores/fileio> create disk1 /srv/disk1.img 1G
  /backstores/fileio> saveconfig
  /backstores/fileio> exit
  lioctl shell < setup.txt        # the lines of setup.txt, as a batch
"""

SHELL_HELP = """\
Shell commands (anywhere):
  cd [PATH|-]   pwd   exit (or Ctrl-D)   bookmarks [show] | add NAME | del NAME | go NAME
  get global [NAME...]   set global NAME=VALUE...   e.g. set global auto_save_on_exit=false
  saveconfig [savefile]   restoreconfig [savefile] [clear_existing=true]   clearconfig confirm=true
  the verbs: export, unexport, save, restore, diff, clear, sessions, tcmu (VERB --help)
  help COMMAND, or COMMAND --help, shows one command's parameters and examples"""


def configure(parser) -> None:
    """`lioctl shell` takes no arguments of its own; global options apply."""


def run(args) -> int:
    if not sys.stdin.isatty():
        return run_batch(args)
    return run_shell(args)


def short_path(path: str, width: int = 40) -> str:
    """Keep the prompt readable for deep IQN paths: elide the middle of long components."""
    if len(path) <= width:
        return path
    parts = path.split("/")
    for i, p in enumerate(parts):
        if len(p) > 20 and ":" in p:
            head, _, tail = p.rpartition(":")
            parts[i] = f"{head[:8]}…:{tail}" if len(tail) < 16 else f"{p[:8]}…{p[-10:]}"
    out = "/".join(parts)
    return out if len(out) <= width else "…" + out[-(width - 1):]


class ShellSession:
    def __init__(self, opts):
        self.opts = opts
        self.cwd = "/"
        self.prev_cwd = "/"
        self.prefs = prefs.load()
        self.bookmarks: dict[str, str] = dict(self.prefs.get("bookmarks", {}))
        self._snap = None

    # one snapshot per prompt, shared by completion and the toolbar
    def snap(self):
        if self._snap is None:
            self._snap = snapshot.read()
        return self._snap

    def root(self) -> Root:
        return Root(Context(self.snap(), self.prefs))

    def refresh(self):
        self._snap = None

    # -- built-ins
    def builtin(self, tokens: list[str]) -> bool:
        cmd = tokens[0]
        if cmd == "cd":
            target = tokens[1] if len(tokens) > 1 else "/"
            if len(tokens) > 2:
                raise UsageError("cd takes one PATH")
            if target == "-":
                target = self.prev_cwd
            node = resolve(resolve(self.root(), self.cwd), target)
            self.prev_cwd, self.cwd = self.cwd, node.path
            return True
        if cmd == "bookmarks":
            return self.bookmark(tokens[1:])
        if cmd in ("set", "get") and len(tokens) > 1 and tokens[1] == "global":
            return dispatch.global_prefs(cmd, tokens[2:], self.opts, self.prefs)
        return False

    def bookmark(self, args: list[str]) -> bool:
        if not args or args[0] == "show":
            for k, v in sorted(self.bookmarks.items()):
                print(f"{k}: {v}")
            return True
        if args[0] == "add" and len(args) == 2:
            self.bookmarks[args[1]] = self.cwd
        elif args[0] == "del" and len(args) == 2:
            if self.bookmarks.pop(args[1], None) is None:
                raise NotFound(f"no bookmark {args[1]!r}")
        elif args[0] == "go" and len(args) == 2:
            if args[1] not in self.bookmarks:
                raise NotFound(f"no bookmark {args[1]!r}")
            self.prev_cwd, self.cwd = self.cwd, resolve(self.root(), self.bookmarks[args[1]]).path
            return True
        else:
            raise UsageError("bookmarks [show] | add NAME | del NAME | go NAME")
        self.prefs["bookmarks"] = self.bookmarks
        prefs.save(self.prefs)
        return True

    def execute(self, line: str) -> int:
        tokens = split(line)
        if not tokens:
            return 0
        if tokens[0] in ("exit", "quit"):
            raise EOFError
        try:
            if self.builtin(tokens):
                return 0
            if tokens[0] == "help" and len(tokens) == 2 and (
                    tokens[1] in targetcli_forms.FORMS or tokens[1] in VERBS):
                return run_help(tokens[1:], self.opts)
            if targetcli_forms.form_of(tokens):
                return targetcli_forms.run(tokens, self.opts)
            if tokens[0] in VERBS and tokens[0] != "shell":
                return run_verb(tokens[0], tokens[1:], self.opts)
            here = resolve(self.root(), self.cwd)
            if not tokens[0].startswith(("/", ".")) and tokens[0] not in here.command_names():
                try:  # a relative path, as targetcli takes them: `fileio/ create ...`
                    node = resolve(here, tokens[0])
                except LioError:
                    raise UsageError(f"{self.cwd}: no command or path {tokens[0]!r} here "
                                     f"(try: {', '.join(here.command_names())})") from None
                tokens[0] = node.path
            if tokens[0].startswith(("/", ".")) and len(tokens) == 1:
                self.builtin(["cd", tokens[0]])  # a path alone moves there, as in targetcli
                return 0
            before = self._children_before_create(tokens)
            rc = dispatch.run_tokens(tokens, self.opts, self.cwd)
            if tokens == ["help"] and not self.opts.json:
                print(SHELL_HELP)
            if before is not None and rc == 0:
                self._cd_to_created(*before)
            return rc
        finally:
            self.refresh()
            try:  # the object we stood in may have been deleted by this or another process
                resolve(self.root(), self.cwd)
            except LioError:
                self.cwd = "/"

    def save_on_exit(self) -> int:
        """targetcli saves its whole configuration when its shell exits (auto_save_on_exit,
        default true), whether or not the session changed anything; so does this shell. save
        writes nothing when the file already says the same, and keeps a backup otherwise."""
        if not self.prefs.get("auto_save_on_exit", True):
            return 0
        if os.geteuid() != 0 or not configfs.is_mounted():
            return 0  # nothing this user could have changed; an empty save would lose the file
        print("auto_save_on_exit is on (set global auto_save_on_exit=false turns it off)")
        try:
            return run_verb("save", [], copy.copy(self.opts))
        except LioError as e:
            print(f"lioctl: configuration not saved on exit: {e}", file=sys.stderr)
            return e.exit_code

    def _children_before_create(self, tokens: list[str]):
        """With the auto_cd_after_create preference (targetcli's), remember what a create's
        node holds, so the shell can move into the one new child afterwards."""
        path, cmd, _ = dispatch.split_path(tokens)
        if cmd != "create" or not self.prefs.get("auto_cd_after_create") or self.opts.dry_run:
            return None
        node = resolve(resolve(self.root(), self.cwd), path or ".")
        return node.path, {c.name for c in node.children()}

    def _cd_to_created(self, path: str, names: set[str]) -> None:
        self.refresh()
        node = resolve(self.root(), path)
        new = [c for c in node.children() if c.name not in names]
        if len(new) == 1:
            self.prev_cwd, self.cwd = self.cwd, new[0].path

    def prompt_text(self):
        return [("class:prompt", f"{short_path(self.cwd)}> ")]


def run_shell(opts) -> int:
    # prompt_toolkit and the modules built on it: only for a terminal, not for batches or tests
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.enums import EditingMode
    from prompt_toolkit.styles import Style

    from lioctl.secrets import secret_safe_history
    from lioctl.shell.completer import ShellCompleter
    from lioctl.shell.keys import bindings
    from lioctl.shell.lexer import CommandLexer
    from lioctl.shell.toolbar import toolbar_text

    sh = ShellSession(opts)
    os.makedirs(os.path.dirname(HISTORY), mode=0o700, exist_ok=True)
    fd = os.open(HISTORY, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(HISTORY, 0o600)
    style = Style.from_dict({
        "prompt": "bold ansiblue", "path": "ansicyan", "command": "bold", "key": "ansiyellow",
        "value": "ansigreen", "string": "ansigreen", "bottom-toolbar": "reverse",
    }) if not os.environ.get("NO_COLOR") else Style.from_dict({})
    session = PromptSession(
        history=secret_safe_history(HISTORY), auto_suggest=AutoSuggestFromHistory(),
        completer=ShellCompleter(sh), complete_while_typing=False, lexer=CommandLexer(),
        key_bindings=bindings(), bottom_toolbar=lambda: toolbar_text(sh), style=style,
        editing_mode=EditingMode.VI if sh.prefs.get("editing_mode") == "vi" else EditingMode.EMACS,
        enable_history_search=False)
    print("lioctl shell: Tab completes, 'help' lists commands, Ctrl-D or 'exit' leaves.")
    while True:
        try:
            line = session.prompt(sh.prompt_text)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            sh.execute(line)
        except EOFError:
            break
        except KeyboardInterrupt:
            print("lioctl: interrupted", file=sys.stderr)
        except LioError as e:
            if opts.debug:
                traceback.print_exc()
            print(f"lioctl: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - a bug in one command must not end the shell
            if opts.debug:
                traceback.print_exc()
            print(f"lioctl: internal error: {type(e).__name__}: {e} (rerun with --debug)", file=sys.stderr)
    return sh.save_on_exit()
