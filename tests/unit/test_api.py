"""Host tests for the pure parts of issue #19's apply and lioctl.api: importing the API does
nothing, arguments become the CLI's words, --json output and lock waits are per thread,
apply's scope and its references to running storage objects."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from lioctl import api, lock, render
from lioctl.errors import LioError, NotFound
from lioctl.saveconfig import load, restore_plan
from lioctl.tree.snapshot import Snapshot, StorageObject

T1 = "iqn.2003-01.org.example:a"
CORE = "/sys/kernel/config/target/core"


def test_import_has_no_side_effects():
    """No configfs module, no tree, no lock file, no logging, no signal handler at import."""
    code = """
import signal, sys
before = {s: signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGINT)}
import lioctl.api
after = {s: signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGINT)}
loaded = sorted(m for m in sys.modules if m.startswith("lioctl") or m == "logging")
print(before == after, loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    same, loaded = out.split(" ", 1)
    assert same == "True"
    for heavy in ("lioctl.configfs", "lioctl.tree.snapshot", "lioctl.dispatch", "lioctl.plan.executor",
                  "'logging'"):
        assert heavy not in loaded, loaded


def test_arguments_become_the_command_lines_words():
    assert api._tokens(["r1", 5], {"size": "1M", "lun": None, "write_protect": True}) == \
        ["r1", "5", "size=1M", "write_protect=true"]
    assert api._options({"iqn": "iqn.x:y", "portal": ["192.0.2.1", "[::1]"], "exist_ok": True,
                         "dry": False}) == ["--iqn", "iqn.x:y", "--portal", "192.0.2.1",
                                            "--portal", "[::1]", "--exist-ok"]


def test_json_output_is_collected_per_thread(capsys):
    seen = {}

    def worker(n):
        with render.collecting() as out:
            render.print_json({"n": n}, "ls")
            render.print_text("not printed while collecting")
            seen[n] = out
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {n: [{"schema": render.SCHEMA, "output": "ls", "n": n}] for n in range(4)}
    render.print_json({"after": 1}, "ls")
    assert json.loads(capsys.readouterr().out)["after"] == 1


def test_lock_wait_is_per_call_and_thread(monkeypatch):
    monkeypatch.setenv("LIOCTL_LOCK_WAIT", "7")
    inner = {}
    with lock.waiting(0):
        assert lock.wait_seconds() == 0
        t = threading.Thread(target=lambda: inner.setdefault("w", lock.wait_seconds()))
        t.start()
        t.join()
    assert inner["w"] == 7 and lock.wait_seconds() == 7


def test_two_threads_of_one_process_exclude_each_other(tmp_path, monkeypatch):
    """flock on a descriptor of each call's own: a second holder in this process is busy."""
    monkeypatch.setenv("LIOCTL_LOCK", str(tmp_path / "lock"))
    monkeypatch.setattr(lock, "TARGETCLI_LOCK", str(tmp_path / "targetcli.lock"))
    got = []

    def second():
        try:
            with lock.waiting(0), lock.write_lock():
                got.append("taken")
        except api.LockBusy as e:
            got.append(e.exit_code)
    with lock.write_lock():
        t = threading.Thread(target=second)
        t.start()
        t.join()
    second()
    assert got == [75, "taken"]


def _doc(so: str, with_object: bool = False):
    return {"storage_objects": [{"plugin": "ramdisk", "name": "r1", "size": 1048576}] if with_object else [],
            "targets": [{"fabric": "iscsi", "wwn": T1, "tpgs": [{"tag": 1, "luns": [
                {"index": 0, "storage_object": f"/backstores/ramdisk/{so}"}]}]}]}


def test_a_partial_document_may_use_storage_objects_it_does_not_list():
    with pytest.raises(LioError, match="not a storage object of this file"):
        load.check(_doc("r0"))
    load.check(_doc("r0"), partial=True)
    doc = _doc("r1", with_object=True)
    doc["targets"][0]["tpgs"][0]["luns"][0]["alua_tg_pt_gp_name"] = "nope"
    with pytest.raises(LioError, match="has no ALUA group 'nope'"):
        load.check(doc, partial=True)


def test_apply_links_to_the_running_object_and_touches_nothing_else():
    r0 = StorageObject("ramdisk", "rd_mcp_0", "r0", f"{CORE}/rd_mcp_0/r0")
    other = StorageObject("ramdisk", "rd_mcp_1", "r9", f"{CORE}/rd_mcp_1/r9")
    snap = Snapshot(storage_objects={("ramdisk", "r0"): r0, ("ramdisk", "r9"): other})
    ch = restore_plan.plan_apply(snap, load.check(_doc("r0"), partial=True)[0],
                                 prune=True)
    links = [op for op in ch.plan if type(op).__name__ == "Symlink"]
    assert [op.target for op in links] == [r0.path]
    assert not [op for op in ch.plan if op.path.startswith(CORE)], "no storage object is touched"
    with pytest.raises(NotFound, match="neither in the document nor running"):
        restore_plan.plan_apply(Snapshot(), _doc("r0"))


def test_apply_from_stdin_is_refused_inside_a_batch_on_stdin(monkeypatch, capsys):
    import io
    from lioctl.batch import run_batch
    from lioctl.verbs import Options
    monkeypatch.setattr(sys, "stdin", io.StringIO("apply -\n"))
    assert run_batch(Options()) == 2
    assert "line 1: lioctl apply -: standard input is this batch" in capsys.readouterr().err
