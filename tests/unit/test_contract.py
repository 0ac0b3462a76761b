"""The contract for programs, on the host: every --json document lioctl prints validates against
the shipped JSON Schema (reads on the captured kernel tree, writes that change nothing, errors),
deterministic identities, and the idempotent forms' decisions (the kernel tests run them)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from importlib import resources

import jsonschema
import pytest

from lioctl import cli, dispatch, render, results, wwn
from lioctl.errors import Conflict, NotFound
from lioctl.verbs import Options
from test_live_tree import H1, T1, live as live_tree

live = pytest.fixture(live_tree.__wrapped__, name="live")  # the captured kernel tree


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(resources.files("lioctl").joinpath("schema/lioctl.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def documents(text: str) -> list[dict]:
    """The JSON documents printed one after another (indented, as lioctl prints them)."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(text, i)
        out.append(doc)
    return out


def run(argv, monkeypatch=None) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["--json", *argv])
    return rc, documents(out.getvalue()), err.getvalue()


def check(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, (doc, [f"{list(e.path)}: {e.message}" for e in errors])


READS = [["ls"], ["/backstores", "ls", ".", "1"], [f"/iscsi/{T1}/tpg1", "info"], ["/backstores/fileio/f1", "info"],
         [f"/iscsi/{T1}", "status"], ["/backstores/fileio/f1", "get"], [f"/iscsi/{T1}/tpg1", "get", "attribute"],
         ["/backstores", "help"], ["/backstores/ramdisk", "help", "create"], ["version"], ["/iscsi", "pwd"],
         ["/", "sessions"], ["/iscsi", "refresh"], ["/", "get", "global", "auto_save"],
         ["help"], ["help", "export"], ["help", "saveconfig"], ["/backstores/fileio", "create", "--help"],
         ["--dry-run", "/backstores/ramdisk", "create", "rx", "1M"], ["--dry-run", "/iscsi", "delete", T1]]


@pytest.mark.parametrize("argv", READS, ids=[" ".join(a) for a in READS])
def test_every_read_is_one_valid_document(live, validator, argv):
    rc, docs, err = run(argv)
    assert rc == 0, err
    assert len(docs) == 1 and docs[0]["schema"] == render.SCHEMA and docs[0]["output"] != "write"
    check(validator, docs[0])


def test_errors_are_documents_on_stdout_and_one_line_on_stderr(live, validator):
    for argv, code, status in ((["/nope", "ls"], "not-found", 4), (["frobnicate"], "usage", 2),
                               (["/backstores/ramdisk", "create"], "usage", 2)):
        rc, docs, err = run(argv)
        assert rc == status and len(err.splitlines()) == 1, (argv, err)
        (doc,) = docs
        check(validator, doc)
        assert doc["output"] == "error" and doc["error"]["code"] == code and doc["error"]["exit"] == status
        assert err == f"lioctl: {doc['error']['message']}\n"
    rc, (doc,), _ = run(["/nope", "ls"])
    assert doc["error"]["object"] == "/nope"


def test_write_documents_validate_and_a_bad_one_does_not(validator):
    doc = render.document("write", results.write_result(
        "/iscsi/iqn.2003-01.org.example:t/tpg1/luns create", changed=True, data={"lun": 3},
        created=[{"type": "lun", "path": "/iscsi/iqn.2003-01.org.example:t/tpg1/luns/lun3",
                  "configfs": "/sys/kernel/config/target/iscsi/x/tpgt_1/lun/lun_3", "index": 3,
                  "storage_object": "/backstores/ramdisk/r1", "alias": None}]))
    check(validator, doc)
    assert list(doc)[:2] == ["schema", "output"] and doc["lun"] == 3
    for broken in ({**doc, "changed": "yes"}, {k: v for k, v in doc.items() if k != "created"},
                   {**doc, "created": [{"type": "lun", "path": "/x"}]},        # a LUN without its index
                   {**doc, "schema": 2}):
        assert list(validator.iter_errors(broken)), broken


def test_exist_ok_finds_the_object_as_asked_and_names_differences(live, validator):
    opts = Options()
    opts.exist_ok = True
    ctx = dispatch.make_context(opts)
    cases = [("/backstores/ramdisk", ["create", "r1", "4M"]), ("/iscsi", ["create", T1]),
             (f"/iscsi/{T1}", ["create", "1"]), (f"/iscsi/{T1}/tpg1/acls", ["create", H1]),
             (f"/iscsi/{T1}/tpg1/luns", ["create", "/backstores/fileio/f1"])]
    for path, argv in cases:
        command, writes, result = dispatch._run(ctx, path, "/", argv[0], argv[1:], opts)
        assert writes and result.plan is None, (path, argv, result)
        (obj,) = result.data["unchanged"]
        doc = render.document("write", results.write_result(command, changed=False, data=result.data,
                                                           unchanged=result.data["unchanged"]))
        check(validator, doc)
    lun = dispatch._run(ctx, f"/iscsi/{T1}/tpg1/luns", "/", "create", ["/backstores/fileio/f1"], opts)[2]
    assert lun.data["lun"] == lun.data["unchanged"][0]["index"] == 0   # Proxmox reads this index back
    with pytest.raises(Conflict, match=r"ramdisk/r1 exists but differs: its size is 4194304 bytes, not 8388608"):
        dispatch._run(ctx, "/backstores/ramdisk", "/", "create", ["r1", "8M"], opts)
    with pytest.raises(Conflict, match=r"lun0 exists but differs: storage object /backstores/fileio/f1"):
        dispatch._run(ctx, f"/iscsi/{T1}/tpg1/luns", "/", "create", ["/backstores/ramdisk/r2", "lun=0"], opts)
    # a create that is not there yet plans as usual
    assert dispatch._run(ctx, "/backstores/ramdisk", "/", "create", ["r9", "1M"], opts)[2].plan


def test_missing_ok_turns_a_missing_object_or_path_into_nothing_to_do(live):
    opts = Options()
    with pytest.raises(NotFound):
        dispatch._run(dispatch.make_context(opts), "/backstores/fileio", "/", "delete", ["nosuch"], opts)
    opts.missing_ok = True
    for path, argv in (("/backstores/fileio", ["delete", "nosuch"]), ("/iscsi", ["delete", "iqn.2003-01.org.x:gone"]),
                       ("/iscsi/iqn.2003-01.org.x:gone/tpg1/luns", ["delete", "lun0"])):
        _, writes, result = dispatch._run(dispatch.make_context(opts), path, "/", argv[0], argv[1:], opts)
        assert writes and result.plan is None and result.data == {"missing": True}


def test_identities_are_stable_valid_and_distinct():
    a1, a2, b = (wwn.derive("unit_serial", n) for n in ("vol-1", "vol-1", "vol-2"))
    assert a1 == a2 != b and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a1)
    # pinned: a serial must never change between lioctl versions (a moved volume keeps it)
    assert a1 == wwn.derive("unit_serial", "vol-1") == wwn.unit_serial("from:vol-1")
    assert wwn.unit_serial("from:vol-1") == "%s" % a1 and wwn.unit_serial("abc") == "abc"
    for t in ("iqn", "naa", "eui"):
        w = wwn.derive(t, "vol-1")
        assert wwn.TESTS[t](w) and w == wwn.derive(t, "vol-1") != wwn.derive(t, "vol-2"), w
    with pytest.raises(Exception):
        wwn.derive("unit_serial", "")


def test_new_options_and_preference_complete():
    from lioctl.completion.scripts import candidates
    assert {"--exist-ok", "--missing-ok", "--save"} <= set(candidates("lioctl --"))
    assert "auto_save=" in " ".join(candidates("lioctl set global auto_s"))


def test_file_writing_verbs_print_valid_write_documents(validator, tmp_path):
    rc, (doc,), err = run(["install-units", "--dry-run", "--dir", str(tmp_path / "u")])
    assert rc == 0 and doc["output"] == "units", err
    check(validator, doc)
    rc, (doc,), err = run(["install-units", "--dir", str(tmp_path / "u")])
    assert rc == 0, err
    check(validator, doc)
    assert doc["changed"] and {o["path"] for o in doc["created"]} == set(doc["files"])
    from test_fabric_skeleton import KVER
    for extra in (["--dry-run"], []):
        rc, (doc,), err = run(["fabric-skeleton", "tcm_j", "--proto", "SBP", "-k", KVER,
                               "-o", str(tmp_path / "tcm_j"), *extra])
        assert rc == 0, err
        check(validator, doc)
        assert doc["changed"] is not bool(extra) and doc["written"] is not bool(extra)
    assert {o["path"] for o in doc["created"]} == {str(tmp_path / "tcm_j" / f) for f in doc["files"]}
