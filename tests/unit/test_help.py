"""Help everywhere (issue #17 items 1 and 5): every verb's --help and every tree command's help
has an example, exits 0 and runs nothing; `lioctl help` forms; non-UTF-8 locales."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl import cli

REPO = Path(__file__).resolve().parents[2]


def lioctl(*args: str, env: dict | None = None, home: Path | None = None):
    e = dict(os.environ, NO_COLOR="1", **(env or {}))
    if home is not None:
        e["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "lioctl", *args], capture_output=True, text=True,
                          env=e, cwd=REPO, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("verb", sorted(cli.VERBS))
def test_every_verb_help_has_an_example(verb):
    r = lioctl(verb, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert f"usage: lioctl {verb}" in r.stdout
    assert "examples:\n  lioctl" in r.stdout, r.stdout


def test_shell_help_describes_the_shell():
    r = lioctl("shell", "--help")
    assert r.returncode == 0, r.stderr
    assert "interactive shell" in r.stdout and "saveconfig" in r.stdout
