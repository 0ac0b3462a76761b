"""The interactive shell driven in a real pseudo-terminal against the real kernel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pexpect
import pytest

import cfs
from conftest import LIOCTL, run_lioctl

# the prompt is PATH> followed by terminal control sequences
PROMPT = r">(?: |\x1b)"
IQN = "iqn.2003-01.org.example:shell"


def spawn_shell(tmp_path, *args: str):
    """The shell in a pty; its default save file (auto-save on exit) is a temp file."""
    env = dict(os.environ, HOME=str(tmp_path), NO_COLOR="1", TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               LIOCTL_SAVECONFIG=str(tmp_path / "default-saveconfig.json"))
    child = pexpect.spawn(LIOCTL[0], list(args), env=env, encoding="utf-8", timeout=60,
                          dimensions=(40, 200))
    child.expect("lioctl shell")
    child.expect(PROMPT)
    return child


@pytest.fixture
def shell(tmp_path):
    child = spawn_shell(tmp_path)
    yield child
    if child.isalive():
        child.sendline("exit")
        child.expect(pexpect.EOF)


def run(child, line: str, marker: str) -> str:
    """Send a line and wait for text it prints (the prompt alone also shows while typing);
    a line that prints nothing is only sent: the next marker keeps the two in step."""
    child.sendline(line)
    if not marker:
        return ""
    child.expect_exact(marker)
    out = child.before + marker
    child.expect(PROMPT)
    return out


def complete(child, typed: str, suffix: str) -> None:
    """Type, press Tab, and wait for the completion to be drawn (completion runs async)."""
    child.send(typed)
    child.send("\t")
    child.expect_exact(suffix)


def test_navigate_create_complete_and_survive_errors(shell, tmp_path):
    img = tmp_path / "sh.img"
    run(shell, "cd /backstores/fileio", "")
    run(shell, "status", "/backstores/fileio: Storage Objects")
    run(shell, f"create sh1 {img} 8M", "Created fileio sh1")
    assert any(p.name == "sh1" for p in cfs.ROOT.glob("core/fileio_*/*"))
    # an error prints one line and the shell stays alive
    run(shell, "delete nosuch", "backstore fileio/nosuch does not exist")
    # Tab completion, proven by what the completed line does when run:
    # an existing backstore name...
    complete(shell, "cd /is", "csi/")  # ...a path
    run(shell, "", "")
    run(shell, "status", "/iscsi: Targets")
    run(shell, f"create {IQN}", "Created target")
    run(shell, f"cd {IQN}/tpg1", "")
    complete(shell, "luns/ create /backstores/fileio/s", "h1")
    shell.sendline("")
    shell.expect_exact("Created LUN 0")
    shell.expect(PROMPT)
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1/lun/lun_0").is_dir()
    # ...an attribute name
    complete(shell, "set attribute generate_node_ac", "ls=")
    shell.sendline("1")
    shell.expect_exact("tpg1: set attribute generate_node_acls=1")  # the result, not the echo
    shell.expect(PROMPT)
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1/attrib/generate_node_acls").read_text().strip() == "1"
    # ...a command, a keyword and its value
    img2 = tmp_path / "sh2.img"
    complete(shell, "/backstores/fileio cre", "ate")
    complete(shell, f" sh2 {img2} 1M wri", "te_back=")
    complete(shell, "f", "alse")
    shell.sendline("")
    shell.expect_exact("Created fileio sh2")
    shell.expect(PROMPT)
    so2 = next(cfs.ROOT.glob("core/fileio_*/sh2"))
    assert (so2 / "attrib/emulate_write_cache").read_text().strip() == "0", "write_back=false not completed"
    # Ctrl-C cancels a half-typed line and the shell stays
    shell.send("acls/ create iqn.1994-05.com.example:c1")
    shell.sendcontrol("c")
    run(shell, "status", f"/iscsi/{IQN}/tpg1: ")
    assert not (cfs.ROOT / "iscsi" / IQN / "tpgt_1/acls/iqn.1994-05.com.example:c1").exists(), \
        "Ctrl-C did not cancel the line"
    # a quoted password with special characters is stored exactly
    run(shell, "acls/ create iqn.1994-05.com.example:c1", "Created Node ACL")
    pw = "p@ss%w'rd \"q\" $x"
    run(shell, "cd acls/iqn.1994-05.com.example:c1", "")
    run(shell, """set auth userid=u "password=p@ss%w'rd \\"q\\" $x\"""", "password=********")
    stored = (cfs.ROOT / "iscsi" / IQN / "tpgt_1/acls/iqn.1994-05.com.example:c1/auth/password").read_text()
    assert stored.rstrip("\n") == pw
    # another lioctl process changes the configuration while the shell sits idle
    r = run_lioctl("/backstores/ramdisk", "create", "other", "1M", subprocess_=True)
    assert r.returncode == 0, r.stderr
    run(shell, "ls /backstores/ramdisk", "o- other")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    run_lioctl("clear", "--yes")
    hist = Path(tmp_path) / ".lioctl" / "history"
    assert oct(hist.stat().st_mode & 0o777) == "0o600" and "create sh1" in hist.read_text()


def test_batch_script_reports_line_3(tmp_path):
    script = "/backstores/ramdisk create b1 1M\n/backstores/ramdisk ls\n/backstores/ramdisk create b1 1M\n/ ls\n"
    r = run_lioctl(input=script, subprocess_=True)
    assert r.returncode == 5  # the failed line's status: already exists
    assert "line 3:" in r.stderr and "already exists" in r.stderr
    assert any(p.name == "b1" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    run_lioctl("/backstores/ramdisk", "delete", "b1")


def _names(config: dict) -> tuple[set[str], set[str]]:
    return ({so["name"] for so in config.get("storage_objects", [])},
            {t["wwn"] for t in config.get("targets", [])})


def test_targetcli_save_restore_clear_and_auto_save_on_exit(tmp_path):
    """`lioctl shell` (the verb), targetcli's saveconfig / clearconfig / restoreconfig at a
    path other than the root, and the save targetcli does when its shell exits."""
    saved, default = tmp_path / "saved.json", tmp_path / "default-saveconfig.json"
    sh = spawn_shell(tmp_path, "shell")
    # help in the shell: a verb's --help does not end the shell, --help runs nothing
    run(sh, "save --help", "usage: lioctl save")
    run(sh, "help clearconfig", "clearconfig confirm=true")
    run(sh, "/backstores/ramdisk create fs1 1M --help", "Examples:")
    assert not any(cfs.ROOT.glob("core/rd_mcp_*/fs1"))
    run(sh, "/backstores/ramdisk create fs1 1M", "Created ramdisk fs1")
    run(sh, f"/iscsi create {IQN}", "Created target")
    run(sh, "cd /iscsi", "")
    run(sh, f"saveconfig {saved}", f"Configuration saved to {saved}")
    assert _names(json.loads(saved.read_text())) == ({"fs1"}, {IQN})
    run(sh, "clearconfig", "confirm=true needs to be set")
    assert (cfs.ROOT / "iscsi" / IQN).is_dir(), "clearconfig without confirm=true removed things"
    run(sh, "clearconfig confirm=true", "Removed 1 target(s) and 1 storage object(s).")
    assert not (cfs.ROOT / "iscsi" / IQN).exists()
    assert not any(p.name == "fs1" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    run(sh, f"restoreconfig {saved}", f"Restored {saved}")
    assert (cfs.ROOT / "iscsi" / IQN / "tpgt_1").is_dir()
    assert any(p.name == "fs1" for p in cfs.ROOT.glob("core/rd_mcp_*/*"))
    run(sh, f"restoreconfig {saved} clear_existing=true", f"Restored {saved}")
    assert not default.exists()
    sh.sendline("exit")
    sh.expect_exact(f"Configuration saved to {default}")
    sh.expect(pexpect.EOF)
    sh.close()
    assert sh.exitstatus == 0
    assert _names(json.loads(default.read_text())) == ({"fs1"}, {IQN})
    assert oct(default.stat().st_mode & 0o777) == "0o600"

    # the preference turns it off, and is kept for the next session
    default.unlink()
    sh = spawn_shell(tmp_path)
    run(sh, "set global auto_save_on_exit=false", "Parameter auto_save_on_exit is now False.")
    run(sh, "get global auto_save_on_exit", "auto_save_on_exit=False")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
    assert not default.exists(), "saved on exit with auto_save_on_exit=false"
    assert json.loads((tmp_path / ".lioctl/prefs.json").read_text())["auto_save_on_exit"] is False
    sh = spawn_shell(tmp_path)
    run(sh, "get global auto_save_on_exit", "auto_save_on_exit=False")
    sh.sendcontrol("d")
    sh.expect(pexpect.EOF)
    assert not default.exists()
    run_lioctl("clear", "--yes")
