"""The verbs (`lioctl export`, `lioctl save`...): their table, the global options every
command line takes, and running one verb. Shared by argv (cli), batch files and the shell,
which import it from here rather than from each other; a verb's module loads only when
the verb runs (fast start)."""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
import textwrap

from lioctl import __version__
from lioctl.errors import UsageError

# verb -> (module, one-line help). Modules load only when their verb runs (fast start).
VERBS = {
    "export": ("lioctl.commands.export", "export a file or block device as an iSCSI target in one step"),
    "unexport": ("lioctl.commands.unexport", "remove a target made by export, and its backstore if unused"),
    "save": ("lioctl.commands.save", "save the running configuration (targetcli's saveconfig.json)"),
    "restore": ("lioctl.commands.restore", "apply a saved configuration, changing only what differs"),
    "apply": ("lioctl.commands.apply", "make what a (partial) saveconfig document names match it, nothing else"),
    "diff": ("lioctl.commands.diff", "show what restore would change (exit 1 if anything differs)"),
    "clear": ("lioctl.commands.clear", "remove the whole target configuration"),
    "sessions": ("lioctl.commands.sessions", "list logged-in initiator sessions"),
    "tcmu": ("lioctl.commands.tcmu", "run, inspect or stop lioctl's TCMU handler (user backstores)"),
    "fabric-skeleton": ("lioctl.commands.fabric_skeleton", "write the source of a new LIO fabric module (Kbuild, C, README)"),
    "completion": ("lioctl.commands.completion", "print the bash, zsh or fish completion script"),
    "install-units": ("lioctl.commands.install_units", "write the systemd units for this installation"),
    "shell": ("lioctl.shell.session", "start the interactive shell"),
}
# `lioctl VERB --help` ends with these (a verb module's own EXAMPLES, if it has one, wins)
VERB_EXAMPLES = {
    "export": """examples:
  lioctl export /srv/disk.img                     # fileio backstore, demo mode, 0.0.0.0:3260
  lioctl export /dev/sdb -p 192.0.2.10 --acl iqn.1994-05.com.example:client1
  lioctl export /srv/new.img --lun-size 10G --dry-run   # the configfs operations, as sh
  lioctl export /srv/disk.img --acl iqn.1994-05.com.example:client1 --chap-file /root/alice.chap
                                                  # a 0600 file holding alice:SECRET
""",
    "unexport": """examples:
  lioctl unexport /srv/disk.img
  lioctl unexport iqn.2003-01.org.linux-iscsi.host:disk
""",
    "save": """examples:
  lioctl save                      # to the default file
  lioctl save /root/lio-backup.json
  lioctl save - | less             # print it
""",
    "restore": """examples:
  lioctl restore                   # from the default file, changing only what differs
  lioctl restore /root/lio-backup.json --dry-run
  lioctl restore --clear /root/lio-backup.json   # start from empty, as targetcli does
""",
    "diff": """examples:
  lioctl diff                      # what restore of the default file would change
  lioctl diff /root/lio-backup.json --json
""",
    "clear": """examples:
  lioctl clear --dry-run           # what would be removed, as sh
  lioctl clear --yes
""",
    "sessions": """examples:
  lioctl sessions
  lioctl sessions detail --json
""",
    "tcmu": """examples:
  lioctl tcmu status
  lioctl tcmu start user_1/disk1
  lioctl tcmu stop --timeout 10
""",
    "completion": """examples:
  lioctl completion bash > /etc/bash_completion.d/lioctl
  source <(lioctl completion bash)
""",
}
# targetcli's names for save/restore/clear (lioctl/shell/targetcli_forms.py), at any path
TARGETCLI_FORMS = ("saveconfig", "restoreconfig", "clearconfig")
# commands of the root node usable without a path: `lioctl ls`, `lioctl version`...
ROOT_COMMANDS = ("ls", "info", "get", "set", "status", "help", "version", "pwd")

GLOBAL_FLAGS = {
    "--json": "json", "--debug": "debug", "--dry-run": "dry_run", "--force": "force",
    "--yes": "yes", "-y": "yes", "--show-secrets": "show_secrets", "--keep-going": "keep_going",
    "--no-color": "no_color", "--script": "script", "--save": "save",
    "--exist-ok": "exist_ok", "--missing-ok": "missing_ok",
}

# global options that take a value (completion skips them and their value)
GLOBAL_VALUE_OPTIONS = {"--wait": "wait"}


class Options(argparse.Namespace):
    json = debug = dry_run = force = yes = show_secrets = keep_going = no_color = script = False
    save = exist_ok = missing_ok = False  # after a write: save; create/delete: idempotent
    wait = None  # --wait SECONDS: how long a write waits for the lock (lioctl/lock.py)


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
        elif a == "--wait" or a.startswith("--wait="):
            from lioctl.lock import parse_wait  # start-up: the lock's modules only with --wait
            value = a[len("--wait="):] if "=" in a else next(it, None)
            if value is None:
                raise UsageError("--wait wants a number of seconds")
            opts.wait = parse_wait(value, "--wait")
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
  --json          machine-readable output of every command (man lioctl-json)
  --dry-run       print the configfs operations as a sh script; change nothing
  --force         delete objects in use (their users go first)
  -y, --yes       do not ask for confirmation
  --show-secrets  show CHAP passwords in listings and --dry-run scripts
  --keep-going    batch mode: continue after a failed line
  --script        with restore --dry-run: print the plan as a sh script
  --no-color      plain output even on a terminal (as NO_COLOR=1 does)
  --debug         show tracebacks on errors
  --wait SECONDS  how long a write waits for the write lock (default 60; 0: fail at once)
  --save          save the configuration after every successful write (auto_save preference)
  --exist-ok      create: an object that exists as asked is fine (exit 0, nothing changed)
  --missing-ok    delete: an object that is not there is fine (exit 0)
  -V, --version   print the version
  -h, --help      this help; `lioctl help VERB`, `lioctl help PATH [COMMAND]` for more
                  (or VERB --help, PATH COMMAND --help)

Examples:
  lioctl export /srv/disk.img
  lioctl ls
  lioctl /backstores/fileio create disk1 /srv/disk1.img 10G
  lioctl /iscsi create iqn.2003-01.org.example:t1
  lioctl --dry-run /iscsi/iqn.2003-01.org.example:t1/tpg1/luns create /backstores/fileio/disk1
  lioctl help /backstores/fileio create
  lioctl saveconfig               # as targetcli's; also restoreconfig, clearconfig confirm=true
  lioctl --json --exist-ok --save /backstores/block create vol1 /dev/sdb wwn=from:vol-1
  lioctl --missing-ok /iscsi delete iqn.2003-01.org.example:t1

Exit status: 0 success, 1 operation failed, 2 usage error, 3 restore --boot partly restored,
4 not found, 5 already exists (or differs, with --exist-ok), 6 in use, 7 no kernel target,
75 write lock busy, 77 not root, 130 interrupted (rolled back); see man lioctl, EXIT STATUS.
"""


def print_help(file=sys.stdout) -> None:
    verbs = "".join(f"  {v:<12}{h}\n" for v, (_, h) in VERBS.items())
    verbs += "".join(f"  {v:<12}{h}\n" for v, h in (("ls", "list the whole tree (or PATH)"),
                                                   ("version", "lioctl and kernel target versions")))
    text = HELP_TEXT.format(version=__version__, verbs=verbs)
    if file.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console  # start-up: rich only on a terminal
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


def verb_parser(verb: str):
    """(the verb's module, its argument parser): one parser for running, help and completion."""
    module, helptext = VERBS[verb]
    mod = importlib.import_module(module)
    description = textwrap.fill(getattr(mod, "HELP", helptext), 88)
    parser = VerbParser(prog=f"lioctl {verb}", description=description,
                        epilog=getattr(mod, "EXAMPLES", None) or VERB_EXAMPLES.get(verb),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.configure(parser)
    return mod, parser


def run_verb(verb: str, argv: list[str], opts: Options) -> int:
    mod, parser = verb_parser(verb)
    try:
        # a copy: a batch or the shell hands the same global options to every line, and a verb's
        # own options (restore --prune, say) must not carry over to the next line's
        args = parser.parse_args(argv, namespace=copy.copy(opts))
    except SystemExit as e:  # --help printed; in the shell or a batch this must not exit
        return e.code if isinstance(e.code, int) else 0
    return mod.run(args) or 0
