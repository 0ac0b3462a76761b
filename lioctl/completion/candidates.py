"""The candidate engine: what may come next on a partly typed tree command line (paths,
commands, parameters, values), shared by the interactive shell (lioctl/shell/completer.py)
and the bash/zsh/fish scripts (lioctl/completion/scripts.py). Pure: no prompt_toolkit, no rich."""

from __future__ import annotations

import glob
import inspect
import os
import shlex

from lioctl import configfs, prefs
from lioctl.tree.nodes import BackstoreKind, Node, resolve
from lioctl.tree.params import allowed_values
from lioctl.tree.targets import local_addresses
from lioctl.verbs import VERBS

BUILTINS = ["cd", "pwd", "exit", "bookmarks", "ls", "help",
            "saveconfig", "restoreconfig", "clearconfig"]
# targetcli's save/restore/clear forms (lioctl/shell/targetcli_forms.py): their KEY= words
FORM_KEYS = {"saveconfig": ["savefile="],
             "restoreconfig": ["savefile=", "clear_existing=", "target=", "storage_object="],
             "clearconfig": ["confirm="]}
BOOL_PARAMS = {"write_back", "sparse", "nullio", "readonly", "add_mapped_luns", "write_protect",
               "boolean", "exclusive", "save"}


def tolerant_split(text: str) -> tuple[list[str], str]:
    """Words before the cursor and the word being typed (an open quote is allowed)."""
    try:
        words = shlex.split(text)
        if text and not text[-1].isspace():
            return words[:-1], words[-1] if words else ""
        return words, ""
    except ValueError:
        # an unterminated quote: the word being typed starts at the last quote
        for q in ("'", '"'):
            i = text.rfind(q)
            if i >= 0:
                j = max(text.rfind(" ", 0, i), text.rfind("\t", 0, i)) + 1
                try:
                    return shlex.split(text[:j]), text[j:i] + text[i + 1:]
                except ValueError:
                    continue
        return text.split(), ""


class Candidates:
    """session gives .root() and .snap() (one snapshot per prompt), .cwd and .bookmarks."""

    def __init__(self, session):
        self.session = session

    # -- helpers
    def _node(self, path: str) -> Node | None:
        try:
            return resolve(resolve(self.session.root(), self.session.cwd), path) if path else \
                resolve(self.session.root(), self.session.cwd)
        except Exception:  # noqa: BLE001 - a half-typed path is not an error
            return None

    def paths(self, word: str):
        head, slash, tail = word.rpartition("/")
        base = self._node((head or "/") if slash else "")
        if base is None:
            return
        prefix = head + "/" if slash else ""
        if not slash and tail and "..".startswith(tail) and base.parent is not None:
            yield "../"
        for c in base.children():
            if c.name.lower().startswith(tail.lower()):
                yield prefix + c.name + "/"

    def candidates(self, words: list[str], word: str):
        if not words:
            node = self._node("")
            if node is None:
                return
            seen = set()
            for c in sorted(set(BUILTINS) | set(node.command_names()) | set(VERBS)):
                if c.startswith(word) and c not in seen:
                    seen.add(c)
                    yield c, "command"
            for p in self.paths(word):
                yield p, "path"
            return
        # PATH COMMAND ... or COMMAND ...
        first = words[0]
        if first in ("cd", "ls"):
            if len(words) == 1:
                for p in self.paths(word):
                    yield p, "path"
            return
        if first == "bookmarks":
            if len(words) == 1:
                for c in ("add", "go", "del", "show"):
                    if c.startswith(word):
                        yield c, ""
            elif words[1] in ("go", "del"):
                for b in self.session.bookmarks:
                    if b.startswith(word):
                        yield b, "bookmark"
            return
        if first.startswith(("/", ".")) and words[1:2] and words[1] in FORM_KEYS:
            words, first = words[1:], words[1]
        if first in FORM_KEYS:
            yield from self.form_args(first, words[1:], word)
            return
        here = self._node("")
        relative = (here is not None and first not in here.command_names() and first not in BUILTINS
                    and first not in VERBS and self._node(first) is not None)
        if first.startswith(("/", ".")) or relative:
            node = self._node(first)
            rest = words[1:]
            if node is None:
                return
            if not rest:
                for c in node.command_names():
                    if c.startswith(word):
                        yield c, "command"
                return
        else:
            node = self._node("")
            rest = words
        if node is None:
            return
        cmd = rest[0]
        fn = getattr(node, "ui_" + cmd, None)
        if fn is None:
            return
        yield from self.args(node, cmd, fn, rest[1:], word)

    def global_prefs(self, cmd: str, given: list[str], word: str):
        """The shell's `set global NAME=VALUE` / `get global NAME`: preference names and values."""
        if "=" in word and cmd == "set":
            key, _, val = word.partition("=")
            default = prefs.DEFAULTS.get(key)
            values = prefs.CHOICES.get(key) or (("true", "false") if isinstance(default, bool) else ())
            for v in values:
                if v.startswith(val):
                    yield f"{key}={v}", "value"
            return
        used = {g.split("=", 1)[0] for g in given}
        for k in sorted(prefs.DEFAULTS):
            if k.startswith(word) and k not in used:
                yield (k + "=" if cmd == "set" else k), "preference"


    def form_args(self, form: str, given: list[str], word: str):
        key, eq, val = word.partition("=")
        if eq:
            if key in ("clear_existing", "confirm"):
                yield from ((f"{key}={v}", "value") for v in ("true", "false") if v.startswith(val))
            elif key == "storage_object":
                names = sorted({so.name for so in self.session.snap().storage_objects.values()})
                yield from ((f"{key}={n}", "backstore") for n in names if n.startswith(val))
            elif key == "savefile":
                yield from ((f"{key}={p}", m) for p, m in self.files(val))
            return
        used = {g.split("=", 1)[0] + "=" for g in given if "=" in g}
        for k in FORM_KEYS[form]:
            if k.startswith(word) and k not in used:
                yield k, "parameter"
        if form != "clearconfig" and not given:
            yield from self.files(word)

    def args(self, node: Node, cmd: str, fn, given: list[str], word: str):
        if cmd in ("get", "set") and given[:1] == ["global"]:  # lioctl's preferences, at any path
            yield from self.global_prefs(cmd, given[1:], word)
            return
        if cmd in ("get", "set"):
            groups = node.groups()
            if not given:
                for g in [*groups, "global"]:
                    if g.startswith(word):
                        yield g, "group"
                return
            gdir = groups.get(given[0])
            if not gdir:
                return
            names = sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []
            if cmd == "get":
                for n in names:
                    if n.startswith(word) and n not in given:
                        yield n, given[0]
                return
            if "=" in word:
                key, _, val = word.partition("=")
                if key.endswith("_file") and key[:-5] in names:  # password_file=FILE (lioctl/secrets.py)
                    for p, meta in self.files(val):
                        yield f"{key}={p}", meta
                    return
                for v in allowed_values(key):
                    if v.startswith(val):
                        yield f"{key}={v}", "value"
                return
            secret_files = [k + "_file" for k in ("password", "password_mutual") if k in names]
            for n in names + secret_files:
                if n.startswith(word):
                    yield n + "=", given[0]
            return
        if cmd in ("help",):
            for c in node.command_names():
                if c.startswith(word):
                    yield c, "command"
            return
        params = self.params_of(node, cmd, fn)
        used = {g.split("=", 1)[0] for g in given if "=" in g}
        positional = [g for g in given if "=" not in g]
        if "=" in word:
            key, _, val = word.partition("=")
            if key in BOOL_PARAMS:
                for v in ("true", "false"):
                    if v.startswith(val):
                        yield f"{key}={v}", "value"
            return
        if cmd == "create" and isinstance(node, BackstoreKind) and 1 <= len(positional) <= 2:
            # a medium's own form (rbd:POOL/IMAGE: the cluster's pools and images, 2 s at most)
            found, final = node.complete_spec(word, dict(g.partition("=")[::2] for g in given if "=" in g))
            yield from found
            if final:
                return
        if len(positional) < len(params):
            yield from self.value_for(node, params[len(positional)], word)
        for p in params:
            if p not in used and p not in params[: len(positional)] and f"{p}=".startswith(word) and word:
                yield f"{p}=", "parameter"
        if not word:
            for p in params[len(positional) + 1:]:
                if p not in used:
                    yield f"{p}=", "parameter"

    def params_of(self, node: Node, cmd: str, fn) -> list[str]:
        fn = node.help_target(cmd)     # a backstore kind's create: that kind's parameters
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def value_for(self, node: Node, param: str, word: str):
        snap = self.session.snap()
        what = node.completion(param) if isinstance(node, BackstoreKind) else None
        if param == "storage_object":
            for so in snap.storage_objects.values():
                if so.tree_path.startswith(word):
                    yield so.tree_path, "backstore"
            if word and not word.startswith("/backstores"[: len(word)]):
                yield from self.files(word)
        elif callable(what):        # a TCMU subtype's own candidates
            yield from ((v, m) for v, m in what(word))
        elif param == "file" or what == "file":
            yield from self.files(word)
        elif what == "block device":
            for d in sorted(glob.glob("/dev/sd*") + glob.glob("/dev/loop[0-9]*") + glob.glob("/dev/vd*")
                            + glob.glob("/dev/nvme*n*") + glob.glob("/dev/mapper/*")):
                if d.startswith(word):
                    yield d, "block device"
        elif param == "wwn" and node.kind == "acls":
            for iqn in seen_initiators(snap):
                if iqn.startswith(word):
                    yield iqn, "initiator"
        elif param == "wwn_or_tag" and node.kind == "acls":
            names = {c.name for c in node.children()} | {c.acl.tag for c in node.children() if c.acl.tag}
            for n in sorted(names):
                if n.startswith(word):
                    yield n, "ACL or tag"
        elif param == "ip_address":
            for a in sorted(local_addresses() | {"0.0.0.0", "::0"}):
                if a.startswith(word):
                    yield a, "address"
        elif param in BOOL_PARAMS:
            for v in ("true", "false"):
                if v.startswith(word):
                    yield v, "value"
        elif param in ("name", "wwn", "lun", "tag", "mapped_lun") and node.kind in (
                "backstore-kind", "fabric", "acls", "luns", "acl", "target"):
            for c in node.children():
                if c.name.startswith(word):
                    yield c.name, "existing"

    def files(self, word: str):
        pattern = os.path.expanduser(word) + "*"
        for p in sorted(glob.glob(pattern))[:200]:
            yield (p + "/" if os.path.isdir(p) else p), "file"


def seen_initiators(snap) -> list[str]:
    """Initiator IQNs seen in demo-mode sessions and ACLs anywhere: likely ACL names."""
    out = set()
    for fab in snap.fabrics.values():
        for t in fab.targets.values():
            for tpg in t.tpgs.values():
                dyn = configfs.read(tpg.path + "/dynamic_sessions", "") or ""
                out.update(dyn.split())
                out.update(tpg.acls)
    return sorted(out)
