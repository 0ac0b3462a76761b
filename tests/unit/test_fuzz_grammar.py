"""Fuzzing the command grammar (#16): lines of hostile text through grammar.split, and lines
built from the tree's paths, commands and KEY=VALUE arguments through dispatch.run_tokens
with --dry-run against a populated (fake) tree: node resolution, binding and planning. Only
UsageError/LioError may come out, each message one line. Seeded, bounded; counts printed."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from lioctl import configfs, dispatch, grammar
from lioctl.verbs import Options
from lioctl.errors import LioError, UsageError
from lioctl.plan import Mkdir, Rmdir, Symlink, Unlink, Write

import test_tree_fake_configfs
from test_tree_fake_configfs import C1, IQN, LB

root = test_tree_fake_configfs.root  # the populated fake tree, as a fixture of this module

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=400,
                suppress_health_check=list(HealthCheck))

QUOTING = st.sampled_from(["'", '"', "\\", "#", " ", "\t", "\n", "\r", "\0", "=", "a", "/", ".", "$", "`", "é"])


def _one_line(msg: str) -> None:
    assert msg and len(msg.splitlines()) == 1 and "\0" not in msg, repr(msg)


def test_fuzz_split(capsys):
    n = {"lines": 0, "refused": 0}

    @FUZZ
    @given(st.lists(QUOTING | st.text(max_size=4), max_size=24).map("".join))
    def one(line):
        n["lines"] += 1
        try:
            tokens = grammar.split(line)
        except UsageError as e:
            _one_line(str(e))
            n["refused"] += 1
            return
        assert all(isinstance(t, str) for t in tokens)
    one()
    with capsys.disabled():
        print(f"\ngrammar.split: {n['lines']} lines, {n['refused']} refused")
    assert n["lines"] >= 100 and n["refused"] > 0


TPG = f"/iscsi/{IQN}/tpg1"
PATHS = st.sampled_from([
    "/", "/backstores", "/backstores/fileio", "/backstores/ramdisk", "/backstores/user", "/backstores/block",
    "/backstores/pscsi", "/backstores/fileio/d1", "/backstores/fileio/d2", "/backstores/fileio/d1/alua",
    "/backstores/fileio/d1/alua/default_tg_pt_gp", "/iscsi", f"/iscsi/{IQN}", TPG, f"{TPG}/luns", f"{TPG}/luns/lun0",
    f"{TPG}/acls", f"{TPG}/acls/{C1}", f"{TPG}/acls/{C1}/mapped_lun0", f"{TPG}/portals",
    f"{TPG}/portals/0.0.0.0:3260", "/loopback", f"/loopback/{LB}", f"/loopback/{LB}/tpg1", "..", ".",
    "/nosuch", "/iscsi/../..", "/backstores/fileio/../../iscsi", "//", "./x",
])
COMMANDS = st.sampled_from([
    "ls", "info", "get", "set", "status", "help", "version", "pwd", "sessions", "create", "delete", "enable",
    "disable", "set_nexus", "set_alua", "enable_iser", "enable_offload", "set_tag", "set_write_protect", "cd",
    "restore", "nosuch",
])
ARGS = st.sampled_from([
    "d3", "r1", "1M", "0", "-1", "1e9999", "9" * 30, "9" * 5000, "/srv/x.img", "../../../tmp/x", "attribute",
    "parameter", "auth", "attrib", "global", "size=1M", "name=z", "wwn=naa.5001405000000001",
    f"wwn={C1}", "wwn=../../x", "emulate_tpu=1", "emulate_tpu=a\nb", "userid=x", "password=p\0w",
    "ip_address=../../x", "ip_address=::1", "ip_port=70000", "ip_port=3260", "lun=1", "lun=-3",
    "storage_object=/backstores/fileio/d2", "tag=1", "tag=0", "tag=x", "true", "false", "yes", "1",
    "add_mapped_luns=false", "write_protect=maybe", "cfgstring=lioctl_ram/a,b", "cfgstring=lioctl_ram/a",
    "subtype=nosuch", "group=g1", "default_tg_pt_gp", "mapped_lun=0", "tpg_lun_or_backstore=lun0",
    "depth=2", "depth=x", "a=b=c", "=x", "_=1", "x" * 300,
])
HOSTILE = st.text(max_size=6)
# commands that are right where they stand: mutated, they reach the planners' own checks
VALID = [
    "/backstores/ramdisk create r9 1M", "/backstores/ramdisk create name=r9 size=1M nullio=true",
    "/backstores/fileio create f9 /nonexistent/lioctl-fuzz.img 1M", "/backstores/user create u9 1M lioctl_ram/x",
    "/backstores/fileio delete d2", "/backstores/fileio/d1/alua create g1 5", "/backstores/fileio/d1 set attribute emulate_tpu=1",
    "/iscsi create iqn.2003-01.org.example:new", f"/iscsi delete {IQN}", f"/iscsi/{IQN} create 2",
    f"{TPG}/luns create /backstores/fileio/d2", f"{TPG}/luns delete 2", f"{TPG}/acls create iqn.1994-05.com.example:c7",
    f"{TPG}/acls/{C1} create 5 0", f"{TPG}/acls/{C1} set_tag t1", f"{TPG}/portals create 127.0.0.1 3261",
    f"{TPG}/portals delete 0.0.0.0 3260", f"{TPG} set attribute authentication=1", f"{TPG} set auth userid=x password=y",
    f"{TPG} set parameter HeaderDigest=None", f"{TPG} enable", f"{TPG} disable", f"{TPG}/luns/lun0 set_alua default_tg_pt_gp",
    f"/loopback/{LB}/tpg1 set_nexus naa.5001405000000def", f"{TPG}/acls/{C1}/mapped_lun0 set_write_protect true",
    f"{TPG}/portals/0.0.0.0:3260 enable_iser false", "/backstores/fileio/d1 get attribute", "ls / 2", "/ sessions detail",
]


def _token(s: str, how: int) -> str:
    return s if how == 0 else shlex.quote(s) if how == 1 else '"' + s.replace('"', '\\"') + '"'


@st.composite
def built_lines(draw) -> str:
    path = draw(st.one_of(st.none(), PATHS))
    args = draw(st.lists(st.tuples(ARGS | HOSTILE, st.integers(0, 2)), max_size=4))
    return " ".join(([_token(path, 1)] if path else []) + [draw(COMMANDS)] + [_token(a, how) for a, how in args])


@st.composite
def mutated_lines(draw) -> str:
    tokens = shlex.split(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(tokens)))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        if edit == "delete" and at < len(tokens) and len(tokens) > 1:
            del tokens[at]
        elif edit == "replace" and at < len(tokens):
            tokens[at] = draw(ARGS | HOSTILE)
        else:
            tokens.insert(at, draw(ARGS | HOSTILE))
    return " ".join(_token(t, draw(st.integers(0, 2))) for t in tokens)


def test_fuzz_dispatch_dry_run(root, capsys, monkeypatch):
    n = {"lines": 0, "ran": 0, "plans": 0, "usage errors": 0, "errors": 0}
    odd_values: list[str] = []
    outside: list[str] = []
    started = time.monotonic()
    real_apply = dispatch.apply

    def recording_apply(result, opts, *rest):
        if result.plan is not None:
            n["plans"] += 1
            odd_values.extend(f"{op.path} <- {op.value!r}" for op in result.plan
                              if isinstance(getattr(op, "value", None), str) and ("\n" in op.value or "\0" in op.value))
            outside.extend(op.path for op in result.plan if isinstance(op, (Mkdir, Rmdir, Symlink, Unlink, Write))
                           and (".." in op.path.split("/")
                                or not os.path.normpath(op.path).startswith(configfs.ROOT + "/")))
        return real_apply(result, opts, *rest)
    monkeypatch.setattr(dispatch, "apply", recording_apply)

    @FUZZ
    @given(st.one_of(built_lines(), mutated_lines()), st.booleans())
    def one(line, as_json):
        n["lines"] += 1
        opts = Options()
        opts.dry_run = True
        opts.json = as_json
        try:
            tokens = grammar.split(line)
            if not tokens:
                return
            with contextlib.redirect_stdout(io.StringIO()):
                dispatch.run_tokens(tokens, opts, "/")
            n["ran"] += 1
        except UsageError as e:
            _one_line(str(e))
            n["usage errors"] += 1
        except LioError as e:
            _one_line(str(e))
            n["errors"] += 1
    one()
    with capsys.disabled():
        print(f"\ncommand grammar down to dry-run plans: {n['lines']} lines: {n['ran']} ran ({n['plans']} plans), "
              f"{n['usage errors']} usage errors, {n['errors']} other errors ({time.monotonic() - started:.1f} s)")
        for v in sorted(set(odd_values))[:5]:
            print(f"  finding: a plan writes a value with a newline or NUL: {v}")
    assert outside == []  # every configfs change a command plans is under configfs.ROOT
    assert n["lines"] >= 100 and n["plans"] > 0 and n["usage errors"] > 0 and n["errors"] > 0
