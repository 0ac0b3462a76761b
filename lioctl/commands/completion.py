"""`lioctl completion bash|zsh|fish` prints a completion script; the scripts call the hidden
`lioctl __complete SHELL LINE [CUR]`, which answers one candidate per line from the live tree.

It imports neither the interactive shell, prompt_toolkit nor rich, so it answers fast.
A lone `__files__` line asks the shell to complete file names itself.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "print the bash, zsh or fish completion script"
SHELLS = ("bash", "zsh", "fish")
SCRIPT_FILES = {"bash": "lioctl.bash", "zsh": "_lioctl", "fish": "lioctl.fish"}
FILES = "__files__"

# verb -> {option: what its value is} ; None = a flag
VERB_OPTIONS = {
    "export": {"-p": "address", "--portal": "address", "--iqn": None, "--name": None,
               "--lun-size": None, "--readonly": None, "--acl": "initiator", "--chap": None,
               "--mutual-chap": None, "--exist-ok": None, "--user": None,
               "--chap-file": "file", "--mutual-chap-file": "file", "--create": None, "--grow": None,
               "--conf": "file", "--id": None, "--keyring": "file", "--cluster": None},
    "unexport": {},
    "save": {}, "restore": {"--prune": None, "--clear": None, "--boot": None, "--target": "target",
                            "--storage-object": "storage_object"}, "diff": {"--prune": None}, "clear": {},
    "sessions": {}, "completion": {}, "shell": {},
    "tcmu": {"--idle-exit": None, "--timeout": None},
    "fabric-skeleton": {"--proto": "protocol", "-o": "dir", "--output": "dir",
                        "-k": "kernel", "--kernel-release": "kernel"},
    "install-units": {"--dir": None, "--file": None},
}
VERB_WORDS = {"sessions": ["list", "detail"], "tcmu": ["run", "start", "status", "stop"],
              "completion": list(SHELLS)}
VERB_TAKES_FILE = {"export", "unexport", "save", "restore", "diff"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to print the script for")


def script_text(shell: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.path.join(here, "..", "..", "completions"),
                 os.path.join(sys.prefix, "share", "lioctl", "completions")):
        path = os.path.join(base, SCRIPT_FILES[shell])
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
    from lioctl.errors import LioError
    raise LioError(f"the {shell} completion script is not installed")


def run(args) -> int:
    sys.stdout.write(script_text(args.shell))
    return 0


class _Session:
    """The one-shot view the shared candidate logic needs: the root, the snapshot, cwd /."""

    cwd = "/"
    bookmarks: dict = {}

    def __init__(self):
        self._snap = None

    def snap(self):
        if self._snap is None:
            from lioctl.tree import snapshot
            self._snap = snapshot.read()
        return self._snap

    def root(self):
        from lioctl import prefs
        from lioctl.tree.nodes import Context, Root
        return Root(Context(self.snap(), prefs.load()))


def verb_candidates(verb: str, words: list[str], word: str, sess: _Session):
    opts = VERB_OPTIONS.get(verb, {})
    prev = words[-1] if words else ""
    if prev in opts and opts[prev]:
        kind = opts[prev]
        if kind == "address":
            from lioctl.tree.targets import local_addresses
            yield from (a for a in sorted(local_addresses() | {"0.0.0.0"}) if a.startswith(word))
        elif kind == "file":
            yield FILES
        elif kind == "initiator":
            from lioctl.complete import seen_initiators
            yield from (i for i in seen_initiators(sess.snap()) if i.startswith(word))
        elif kind == "protocol":
            from lioctl.commands.fabric_skeleton import PROTOCOLS
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
        from lioctl.cli import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS
        yield from (o for o in sorted(set(opts) | set(GLOBAL_FLAGS) | set(GLOBAL_VALUE_OPTIONS) | {"--help"})
                    if o.startswith(word))
        return
    positional = [w for w in words if not w.startswith("-") and not (words.index(w) > 0 and
                                                                       words[words.index(w) - 1] in opts
                                                                       and opts[words[words.index(w) - 1]])]
    if verb in VERB_WORDS and not positional:
        yield from (w for w in VERB_WORDS[verb] if w.startswith(word))
        return
    if verb == "tcmu" and positional[:1] == ["start"]:
        for so in sess.snap().storage_objects.values():
            key = f"{so.hba}/{so.name}"
            if so.plugin == "user" and key.startswith(word) and key not in positional:
                yield key
        return
    if verb == "export" and not positional and word.startswith("rbd:"):
        from lioctl.tcmu import rbd_admin      # the cluster's pools and images, 2 s at most
        given = {k: words[i + 1] for i, k in enumerate(words[:-1])
                 if k in ("--conf", "--id", "--keyring", "--cluster")}
        yield from rbd_admin.complete_names(word, {"conf": given.get("--conf"), "id": given.get("--id"),
                                                   "keyring": given.get("--keyring"),
                                                   "cluster": given.get("--cluster")})
        return
    if verb == "unexport" and not positional:
        iscsi = sess.snap().fabrics.get("iscsi")
        for t in (iscsi.targets if iscsi else {}):
            if t.startswith(word):
                yield t
        for so in sess.snap().storage_objects.values():
            cfg = so.user_config or ""
            if so.plugin == "user" and cfg.startswith("lioctl_rbd/"):
                name = "rbd:" + cfg[len("lioctl_rbd/"):].split(";")[0]
                if name.startswith(word):
                    yield name
    if verb == "restore" and ("=" in word or positional):
        key, eq, val = word.partition("=")
        if eq and key in ("target", "storage_object"):
            yield from (f"{key}={v}" for v in _scope_values(key, val, sess))
        elif not eq:
            yield from (k for k in ("target=", "storage_object=") if k.startswith(word))
        return
    if verb in VERB_TAKES_FILE and not positional:
        yield FILES


def _without_globals(words: list[str]) -> list[str]:
    """The words with global flags and global options' values (--wait 5) left out."""
    from lioctl.cli import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS
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
    from lioctl.cli import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, ROOT_COMMANDS, TARGETCLI_FORMS, VERBS
    from lioctl.complete import Candidates, tolerant_split
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
        from lioctl.complete import tolerant_split
        _, word = tolerant_split(line)
        cut = len(word) - len(args[2])
        if cut > 0:
            cands = [c[cut:] if c != FILES else c for c in cands]
    if FILES in cands:
        cands = [c for c in cands if c != FILES] + [FILES]
    sys.stdout.write("".join(c + "\n" for c in cands))
    return 0
