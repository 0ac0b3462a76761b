"""Crafted saveconfig files against real LIO (#16 items 11, 12): restore exits 1 with one
line naming the JSON path, creates nothing outside configfs and leaves configfs as it was."""

from __future__ import annotations

import json

import pytest

import cfs

IQN = "iqn.2003-01.org.example:crafted"
RAMDISK = {"name": "r", "plugin": "ramdisk", "size": 1 << 20}


def _up(tmp_path) -> str:
    """A relative path from a configfs directory of any depth (≤ 12) up to tmp_path."""
    return "../" * 12 + str(tmp_path).lstrip("/")


def _iscsi(tpg: dict, sos=(RAMDISK,)) -> dict:
    return {"storage_objects": list(sos),
            "targets": [{"fabric": "iscsi", "wwn": IQN, "tpgs": [dict({"tag": 1}, **tpg)]}]}


CRAFTED = {
    # each made lioctl mkdir or link outside configfs and exit 0
    "fabric": lambda t: ({"storage_objects": [], "targets": [
        {"fabric": "../../../.." + str(t), "wwn": "evil", "tpgs": [{"tag": 1}]}]}, "targets[0].fabric"),
    "portal": lambda t: (_iscsi({"portals": [{"ip_address": _up(t) + "/np", "port": 3260}]}),
                         "targets[0].tpgs[0].portals[0].ip_address"),
    "lun_alias": lambda t: (_iscsi({"luns": [{"index": 0, "storage_object": "/backstores/ramdisk/r",
                                              "alias": _up(t) + "/link"}]}),
                            "targets[0].tpgs[0].luns[0].alias"),
    "alua_group": lambda t: ({"storage_objects": [dict(RAMDISK, alua_tpgs=[{"name": _up(t) + "/gp",
                                                                             "tg_pt_gp_id": 7}])],
                              "targets": []}, "storage_objects[0].alua_tpgs[0].name"),
    # ',' starts another option in the control file: it reached the kernel
    "user_config": lambda t: ({"storage_objects": [{"name": "u", "plugin": "user", "size": 1 << 20,
                                                    "config": "lioctl_ram/a,hw_max_sectors=8"}],
                               "targets": []}, "storage_objects[0].config"),
    # internal errors (tracebacks with --debug) before
    "nul_dev": lambda t: ({"storage_objects": [{"name": "f", "plugin": "fileio", "size": 0,
                                                "dev": str(t) + "/a\0b"}], "targets": []},
                          "storage_objects[0].dev"),
    "nul_block_dev": lambda t: ({"storage_objects": [{"name": "b", "plugin": "block", "dev": "/dev/loop\0"}],
                                 "targets": []}, "storage_objects[0].dev"),
    "hw_max_sectors": lambda t: ({"storage_objects": [{"name": "u", "plugin": "user", "size": 1 << 20,
                                                       "config": "lioctl_ram/a", "hw_max_sectors": "abc"}],
                                  "targets": []}, "storage_objects[0].hw_max_sectors"),
    "newline_name": lambda t: ({"storage_objects": [dict(RAMDISK, name="r\tx")], "targets": []},
                               "storage_objects[0].name"),
}


def _outside(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "crafted.json")


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_file_is_refused_before_anything_changes(lioctl, tmp_path, case):
    data, where = CRAFTED[case](tmp_path)
    f = tmp_path / "crafted.json"
    f.write_text(json.dumps(data))
    # a running configuration, which must stay as it is
    assert lioctl("/backstores/ramdisk", "create", "keep", "1M").returncode == 0
    before = cfs.tree()
    try:
        r = lioctl("restore", f)
        after = cfs.tree()
    finally:
        lioctl("clear", "--yes")
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lioctl: {where}: ") and "\0" not in r.stderr, repr(r.stderr)
    assert _outside(tmp_path) == []
    assert after == before


def test_malformed_files_in_a_real_process(tmp_path):
    """The real command, its exit status and stderr, for the file-level cases of item 12."""
    from conftest import run_lioctl
    cases = {"utf8": (b'{"storage_objects": [{"name": "\xff"}], "targets": []}', "not valid UTF-8"),
             "bigint": (b'{"storage_objects": [], "targets": [], "n": ' + b"7" * 5000 + b"}",
                        "an integer of 5000 digits is too large"),
             "deep": (b'{"storage_objects": ' + b"[" * 50000 + b"]" * 50000 + b', "targets": []}',
                      "nested too deeply"),
             "nan": (b'{"storage_objects": [{"name": "r", "plugin": "ramdisk", "size": NaN}], "targets": []}',
                     "NaN is not a number")}
    before = cfs.tree()
    for name, (content, _) in cases.items():
        (tmp_path / f"{name}.json").write_bytes(content)
    # one process for all (a Python start costs seconds under emulation): batch mode
    r = run_lioctl("--keep-going", input="".join(f"restore {tmp_path}/{n}.json\n" for n in cases),
                   subprocess_=True)
    assert cfs.tree() == before
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == len(cases), r.stderr
    for n, (line, (name, (_, why))) in enumerate(zip(lines, cases.items()), 1):
        assert line.startswith(f"lioctl: line {n}: {tmp_path}/{name}.json: {why}"), r.stderr
