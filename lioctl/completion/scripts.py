"""The bash, zsh and fish side of completion: where their scripts are (completions/, or
share/lioctl/completions when installed), and the hidden `lioctl __complete SHELL LINE [CUR]`
they call, which answers one candidate per line from the live tree. A verb's options and
fixed words come from its own argparse parser (lioctl/verbs.py), never from a second list.

It imports neither the interactive shell, prompt_toolkit nor rich, so it answers fast.
A lone `__files__` line asks the shell to complete file names itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from lioctl import prefs
from lioctl.completion.candidates import Candidates, seen_initiators, tolerant_split
from lioctl.errors import LioError
from lioctl.tree import snapshot
from lioctl.tree.nodes import Context, Root
from lioctl.tree.targets import local_addresses
from lioctl.verbs import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, ROOT_COMMANDS, TARGETCLI_FORMS, VERBS, verb_parser

SHELLS = ("bash", "zsh", "fish")
SCRIPT_FILES = {"bash": "lioctl.bash", "zsh": "_lioctl", "fish": "lioctl.fish"}
FILES = "__files__"
# what an option's value is, by its argparse dest, where completion has something to offer
VALUE_KINDS = {"portal": "address", "acl": "initiator", "chap_file": "file", "mutual_chap_file": "file",
               "file": "file", "dir": "dir", "output": "dir", "target": "target",
               "storage_object": "storage_object", "proto": "protocol", "kernel_release": "kernel",
               "conf": "file", "keyring": "file"}


def script_text(shell: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.path.join(here, "..", "..", "completions"),
                 os.path.join(sys.prefix, "share", "lioctl", "completions")):
        path = os.path.join(base, SCRIPT_FILES[shell])
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
    raise LioError(f"the {shell} completion script is not installed")


@dataclass
class VerbSpec:
    """What completion needs of one verb's parser (of its subcommand's, once one is typed)."""

    options: dict[str, str | None]  # option -> kind of its value ("" none to offer); None: a flag
    words: list[str]                # the first argument's fixed choices (sessions list|detail)
    takes_file: bool                # the first argument is a file or device


def verb_spec(verb: str, words: list[str]) -> VerbSpec:
    parser = verb_parser(verb)[1]
    first = _positionals(parser)[:1]
    if first and isinstance(first[0], argparse._SubParsersAction):  # noqa: SLF001 - no public lookup
        typed = next((w for w in words if w in first[0].choices), None)
        if typed is not None:
            parser = first[0].choices[typed]
            first = _positionals(parser)[:1]
    options = {}
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its actions only here
        for opt in action.option_strings:
            options[opt] = None if action.nargs == 0 else VALUE_KINDS.get(action.dest, "")
    arg = first[0] if first else None
    return VerbSpec(options, list(arg.choices or ()) if arg else [],
                    arg is not None and (arg.dest == "file" or "FILE" in (arg.metavar or "")))


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]  # noqa: SLF001


class _Session:
    """The one-shot view the shared candidate logic needs: the root, the snapshot, cwd /."""

    cwd = "/"
    bookmarks: dict = {}

    def __init__(self):
        self._snap = None

    def snap(self):
        if self._snap is None:
            self._snap = snapshot.read()
        return self._snap

    def root(self):
        return Root(Context(self.snap(), prefs.load()))


def verb_candidates(verb: str, words: list[str], word: str, sess: _Session):
    spec = verb_spec(verb, words)
    opts = spec.options
    prev = words[-1] if words else ""
    if opts.get(prev) == "":
        return  # a value completion knows nothing about (--iqn NAME, --timeout SECONDS)
    if opts.get(prev):
        kind = opts[prev]
        if kind == "address":
            yield from (a for a in sorted(local_addresses() | {"0.0.0.0"}) if a.startswith(word))
        elif kind == "file":
            yield FILES
        elif kind == "initiator":
            yield from (i for i in seen_initiators(sess.snap()) if i.startswith(word))
        elif kind == "protocol":
            from lioctl.commands.fabric_skeleton import PROTOCOLS  # loaded by verb_spec: not for other verbs
            yield from (p.name for p in PROTOCOLS.values() if p.name.lower().startswith(word.lower()))
        elif kind == "kernel":  # kernels whose headers are installed
            yield from sorted(k for k in os.listdir("/lib/modules") if k.startswith(word)
                              and os.path.isdir(f"/lib/modules/{k}/build"))
        elif kind == "dir":
            yield FILES
        else:
            yield from _scope_values(kind, word, sess)
        return
    if word.startswith("-"):
        yield from (o for o in sorted(set(opts) | set(GLOBAL_FLAGS) | set(GLOBAL_VALUE_OPTIONS) | {"--help"})
                    if o.startswith(word))
        return
    positional = [w for i, w in enumerate(words)
                  if not w.startswith("-") and not (i > 0 and opts.get(words[i - 1]) is not None)]
    if spec.words and not positional:
        yield from (w for w in spec.words if w.startswith(word))
        return
    if verb == "tcmu" and positional[:1] == ["start"]:
        for so in sess.snap().storage_objects.values():
            key = f"{so.hba}/{so.name}"
            if so.kind.user_space and key.startswith(word) and key not in positional:
                yield key
        return
    if verb in ("export", "unexport"):
        from lioctl.backstores import media   # start-up: loaded by these verbs' parsers anyway
    if verb == "export" and not positional:
        # a medium's own form (rbd:POOL/IMAGE: the cluster's pools and images, 2 s at most)
        given = {words[i]: words[i + 1] for i in range(len(words) - 1)}
        found, final = media.complete(word, {o.name: given.get(o.export) for o in media.options() if o.export})
        if final:
            yield from (n for n, _ in found)
            return
    if verb == "unexport" and not positional:
        iscsi = sess.snap().fabrics.get("iscsi")
        for t in (iscsi.targets if iscsi else {}):
            if t.startswith(word):
                yield t
        for so in sess.snap().storage_objects.values():
            named = media.spec_of(so)
            if named and named.startswith(word):
                yield named
    if verb == "restore" and ("=" in word or positional):
        key, eq, val = word.partition("=")
        if eq and key in ("target", "storage_object"):
            yield from (f"{key}={v}" for v in _scope_values(key, val, sess))
        elif not eq:
            yield from (k for k in ("target=", "storage_object=") if k.startswith(word))
        return
    if spec.takes_file and not positional:
        yield FILES


def _without_globals(words: list[str]) -> list[str]:
    """The words with global flags and global options' values (--wait 5) left out."""
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in GLOBAL_VALUE_OPTIONS:
            skip = True
        elif w not in GLOBAL_FLAGS and not w.startswith(tuple(o + "=" for o in GLOBAL_VALUE_OPTIONS)):
            out.append(w)
    return out


def _scope_values(kind: str, word: str, sess: _Session):
    """restore's scopes: the running targets' WWNs or storage objects' names (the usual case is
    restoring one of them back to what the file says)."""
    snap = sess.snap()
    if kind == "target":
        names = (fab.spec.display_wwn(t.wwn) for fab in snap.fabrics.values() for t in fab.targets.values())
    else:
        names = (so.name for so in snap.storage_objects.values())
    yield from sorted(n for n in set(names) if n.startswith(word))


def candidates(line: str) -> list[str]:
    words, word = tolerant_split(line)
    if words and os.path.basename(words[0]) in ("lioctl", "lioctl.py") or words[:1] == ["python3"]:
        words = words[1:]
    if words[:2] == ["-m", "lioctl"]:
        words = words[2:]
    if words and words[-1] in GLOBAL_VALUE_OPTIONS:
        return []  # --wait SECONDS: a number, nothing to offer
    words = _without_globals(words)
    globals_ = set(GLOBAL_FLAGS) | set(GLOBAL_VALUE_OPTIONS)
    sess = _Session()
    if not words:
        if word.startswith("-"):
            return [f for f in sorted(globals_ | {"--help", "--version"}) if f.startswith(word)]
        if word.startswith(("/", ".")):
            return list(Candidates(sess).paths(word))
        return [c for c in sorted(set(VERBS) | set(ROOT_COMMANDS) | set(TARGETCLI_FORMS) | {"/"})
                if c.startswith(word)]
    if words[0] in VERBS:
        return list(dict.fromkeys(verb_candidates(words[0], words[1:], word, sess)))
    if words == ["help"]:  # help VERB | PATH [COMMAND] | a command of /
        if word.startswith(("/", ".")):
            return list(Candidates(sess).paths(word))
        return [c for c in sorted(set(VERBS) | set(ROOT_COMMANDS) | set(TARGETCLI_FORMS) | {"/"})
                if c.startswith(word)]
    if words[:1] == ["help"] and len(words) == 2 and words[1].startswith(("/", ".")):
        words = [words[1], "help"]
    if word.startswith("-"):
        return [f for f in sorted(globals_) if f.startswith(word)]
    if words[0] in ROOT_COMMANDS:
        words = ["/"] + words
    out = []
    for cand, meta in Candidates(sess).candidates(words, word):
        out.append(FILES if meta == "file" else cand)
    return list(dict.fromkeys(out))


def complete_main(args: list[str]) -> int:
    """`__complete SHELL LINE [CUR]`: LINE is the command line up to the cursor; with CUR (bash's
    own idea of the current word, which splits at ':' and '='), candidates are cut to match."""
    if len(args) < 2 or args[0] not in SHELLS:
        print("usage: lioctl __complete bash|zsh|fish LINE [CUR]", file=sys.stderr)
        return 2
    line = args[1]
    try:
        cands = candidates(line)
    except Exception:  # noqa: BLE001 - completion must never print a traceback into a prompt
        return 0
    if len(args) > 2 and args[0] == "bash":
        _, word = tolerant_split(line)
        cut = len(word) - len(args[2])
        if cut > 0:
            cands = [c[cut:] if c != FILES else c for c in cands]
    if FILES in cands:
        cands = [c for c in cands if c != FILES] + [FILES]
    sys.stdout.write("".join(c + "\n" for c in cands))
    return 0
