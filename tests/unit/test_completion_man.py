"""Shell completion scripts driven in real shells, and the man pages checked against --help."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl.verbs import GLOBAL_FLAGS, VERBS

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def bash_complete(line: str) -> list[str]:
    """Source the script, set COMP_* as bash does, call the function, return COMPREPLY."""
    words_line = line
    script = f"""
source {REPO}/completions/lioctl.bash
COMP_LINE={shq(words_line)}; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_lioctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, check=True)
    return [w for w in out.stdout.splitlines() if w]


def shq(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def test_bash_completes_verbs_options_and_paths():
    assert {"export", "unexport", "save", "restore", "sessions", "ls"} <= set(bash_complete("lioctl "))
    assert bash_complete("lioctl exp") == ["export"]
    opts = bash_complete("lioctl export --")
    assert {"--iqn", "--acl", "--chap", "--dry-run", "--json", "--lun-size"} <= set(opts)
    assert bash_complete("lioctl /backstores/fi") == ["/backstores/fileio/"]
    assert bash_complete("lioctl sessions ") == ["list", "detail"]
    assert bash_complete("lioctl completion z") == ["zsh"]
    assert bash_complete("lioctl tcmu ") == ["run", "start", "status", "stop"]
    assert bash_complete("lioctl tcmu run --id") == ["--idle-exit"]
    assert "--user" in bash_complete("lioctl export --u")
    assert bash_complete("lioctl fabric-skeleton tcm_x --proto ") == ["iSCSI", "FCP", "SAS", "SRP", "SBP"]
    assert bash_complete("lioctl fabric-skeleton tcm_x --proto s") == ["SAS", "SRP", "SBP"]
    assert {"--proto", "--kernel-release", "--output", "--force"} <= set(bash_complete("lioctl fabric-skeleton x --"))


def test_bash_falls_back_to_files_where_a_command_takes_one(tmp_path):
    (tmp_path / "disk.img").write_bytes(b"")
    assert bash_complete(f"lioctl export {tmp_path}/di") == [f"{tmp_path}/disk.img"]


def test_completion_verb_prints_each_script():
    for shell, name in (("bash", "lioctl.bash"), ("zsh", "_lioctl"), ("fish", "lioctl.fish")):
        out = subprocess.run([sys.executable, "-m", "lioctl", "completion", shell],
                             capture_output=True, text=True, check=True).stdout
        assert out == (REPO / "completions" / name).read_text()


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh not installed (tests/setup.sh installs it)")
def test_zsh_script_parses_and_completes():
    subprocess.run(["zsh", "-n", str(REPO / "completions/_lioctl")], check=True)
    # drive the function with compadd stubbed to print its candidates
    script = f"""
compadd() {{ while [[ $1 == -* ]]; do [[ $1 == -- ]] && {{ shift; break }}; shift; done; print -l -- "$@"; }}
_files() {{ print FILES; }}
LBUFFER='lioctl /backstores/ra'
source {REPO}/completions/_lioctl
"""
    out = subprocess.run(["zsh", "-c", script], capture_output=True, text=True, env=ENV)
    assert "/backstores/ramdisk/" in out.stdout.split(), out.stdout + out.stderr


@pytest.mark.skipif(not shutil.which("fish"), reason="fish not installed (tests/setup.sh installs it)")
def test_fish_script_parses_and_completes():
    subprocess.run(["fish", "-n", str(REPO / "completions/lioctl.fish")], check=True)
    script = f"source {REPO}/completions/lioctl.fish; complete -C 'lioctl sessions '"
    out = subprocess.run(["fish", "-c", script], capture_output=True, text=True, env=ENV)
    assert {"list", "detail"} <= {ln.split("\t")[0] for ln in out.stdout.splitlines()}, out.stderr


def test_man_page_covers_every_verb_and_option():
    text = (REPO / "man/lioctl.8").read_text().replace("\\-", "-")
    verbs = text[text.index(".SH VERBS"):text.index(".SH PATHS")]
    for verb in VERBS:
        assert re.search(rf"^\.(TP\n)?\.B[IR]? \"?{verb}\b", verbs, re.M), f"verb {verb} has no entry"
    for flag in GLOBAL_FLAGS:
        assert flag in text, flag
    assert ".B 0\n" in text
    for status in ("1", "2"):
        assert f".BR {status} " in text


def test_every_man_page_is_installed():
    """pyproject's data-files name each page under man/ in its section's directory."""
    toml = (REPO / "pyproject.toml").read_text()
    for page in (REPO / "man").iterdir():
        section = page.name.rsplit(".", 1)[1]
        assert re.search(rf'"share/man/man{section}" = \[[^]]*"man/{re.escape(page.name)}"', toml), page.name


@pytest.mark.parametrize("page", sorted(p.name for p in (REPO / "man").iterdir()))
def test_man_pages_render_without_warnings(page):
    r = subprocess.run(["groff", "-ww", "-z", "-man", str(REPO / "man" / page)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
