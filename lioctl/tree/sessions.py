"""Logged-in initiators, read from configfs: explicit ACLs' sessions and demo-mode ones.

targetcli lists only sessions of explicit ACLs; the kernel also names demo-mode
(generated ACL) initiators in each TPG's `dynamic_sessions`, and lioctl shows both.
Each session is a dict
  {"fabric", "target", "tpg", "initiator", "acl": "explicit"|"generated"|"nexus",
   "state", "sid", "addresses": [...], "info": raw kernel text (detail only)}
(the JSON of `lioctl sessions --json` and of the tree's `sessions` command).
"""

from __future__ import annotations

import re

from lioctl import configfs


def _parse_info(text: str) -> dict | None:
    if not text or text.startswith("No active"):
        return None
    d = {"state": None, "sid": None, "addresses": []}
    m = re.search(r"LIO Session ID:\s*(\d+)", text)
    if m:
        d["sid"] = int(m.group(1))
    m = re.search(r"Session State:\s*(\S+)", text)
    if m:
        d["state"] = m.group(1).removeprefix("TARG_SESS_STATE_").lower()
    d["addresses"] = re.findall(r"Address\s+(\S+)", text)
    return d


def collect(snap, detail: bool = False, sid: str | None = None) -> list[dict]:
    """Every session of every TPG (with `detail`, the kernel's own text too); with `sid`, that one."""
    out = []
    for fab in snap.fabrics.values():
        for tgt in fab.targets.values():
            for tpg in tgt.tpgs.values():
                base = {"fabric": fab.name, "target": fab.spec.display_wwn(tgt.wwn), "tpg": tpg.tag}
                for acl in tpg.acls.values():
                    info = configfs.read(acl.path + "/info", "") or ""
                    parsed = _parse_info(info)
                    if parsed:
                        s = dict(base, initiator=acl.wwn, acl="explicit", **parsed)
                        if detail:
                            s["info"] = info
                        out.append(s)
                dyn = configfs.read(tpg.path + "/dynamic_sessions", "") or ""
                # the kernel NUL-terminates each name in dynamic_sessions
                for name in dyn.replace("\0", " ").split():
                    if name not in tpg.acls:
                        out.append(dict(base, initiator=name, acl="generated", state="logged_in",
                                        sid=None, addresses=[]))
                if fab.has("nexus") and tpg.nexus:
                    out.append(dict(base, initiator=tpg.nexus, acl="nexus", state="logged_in",
                                    sid=None, addresses=[]))
    return out if sid is None else [s for s in out if str(s["sid"]) == str(sid)]


def text(sessions: list[dict], detail: bool) -> str:
    if not sessions:
        return "(no open sessions)"
    lines = []
    for s in sessions:
        sid = f"sid {s['sid']} " if s["sid"] is not None else ""
        addr = f" from {', '.join(s['addresses'])}" if s["addresses"] else ""
        lines.append(f"{s['initiator']} -> {s['target']} tpg{s['tpg']} "
                     f"[{sid}{s['acl']} acl, {s['state'] or '?'}]{addr}")
        if detail and s.get("info"):
            lines += ["    " + ln for ln in s["info"].splitlines()]
    return "\n".join(lines)
