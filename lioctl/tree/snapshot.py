"""Read the whole configfs target tree once (os.scandir); attribute values load lazily."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property

from lioctl import configfs
from lioctl.backstores import BY_HBA, KINDS
from lioctl.backstores.common import Kind
from lioctl.tree.fabrics import spec_for

NOT_FABRICS = {"core", "version", "dbroot"}


def _entries(path: str):
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


@dataclass(eq=False)
class StorageObject:
    plugin: str
    hba: str
    name: str
    path: str
    luns: list["Lun"] = field(default_factory=list)

    @property
    def kind(self) -> Kind:
        """What is specific to its kind (lioctl/backstores/)."""
        return KINDS[self.plugin]

    def fresh(self) -> "StorageObject":
        """The same object with nothing read yet: values read from now on."""
        return StorageObject(self.plugin, self.hba, self.name, self.path)

    @property
    def tree_path(self) -> str:
        return f"/backstores/{self.plugin}/{self.name}"

    @cached_property
    def info(self) -> dict[str, str]:
        """Parse the kernel's one-line `info` into key/value pairs."""
        text = configfs.read(self.path + "/info", "") or ""
        pairs = {}
        for key, value in re.findall(r"([A-Za-z][\w .-]*?):\s*(\S+)", text):
            pairs[key.strip()] = value
        # values that may hold spaces (file names) or must not be confused by them
        m = re.search(r"\bFile:\s*(.*?)\s+Size:\s*(\d+)", text)
        if m:
            pairs["File"], pairs["Size"] = m.group(1), m.group(2)
        m = re.search(r"\bSize:\s*(\d+)", text)
        if m:
            pairs["Size"] = m.group(1)
        m = re.search(r"PAGES/PAGE_SIZE:\s*(\d+\*\d+)", text)
        if m:
            pairs["PAGES/PAGE_SIZE"] = m.group(1)
        pairs["_raw"] = text
        return pairs

    def attr(self, group: str, name: str) -> str | None:
        return configfs.read(f"{self.path}/{group}/{name}")

    @cached_property
    def enabled(self) -> bool:
        return configfs.read(self.path + "/enable") == "1"

    @cached_property
    def udev_path(self) -> str:
        return configfs.read(self.path + "/udev_path", "") or self.kind.device(self)

    @cached_property
    def size(self) -> int:
        """Bytes, from what the kernel reports for its kind."""
        try:
            return self.kind.size(self)
        except ValueError:
            return 0

    @cached_property
    def wwn(self) -> str:
        v = configfs.read(self.path + "/wwn/vpd_unit_serial", "") or ""
        return v.partition(":")[2].strip()

    @cached_property
    def write_back(self) -> bool:
        return self.attr("attrib", "emulate_write_cache") == "1"

    @cached_property
    def user_config(self) -> str:
        """user backstores: 'subtype/cfgstring' as written to dev_config."""
        text = self.info.get("_raw", "")
        m = re.search(r"\bConfig(?:String)?:\s*(\S+)", text)
        return m.group(1) if m else ""

    @cached_property
    def alua_tpgs(self) -> list[str]:
        return sorted(e.name for e in _entries(self.path + "/alua") if e.is_dir(follow_symlinks=False))

    def to_json(self) -> dict:
        d = {"name": self.name, "plugin": self.plugin, "path": self.tree_path,
             "dev": self.udev_path or None, "size": self.size, "wwn": self.wwn,
             "enabled": self.enabled,
             "luns": [lun.tree_path for lun in self.luns]}
        d.update(self.kind.json(self))
        return d


@dataclass(eq=False)
class Lun:
    tpg: "TPG"
    index: int
    path: str
    alias: str | None = None
    so_path: str | None = None
    storage_object: StorageObject | None = None

    @property
    def tree_path(self) -> str:
        return f"{self.tpg.tree_path}/luns/lun{self.index}"

    @cached_property
    def alua_tg_pt_gp(self) -> str:
        v = configfs.read(self.path + "/alua_tg_pt_gp", "") or ""
        m = re.search(r"TG Port Alias:\s*(\S+)", v)
        return m.group(1) if m else ""

    def to_json(self) -> dict:
        so = self.storage_object
        return {"index": self.index, "storage_object": so.tree_path if so else None,
                "alias": self.alias}


@dataclass(eq=False)
class MappedLun:
    acl: "NodeACL"
    index: int
    path: str
    tpg_lun: int | None = None
    alias: str | None = None

    @property
    def tree_path(self) -> str:
        return f"{self.acl.tree_path}/mapped_lun{self.index}"

    @cached_property
    def write_protect(self) -> bool:
        return configfs.read(self.path + "/write_protect") == "1"

    def to_json(self) -> dict:
        return {"index": self.index, "tpg_lun": self.tpg_lun, "write_protect": self.write_protect}


@dataclass(eq=False)
class NodeACL:
    tpg: "TPG"
    wwn: str
    path: str

    @property
    def tree_path(self) -> str:
        return f"{self.tpg.tree_path}/acls/{self.wwn}"

    @cached_property
    def mapped_luns(self) -> dict[int, MappedLun]:
        """Read when first asked: the large configuration has 4,096 of them (three system calls
        each), and creating an ACL or a LUN elsewhere, or deleting one target, needs none or few."""
        out = {}
        for me in _entries(self.path):
            if me.name.startswith("lun_") and me.is_dir(follow_symlinks=False):
                ml = MappedLun(self, int(me.name[4:]), me.path)
                try:
                    dfd = os.open(me.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    continue    # gone while we looked
                try:            # the link, relative to the open directory
                    with os.scandir(dfd) as it:
                        for link in it:
                            if link.is_symlink():
                                ml.alias = link.name
                                target = os.path.basename(os.path.normpath(os.readlink(link.name, dir_fd=dfd)))
                                if target.startswith("lun_"):
                                    ml.tpg_lun = int(target[4:])
                except OSError:
                    pass
                finally:
                    os.close(dfd)
                out[ml.index] = ml
        return dict(sorted(out.items()))

    @cached_property
    def tag(self) -> str | None:
        v = configfs.read(self.path + "/tag")
        return v or None

    def to_json(self, secrets: bool = False) -> dict:
        d = {"node_wwn": self.wwn, "tag": self.tag,
             "mapped_luns": [m.to_json() for m in self.mapped_luns.values()]}
        if self.tpg.target.fabric.has("auth"):
            d["auth"] = auth_json(self.path + "/auth", secrets)
        return d


@dataclass(eq=False)
class Portal:
    tpg: "TPG"
    name: str  # as configfs names it: 1.2.3.4:3260 or [::1]:3260
    path: str

    @property
    def ip(self) -> str:
        return self.name.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.name.rsplit(":", 1)[1])

    @property
    def tree_path(self) -> str:
        return f"{self.tpg.tree_path}/portals/{self.name}"

    @cached_property
    def iser(self) -> bool:
        return configfs.read(self.path + "/iser") == "1"

    @cached_property
    def offload(self) -> bool:
        return configfs.read(self.path + "/cxgbit") == "1"

    def to_json(self) -> dict:
        return {"ip_address": self.ip, "port": self.port, "iser": self.iser, "offload": self.offload}


@dataclass(eq=False)
class TPG:
    target: "Target"
    tag: int
    path: str
    luns: dict[int, Lun] = field(default_factory=dict)
    acls: dict[str, NodeACL] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)

    @property
    def tree_path(self) -> str:
        if self.target.fabric.has("tpgts"):
            return f"{self.target.tree_path}/tpg{self.tag}"
        return self.target.tree_path

    @cached_property
    def enabled(self) -> bool:
        v = configfs.read(self.path + "/enable")
        return v is None or v == "1"  # fabrics without 'enable' are always on

    @cached_property
    def nexus(self) -> str | None:
        v = configfs.read(self.path + "/nexus")
        return v or None

    def to_json(self, secrets: bool = False) -> dict:
        d = {"tag": self.tag, "enabled": self.enabled,
             "luns": [lun.to_json() for lun in self.luns.values()]}
        fab = self.target.fabric
        if fab.has("nps"):
            d["portals"] = [p.to_json() for p in self.portals.values()]
        if fab.has("acls"):
            d["acls"] = [a.to_json(secrets) for a in self.acls.values()]
        if fab.has("nexus"):
            d["nexus"] = self.nexus
        if fab.has("auth"):
            d["auth"] = auth_json(self.path + "/auth", secrets)
        return d


@dataclass(eq=False)
class Target:
    fabric: "Fabric"
    wwn: str  # as configfs names it
    path: str
    tpgs: dict[int, TPG] = field(default_factory=dict)

    @property
    def tree_path(self) -> str:
        return f"/{self.fabric.name}/{self.fabric.spec.display_wwn(self.wwn)}"

    def to_json(self, secrets: bool = False) -> dict:
        return {"wwn": self.fabric.spec.display_wwn(self.wwn), "fabric": self.fabric.name,
                "tpgs": [t.to_json(secrets) for t in self.tpgs.values()]}


@dataclass(eq=False)
class Fabric:
    name: str
    path: str
    targets: dict[str, Target] = field(default_factory=dict)

    @cached_property
    def spec(self):
        return spec_for(self.name, self.path)

    def has(self, feature: str) -> bool:
        return feature in self.spec.features

    def to_json(self, secrets: bool = False) -> dict:
        d = {"name": self.name, "targets": [t.to_json(secrets) for t in self.targets.values()]}
        if self.has("discovery_auth"):
            d["discovery_auth"] = auth_json(self.path + "/discovery_auth", secrets)
        return d


SECRET_KEYS = ("password", "password_mutual")


def auth_json(path: str, secrets: bool) -> dict:
    d = configfs.read_group(path)
    for k in SECRET_KEYS:
        if k in d and d[k] and not secrets:
            d[k] = "********"
    return d


@dataclass
class Snapshot:
    storage_objects: dict[tuple[str, str], StorageObject] = field(default_factory=dict)
    fabrics: dict[str, Fabric] = field(default_factory=dict)
    mounted: bool = True

    def so(self, plugin: str, name: str) -> StorageObject | None:
        return self.storage_objects.get((plugin, name))

    def targets(self):
        for fab in self.fabrics.values():
            yield from fab.targets.values()

    def to_json(self, secrets: bool = False) -> dict:
        return {"storage_objects": [so.to_json() for so in self.storage_objects.values()],
                "fabrics": [f.to_json(secrets) for f in self.fabrics.values()]}


def read(root: str | None = None) -> Snapshot:
    """One pass over configfs: directories and links only; values (and an ACL's mapped LUNs)
    are read when asked."""
    root = root or configfs.ROOT
    snap = Snapshot(mounted=os.path.isdir(root))
    if not snap.mounted:
        return snap
    by_path: dict[str, StorageObject] = {}
    for hba in sorted(_entries(root + "/core"), key=lambda e: _natural(e.name)):
        prefix, _, idx = hba.name.rpartition("_")
        if hba.name == "alua" or not idx.isdigit() or prefix not in BY_HBA:
            continue
        plugin = BY_HBA[prefix].name
        for so in _entries(hba.path):
            if so.is_dir(follow_symlinks=False):
                obj = StorageObject(plugin, hba.name, so.name, so.path)
                snap.storage_objects.setdefault((plugin, so.name), obj)
                by_path[so.path] = obj
    snap.storage_objects = dict(sorted(snap.storage_objects.items()))
    for fe in sorted(_entries(root), key=lambda e: e.name):
        if fe.name in NOT_FABRICS or not fe.is_dir(follow_symlinks=False):
            continue
        fab = Fabric(fe.name, fe.path)
        snap.fabrics[fe.name] = fab
        for te in sorted(_entries(fe.path), key=lambda e: e.name):
            if not te.is_dir(follow_symlinks=False) or te.name == "discovery_auth":
                continue
            tgt = Target(fab, te.name, te.path)
            fab.targets[te.name] = tgt
            for pe in _entries(te.path):
                if pe.name.startswith("tpgt_") and pe.is_dir(follow_symlinks=False):
                    tpg = TPG(tgt, int(pe.name[5:]), pe.path)
                    tgt.tpgs[tpg.tag] = tpg
                    _read_tpg(tpg, by_path)
            tgt.tpgs = dict(sorted(tgt.tpgs.items()))
    return snap


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _link_target(link: str) -> str:
    """Where a configfs link points, by one readlink (realpath costs a syscall per component:
    most of a large `ls`). configfs dirs are never symlinks, so normpath is exact, and the
    result is spelled under the same root as the storage objects' paths."""
    try:
        t = os.readlink(link)
    except OSError:
        return ""
    return os.path.normpath(os.path.join(os.path.dirname(link), t))


def _read_tpg(tpg: TPG, by_path: dict[str, StorageObject]) -> None:
    for le in _entries(tpg.path + "/lun"):
        if not le.name.startswith("lun_"):
            continue
        lun = Lun(tpg, int(le.name[4:]), le.path)
        for link in _entries(le.path):
            if link.is_symlink():
                lun.alias = link.name
                lun.so_path = _link_target(link.path)
                lun.storage_object = by_path.get(lun.so_path)
                if lun.storage_object:
                    lun.storage_object.luns.append(lun)
        tpg.luns[lun.index] = lun
    tpg.luns = dict(sorted(tpg.luns.items()))
    for ne in _entries(tpg.path + "/np"):
        if ne.is_dir(follow_symlinks=False):
            tpg.portals[ne.name] = Portal(tpg, ne.name, ne.path)
    tpg.portals = dict(sorted(tpg.portals.items()))
    for ae in _entries(tpg.path + "/acls"):
        if not ae.is_dir(follow_symlinks=False):
            continue
        tpg.acls[ae.name] = NodeACL(tpg, ae.name, ae.path)
    tpg.acls = dict(sorted(tpg.acls.items()))
