"""The exit-status contract: each failure class has its own documented status and machine name,
and the tree commands raise the class a program expects (on the captured kernel tree)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lioctl import errors
from lioctl.errors import AlreadyExists, Conflict, InUse, LioError, NotFound, UsageError, reworded
from lioctl.plan.executor import PlanFailed
from test_live_tree import T1, live as live_tree

live = pytest.fixture(live_tree.__wrapped__, name="live")  # the captured kernel tree

MAN = Path(__file__).resolve().parents[2] / "man" / "lioctl.8"


def exit_status_section() -> str:
    text = MAN.read_text()
    return text[text.index(".SH EXIT STATUS"):text.index(".SH ENVIRONMENT")]


def test_codes_are_distinct_and_only_conflict_shares_a_status():
    names = [c.code for c in errors.ALL]
    assert len(names) == len(set(names)), names
    by_status = {}
    for c in errors.ALL:
        by_status.setdefault(c.exit_code, []).append(c)
    shared = {s: cs for s, cs in by_status.items() if len(cs) > 1}
    assert shared == {5: [AlreadyExists, Conflict]}
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", n) for n in names)


def test_every_status_and_name_is_in_the_man_page():
    section = exit_status_section()
    heads = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\.BR (\d+) (.*)$", section, re.M)}
    for c in errors.ALL:
        assert re.search(rf"\s{re.escape(c.code.replace('-', chr(92) + '-'))}\s", heads[c.exit_code]), c
    assert "interrupted" in section and errors.INTERNAL in section


def test_reworded_keeps_class_status_and_object():
    e = reworded(NotFound("file x does not exist", obj="x"), "targets[0]: file x does not exist")
    assert type(e) is NotFound and e.exit_code == 4 and e.obj == "x"
    assert str(e) == "targets[0]: file x does not exist"
    p = reworded(PlanFailed("kernel said no", None, 2, ["a"]), "where: kernel said no")
    assert isinstance(p, PlanFailed) and p.leftovers == ["a"] and p.rolled_back == 2


@pytest.mark.parametrize("path,argv,cls", [
    ("/backstores/fileio", ["delete", "nosuch"], NotFound),
    ("/iscsi/iqn.2003-01.org.nosuch:t", ["ls"], NotFound),
    ("/backstores/ramdisk", ["frobnicate"], UsageError),
    ("/backstores/ramdisk", ["create", "r1", "1M"], AlreadyExists),
    ("/backstores/fileio", ["delete", "f1"], InUse),
    ("/iscsi", ["create", T1], AlreadyExists),
    (f"/iscsi/{T1}/tpg1/luns", ["delete", "lun77"], NotFound),
    (f"/iscsi/{T1}/tpg1/luns", ["create", "/backstores/ramdisk/r1", "lun=0"], AlreadyExists),
])
def test_tree_commands_raise_the_documented_class(live, path, argv, cls):
    from lioctl import dispatch
    from lioctl.verbs import Options
    with pytest.raises(LioError) as e:
        node = dispatch._node(dispatch.make_context(Options()), path, "/")
        dispatch._call(node, argv[0], argv[1:])
    assert type(e.value) is cls, (type(e.value), e.value)


def test_in_use_and_exists_classes_are_failures_of_their_own():
    assert issubclass(InUse, LioError) and InUse.exit_code == 6
    assert issubclass(Conflict, AlreadyExists) and Conflict.code == "conflict"
