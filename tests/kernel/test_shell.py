"""The interactive shell driven in a real pseudo-terminal against the real kernel."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

import cfs
from conftest import LIOCTL, run_lioctl

# the prompt is PATH> followed by terminal control sequences
PROMPT = r">(?: |\x1b)"
IQN = "iqn.2003-01.org.example:shell"


@pytest.fixture
def shell(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), NO_COLOR="1", TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(LIOCTL[0], [], env=env, encoding="utf-8", timeout=60,
                          dimensions=(40, 200))
    child.expect("lioctl shell")
    child.expect(PROMPT)
    yield child
    if child.isalive():
        child.sendline("exit")
        child.expect(pexpect.EOF)


def run(child, line: str) -> str:
    child.sendline(line)
    child.expect(PROMPT)
    return child.before


def tab(child, text: str) -> str:
    """Type text, press Tab twice, return what the screen showed; then cancel the line."""
    child.send(text)
    child.send("\t")
    child.send("\t")
    try:
        child.expect(r"\S", timeout=5)
    except pexpect.TIMEOUT:
        pass
    child.sendcontrol("c")  # Ctrl-C cancels the half-typed line, the shell stays
    child.send("\r")
    child.expect(PROMPT)
    return child.before


def test_navigate_create_complete_and_survive_errors(shell, tmp_path):
    img = tmp_path / "sh.img"
    run(shell, "cd /backstores/fileio")
    assert "/backstores/fileio" in run(shell, "pwd")
    run(shell, f"create sh1 {img} 8M")
    assert any(p.name == "sh1" for p in cfs.ROOT.glob("core/fileio_*/*"))
    # an error prints one line and the shell stays alive
    out = run(shell, "delete nosuch")
    assert "does not exist" in out
    # Tab completion: a command, a path, a keyword, an attribute value, a backstore
    shell.send("cre\t")
    shell.expect("create")
    shell.sendcontrol("c")
    shell.send("\r")
    shell.expect(PROMPT)
    shell.send("cd /isc\t")
    shell.expect("/iscsi/")
    shell.send("\r")
    shell.expect(PROMPT)
    run(shell, f"create {IQN}")
    run(shell, f"cd {IQN}/tpg1")
    shell.send("luns/ create /backstores/fileio/s\t")
    shell.expect("/backstores/fileio/sh1")
    shell.send("\r")
    shell.expect(PROMPT)
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1/lun/lun_0").is_dir()
    shell.send("set attribute generate_node_ac\t")
    shell.expect("generate_node_acls=")
    shell.send("\t")
    shell.expect("generate_node_acls=1")
    shell.send("\r")
    shell.expect(PROMPT)
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1/attrib/generate_node_acls").read_text().strip() == "1"
    shell.send("acls/ create iqn.1994-05.com.example:c1 add_mapped\t")
    shell.expect("add_mapped_luns=")
    shell.sendcontrol("c")
    shell.send("\r")
    shell.expect(PROMPT)
    assert not (cfs.ROOT / "iscsi" / IQN / "tpgt_1/acls/iqn.1994-05.com.example:c1").exists(), \
        "Ctrl-C did not cancel the line"
    # a quoted password with special characters is stored exactly
    run(shell, "acls/ create iqn.1994-05.com.example:c1")
    pw = "p@ss%w'rd \"q\" $x"
    run(shell, f"""cd acls/iqn.1994-05.com.example:c1""")
    run(shell, """set auth userid=u "password=p@ss%w'rd \\"q\\" $x\"""")
    stored = (cfs.ROOT / "iscsi" / IQN / "tpgt_1/acls/iqn.1994-05.com.example:c1/auth/password").read_text()
    assert stored.rstrip("\n") == pw
    # another lioctl process changes the configuration while the shell sits idle
    r = run_lioctl("/backstores/ramdisk", "create", "other", "1M", subprocess_=True)
    assert r.returncode == 0, r.stderr
    out = run(shell, "ls /backstores/ramdisk")
    assert "other" in out
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    run_lioctl("clear", "--yes")
    hist = Path(tmp_path) / ".lioctl" / "history"
    assert oct(hist.stat().st_mode & 0o777) == "0o600" and "create sh1" in hist.read_text()


def test_batch_script_reports_line_3(tmp_path):
    script = "/backstores/ramdisk create b1 1M\n/backstores/ramdisk ls\n/backstores/ramdisk create b1 1M\n/ ls\n"
    r = run_lioctl(input=script, subprocess_=True)
    assert r.returncode == 1
    assert "line 3:" in r.stderr and "already exists" in r.stderr
    assert any(p.name == "b1" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    run_lioctl("/backstores/ramdisk", "delete", "b1")
