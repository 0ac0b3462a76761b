"""`lioctl export` planning without a kernel: names, IQNs, portals, modes, the sh script."""

from __future__ import annotations

import argparse
import shlex

import pytest

from lioctl.commands import export
from lioctl.errors import LioError, UsageError
from lioctl.plan import Mkdir, Symlink, Write
from lioctl.plan.script import render
from lioctl.tree.snapshot import Snapshot


def args_for(*argv):
    p = argparse.ArgumentParser()
    export.configure(p)
    ns = p.parse_args([str(a) for a in argv])
    ns.dry_run, ns.json = True, False
    return ns


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "My Disk_01.IMG"
    p.write_bytes(b"\0" * 4096 * 4)
    return p


def writes(plan):
    return {op.path.split("/target/", 1)[1]: op.value for op in plan if isinstance(op, Write)}


def test_default_iqn_is_valid_and_derived_from_host_and_basename(img, monkeypatch):
    monkeypatch.setattr(export.socket, "gethostname", lambda: "Storage_Host.example.com")
    plan, info = export.build(args_for(img), Snapshot())
    assert info["target"] == "iqn.2003-01.org.linux-iscsi.storage-host:my-disk_01.img"
    assert info["backstore"] == "/backstores/fileio/My_Disk_01.IMG"
    assert info["portals"] == ["0.0.0.0:3260"]


def test_demo_mode_and_enable_last(img):
    plan, _ = export.build(args_for(img), Snapshot())
    w = writes(plan)
    tpg = [k for k in w if k.endswith("tpgt_1/enable")][0].rsplit("/", 1)[0]
    assert w[f"{tpg}/attrib/authentication"] == "0"
    assert w[f"{tpg}/attrib/generate_node_acls"] == "1"
    assert w[f"{tpg}/attrib/demo_mode_write_protect"] == "0"
    assert isinstance(plan.ops[-1], Write) and plan.ops[-1].path.endswith("tpgt_1/enable")
    ctrl = [op.value for op in plan if isinstance(op, Write) and op.path.endswith("/control")]
    assert ctrl[0] == f"fd_dev_name={img},fd_dev_size={4096 * 4}"
    assert "fd_buffered_io=1" in ctrl


def test_acl_with_chap_turns_demo_mode_off(img):
    plan, info = export.build(args_for(img, "--acl", "IQN.1994-05.com.Example:C1",
                                       "--chap", "alice:pa:ss", "--mutual-chap", "tgt:x%y'z"), Snapshot())
    w = writes(plan)
    assert info["acls"] == ["iqn.1994-05.com.example:c1"]
    auth = {k.rsplit("/", 1)[1]: v for k, v in w.items() if "/auth/" in k}
    assert auth == {"userid": "alice", "password": "pa:ss", "userid_mutual": "tgt",
                    "password_mutual": "x%y'z"}
    assert any(k.endswith("attrib/generate_node_acls") and v == "0" for k, v in w.items())
    assert any(k.endswith("attrib/authentication") and v == "1" for k, v in w.items())
    links = [op for op in plan if isinstance(op, Symlink)]
    assert len(links) == 2 and links[1].target.endswith("tpgt_1/lun/lun_0")


def test_portals_ipv6_default_port_and_duplicates(img):
    _, info = export.build(args_for(img, "-p", "127.0.0.1", "-p", "[::1]", "-p", "[::1]:3261"),
                           Snapshot())
    assert info["portals"] == ["127.0.0.1:3260", "[::1]:3260", "[::1]:3261"]
    with pytest.raises(LioError, match="twice"):
        export.build(args_for(img, "-p", "127.0.0.1", "-p", "127.0.0.1:3260"), Snapshot())
    with pytest.raises(LioError, match="not in 1-65535"):
        export.build(args_for(img, "-p", "127.0.0.1:70000"), Snapshot())


@pytest.mark.parametrize("argv,exc,text", [
    (["--name", "a/b"], LioError, "'/'"),
    (["--name", ".."], LioError, "'.'"),
    (["--name", "a b"], LioError, "spaces"),
    (["--name", "x" * 129], LioError, "at most 128"),
    (["--iqn", "iqn.2003-13.org.example:x"], LioError, "not valid"),
    (["--chap", "nocolon", "--acl", "iqn.1994-05.com.example:c1"], UsageError, "USER:SECRET"),
    (["--chap", "a:b"], UsageError, "--acl"),
])
def test_bad_input(img, argv, exc, text):
    with pytest.raises(exc, match=text):
        export.build(args_for(img, *argv), Snapshot())


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(LioError, match="directory"):
        export.build(args_for(tmp_path), Snapshot())
    with pytest.raises(LioError, match="no such file"):
        export.build(args_for(tmp_path / "nope"), Snapshot())


def test_missing_file_with_lun_size_is_created_sparse(tmp_path):
    plan, _ = export.build(args_for(tmp_path / "new.img", "--lun-size", "1G"), Snapshot())
    assert [op for op in plan if op.describe().startswith("create file")]
    assert f"truncate -s {1 << 30}" in render(plan)


def test_script_is_plain_posix_sh_with_exact_values(img):
    plan, _ = export.build(args_for(img, "--acl", "iqn.1994-05.com.example:c1",
                                    "--chap", "u:p'a\"s$s"), Snapshot())
    text = render(plan, show_secrets=True)
    assert text.startswith("#!/bin/sh\n")
    for line in text.splitlines()[3:]:
        words = shlex.split(line)
        assert words[0] in ("mountpoint", "[", "mkdir", "printf", "ln", "truncate"), line
    assert shlex.quote("p'a\"s$s") in text
    assert sum(isinstance(op, Mkdir) for op in plan) == text.count("\nmkdir ")
