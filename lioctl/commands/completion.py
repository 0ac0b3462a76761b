"""`lioctl completion bash|zsh|fish`: print the shell's completion script (the scripts and the
`lioctl __complete` they call live in lioctl/completion/scripts.py)."""

from __future__ import annotations

import argparse
import sys

from lioctl.completion.scripts import SHELLS, script_text

HELP = "print the bash, zsh or fish completion script"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to print the script for")


def run(args) -> int:
    sys.stdout.write(script_text(args.shell))
    return 0
