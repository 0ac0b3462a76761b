"""lioctl.api against real LIO (issue #19): the operations a Python caller (Cinder, os-brick,
ansible) needs, their results and exceptions, secrets kept out of results and messages, and
two threads writing at once."""

from __future__ import annotations

import contextlib
import io
import json
import threading

import pytest

import cfs
from lioctl import api, lock

T = "iqn.2003-01.org.example:api1"
C1 = "iqn.1994-05.com.example:host1"
SECRET = "s3cret-P@ss=word-1"


@pytest.fixture
def clean():
    try:
        yield
    finally:
        for t in list(api.ls("/iscsi")["children"] if (cfs.ROOT / "iscsi").is_dir() else []):
            api.delete_target(t["name"])
        for kind in ("ramdisk", "fileio"):
            for so in api.ls(f"/backstores/{kind}")["children"]:
                api.delete_backstore(kind, so["name"])


def test_operations_results_and_exceptions(clean, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        api.create_backstore("ramdisk", "r1", size="1M")
        api.create_backstore("fileio", "f1", file_or_dev=tmp_path / "f1.img", size="1M")
        api.create_target(T)
        made = [api.create_lun(T, "/backstores/ramdisk/r1"), api.create_lun(T, "/backstores/fileio/f1", lun=5)]
        api.create_acl(T, C1, add_mapped_luns=False)
        api.create_mapped_lun(T, C1, 3, 5, write_protect=True)
        api.set_chap(T, "alice", SECRET, initiator=C1)
        api.set_values(f"/iscsi/{T}/tpg1", "attribute", authentication=1)
        save = api.save(str(tmp_path / "saved.json"))
    tpg = cfs.ROOT / "iscsi" / T / "tpgt_1"
    # the LUN index chosen is in the result, as `--json luns create` prints it
    assert [m["lun"] for m in made] == [0, 5]
    assert (tpg / "lun/lun_0").is_dir() and (tpg / "lun/lun_5").is_dir()
    assert (tpg / "acls" / C1 / "lun_3/write_protect").read_text().strip() == "1"
    assert (tpg / "acls" / C1 / "auth/password").read_text().strip() == SECRET
    assert (tpg / "attrib/authentication").read_text().strip() == "1"
    assert save["file"] == str(tmp_path / "saved.json")
    # reads as data
    tree = api.ls(f"/iscsi/{T}/tpg1/luns")
    assert sorted(c["name"] for c in tree["children"]) == ["lun0", "lun5"]
    assert api.get(f"/iscsi/{T}/tpg1", "attribute", "authentication")["attribute"] == {"authentication": "1"}
    cfg = api.running_config()
    assert [t["wwn"] for t in cfg["targets"]] == [T]
    # the secret: in configfs, in no result, no message
    shown = json.dumps([made, tree, api.info(f"/iscsi/{T}/tpg1/acls/{C1}")]) + err.getvalue()
    assert SECRET not in shown
    # a secret refused (by lioctl, by the kernel): the message does not show it
    for bad in ("bad\nsecret-xyz", "secret-xyz" * 30):
        with pytest.raises(api.LioError) as e:
            api.set_chap(T, "alice", bad, initiator=C1)
        assert "secret-xyz" not in str(e.value)
    assert (tpg / "acls" / C1 / "auth/password").read_text().strip() == SECRET
    # exceptions: the CLI's classes, with its exit codes, nothing half-made
    with pytest.raises(api.AlreadyExists) as e:
        api.create_target(T)
    assert e.value.exit_code == 5
    with pytest.raises(api.NotFound) as e:
        api.delete_lun(T, 7)
    assert e.value.exit_code == 4
    with pytest.raises(api.InUse):
        api.delete_backstore("ramdisk", "r1")
    # apply a dict, then a second time: nothing to do; restore from the saved file likewise
    doc = {"storage_objects": [], "targets": [dict(cfg["targets"][0])]}
    doc["targets"][0]["tpgs"][0]["attributes"]["default_cmdsn_depth"] = 40
    assert api.apply(doc)["operations"] == 1
    assert (tpg / "attrib/default_cmdsn_depth").read_text().strip() == "40"
    again = api.apply(doc)
    assert (again["output"], again["changed"], again["operations"]) == ("write", False, 0)
    # the idempotent forms: there as asked is no change, absent is nothing to delete
    assert api.create_lun(T, "/backstores/ramdisk/r1", exist_ok=True)["lun"] == 0
    assert api.delete_acl(T, "iqn.1994-05.com.example:absent", missing_ok=True)["changed"] is False
    with pytest.raises(api.Conflict):
        api.create_lun(T, "/backstores/ramdisk/r1", lun=5, exist_ok=True)
    assert api.restore(str(tmp_path / "saved.json"), dry_run=True)["operations"] == 1
    # deletes
    api.delete_mapped_lun(T, C1, 3)
    api.delete_acl(T, C1)
    api.delete_lun(T, 5)
    api.delete_target(T)
    api.delete_backstore("fileio", "f1")
    assert not (cfs.ROOT / "iscsi" / T).exists()


def test_two_threads_write_at_once(clean):
    """Each thread adds LUNs with the index left to lioctl: without the per-call lock both
    would plan the same free index and one would fail."""
    api.create_target(T)
    for i in range(8):
        api.create_backstore("ramdisk", f"r{i}", size="1M")
    results: dict[int, list] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(n):
        try:
            start.wait()
            for i in range(n, 8, 2):
                results[n].append(api.create_lun(T, f"/backstores/ramdisk/r{i}")["lun"])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    chosen = results[0] + results[1]
    assert sorted(chosen) == list(range(8))
    luns = sorted(p.name for p in (cfs.ROOT / "iscsi" / T / "tpgt_1/lun").iterdir())
    assert luns == sorted(f"lun_{i}" for i in range(8))


def test_lock_busy_is_raised_without_signals(clean):
    """Another holder (here: this thread, on its own descriptor): a call with wait=0 raises
    LockBusy at once, from a thread and from the main thread alike."""
    got = []
    with lock.write_lock():
        t = threading.Thread(target=lambda: got.append(_busy()))
        t.start()
        t.join(timeout=60)
        got.append(_busy())
    assert got == [75, 75]
    assert not (cfs.ROOT / "core").exists() or not list((cfs.ROOT / "core").glob("rd_mcp_*/r9"))


def _busy():
    try:
        api.create_backstore("ramdisk", "r9", size="1M", wait=0)
    except api.LockBusy as e:
        return e.exit_code
    return None
