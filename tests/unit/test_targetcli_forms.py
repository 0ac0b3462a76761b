"""Host tests for the pure parts of targetcli's forms (issue #17): restore's scope arguments
and the selection of a saved configuration's part, completion of the new words."""

from __future__ import annotations

import argparse

import pytest

from lioctl.commands import restore
from lioctl.completion import scripts
from lioctl.errors import LioError, UsageError
from lioctl.saveconfig import restore_plan, store
from lioctl.tree.snapshot import Snapshot

T1, T2 = "iqn.2003-01.org.example:a", "iqn.2003-01.org.example:b"
FILE = {
    "storage_objects": [{"plugin": "ramdisk", "name": "r1", "size": 1}, {"plugin": "ramdisk", "name": "r2", "size": 1},
                        {"plugin": "fileio", "name": "r2", "dev": "/x"}, {"plugin": "ramdisk", "name": "r3", "size": 1}],
    "targets": [{"wwn": T1, "fabric": "iscsi", "tpgs": [{"tag": 1, "luns": [
        {"index": 0, "storage_object": "/backstores/ramdisk/r1"}]}]},
                {"wwn": T2, "fabric": "iscsi", "tpgs": [{"tag": 1, "luns": [
                    {"index": 0, "storage_object": "/backstores/ramdisk/r3"}]}]}],
    "fabric_modules": [{"name": "iscsi", "discovery_enable_auth": True}],
}


def args(*argv):
    p = argparse.ArgumentParser()
    restore.configure(p)
    return p.parse_args(list(argv))


def test_scope_forms():
    assert restore.scope_of(args("f.json", "--target", T1)) == {"target": T1}
    a = args(f"target={T1}", "storage_object=r1")
    assert restore.scope_of(a) == {"target": T1, "storage_object": "r1"} and a.file == store.DEFAULT
    assert restore.scope_of(args("f.json")) == {}
    with pytest.raises(UsageError, match="is not target=IQN"):
        restore.scope_of(args("f.json", "tgt=x"))
    with pytest.raises(UsageError, match="given twice"):
        restore.scope_of(args("f.json", "--target", T1, f"target={T2}"))


def test_scope_selects_the_target_its_objects_and_nothing_global():
    _, part, label = restore_plan.scope(Snapshot(), FILE, target=T1.upper())
    assert [t["wwn"] for t in part["targets"]] == [T1]
    assert [s["name"] for s in part["storage_objects"]] == ["r1"]
    assert part["fabric_modules"] == [] and label == f"target {T1.upper()}"
    _, part, _ = restore_plan.scope(Snapshot(), FILE, storage_object="fileio/r2")
    assert part["targets"] == [] and part["storage_objects"] == [FILE["storage_objects"][2]]
    with pytest.raises(LioError, match="ambiguous"):
        restore_plan.scope(Snapshot(), FILE, storage_object="r2")
    with pytest.raises(LioError, match="not in the file"):
        restore_plan.scope(Snapshot(), FILE, target="iqn.2003-01.org.example:zz")


def test_restore_completes_its_scope_words():
    assert scripts.candidates("lioctl restore --st") == ["--storage-object"]
    assert scripts.candidates("lioctl restore f.json st") == ["storage_object="]


def test_control_string_takes_only_keys_the_kernel_knows():
    from lioctl.backstores.user import parse_control
    assert parse_control("max_data_area_mb=64, hw_block_size=4096") == [
        ("max_data_area_mb", "64"), ("hw_block_size", "4096")]
    for bad, msg in (("max_data_area=1", "is not KEY=VALUE"), ("dev_size=5", "size arguments"),
                     ("nl_reply_supported=1", "itself"), ("hw_block_size=x", "positive number"),
                     ("hw_max_sectors=8,hw_max_sectors=16", "twice"), ("", "is not KEY=VALUE")):
        with pytest.raises(LioError, match=msg):
            parse_control(bad)


def test_user_handler_paths_and_their_completion():
    assert "/backstores/user:lioctl_file/" in scripts.candidates("lioctl /backstores/user:")
    assert scripts.candidates("lioctl /backstores/user:lioctl_file ch") == ["changemedium"]
    assert scripts.candidates("lioctl /backstores/block create b1 /dev/x exclusive=f") == ["exclusive=false"]


def test_max_backup_files_is_backup_count_under_targetcli_name(tmp_path, monkeypatch):
    import json
    from lioctl import prefs
    monkeypatch.setenv("HOME", str(tmp_path))
    p = prefs.load()
    assert p["max_backup_files"] == p["backup_count"] == 10 and "max_backup_files" in p
    p["max_backup_files"] = 3
    prefs.save(p)
    stored = json.loads((tmp_path / ".lioctl/prefs.json").read_text())
    assert stored["backup_count"] == 3 and "max_backup_files" not in stored
    assert prefs.load().get("max_backup_files") == 3
    assert prefs.load()["auto_cd_after_create"] is False and prefs.load()["logfile"] == ""


def test_oplog_records_changes_never_secrets(tmp_path, monkeypatch):
    from lioctl import oplog, prefs
    from lioctl.plan import Plan
    monkeypatch.setenv("HOME", str(tmp_path))
    log = tmp_path / "ops.log"
    plan = Plan()
    plan.mkdir("/sys/kernel/config/target/iscsi/x")
    plan.write("/sys/kernel/config/target/iscsi/x/auth/password", "hunter2hunter2", secret=True)
    oplog.applied(plan)                 # logfile empty: no log at all
    assert not log.exists()
    for level in ("info", "debug"):
        prefs.save({**prefs.load(), "logfile": str(log), "loglevel": level})
        oplog.applied(plan)
    text = log.read_text()
    assert text.count("create /sys/kernel/config/target/iscsi/x") == 2
    assert text.count("write '********' to") == 1 and "hunter2" not in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_shell_completes_global_preferences(tmp_path, monkeypatch):
    from lioctl.completion.candidates import Candidates
    from lioctl.shell.session import ShellSession
    from lioctl.verbs import Options
    monkeypatch.setenv("HOME", str(tmp_path))
    cands = Candidates(ShellSession(Options()))

    def names(line):
        from lioctl.completion.candidates import tolerant_split
        return [c for c, _ in cands.candidates(*tolerant_split(line))]
    assert "global" in names("set ")
    assert names("set global max_") == ["max_backup_files="]
    assert names("set global loglevel=d") == ["loglevel=debug"]
    assert names("set global auto_cd_after_create=") == ["auto_cd_after_create=true", "auto_cd_after_create=false"]
    assert "logfile" in names("get global ")


def test_help_create_shows_each_kinds_parameters():
    from lioctl.tree import nodes
    root = nodes.Root(nodes.Context(Snapshot()))
    block = nodes.resolve(root, "/backstores/block").ui_help("create").data
    assert "exclusive=" in block["usage"] and "exclusive=false" in block["help"]
    user = nodes.resolve(root, "/backstores/user:lioctl_file").ui_help("changemedium").data
    assert user["usage"] == "changemedium NAME SIZE CFGSTRING" and any("changemedium u1" in e for e in user["examples"])
    assert "Re-read the configuration" in nodes.resolve(root, "/").ui_help("refresh").data["help"]
