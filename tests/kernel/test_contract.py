"""The contract for programs against real LIO (issue 19): every command's --json output
validates against the shipped schema and says what it made; creates with --exist-ok and deletes
with --missing-ok make a provisioning script safe to run twice; --save saves under the write
lock, also with writers in parallel; identities derived from a name give a LUN the same VPD
0x80/0x83 on every creation."""

from __future__ import annotations

import json
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import jsonschema
import pytest

import cfs
import initiator as ini
from conftest import run_lioctl
from initiator import sg

IQN = "iqn.2003-01.org.example:contract"
INIT = "iqn.1994-05.com.example:contract-c1"
TPG = f"/iscsi/{IQN}/tpg1"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(resources.files("lioctl").joinpath("schema/lioctl.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def documents(text: str) -> list[dict]:
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(text, i)
        out.append(doc)
    return out


class Json:
    """Runs `lioctl --json ...`, checks the exit status and that each document validates."""

    def __init__(self, lioctl, validator):
        self.lioctl, self.validator, self.seen = lioctl, validator, set()

    def __call__(self, *args, rc=0, input=None, env=None) -> dict:
        r = self.lioctl("--json", *args, input=input, env=env)
        assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
        docs = documents(r.stdout)
        assert docs, (args, r.stdout, r.stderr)
        for d in docs:
            errors = [f"{list(e.path)}: {e.message}" for e in self.validator.iter_errors(d)]
            assert not errors, (args, d, errors)
            self.seen.add(d["output"])
        return docs[0] if len(docs) == 1 else docs


def by_type(doc: dict, key: str, kind: str) -> list[dict]:
    return [o for o in doc[key] if o["type"] == kind]


def test_every_command_prints_one_valid_document_saying_what_it_did(lioctl, validator, tmp_path, monkeypatch):
    j = Json(lioctl, validator)
    img = tmp_path / "f1.img"
    d = j("/backstores/fileio", "create", "f1", img, "8M")
    (so,) = by_type(d, "created", "storage_object")
    assert d["output"] == "write" and d["changed"] and so["path"] == "/backstores/fileio/f1"
    assert so["dev"] == str(img) and so["size"] == 8 << 20 and len(so["wwn"]) == 36
    assert so["configfs"] == str(next(cfs.ROOT.glob("core/fileio_*/f1")))
    assert by_type(d, "created", "file") == [{"type": "file", "path": str(img), "size": 8 << 20}]
    d = j("/backstores/ramdisk", "create", "r1", "4M")
    assert [o["path"] for o in d["created"]] == ["/backstores/ramdisk/r1"]
    d = j("/iscsi", "create", IQN)
    assert d["wwn"] == IQN and {"target", "tpg", "portal"} <= {o["type"] for o in d["created"]}
    assert by_type(d, "created", "portal")[0]["port"] == 3260
    d = j(f"{TPG}/acls", "create", INIT)
    assert by_type(d, "created", "acl")[0]["node_wwn"] == INIT
    d = j(f"{TPG}/luns", "create", "/backstores/fileio/f1")
    (lun,) = by_type(d, "created", "lun")
    assert d["lun"] == lun["index"] == 0 and lun["storage_object"] == "/backstores/fileio/f1"
    assert lun["path"] == f"{TPG}/luns/lun0"
    assert [(m["index"], m["tpg_lun"]) for m in by_type(d, "created", "mapped_lun")] == [(0, 0)]
    d = j(f"{TPG}/luns", "create", "/backstores/ramdisk/r1", "lun=5")
    assert d["lun"] == 5
    d = j(TPG, "set", "attribute", "authentication=0")
    assert [o["path"] for o in d["modified"]] == [TPG] and not d["created"] and not d["deleted"]
    for args in (["ls"], ["/backstores", "ls", ".", "1"], [TPG, "info"], ["/backstores/fileio/f1", "get"],
                 [TPG, "status"], ["version"], ["sessions"], ["/", "sessions"], [TPG, "pwd"], [TPG, "help"],
                 ["/iscsi", "refresh"], ["help", "restore"], ["/", "get", "global", "auto_save"]):
        assert j(*args)["output"] != "write"
    d = j("--dry-run", "/backstores/ramdisk", "create", "rx", "1M")
    assert d["output"] == "plan" and d["operations"] == len(d["changes"]) and "mkdir" in d["script"]
    assert j("--dry-run", "unexport", IQN)["operations"] > 0 and j("--dry-run", "clear")["operations"] > 0
    saved = tmp_path / "saved.json"
    d = j("save", saved)
    assert d["changed"] and d["modified"] == [{"type": "file", "path": str(saved)}]
    assert j("save", "-")["config"]["targets"][0]["wwn"] == IQN
    assert j("diff", saved)["differs"] is False
    assert j("restore", saved, "--dry-run")["operations"] == 0
    d = j("restore", saved)
    assert d["changed"] is False and d["created"] == d["deleted"] == []
    # errors: a document on stdout, the one line on stderr
    r = lioctl("--json", "/backstores/ramdisk", "create", "r1", "4M")
    (e,) = documents(r.stdout)
    assert r.returncode == 5 and e["error"]["code"] == "exists" and e["error"]["object"] == "/backstores/ramdisk/r1"
    assert r.stderr == f"lioctl: {e['error']['message']}\n"
    j("/backstores/ramdisk", "delete", "r1", rc=6)
    j("/backstores/fileio", "delete", "nosuch", rc=4)
    j(f"{TPG}/luns", "create", "/backstores/ramdisk/r1", "lun=5", rc=5)
    # removals are described as they were
    d = j(f"{TPG}/luns", "delete", "lun5")
    assert {o["path"] for o in d["deleted"]} == {f"{TPG}/luns/lun5", f"{TPG}/acls/{INIT}/mapped_lun5"}
    assert by_type(d, "deleted", "lun")[0]["index"] == 5
    d = j(f"{TPG}/acls", "delete", INIT)
    assert {o["type"] for o in d["deleted"]} == {"acl", "mapped_lun"}
    d = j("/iscsi", "delete", IQN)
    assert by_type(d, "deleted", "target")[0]["wwn"] == IQN and by_type(d, "deleted", "lun")[0]["index"] == 0
    # export / unexport, tcmu status and clear
    exp = tmp_path / "exp.img"
    exp.write_bytes(bytes(1 << 20))
    d = j("export", exp)
    assert by_type(d, "created", "lun")[0]["index"] == 0 and d["target"] in [o["wwn"] for o in by_type(d, "created", "target")]
    assert j("--exist-ok", "export", exp)["changed"] is False
    d = j("unexport", exp)
    assert by_type(d, "deleted", "storage_object")[0]["dev"] == str(exp)
    j("tcmu", "status", rc=1)   # not running: exit 1 and still its document
    d = j("clear", "--yes")
    assert {o["path"] for o in by_type(d, "deleted", "storage_object")} == {"/backstores/fileio/f1", "/backstores/ramdisk/r1"}
    assert cfs.snapshot() == []
    assert {"write", "error", "ls", "info", "get", "status", "version", "sessions", "pwd", "help", "refresh",
            "prefs", "diff", "plan", "config", "tcmu-status"} <= j.seen


PROVISION = f"""\
/backstores/ramdisk create vol1 4M wwn=from:vol-1
/backstores/fileio create vol2 {{img}} 4M write_back=false
/iscsi create {IQN}
{TPG}/luns create /backstores/ramdisk/vol1
{TPG}/luns create /backstores/fileio/vol2 lun=3
{TPG}/acls create {INIT}
{TPG}/acls/{INIT} create 7 lun3
{TPG}/portals create 127.0.0.1 3261
"""
TEARDOWN = f"""\
{TPG}/acls delete {INIT}
{TPG}/luns delete lun3
{TPG}/luns delete lun0
/iscsi delete {IQN}
/backstores/fileio delete vol2
/backstores/ramdisk delete vol1
"""


def test_a_provisioning_script_twice_changes_nothing_the_second_time(lioctl, validator, tmp_path):
    j = Json(lioctl, validator)
    script = PROVISION.format(img=tmp_path / "vol2.img")
    first = j("--exist-ok", input=script)
    assert all(d["changed"] for d in first) and [d["lun"] for d in first if "lun" in d] == [0, 3]
    before = cfs.tree()
    second = j("--exist-ok", input=script)
    assert cfs.tree() == before
    assert [d["changed"] for d in second] == [False] * len(second)
    assert [d["unchanged"][0]["path"] for d in second] == [
        "/backstores/ramdisk/vol1", "/backstores/fileio/vol2", f"/iscsi/{IQN}", f"{TPG}/luns/lun0",
        f"{TPG}/luns/lun3", f"{TPG}/acls/{INIT}", f"{TPG}/acls/{INIT}/mapped_lun7",
        f"{TPG}/portals/127.0.0.1:3261"]
    assert [d["lun"] for d in second if "lun" in d] == [0, 3]     # the index, read back
    # exists but differs: the conflict code, naming what differs; nothing changed
    for line, words in ((["/backstores/ramdisk", "create", "vol1", "8M"], "size is 4194304 bytes, not 8388608"),
                        (["/backstores/ramdisk", "create", "vol1", "4M", "wwn=from:vol-9"], "unit serial"),
                        ([f"{TPG}/luns", "create", "/backstores/ramdisk/vol1", "lun=3"], "storage object /backstores/fileio/vol2"),
                        ([f"{TPG}/acls/{INIT}", "create", "7", "lun0"], "maps TPG LUN 3")):
        e = j("--exist-ok", *line, rc=5)["error"]
        assert e["code"] == "conflict" and words in e["message"], (line, e)
    assert cfs.tree() == before
    # without --exist-ok the same create is refused as before
    assert lioctl("/backstores/ramdisk", "create", "vol1", "4M").returncode == 5
    docs = j("--missing-ok", input=TEARDOWN)
    assert all(d["changed"] for d in docs)
    assert cfs.snapshot() == []
    again = j("--missing-ok", input=TEARDOWN)
    assert [d["changed"] for d in again] == [False] * len(again) and cfs.snapshot() == []
    assert lioctl("/iscsi", "delete", IQN).returncode == 4


def test_save_after_each_write_under_the_lock_also_in_parallel(lioctl, validator, tmp_path, monkeypatch):
    from lioctl.saveconfig import store
    path = tmp_path / "auto" / "saveconfig.json"
    monkeypatch.setattr(store, "DEFAULT", str(path))
    j = Json(lioctl, validator)
    d = j("--save", "/backstores/ramdisk", "create", "s0", "1M")
    assert d["saved"] == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [so["name"] for so in json.loads(path.read_text())["storage_objects"]] == ["s0"]
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]
    # four writers at once, each saving after its own write: the last save holds all of them
    env = {"LIOCTL_SAVECONFIG": str(path)}
    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda i: run_lioctl("--save", "/backstores/ramdisk", "create", f"s{i}", "1M",
                                                   env=env, subprocess_=True), range(1, 5)))
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    assert sorted(so["name"] for so in json.loads(path.read_text())["storage_objects"]) == [f"s{i}" for i in range(5)]
    # the preference does it for every write; the last delete saves an empty configuration
    home = tmp_path / "home"
    penv = {"HOME": str(home)}
    assert lioctl("set", "global", "auto_save=true", env=penv).returncode == 0
    for i in range(5):
        assert lioctl("/backstores/ramdisk", "delete", f"s{i}", env=penv).returncode == 0
    assert json.loads(path.read_text())["storage_objects"] == []
    assert cfs.snapshot() == []


def _vpd(dev: str) -> tuple[str, str]:
    serial = re.search(r"Unit serial number:\s*(\S+)", sg("sg_vpd", "-p", "0x80", dev).stdout).group(1)
    naa = re.findall(r"0x6001405[0-9a-f]+", sg("sg_vpd", "-p", "0x83", dev).stdout)
    assert naa, dev
    return serial, naa[0]


def test_identity_from_a_name_is_the_same_scsi_identity_on_every_creation(lioctl):
    from lioctl import wwn as wwnmod
    seen = []
    for name in ("gw_a", "gw_b"):       # the same volume made twice, as on two gateways
        ok_ = lioctl("--json", "/backstores/ramdisk", "create", name, "4M", "wwn=from:volume-42")
        assert ok_.returncode == 0, ok_.stderr
        r = lioctl("--json", "/loopback", "create", "from:gateway-target-42")
        assert r.returncode == 0, r.stderr
        wwn = json.loads(r.stdout)["wwn"]
        assert wwn == wwnmod.derive("naa", "gateway-target-42")
        assert lioctl(f"/loopback/{wwn}/luns", "create", f"/backstores/ramdisk/{name}").returncode == 0
        try:
            seen.append((wwn, *_vpd(ini.loopback_disk(wwn, 0))))
        finally:
            assert lioctl("/loopback", "delete", wwn).returncode == 0
            assert lioctl("/backstores/ramdisk", "delete", name).returncode == 0
    assert seen[0] == seen[1], seen
    assert seen[0][1] == wwnmod.derive("unit_serial", "volume-42")
    assert cfs.snapshot() == []
