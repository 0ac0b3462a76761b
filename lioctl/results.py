"""What a write made, changed or removed, as --json reports it (lioctl-json(7), "output":
"write"): one shape for every write, tree command or verb. The objects come from the plan's
configfs paths, each one's owner looked up in the snapshot read before the plan ran (what was
removed is described from it, before it goes) and in one read after it."""

from __future__ import annotations

import os

from lioctl import configfs
from lioctl.plan.ops import CreateFile, Plan, RemoveFile
from lioctl.tree import snapshot
from lioctl.tree.snapshot import Snapshot


def _index(snap: Snapshot) -> dict[str, tuple[str, object]]:
    """configfs path -> (type, object), mapped LUNs left out (read only when asked: _owner)."""
    idx: dict[str, tuple[str, object]] = {}
    for so in snap.storage_objects.values():
        idx[so.path] = ("storage_object", so)
    for fab in snap.fabrics.values():
        idx[fab.path] = ("fabric", fab)
        for t in fab.targets.values():
            idx[t.path] = ("target", t)
            for tpg in t.tpgs.values():
                idx.setdefault(tpg.path, ("tpg", tpg))  # a fabric without TPGs: the target
                for lun in tpg.luns.values():
                    idx[lun.path] = ("lun", lun)
                for acl in tpg.acls.values():
                    idx[acl.path] = ("acl", acl)
                for p in tpg.portals.values():
                    idx[p.path] = ("portal", p)
    return idx


def _owner(idx, path: str) -> tuple[str, object] | None:
    """The object a configfs path belongs to (itself, or the nearest object above it)."""
    below = None
    q = path
    while q.startswith(configfs.ROOT + "/"):
        hit = idx.get(q)
        if hit is not None:
            if hit[0] == "acl" and below and below.startswith("lun_") and below[4:].isdigit():
                ml = hit[1].mapped_luns.get(int(below[4:]))
                if ml is not None:
                    return ("mapped_lun", ml)
            return hit
        below = os.path.basename(q)
        q = os.path.dirname(q)
    return None


def describe(kind: str, obj) -> dict:
    """One object as the result lists it: its type, tree path, configfs directory and what
    identifies it (a LUN's index, a storage object's serial, size and backing device...)."""
    d = {"type": kind, "path": "/" + obj.name if kind == "fabric" else obj.tree_path,
         "configfs": obj.path}
    if kind == "storage_object":
        d.update(obj.to_json())
    elif kind == "target":
        d.update(wwn=obj.fabric.spec.display_wwn(obj.wwn), fabric=obj.fabric.name)
    elif kind == "tpg":
        d.update(tag=obj.tag, enabled=obj.enabled, target=obj.target.tree_path)
    elif kind == "lun":
        d.update(obj.to_json())
    elif kind == "acl":
        d.update(node_wwn=obj.wwn, tag=obj.tag)
    elif kind == "mapped_lun":
        d.update(obj.to_json())
    elif kind == "portal":
        d.update(obj.to_json())
    elif kind == "fabric":
        d["name"] = obj.name
    return d


class Tracker:
    """Made before a plan runs (under the write lock, on the snapshot the plan was made from);
    `result` after it ran. For each configfs path the plan changes: its owner before and after.
    The same object in both: modified; only after, and new: created; only before, and gone:
    deleted (described before it went)."""

    def __init__(self, plan: Plan | None, before: Snapshot | None):
        self.plan = plan
        self.paths = [p for op in (plan or ()) for p in op.configfs_paths()]
        self.owner_before: dict[str, str | None] = {}
        self.before: dict[str, dict] = {}
        self.known: set[str] = set()
        if before is not None and self.paths:
            idx = _index(before)
            self.known = set(idx)
            for p in self.paths:
                hit = _owner(idx, p)
                self.owner_before[p] = hit[1].path if hit else None
                if hit and hit[1].path not in self.before:
                    self.before[hit[1].path] = describe(*hit)
            self.known |= set(self.before)

    def result(self, command: str, *, message: str | None = None, data: dict | None = None,
               after: Snapshot | None = None, unchanged: list[dict] | None = None) -> dict:
        created, modified, deleted = [], [], []
        if self.paths:
            idx = _index(after if after is not None else snapshot.read())
            seen = set()
            for p in self.paths:
                hit = _owner(idx, p)
                if hit is None or hit[1].path in seen:
                    continue
                where = hit[1].path
                if where == self.owner_before.get(p):
                    seen.add(where)
                    modified.append(describe(*hit))
                elif where not in self.known:
                    seen.add(where)
                    created.append(describe(*hit))
            deleted = [d for where, d in self.before.items()
                       if where not in seen and not os.path.lexists(where)]
        for op in self.plan or ():
            if isinstance(op, CreateFile):
                created.append({"type": "file", "path": op.path, "size": op.size})
            elif isinstance(op, RemoveFile):
                deleted.append({"type": "file", "path": op.path})
        changed = any(op.configfs_paths() or isinstance(op, (CreateFile, RemoveFile)) for op in self.plan or ())
        return write_result(command, changed=changed, message=message, data=data,
                            created=created, modified=modified, deleted=deleted, unchanged=unchanged)


def print_dry_run(plan: Plan, title: str | None, opts) -> None:
    """--dry-run: the sh script; with --json a "plan" document holding each operation's
    description and the same script."""
    import sys

    from lioctl import render
    from lioctl.plan import script
    text = script.render(plan, title, bool(getattr(opts, "show_secrets", False))) if title \
        else script.render(plan, show_secrets=bool(getattr(opts, "show_secrets", False)))
    if getattr(opts, "json", False):
        render.print_json({"changes": [op.describe() for op in plan], "operations": len(plan),
                           "script": text}, "plan")
    else:
        sys.stdout.write(text)


def write_result(command: str, *, changed: bool, message: str | None = None, data: dict | None = None,
                 created=(), modified=(), deleted=(), unchanged=()) -> dict:
    """The write document's own keys; a command's own keys (export's "target", a LUN's "lun")
    follow them and never replace them."""
    out = {"ok": True, "command": command, "changed": changed, "message": message,
           "created": list(created), "modified": list(modified), "deleted": list(deleted),
           "unchanged": list(unchanged or ())}
    for k, v in (data or {}).items():
        out.setdefault(k, v)
    return out
