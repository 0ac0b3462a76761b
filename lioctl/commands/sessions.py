"""`lioctl sessions [list|detail] [SID]`: logged-in initiators, including demo-mode ones
(lioctl/tree/sessions.py reads them; --json gives the list of sessions described there)."""

from __future__ import annotations

from lioctl import render
from lioctl.tree import sessions, snapshot

HELP = "list logged-in initiator sessions"


def configure(p):
    p.add_argument("action", nargs="?", default="list", choices=("list", "detail"))
    p.add_argument("sid", nargs="?", help="only this session id")


def run(args) -> int:
    found = sessions.collect(snapshot.read(), args.action == "detail", args.sid)
    if args.json:
        render.print_json({"sessions": found}, "sessions")
    else:
        render.print_text(sessions.text(found, args.action == "detail"))
    return 0
