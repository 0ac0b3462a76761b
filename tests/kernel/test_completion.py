"""bash completion of live tree paths, in the guest with real objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, run_lioctl

ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def complete(line: str) -> list[str]:
    script = f"""
source {REPO}/completions/lioctl.bash
COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_lioctl; printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, check=True)
    return [w for w in out.stdout.splitlines() if w]


def test_live_paths_commands_and_backstores():
    iqn = "iqn.2003-01.org.example:compl"
    assert run_lioctl("/backstores/ramdisk", "create", "cr1", "1M").returncode == 0
    assert run_lioctl("/iscsi", "create", iqn).returncode == 0
    try:
        assert complete("lioctl /iscsi/") == [f"/iscsi/{iqn}/"]
        assert complete("lioctl /backstores/ramdisk/") == ["/backstores/ramdisk/cr1/"]
        assert "create" in complete(f"lioctl /iscsi/{iqn}/tpg1/luns ")
        assert complete(f"lioctl /iscsi/{iqn}/tpg1/luns create /backstores/r") == ["/backstores/ramdisk/cr1"]
        assert "generate_node_acls=" in complete(f"lioctl /iscsi/{iqn}/tpg1 set attribute gen")
        assert iqn in complete("lioctl unexport iqn")
    finally:
        run_lioctl("clear", "--yes")
