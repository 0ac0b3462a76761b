"""Shell completion logic on an empty tree (the host has no configfs), and the prompt."""

from __future__ import annotations

import pytest

from lioctl.completion.candidates import Candidates, tolerant_split
from lioctl.verbs import Options
from lioctl.shell.session import ShellSession, short_path
from lioctl.tree.snapshot import Snapshot


@pytest.fixture
def sh(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = ShellSession(Options())
    s._snap = Snapshot(mounted=False)
    monkeypatch.setattr(s, "refresh", lambda: None)
    return s


def cands(sh, text):
    words, word = tolerant_split(text)
    return [c for c, _ in Candidates(sh).candidates(words, word)]


def test_first_word_commands_and_paths(sh):
    c = cands(sh, "")
    assert "ls" in c and "export" in c and "backstores/" in c and "iscsi/" in c
    assert cands(sh, "bac") == ["backstores/"]
    assert cands(sh, "/backstores/fi") == ["/backstores/fileio/"]


def test_relative_paths_and_dotdot(sh):
    sh.cwd = "/backstores/fileio"
    assert cands(sh, "cd ../ra") == ["../ramdisk/"]
    assert "create" in cands(sh, "cr")


def test_keyword_parameters_and_boolean_values(sh):
    sh.cwd = "/backstores/fileio"
    c = cands(sh, "create d1 /tmp/x 1M wri")
    assert c == ["write_back="]
    assert cands(sh, "create d1 /tmp/x 1M write_back=f") == ["write_back=false"]
    assert "sparse=" in cands(sh, "create d1 /tmp/x 1M ")


def test_file_paths_for_fileio(sh, tmp_path):
    (tmp_path / "disk one.img").write_bytes(b"")
    sh.cwd = "/backstores/fileio"
    assert cands(sh, f"create d1 {tmp_path}/di") == [f"{tmp_path}/disk one.img"]


def test_open_quote_is_completed_not_an_error(sh):
    words, word = tolerant_split("set auth password='ab")
    assert words == ["set", "auth"] and word == "password=ab"


def test_prompt_shortens_deep_iqn_paths():
    p = "/iscsi/iqn.2003-01.org.linux-iscsi.storage-host.x8664:sn.0123456789ab/tpg1/acls"
    s = short_path(p)
    assert len(s) <= 40 and s.endswith("/tpg1/acls")
    assert short_path("/backstores") == "/backstores"


def test_set_global_persists_readable_json(sh, tmp_path):
    sh.execute("set global auto_add_mapped_luns=false editing_mode=vi")
    text = (tmp_path / ".lioctl" / "prefs.json").read_text()
    assert '"auto_add_mapped_luns": false' in text and '"editing_mode": "vi"' in text
    from lioctl.errors import LioError
    with pytest.raises(LioError, match="no global preference"):
        sh.execute("set global bogus=1")


def test_cd_and_bookmarks(sh):
    sh.execute("cd /backstores/ramdisk")
    assert sh.cwd == "/backstores/ramdisk"
    sh.execute("bookmarks add rd")
    sh.execute("cd /")
    sh.execute("bookmarks go rd")
    assert sh.cwd == "/backstores/ramdisk"
    sh.execute("cd -")
    assert sh.cwd == "/"
    sh.execute("backstores")  # a relative path alone moves there, as in targetcli
    assert sh.cwd == "/backstores"
