"""Test-side configfs helpers, independent of lioctl's own code (so they can judge it)."""

from __future__ import annotations

import os
from pathlib import Path

from initiator import opens

ROOT = Path("/sys/kernel/config/target")
FABRIC_SKIP = {"core", "version", "dbroot"}


def _rmdir(p: Path) -> None:
    try:
        os.rmdir(p)
    except FileNotFoundError:
        pass


def _unlink_links(d: Path) -> None:
    for e in d.iterdir():
        if e.is_symlink():
            e.unlink()


def snapshot() -> list[str]:
    """Every user-made object (dirs and links) in configfs, sorted: the leak check."""
    out = []
    core = ROOT / "core"
    if core.is_dir():
        for hba in sorted(core.iterdir()):
            if hba.name == "alua" or not hba.is_dir():
                continue
            out.append(f"core/{hba.name}")
            for so in sorted(hba.iterdir()):
                if so.is_dir():
                    out.append(f"core/{hba.name}/{so.name}")
        lu_gps = core / "alua" / "lu_gps"
        if lu_gps.is_dir():
            out += [f"core/alua/lu_gps/{g.name}" for g in lu_gps.iterdir() if g.name != "default_lu_gp"]
    for fab in sorted(ROOT.iterdir()) if ROOT.is_dir() else []:
        if fab.name in FABRIC_SKIP or not fab.is_dir():
            continue
        da = fab / "discovery_auth"
        # every fabric has a discovery_auth group; only iSCSI's holds attributes
        enforce = da / "enforce_discovery_auth"
        if enforce.is_file() and enforce.read_text().strip() != "0":
            out.append(f"{fab.name}/discovery_auth enforced")
        for wwn in sorted(fab.iterdir()):
            if wwn.is_dir() and wwn.name not in ("discovery_auth",):
                out.append(f"{fab.name}/{wwn.name}")
    return out


def tree(top: Path = ROOT) -> dict[str, str]:
    """Path -> kind/target/value for every dir, link and readable attribute (for equivalence)."""
    out: dict[str, str] = {}
    skip_parts = {"statistics", "fabric_statistics"}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        if set(Path(rel).parts) & skip_parts:
            dirnames[:] = []
            continue
        out[rel] = "dir"
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                out[os.path.join(rel, name)] = "link->" + os.path.relpath(os.path.realpath(full), top)
                dirnames.remove(name)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                out[os.path.join(rel, name)] = "link->" + os.path.relpath(os.path.realpath(full), top)
                continue
            if name in ("creation_time", "hba_info"):
                continue  # the kernel's clock and its global HBA counter: not configuration
            try:
                with open(full, "rb") as f:
                    out[os.path.join(rel, name)] = f.read(4096).decode(errors="replace")
            except OSError:
                out[os.path.join(rel, name)] = "<unreadable>"
    return out


def clear() -> None:
    """Remove everything, children first, the way the kernel demands."""
    if not ROOT.is_dir():
        return
    for fab in ROOT.iterdir():
        if fab.name in FABRIC_SKIP or not fab.is_dir():
            continue
        da = fab / "discovery_auth"
        # only undo discovery auth a test turned on: writing the credentials back changes how
        # the kernel shows them ('' vs NULL), which a tree comparison would see
        enforce = da / "enforce_discovery_auth"
        if enforce.is_file() and enforce.read_text().strip() != "0":
            enforce.write_text("0")
        for wwn in list(fab.iterdir()):
            if not wwn.is_dir() or wwn.name == "discovery_auth":
                continue
            for tpg in list(wwn.glob("tpgt_*")):
                for acl in list((tpg / "acls").iterdir()) if (tpg / "acls").is_dir() else []:
                    if not acl.is_dir():
                        continue
                    for ml in list(acl.glob("lun_*")):
                        _unlink_links(ml)
                        _rmdir(ml)
                    _rmdir(acl)
                for lun in list((tpg / "lun").glob("lun_*")):
                    _unlink_links(lun)
                    _rmdir(lun)
                for np in list((tpg / "np").iterdir()) if (tpg / "np").is_dir() else []:
                    _rmdir(np)
                _rmdir(tpg)
            _rmdir(wwn)
    core = ROOT / "core"
    for hba in list(core.iterdir()):
        if hba.name == "alua" or not hba.is_dir():
            continue
        for so in list(hba.iterdir()):
            if so.is_dir():
                for tg in list((so / "alua").iterdir()) if (so / "alua").is_dir() else []:
                    if tg.name != "default_tg_pt_gp":
                        _rmdir(tg)
                _rmdir(so)
        _rmdir(hba)
    lu_gps = core / "alua" / "lu_gps"
    for g in list(lu_gps.iterdir()) if lu_gps.is_dir() else []:
        if g.name != "default_lu_gp":
            _rmdir(g)


def scsi_debug_disk() -> str | None:
    """The /dev node of the scsi_debug module's disk, once the kernel has made it."""
    for d in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{d}/device/model") as m:
                if m.read().strip() == "scsi_debug" and opens(f"/dev/{d}"):
                    return f"/dev/{d}"
        except OSError:
            continue
    return None
