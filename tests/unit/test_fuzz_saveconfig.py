"""Fuzzing the saveconfig loader and the restore planner (#16): valid-shaped documents mutated
with hostile strings, numbers, types, keys and nesting (and, as text, with hostile bytes) go
through load + plan_restore against an empty and a populated snapshot. Either a LioError with
a one-line message, or a plan whose every configfs change is under configfs.ROOT and whose
every written value holds no newline or NUL; never another exception. Seeded
(derandomized), bounded in examples and time; the case counts are printed (-s) and checked."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lioctl import configfs
from lioctl.errors import LioError
from lioctl.plan import Mkdir, Modprobe, Rmdir, Symlink, Unlink, Write
from lioctl.saveconfig import load, restore_plan
from lioctl.tree import snapshot

import test_tree_fake_configfs
from test_tree_fake_configfs import C1, IQN

root = test_tree_fake_configfs.root  # the populated fake tree, as a fixture of this module

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=250,
                suppress_health_check=list(HealthCheck))
COUNTS: dict[str, dict[str, int]] = {}

NAMES = st.sampled_from(["r0", "r1", "d1", "disk.a", "x:y@z", "u0"])
IQNS = st.sampled_from([IQN, "iqn.2003-01.org.example:t2", "IQN.2003-01.ORG.EXAMPLE:T3"])
INITIATORS = st.sampled_from([C1, "iqn.1994-05.com.example:c9", "naa.5001405000000001"])
BACKING = os.path.abspath(__file__)
HOSTILE_TEXT = st.sampled_from([
    "", ".", "..", "../../../../tmp", "../x", "/", "a/b", "-r", "core", "version", "a\nb", "a\rb",
    "\0", "x\0y", "\ud800", "\u2028", "\x1b[31m", "a,b", "a b", "\t", "é", "x" * 300, "[::1]",
    "0.0.0.0", "::", "fe80::1%eth0", "fe80::1%../x", "fe80::1%a\nb", "[fe80::1%\0]", "lioctl_ram/a,b", "lioctl_ram/a\nb",
    "lioctl_file/rel", "lioctl_file//dev/null", "nosuch/x", "/backstores/ramdisk/r0",
    "/backstores/../../r0", "default_tg_pt_gp", "discovery_\n", "NaN", "1e999", "9" * 30,
]) | st.text(max_size=8)
HOSTILE_NUMBER = st.sampled_from([0, -1, 1, 65535, 65536, 1 << 32, 1 << 63, 1 << 64, 10 ** 30, -(10 ** 30),
                                  1.5, -0.0, float("inf"), float("-inf"), float("nan")]) | st.integers()


def _nested(depth: int):
    v: object = 1
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


HOSTILE = st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER, st.none(), st.booleans(),
                    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(HOSTILE_TEXT, st.integers(), max_size=2),
                    st.integers(5, 300).map(_nested))


@st.composite
def documents(draw) -> dict:
    sos = []
    for _ in range(draw(st.integers(0, 3))):
        plugin = draw(st.sampled_from(["ramdisk", "user", "fileio"]))
        so = {"name": draw(NAMES), "plugin": plugin, "size": draw(st.sampled_from([1 << 20, 8 << 20])),
              "attributes": draw(st.dictionaries(st.sampled_from(["block_size", "emulate_tpu", "max_unmap_lba_count"]),
                                                 st.integers(0, 4096), max_size=2)),
              "wwn": draw(st.sampled_from([None, "1234-abcd", "8f2e3c4d-0000-4000-8000-000000000001"]))}
        if plugin == "fileio":  # a backing file that exists: this test file (the plan only looks at it)
            so.update(dev=BACKING, size=draw(st.sampled_from([0, 4096, 1 << 30])), write_back=draw(st.booleans()))
        if plugin == "user":
            so.update(config=draw(st.sampled_from(["lioctl_ram/a", "lioctl_ram/b", "rbd/pool/img"])),
                      hw_max_sectors=draw(st.sampled_from([0, 128, 2048])))
        if draw(st.booleans()):
            so["alua_tpgs"] = [{"name": draw(st.sampled_from(["g1", "g2"])), "tg_pt_gp_id": draw(st.integers(0, 9)),
                                "alua_access_type": draw(st.sampled_from([1, 3])), "alua_access_state": 0}]
        sos.append(so)
    so_paths = [f"/backstores/{s['plugin']}/{s['name']}" for s in sos]
    targets = []
    for _ in range(draw(st.integers(0, 2))):
        fabric = draw(st.sampled_from(["iscsi", "iscsi", "loopback"]))
        t = {"fabric": fabric, "wwn": draw(IQNS) if fabric == "iscsi" else "naa.5001405000000abc", "tpgs": []}
        for tag in range(1, draw(st.integers(1, 2)) + 1):
            luns = [{"index": i, "storage_object": p, "alias": draw(st.sampled_from([None, "a1b2c3d4e5"]))}
                    for i, p in enumerate(so_paths[:draw(st.integers(0, len(so_paths)))])]
            tpg = {"tag": tag, "enable": draw(st.booleans()), "luns": luns,
                   "attributes": {"authentication": draw(st.integers(0, 1))},
                   "parameters": {"HeaderDigest": draw(st.sampled_from(["CRC32C,None", "None"]))}}
            if fabric == "iscsi":
                tpg["portals"] = [{"ip_address": draw(st.sampled_from(["0.0.0.0", "[::1]", "127.0.0.1"])),
                                   "port": draw(st.sampled_from([3260, 3261]))}]
                tpg["node_acls"] = [{"node_wwn": draw(INITIATORS), "chap_userid": "u", "chap_password": "p w",
                                     "mapped_luns": [{"index": 0, "tpg_lun": 0, "write_protect": draw(st.booleans())}]
                                     if luns else []}]
            t["tpgs"].append(tpg)
        targets.append(t)
    fms = [{"name": "iscsi", "discovery_enable_auth": draw(st.booleans()), "discovery_userid": "d"}] \
        if draw(st.booleans()) else []
    return {"storage_objects": sos, "targets": targets, "fabric_modules": fms}


def _slots(doc, out=None) -> list[tuple[object, object]]:
    """Every (container, key-or-index) of the document, the places a mutation can hit."""
    out = [] if out is None else out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in list(items):
        out.append((doc, k))
        _slots(v, out)
    return out


@st.composite
def mutated(draw) -> dict:
    doc = draw(documents())
    for _ in range(draw(st.integers(0, 3))):  # 0: a valid document, planned
        slots = _slots(doc)
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add_key"]))
        if action == "replace" or isinstance(container, list) and action == "delete":
            container[key] = draw(HOSTILE)
        elif action == "delete":
            del container[key]
        else:
            target = container if isinstance(container, dict) else doc
            target[draw(HOSTILE_TEXT)] = draw(HOSTILE)
    return doc


def _one_line(msg: str) -> None:
    assert msg and len(msg.splitlines()) == 1 and "\0" not in msg, repr(msg)


MODULE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def _check_plan(ch: restore_plan.Change) -> None:
    root = configfs.ROOT
    for op in ch.plan:
        if isinstance(op, (Mkdir, Rmdir, Symlink, Unlink, Write)):
            assert ".." not in op.path.split("/") and os.path.normpath(op.path).startswith(root + "/"), op
            assert "\0" not in op.path and "\n" not in op.path, op
        if isinstance(op, Write):
            assert "\n" not in op.value and "\0" not in op.value, op
        if isinstance(op, Modprobe):
            assert MODULE_RE.fullmatch(op.path), op
    for line in ch.lines:
        _one_line(line)


def _through(doc, snaps, counts: dict[str, int]) -> None:
    """load.check, then plan_restore against each snapshot; the invariants above."""
    counts["cases"] += 1
    try:
        data, unknown = load.check(doc)
    except LioError as e:
        _one_line(str(e))
        counts["refused by the loader"] += 1
        return
    for w in unknown:
        _one_line(w)
    for snap in snaps:
        for prune in (False, True):
            try:
                ch = restore_plan.plan_restore(snap, copy.deepcopy(data), prune=prune)
            except LioError as e:
                _one_line(str(e))
                counts["refused by the planner"] += 1
                continue
            _check_plan(ch)
            counts["plans checked"] += 1


def _counts(name: str) -> dict[str, int]:
    c = COUNTS[name] = dict.fromkeys(("cases", "refused by the loader", "refused by the planner",
                                      "plans checked"), 0)
    return c


def _report(name: str, c: dict[str, int]) -> None:
    print(f"\n{name}: " + ", ".join(f"{v} {k}" for k, v in c.items()))
    assert c["cases"] >= 100 and c["plans checked"] > 0 and c["refused by the loader"] > 0


def test_fuzz_documents_through_loader_and_planner(root, capsys):
    populated = snapshot.read()
    assert populated.storage_objects and populated.fabrics  # the fake tree is there
    c = _counts("documents")

    @FUZZ
    @given(mutated())
    def one(doc):
        _through(doc, (snapshot.Snapshot(), populated), c)
    one()
    with capsys.disabled():
        _report("saveconfig documents", c)


BYTE_EDITS = st.sampled_from([b"\xff", b"\xc3", b"\0", b"NaN", b"-Infinity", b"1e999", b"9" * 25, b"[" * 3000,
                              b'"', b"\\", b"\\u0000", b"\\ud800", b"}", b",", b"\n", b"/../"])


def test_fuzz_file_bytes_through_read(root, tmp_path, capsys):
    """The same as text: a valid document dumped, then bytes inserted or overwritten."""
    populated = snapshot.read()
    c = _counts("file bytes")
    f = tmp_path / "fuzz.json"

    @FUZZ
    @given(documents(), st.lists(st.tuples(st.integers(0, 10 ** 6), BYTE_EDITS, st.booleans()), min_size=1, max_size=3))
    def one(doc, edits):
        raw = json.dumps(doc).encode()
        for at, piece, overwrite in edits:
            at %= len(raw) + 1
            raw = raw[:at] + piece + raw[at + len(piece) if overwrite else at:]
        f.write_bytes(raw)
        c["cases"] += 1
        try:
            data, _ = load.read(str(f))
        except LioError as e:
            _one_line(str(e))
            c["refused by the loader"] += 1
            return
        c["cases"] -= 1  # counted again by _through
        _through(data, (snapshot.Snapshot(), populated), c)
    one()
    with capsys.disabled():
        _report("saveconfig file bytes", c)


@pytest.mark.parametrize("depth", [10, 900, 5000, 200000])
def test_nesting_at_any_depth_is_one_line(tmp_path, depth):
    f = tmp_path / "deep.json"
    f.write_text('{"storage_objects": [], "targets": [], "x": ' + "[" * depth + "]" * depth + "}")
    try:
        load.read(str(f))
    except LioError as e:
        _one_line(str(e))
