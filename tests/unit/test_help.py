"""Help everywhere (issue #17 items 1 and 5): every verb's --help and every tree command's help
has an example, exits 0 and runs nothing; `lioctl help` forms; non-UTF-8 locales."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl import cli, verbs

REPO = Path(__file__).resolve().parents[2]


def lioctl(*args: str, env: dict | None = None, home: Path | None = None):
    e = dict(os.environ, NO_COLOR="1", **(env or {}))
    if home is not None:
        e["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "lioctl", *args], capture_output=True, text=True,
                          env=e, cwd=REPO, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("verb", sorted(verbs.VERBS))
def test_every_verb_help_has_an_example(verb):
    r = lioctl(verb, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert f"usage: lioctl {verb}" in r.stdout
    assert "examples:\n  lioctl" in r.stdout, r.stdout


def test_shell_help_describes_the_shell():
    r = lioctl("shell", "--help")
    assert r.returncode == 0, r.stderr
    assert "interactive shell" in r.stdout and "saveconfig" in r.stdout


@pytest.mark.parametrize("verb", sorted(verbs.VERBS))
def test_help_verb_is_the_verbs_help(verb):
    r = lioctl("help", verb)
    assert r.returncode == 0, r.stderr
    assert f"usage: lioctl {verb}" in r.stdout and "examples:" in r.stdout


def _node_classes():
    import lioctl.tree.nodes as nodes
    return [c for c in vars(nodes).values() if isinstance(c, type) and issubclass(c, nodes.Node)]


def _documented_commands():
    """(class name, command, function) for every tree command of every kind of node, and each
    backstore kind's create (its parameters differ by kind)."""
    from lioctl.backstores import KINDS
    out = []
    for cls in _node_classes():
        for name in cls.command_names():
            out.append((cls.__name__, name, getattr(cls, "ui_" + name)))
    for name, kind in KINDS.items():
        out.append((f"BackstoreKind[{name}]", "create", kind.create))
    return out


@pytest.mark.parametrize("where,command,fn", _documented_commands(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_tree_command_documents_itself_with_an_example(where, command, fn):
    import inspect

    from lioctl.tree.nodes import split_doc
    text, examples = split_doc(inspect.getdoc(fn) or "")
    assert text, f"{where} {command}: no help text"
    assert examples, f"{where} {command}: no Example: line"
    for e in examples:
        words = e.split()
        assert command in words[:2], f"{where}: example {e!r} does not run {command}"


# the nodes that exist without any configuration (the host has no configfs)
HOST_PATHS = ["/", "/backstores", "/backstores/fileio", "/backstores/block", "/backstores/ramdisk",
              "/backstores/pscsi", "/backstores/user", "/iscsi", "/loopback", "/vhost"]


def _in_process(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("path", HOST_PATHS)
def test_help_and_dash_dash_help_at_each_path(path, monkeypatch):
    import json

    from lioctl import dispatch
    from lioctl.plan import executor
    monkeypatch.setenv("NO_COLOR", "1")
    ran = []
    monkeypatch.setattr(executor, "execute", lambda *a, **k: ran.append(a))
    rc, out, err = _in_process(path, "help", "--json")
    assert rc == 0, err
    commands = json.loads(out)["commands"]
    assert {"ls", "help", "info"} <= set(commands)
    assert all(commands.values()), commands
    for flag in ("--help", "-h"):
        rc, listing, err = _in_process(path, flag)
        assert rc == 0 and listing.startswith(f"Commands at {path}"), err
    for command in commands:
        rc, out, err = _in_process(path, "help", command, "--json")
        assert rc == 0, err
        h = json.loads(out)
        assert h["usage"].split()[0] == command and h["help"] and h["examples"], h
        # --help or -h anywhere among the arguments: that help, nothing planned or run
        rc, text, err = _in_process("--dry-run", path, command, "x1", "--help", "1G")
        assert (rc, err) == (0, ""), err
        assert text.startswith(h["usage"]) and "Examples:" in text
        assert "mkdir" not in text and not ran
        rc, text2, _ = _in_process(path, command, "-h")
        assert rc == 0 and text2 == text
    assert dispatch.HELP_FLAGS == ("--help", "-h")


def test_dry_run_create_with_help_plans_nothing():
    """The issue's own line: it planned a backstore named `--help`."""
    r = lioctl("--dry-run", "/backstores/ramdisk", "create", "--help", "1G")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("create NAME SIZE") and "mkdir" not in r.stdout
    assert "/backstores/ramdisk create rd1 1G" in r.stdout


def test_backstore_kind_help_create_is_not_circular():
    for kind, param in (("fileio", "FILE_OR_DEV"), ("block", "DEV"), ("ramdisk", "SIZE"),
                        ("pscsi", "DEV"), ("user", "[SIZE] CFGSTRING")):
        r = lioctl(f"/backstores/{kind}", "help", "create")
        assert r.returncode == 0, r.stderr
        assert f"create NAME {param}" in r.stdout and "see `help create`" not in r.stdout
        assert f"/backstores/{kind} create " in r.stdout


def test_main_help_lists_every_global_option_and_examples():
    r = lioctl("--help")
    assert r.returncode == 0
    for flag in list(verbs.GLOBAL_FLAGS) + ["-V", "--version", "--help"]:
        assert f"  {flag}" in r.stdout or f", {flag}" in r.stdout, flag
    assert "\nExamples:\n  lioctl " in r.stdout
    assert lioctl("help").stdout == r.stdout


@pytest.mark.parametrize("argv", [["help", "nosuchverb"], ["help", "a", "b", "c"], ["help", "export", "x"]])
def test_help_of_something_unknown_is_a_one_line_usage_error(argv):
    r = lioctl(*argv)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stdout == "", r.stderr


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
@pytest.mark.parametrize("argv", [["help"], ["--help"], ["/backstores/fileio", "help"],
                                  ["help", "/backstores/fileio", "create"], ["help", "save"],
                                  ["/iscsi", "create", "--help"], ["ls"]])
def test_non_utf8_locale_degrades_never_crashes(encoding, argv):
    r = lioctl(*argv, env={"PYTHONIOENCODING": encoding, "PYTHONUTF8": "0", "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "…" not in r.stdout


def test_non_utf8_locale_error_messages_degrade():
    r = lioctl("/backstores/fileio", "delete", "d\u00e9j\u00e0\u2026",
               env={"PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"})
    assert r.returncode not in (0, 130) and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_help_completes_verbs_paths_and_commands(tmp_path):
    def complete(line):
        return subprocess.run([sys.executable, "-m", "lioctl", "__complete", "bash", line],
                              capture_output=True, text=True, check=True, cwd=tmp_path,
                              env=dict(os.environ, HOME=str(tmp_path))).stdout.split()
    assert complete("lioctl help ex") == ["export"]
    assert "saveconfig" in complete("lioctl help sa")
    assert complete("lioctl help /backstores/fi") == ["/backstores/fileio/"]
    assert complete("lioctl help /backstores/fileio cr") == ["create"]


def test_a_verbs_options_do_not_carry_over_to_the_next_batch_line(monkeypatch):
    """A batch or the shell hands one Options to every line: `restore a.json --prune` then
    `restore b.json` pruned twice, and parse_intermixed_args warned on stderr."""
    import types
    seen = []
    mod = types.SimpleNamespace(configure=lambda p: p.add_argument("--prune", action="store_true"),
                                run=lambda a: seen.append(a.prune))
    monkeypatch.setitem(verbs.VERBS, "fake", ("fake_module", "a verb for this test"))
    monkeypatch.setattr(verbs.importlib, "import_module", lambda name: mod)
    opts = verbs.Options()
    verbs.run_verb("fake", ["--prune"], opts)
    verbs.run_verb("fake", [], opts)
    assert seen == [True, False]
