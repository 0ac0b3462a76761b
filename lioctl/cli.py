"""The lioctl command line: global options, high-level verbs, and targetcli-style
`lioctl PATH COMMAND ...`; with no command, the interactive shell (or a batch from stdin)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from lioctl import __version__
from lioctl.errors import LioError, UsageError

# verb -> (module, one-line help). Modules load only when their verb runs (fast start).
VERBS = {
    "export": ("lioctl.commands.export", "export a file or block device as an iSCSI target in one step"),
    "unexport": ("lioctl.commands.unexport", "remove a target made by export, and its backstore if unused"),
    "save": ("lioctl.commands.save", "save the running configuration (targetcli's saveconfig.json)"),
    "restore": ("lioctl.commands.restore", "apply a saved configuration, changing only what differs"),
    "diff": ("lioctl.commands.diff", "show what restore would change (exit 1 if anything differs)"),
    "clear": ("lioctl.commands.clear", "remove the whole target configuration"),
    "sessions": ("lioctl.commands.sessions", "list logged-in initiator sessions"),
    "tcmu": ("lioctl.commands.tcmu", "run, inspect or stop lioctl's TCMU handler (user backstores)"),
    "completion": ("lioctl.commands.completion", "print the bash, zsh or fish completion script"),
    "install-units": ("lioctl.commands.install_units", "write the systemd units for this installation"),
    "shell": ("lioctl.shell.session", "start the interactive shell"),
}
# commands of the root node usable without a path: `lioctl ls`, `lioctl version`...
ROOT_COMMANDS = ("ls", "info", "get", "set", "status", "help", "version", "pwd")

GLOBAL_FLAGS = {
    "--json": "json", "--debug": "debug", "--dry-run": "dry_run", "--force": "force",
    "--yes": "yes", "-y": "yes", "--show-secrets": "show_secrets", "--keep-going": "keep_going",
    "--no-color": "no_color", "--script": "script",
}


class Options(argparse.Namespace):
    json = debug = dry_run = force = yes = show_secrets = keep_going = no_color = script = False


def split_globals(argv: list[str]) -> tuple[Options, list[str]]:
    """Global flags may stand anywhere before a lone `--`."""
    opts = Options()
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--":
            rest += list(it)
            break
        if a in GLOBAL_FLAGS:
            setattr(opts, GLOBAL_FLAGS[a], True)
        else:
            rest.append(a)
    return opts, rest


HELP_TEXT = """\
lioctl {version} - manage the Linux SCSI target (LIO) through configfs

Usage:
  lioctl [OPTIONS] VERB [ARGS...]
  lioctl [OPTIONS] PATH [COMMAND [ARGS...] [KEY=VALUE...]]
  lioctl [OPTIONS]                  interactive shell (batch when stdin is not a terminal)

Verbs:
{verbs}
Tree commands (at any PATH, as in targetcli):
  ls [PATH] [DEPTH]   info   status   get [GROUP [NAME...]]   set GROUP NAME=VALUE...
  create ...   delete ...   help [COMMAND]   version   sessions [list|detail]

Paths:
  /backstores/{{block,fileio,pscsi,ramdisk,user}}[/NAME]
  /iscsi/IQN/tpgN/{{luns,acls,portals}}   /loopback/WWN/luns   /vhost/WWN/tpgN/luns
  /qla2xxx /tcm_fc /srpt /efct ... and any other fabric configfs shows

Options:
  --json          machine-readable output for every read
  --dry-run       print the configfs operations as a sh script; change nothing
  --force         delete objects in use (their users go first)
  -y, --yes       do not ask for confirmation
  --show-secrets  show CHAP passwords in listings
  --keep-going    batch mode: continue after a failed line
  --debug         show tracebacks on errors
  --version       print the version
  -h, --help      this help; `lioctl VERB --help`, `lioctl PATH help` for more

Exit status: 0 success, 1 operation failed, 2 usage error, 3 restore --boot partly restored.
"""


def print_help(file=sys.stdout) -> None:
    verbs = "".join(f"  {v:<12}{h}\n" for v, (_, h) in VERBS.items())
    verbs += "".join(f"  {v:<12}{h}\n" for v, h in (("ls", "list the whole tree (or PATH)"),
                                                   ("version", "lioctl and kernel target versions")))
    text = HELP_TEXT.format(version=__version__, verbs=verbs)
    if file.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.markup import escape
        c = Console(file=file, highlight=False)
        for line in text.splitlines():
            if line and not line.startswith(" "):
                c.print(f"[bold]{escape(line)}[/bold]")
            else:
                c.print(escape(line))
    else:
        file.write(text)


class VerbParser(argparse.ArgumentParser):
    """argparse with our exit codes: usage errors are one line and exit 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def run_verb(verb: str, argv: list[str], opts: Options) -> int:
    module, helptext = VERBS[verb]
    mod = importlib.import_module(module)
    parser = VerbParser(prog=f"lioctl {verb}", description=getattr(mod, "HELP", helptext))
    mod.configure(parser)
    args = parser.parse_args(argv, namespace=opts)
    return mod.run(args) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts, rest = split_globals(argv)
    if opts.no_color:
        os.environ["NO_COLOR"] = "1"
    try:
        if rest[:1] in (["--version"], ["-V"]):
            print(f"lioctl {__version__}")
            return 0
        if rest[:1] in (["--help"], ["-h"]):
            print_help()
            return 0
        if not rest:
            if not sys.stdin.isatty():
                from lioctl.batch import run_batch
                return run_batch(opts)
            from lioctl.shell.session import run_shell
            return run_shell(opts)
        if rest[0] == "__complete":
            from lioctl.commands.completion import complete_main
            return complete_main(rest[1:])
        if rest[0] in VERBS:
            return run_verb(rest[0], rest[1:], opts)
        if rest[0].startswith(("/", ".")) or rest[0] in ROOT_COMMANDS:
            from lioctl.dispatch import run_tokens
            return run_tokens(rest, opts)
        if rest[0].startswith("-"):
            raise UsageError(f"unknown option {rest[0]!r} (see lioctl --help)")
        raise UsageError(f"unknown command {rest[0]!r} (see lioctl --help)")
    except LioError as e:
        if opts.debug:
            traceback.print_exc()
        print(f"lioctl: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lioctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the one place a bug becomes a one-line error
        if opts.debug:
            traceback.print_exc()
        print(f"lioctl: internal error: {type(e).__name__}: {e} (rerun with --debug)", file=sys.stderr)
        return 1
