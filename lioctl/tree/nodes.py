"""targetcli's paths and verbs over the snapshot: one Node class per kind of object.

A command is a method `ui_<verb>`; its signature is the grammar (positional and key=value
parameters), its docstring the help. Reads return a Result with data (--json) and text;
writes return a Result with a Plan that the CLI runs under the write lock.
"""

from __future__ import annotations

import glob
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from lioctl import configfs
from lioctl.errors import LioError, UsageError
from lioctl.grammar import usage
from lioctl.plan import Plan
from lioctl.tree import backstores as bs, sessions, targets as tg
from lioctl.tree.fabrics import KNOWN, loaded_fabrics
from lioctl.tree.params import normalize_value
from lioctl.tree.snapshot import (SECRET_KEYS, TPG, Fabric, Lun, MappedLun, NodeACL, Portal,
                                  Snapshot, StorageObject, Target, read_group)
from lioctl.units import human, parse_bool


@dataclass
class Result:
    data: Any = None
    text: str | None = None
    plan: Plan | None = None
    message: str | None = None
    after: Callable[[], None] | None = None
    tree: Any = None  # a node to render as a tree (ls)
    depth: int | None = None


@dataclass
class Context:
    snap: Snapshot
    prefs: dict = field(default_factory=dict)
    force: bool = False
    show_secrets: bool = False

    def pref(self, name: str, default=True):
        return self.prefs.get(name, default)


def writes(fn):
    fn.writes = True
    return fn


def _b(v, what) -> bool:
    return v if isinstance(v, bool) else parse_bool(v, what)


class Node:
    kind = "node"

    def __init__(self, ctx: Context, parent: "Node | None", name: str):
        self.ctx = ctx
        self.parent = parent
        self.name = name

    # ---- tree structure
    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        pp = self.parent.path
        return (pp if pp.endswith("/") else pp + "/") + self.name

    def children(self) -> list["Node"]:
        return []

    def child(self, name: str) -> "Node | None":
        for c in self.children():
            if c.name == name:
                return c
        low = name.lower()
        for c in self.children():
            if c.name.lower() == low:
                return c
        return None

    def summary(self) -> tuple[str, bool | None]:
        return "", None

    # ---- config groups for get/set: name -> configfs dir
    def groups(self) -> dict[str, str]:
        return {}

    def group_values(self, group: str) -> dict[str, str]:
        d = read_group(self.groups()[group])
        if group in ("auth", "discovery_auth") and not self.ctx.show_secrets:
            for k in SECRET_KEYS:
                if d.get(k):
                    d[k] = "********"
        return d

    # ---- commands
    @classmethod
    def command_names(cls) -> list[str]:
        return sorted(n[3:] for n in dir(cls) if n.startswith("ui_"))

    def command(self, name: str):
        fn = getattr(self, "ui_" + name, None)
        if fn is None:
            raise UsageError(f"{self.path}: no command {name!r} here (try: {', '.join(self.command_names())})")
        return fn

    def ui_ls(self, path: str | None = None, depth: str | None = None):
        """List this node (or PATH) and its children as a tree, DEPTH levels deep.
        Example: ls
        Example: ls /iscsi 2"""
        node = resolve(self, path) if path else self
        d = None
        if depth is not None:
            if not str(depth).isdigit():
                raise UsageError(f"ls: depth {depth!r} is not a number")
            d = int(depth)
        return Result(data=to_json_tree(node, d), tree=node, depth=d)

    def info_data(self) -> dict:
        return {"path": self.path, "kind": self.kind, "summary": self.summary()[0]}

    def ui_info(self):
        """Show what this object is and its main settings.
        Example: info
        Example: /backstores/fileio/disk1 info"""
        d = self.info_data()
        text = "\n".join(f"{k}: {_fmt(v)}" for k, v in d.items())
        return Result(data=d, text=text)

    def ui_status(self):
        """One line: this object's state.
        Example: status
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 status"""
        text, ok = self.summary()
        return Result(data={"path": self.path, "status": text, "ok": ok}, text=f"{self.path}: {text}")

    def ui_get(self, group: str | None = None, *names: str):
        """Show configuration GROUP values (attribute, parameter, auth...); all groups if none.
        Example: get
        Example: /backstores/fileio/disk1 get attribute block_size emulate_write_cache"""
        gs = self.groups()
        if group is None:
            data = {g: self.group_values(g) for g in gs}
            return Result(data=data, text=_fmt_groups(data))
        if group not in gs:
            raise UsageError(f"{self.path}: no group {group!r} here"
                             + (f" (groups: {', '.join(gs)})" if gs else " (it has no settings)"))
        vals = self.group_values(group)
        for n in names:
            if n not in vals:
                raise LioError(f"{self.path}: {group} has no {n!r}")
        if names:
            vals = {n: vals[n] for n in names}
        return Result(data={group: vals}, text=_fmt_groups({group: vals}))

    @writes
    def ui_set(self, group: str, **values: str):
        """Set NAME=VALUE pairs in configuration GROUP.

        CHAP secrets stay out of argv with password=- (standard input, or asked on a terminal)
        or password_file=FILE (same for password_mutual), e.g.
        set auth userid=alice password_file=/root/alice.chap

        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 set attribute generate_node_acls=1 demo_mode_write_protect=0
        Example: /backstores/fileio/disk1 set attribute emulate_tpu=1"""
        gs = self.groups()
        if group not in gs:
            raise UsageError(f"{self.path}: no group {group!r} here"
                             + (f" (groups: {', '.join(gs)})" if gs else ""))
        if not values:
            raise UsageError(f"set {group}: give NAME=VALUE pairs")
        gdir = gs[group]
        existing = set(os.listdir(gdir))
        plan = Plan()
        for k, v in values.items():
            if k not in existing:
                raise LioError(f"{self.path}: {group} has no {k!r}")
            if not os.access(f"{gdir}/{k}", os.W_OK) or (os.stat(f"{gdir}/{k}").st_mode & 0o222) == 0:
                raise LioError(f"{self.path}: {group} {k} is read-only")
            plan.write(f"{gdir}/{k}", normalize_value(k, str(v)), secret=k in SECRET_KEYS)
        shown = ", ".join(f"{k}={'********' if k in SECRET_KEYS else v}" for k, v in values.items())
        return Result(plan=plan, message=f"{self.path}: set {group} {shown}")

    def help_target(self, command: str):
        """The function whose signature and docstring describe COMMAND here."""
        return self.command(command)

    def ui_help(self, command: str | None = None):
        """Show the commands available here, or one command's parameters and examples.
        Example: help
        Example: /backstores/fileio help create"""
        if command:
            fn = self.help_target(command)
            u = usage(command, fn)
            doc, examples = split_doc(inspect.getdoc(fn) or "")
            text = f"{u}\n" + "".join(f"  {ln}\n" for ln in doc.splitlines())
            if examples:
                text += "  Examples:\n" + "".join(f"    {e}\n" for e in examples)
            return Result(data={"command": command, "path": self.path, "usage": u, "help": doc,
                                "examples": examples}, text=text)
        rows = [(n, first_sentence(split_doc(inspect.getdoc(self.help_target(n)) or "")[0]))
                for n in self.command_names()]
        lines = []
        for n, d in rows:
            u = usage(n, self.help_target(n))
            lines += [f"  {u:<40} {d}"] if len(u) <= 40 else [f"  {u}", f"  {'':<40} {d}"]
        text = "\n".join(lines)
        return Result(data={"path": self.path, "commands": dict(rows)},
                      text=f"Commands at {self.path} (help COMMAND, or COMMAND --help, for "
                           f"its parameters and examples):\n{text}")

    def ui_pwd(self):
        """Print the current path.
        Example: pwd"""
        return Result(data={"path": self.path}, text=self.path)

    def ui_refresh(self):
        """Re-read the configuration from configfs, as targetcli's refresh does. lioctl reads it
        afresh for every command (the shell after every command too), so this only shows what
        is there now, e.g. after another tool changed it.
        Example: refresh"""
        from lioctl.tree import snapshot
        snap = self.ctx.snap = snapshot.read()
        node = resolve(Root(self.ctx), self.path)
        counts = {"storage_objects": len(snap.storage_objects),
                  "targets": sum(1 for _ in snap.targets()), "children": len(node.children())}
        return Result(data={"path": self.path, **counts},
                      text=f"{self.path}: re-read configfs: {counts['storage_objects']} storage "
                           f"object(s), {counts['targets']} target(s); {counts['children']} here")


def split_doc(doc: str) -> tuple[str, list[str]]:
    """A command's docstring: its text, and the commands of its `Example:` lines."""
    text, examples = [], []
    for line in doc.splitlines():
        if line.startswith("Example:"):
            examples.append(line.removeprefix("Example:").strip())
        else:
            text.append(line)
    return "\n".join(text).strip(), examples


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[:end + 1]


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "-"
    return "-" if v is None else str(v)


def _fmt_groups(data: dict) -> str:
    out = []
    for g, vals in data.items():
        out.append(f"{g.upper()}:")
        out += [f"  {k}={v}" for k, v in vals.items()] or ["  (none)"]
    return "\n".join(out)


def to_json_tree(node: Node, depth: int | None = None) -> dict:
    text, ok = node.summary()
    d = {"name": node.name, "path": node.path, "summary": text, "ok": ok}
    if depth is None or depth > 0:
        d["children"] = [to_json_tree(c, None if depth is None else depth - 1) for c in node.children()]
    return d


def resolve(start: Node, path: str) -> Node:
    """Absolute or relative path, '..' and '.' as in targetcli; error names the missing part."""
    node = start
    if path.startswith("/"):
        while node.parent is not None:
            node = node.parent
    for part in [p for p in path.split("/") if p]:
        if part == ".":
            continue
        if part == "..":
            node = node.parent or node
            continue
        nxt = node.child(part)
        if nxt is None:
            where = node.path
            raise LioError(f"no such path: {path} ({part!r} not found under {where})")
        node = nxt
    return node


# ---------------------------------------------------------------- root & backstores

class Root(Node):
    kind = "root"

    def __init__(self, ctx: Context):
        super().__init__(ctx, None, "")

    def children(self):
        out = [Backstores(self.ctx, self, "backstores")]
        names = set(loaded_fabrics()) | {"iscsi", "loopback", "vhost"}
        for n, spec in KNOWN.items():
            if spec.wwns_from and spec.hardware_wwns():
                names.add(n)
        for n in sorted(names):
            fab = self.ctx.snap.fabrics.get(n) or Fabric(n, f"{configfs.ROOT}/{n}")
            out.append(FabricNode(self.ctx, self, n, fab))
        return out

    def summary(self):
        return ("configfs not mounted" if not self.ctx.snap.mounted else ""), None

    def ui_version(self):
        """Show lioctl's and the kernel target's versions.
        Example: version"""
        from lioctl import __version__
        kv = configfs.read(configfs.ROOT + "/version", "not loaded")
        return Result(data={"lioctl": __version__, "kernel_target": kv},
                      text=f"lioctl {__version__}\nkernel: {kv}")

    def ui_sessions(self, action: str = "list", sid: str | None = None):
        """List logged-in initiator sessions (ACL and demo-mode): sessions [list|detail] [SID].
        Example: sessions
        Example: sessions detail"""
        if action not in ("list", "detail"):
            raise UsageError(f"sessions: {action!r} is not list or detail")
        found = sessions.collect(self.ctx.snap, action == "detail", sid)
        return Result(data=found, text=sessions.text(found, action == "detail"))


class Backstores(Node):
    kind = "backstores"

    def children(self):
        return [BackstoreKind(self.ctx, self, p) for p in bs.PLUGINS] + \
            [UserHandlerKind(self.ctx, self, f"user:{h}") for h in user_handlers(self.ctx.snap)]

    def child(self, name: str):
        if name in bs.PLUGINS:  # the usual case, without looking for TCMU handlers
            return BackstoreKind(self.ctx, self, name)
        found = super().child(name)
        if found is None and name.startswith("user:"):
            from lioctl.tcmu import config as tcmu_config
            if name[5:] in tcmu_config.SUBTYPES + tcmu_config.TCMU_RUNNER_SUBTYPES:
                return UserHandlerKind(self.ctx, self, name)
        return found


class BackstoreKind(Node):
    kind = "backstore-kind"

    def objects(self) -> list[StorageObject]:
        return [so for so in self.ctx.snap.storage_objects.values() if so.plugin == self.name]

    def children(self):
        return [StorageObjectNode(self.ctx, self, so.name, so) for so in self.objects()]

    def summary(self):
        return f"Storage Objects: {len(self.objects())}", None

    def help_target(self, command: str):
        if command == "create" and type(self).ui_create is BackstoreKind.ui_create:
            return self._creator()  # create dispatches on the kind: that kind's parameters
        return super().help_target(command)

    def _creator(self):
        return {"fileio": self._create_fileio, "block": self._create_block,
                "ramdisk": self._create_ramdisk, "pscsi": self._create_pscsi,
                "user": self._create_user}[self.name]

    def ui_create(self, *args, **kw):
        """Create a storage object of this kind; `help create` here gives its parameters.
        Example: /backstores/fileio create disk1 /srv/disk1.img 10G
        Example: /backstores/ramdisk create rd1 1G"""
        fn = self._creator()
        try:
            sig = inspect.signature(fn).bind(*args, **kw)
        except TypeError as e:
            msg = str(e).replace("got an unexpected keyword argument", "unknown parameter")
            raise UsageError(f"{self.path} create: {msg}; usage: {usage('create', fn)}") from None
        return fn(*sig.args, **sig.kwargs)
    ui_create.writes = True

    def _model_alias(self):
        return bool(self.ctx.pref("export_backstore_name_as_model", True))

    def _create_fileio(self, name, file_or_dev, size=None, write_back="true", sparse="true", wwn=None):
        """Create fileio storage object NAME on FILE_OR_DEV: a file (created sparse with SIZE
        when missing; SIZE takes K, M, G, T) or a block device. write_back=false for
        write-through; sparse=false allocates the whole file.
        Example: /backstores/fileio create disk1 /srv/disk1.img 10G
        Example: /backstores/fileio create disk2 /srv/disk2.img 1G write_back=false"""
        plan = bs.plan_fileio(self.ctx.snap, name, file_or_dev, size, _b(write_back, "write_back"),
                              _b(sparse, "sparse"), wwn, self._model_alias())
        return Result(plan=plan, message=f"Created fileio {name} with file {file_or_dev}")

    def _create_block(self, name, dev, readonly=None, wwn=None, exclusive=None):
        """Create block storage object NAME on block device DEV (read-only devices are
        detected; readonly=true forces it); exclusive=false shares the device with other
        openers (Linux 6.17+).
        Example: /backstores/block create disk1 /dev/sdb
        Example: /backstores/block create vol1 /dev/vg0/vol1 readonly=true
        Example: /backstores/block create b1 /dev/sdb exclusive=false"""
        plan = bs.plan_block(self.ctx.snap, name, dev, None if readonly is None else _b(readonly, "readonly"),
                             wwn, self._model_alias(),
                             exclusive=None if exclusive is None else _b(exclusive, "exclusive"))
        return Result(plan=plan, message=f"Created block storage object {name} using {dev}")

    def _create_ramdisk(self, name, size, nullio="false", wwn=None):
        """Create ramdisk storage object NAME of SIZE in kernel memory (nullio=true: no memory,
        writes are discarded).
        Example: /backstores/ramdisk create rd1 1G
        Example: /backstores/ramdisk create null1 10G nullio=true"""
        plan = bs.plan_ramdisk(self.ctx.snap, name, size, _b(nullio, "nullio"), wwn, self._model_alias())
        return Result(plan=plan, message=f"Created ramdisk {name} with size {size}")

    def _create_pscsi(self, name, dev):
        """Create pscsi (SCSI pass-through) storage object NAME for DEV: a /dev/sdX-style
        device or its H:C:T:L address.
        Example: /backstores/pscsi create tape0 /dev/st0
        Example: /backstores/pscsi create disk3 2:0:0:0"""
        return Result(plan=bs.plan_pscsi(self.ctx.snap, name, dev),
                      message=f"Created pscsi storage object {name} using {dev}")

    def _create_user(self, name, size, cfgstring, subtype=None, wwn=None, hw_max_sectors=None,
                     write_back=None, control=None):
        """Create user (TCMU) storage object NAME of SIZE. CFGSTRING is the handler's
        configuration; subtype picks the handler (lioctl_file by default: CFGSTRING is a file or
        block device, a missing file is created sparse; lioctl_ram; or a tcmu-runner handler);
        control= is targetcli's string for the kernel's control file.
        Example: /backstores/user create disk1 10G /srv/disk1.img
        Example: /backstores/user create rbd1 10G rbd/pool/image subtype=rbd
        Example: /backstores/user create u1 1G /srv/u1.img control=max_data_area_mb=64"""
        plan = bs.plan_user(self.ctx.snap, name, size, cfgstring, subtype, wwn,
                            int(hw_max_sectors) if hw_max_sectors else None, self._model_alias(),
                            write_back=True if write_back is None else _b(write_back, "write_back"),
                            control=control)
        return Result(plan=plan, message=f"Created user storage object {name} size {size}")

    @writes
    def ui_delete(self, name: str, save: str | None = None):
        """Delete storage object NAME (refused while a LUN uses it, unless --force); save=true
        also drops it (and the LUNs on it) from the saved configuration, as targetcli's does.
        Example: /backstores/fileio delete disk1
        Example: /backstores/fileio delete disk1 save=true"""
        so = self.ctx.snap.so(self.name.split(":")[0], name)
        if so is None or so not in self.objects():
            raise LioError(f"backstore {self.name}/{name} does not exist")
        result = Result(plan=bs.plan_delete(self.ctx.snap, so, self.ctx.force),
                        message=f"Deleted storage object {name}.")
        if save is not None and _b(save, "save"):
            result.after = lambda: _forget_saved(so, self.ctx)
        return result


TCMU_RUNNER_HANDLER_DIRS = ("/usr/lib*/tcmu-runner", "/usr/lib/*/tcmu-runner", "/usr/local/lib*/tcmu-runner")


def user_handlers(snap: Snapshot) -> list[str]:
    """The user:HANDLER nodes targetcli would show (it asks tcmu-runner over D-Bus): lioctl's own
    subtypes, tcmu-runner's installed handlers, and any subtype a user backstore uses."""
    from lioctl.tcmu import config as tcmu_config
    names = set(tcmu_config.SUBTYPES)
    for d in TCMU_RUNNER_HANDLER_DIRS:
        for so_file in glob.glob(f"{d}/handler_*.so"):
            names.add(os.path.basename(so_file)[len("handler_"):-len(".so")])
    for so in snap.storage_objects.values():
        if so.plugin == "user" and so.user_config:
            names.add(so.user_config.split("/", 1)[0])
    return sorted(names)


class UserHandlerKind(BackstoreKind):
    """/backstores/user:HANDLER, targetcli's view of the user backstores of one TCMU handler."""
    kind = "backstore-kind"

    @property
    def handler(self) -> str:
        return self.name.split(":", 1)[1]

    def objects(self):
        return [so for so in self.ctx.snap.storage_objects.values()
                if so.plugin == "user" and (so.user_config or "").split("/", 1)[0] == self.handler]

    @writes
    def ui_create(self, name: str, size: str, cfgstring: str, wwn: str | None = None,
                  hw_max_sectors: str | None = None, control: str | None = None,
                  write_back: str | None = None):
        """Create a user backstore served by this handler: CFGSTRING is the handler's config,
        control= targetcli's control-file string.
        Example: /backstores/user:lioctl_file create u1 1G /srv/u1.img control=max_data_area_mb=64"""
        return self._create_user(name, size, cfgstring, self.handler, wwn, hw_max_sectors,
                                 write_back, control)

    @writes
    def ui_changemedium(self, name: str, size: str, cfgstring: str):
        """Give user backstore NAME another medium (CFGSTRING) and SIZE while it stays exported,
        as targetcli's changemedium does: the kernel passes the change to the handler serving
        it (a RECONFIG event).
        Example: /backstores/user:lioctl_file changemedium u1 2G /srv/other.img"""
        from lioctl.tcmu import config as tcmu_config
        from lioctl.units import parse_size
        so = self.ctx.snap.so("user", name)
        if so is None or so not in self.objects():
            raise LioError(f"backstore {self.name}/{name} does not exist")
        size_bytes = parse_size(size)
        others = [o.user_config for o in self.ctx.snap.storage_objects.values()
                  if o.plugin == "user" and o is not so]
        tcmu_config.validate(self.handler, cfgstring, size_bytes, others)
        plan = bs.plan_change_medium(so, self.handler, cfgstring, size_bytes)
        return Result(plan=plan, message=f"{self.path}/{name}: medium {cfgstring}, size {size}"
                      if plan else f"{self.path}/{name} already has that medium and size")


def _forget_saved(so: StorageObject, ctx: Context) -> None:
    """After `delete NAME save=true`: the saved configuration without that object, the LUNs on
    it and the mapped LUNs to those; the rest of the file is kept as it is (rtslib drops the
    whole target that had such a LUN). Backups rotate as with save."""
    import json
    import sys
    from lioctl.saveconfig import store
    ref = f"/backstores/{so.plugin}/{so.name}"
    try:
        with open(store.DEFAULT) as f:
            config = json.load(f)
    except FileNotFoundError:
        print(f"lioctl: note: no {store.DEFAULT} to drop {ref} from", file=sys.stderr)
        return
    except (OSError, ValueError) as e:
        raise LioError(f"{store.DEFAULT}: cannot update it: {e}") from None
    config["storage_objects"] = [s for s in config.get("storage_objects", [])
                                 if (s.get("plugin"), s.get("name")) != (so.plugin, so.name)]
    for t in config.get("targets", []):
        for tpg in t.get("tpgs", []):
            gone = {lw.get("index") for lw in tpg.get("luns", []) if lw.get("storage_object") == ref}
            tpg["luns"] = [lw for lw in tpg.get("luns", []) if lw.get("index") not in gone]
            for acl in tpg.get("node_acls", []):
                acl["mapped_luns"] = [m for m in acl.get("mapped_luns", []) if m.get("tpg_lun") not in gone]
    store.save(config, store.DEFAULT, int(ctx.pref("backup_count", 10)))


class StorageObjectNode(Node):
    kind = "storage-object"

    def __init__(self, ctx, parent, name, so: StorageObject):
        super().__init__(ctx, parent, name)
        self.so = so

    def children(self):
        return [AluaNode(self.ctx, self, "alua")]

    def summary(self):
        so = self.so
        parts = []
        if so.plugin in ("fileio", "block", "pscsi"):
            parts.append(so.udev_path or "?")
        if so.plugin == "user":
            parts.append(so.user_config)
        parts.append(f"({human(so.size)})" if so.size else "")
        if so.plugin == "fileio":
            parts.append("write-back" if so.write_back else "write-thru")
        if so.plugin == "block" and so.readonly:
            parts.append("ro")
        parts.append("activated" if so.luns else "deactivated")
        return " ".join(p for p in parts if p), bool(so.enabled)

    def groups(self):
        return {"attribute": self.so.path + "/attrib", "wwn": self.so.path + "/wwn",
                "pr": self.so.path + "/pr"}

    def info_data(self):
        d = self.so.to_json()
        d["hba"] = self.so.hba
        return d


class AluaNode(Node):
    kind = "alua"

    def children(self):
        so = self.parent.so
        return [TgPtGpNode(self.ctx, self, n) for n in so.alua_tpgs]

    def summary(self):
        return f"ALUA Groups: {len(self.parent.so.alua_tpgs)}", None

    @writes
    def ui_create(self, name: str, tag: str):
        """Create ALUA target port group NAME with numeric TAG.
        Example: /backstores/fileio/disk1/alua create ao_group 2"""
        from lioctl.names import check_object_name
        check_object_name(name, "ALUA group name")
        if name in self.parent.so.alua_tpgs:
            raise LioError(f"ALUA group {name} already exists on {self.parent.path}")
        if not tag.isdigit() or not 1 <= int(tag) <= 65535:
            raise LioError(f"ALUA group tag {tag!r} is not in 1-65535")
        plan = Plan()
        p = f"{self.parent.so.path}/alua/{name}"
        plan.mkdir(p)
        plan.write(f"{p}/tg_pt_gp_id", tag, undoable=False)
        return Result(plan=plan, message=f"Created ALUA group {name} with tag {tag}")

    @writes
    def ui_delete(self, name: str):
        """Delete ALUA target port group NAME.
        Example: /backstores/fileio/disk1/alua delete ao_group"""
        if name == "default_tg_pt_gp":
            raise LioError("the default ALUA group cannot be deleted")
        if name not in self.parent.so.alua_tpgs:
            raise LioError(f"no ALUA group {name} on {self.parent.path}")
        plan = Plan()
        plan.rmdir(f"{self.parent.so.path}/alua/{name}")
        return Result(plan=plan, message=f"Deleted ALUA group {name}")


class TgPtGpNode(Node):
    kind = "alua-tpg"

    def groups(self):
        return {"alua": f"{self.parent.parent.so.path}/alua/{self.name}"}

    def summary(self):
        v = configfs.read(self.groups()["alua"] + "/tg_pt_gp_id", "?")
        return f"ALUA group tag {v}", None


# ---------------------------------------------------------------- fabrics

class FabricNode(Node):
    kind = "fabric"

    def __init__(self, ctx, parent, name, fabric: Fabric):
        super().__init__(ctx, parent, name)
        self.fabric = fabric

    def children(self):
        return [TargetNode(self.ctx, self, self.fabric.spec.display_wwn(t.wwn), t)
                for t in self.fabric.targets.values()]

    def summary(self):
        n = len(self.fabric.targets)
        extra = ""
        if self.fabric.has("discovery_auth") and os.path.isdir(self.fabric.path + "/discovery_auth"):
            on = configfs.read(self.fabric.path + "/discovery_auth/enforce_discovery_auth") == "1"
            extra = ", discovery auth on" if on else ""
        if self.fabric.spec.wwns_from and not configfs.module_loaded(self.fabric.spec.module or ""):
            if self.fabric.spec.hardware_wwns():
                extra += f", ports found but module {self.fabric.spec.module} not loaded"
        return f"Targets: {n}{extra}", None

    def groups(self):
        if self.fabric.has("discovery_auth") and os.path.isdir(self.fabric.path + "/discovery_auth"):
            return {"discovery_auth": self.fabric.path + "/discovery_auth"}
        return {}

    def info_data(self):
        d = {"path": self.path, "fabric": self.name, "module": self.fabric.spec.module,
             "features": sorted(self.fabric.spec.features), "wwn_types": list(self.fabric.spec.wwn_types),
             "known": self.fabric.spec.known, "targets": len(self.fabric.targets)}
        if self.fabric.spec.wwns_from:
            d["hardware_wwns"] = self.fabric.spec.hardware_wwns()
        return d

    @writes
    def ui_create(self, wwn: str | None = None):
        """Create a target; the WWN is generated when omitted (iSCSI: iqn/naa/eui).
        Example: /iscsi create iqn.2003-01.org.example:t1
        Example: /loopback create"""
        spec = self.fabric.spec
        if spec.wwns_from and spec.module and not configfs.module_loaded(spec.module) \
                and spec.hardware_wwns():
            raise LioError(f"{self.name}: ports exist but target-mode module {spec.module} is not "
                           f"loaded (modprobe {spec.module})")
        plan, w = tg.plan_target(self.ctx.snap, self.name, wwn,
                                 default_portal=bool(self.ctx.pref("auto_add_default_portal", True)),
                                 enable=bool(self.ctx.pref("auto_enable_tpgt", True)))
        msg = f"Created target {w}."
        if "tpgts" in spec.features:
            msg += " Created TPG 1."
        if "nps" in spec.features and spec.known and self.ctx.pref("auto_add_default_portal", True):
            msg += " Default portal 0.0.0.0:3260."
        return Result(plan=plan, message=msg, data={"wwn": w})

    @writes
    def ui_delete(self, wwn: str):
        """Delete target WWN with its TPGs, LUNs, ACLs and portals.
        Example: /iscsi delete iqn.2003-01.org.example:t1"""
        t = self.child(wwn)
        if t is None:
            raise LioError(f"target {wwn} does not exist in /{self.name}")
        return Result(plan=tg.plan_delete_target(t.target), message=f"Deleted Target {t.name}.")


class TargetNode(Node):
    kind = "target"

    def __init__(self, ctx, parent, name, target: Target):
        super().__init__(ctx, parent, name)
        self.target = target

    @property
    def spec(self):
        return self.target.fabric.spec

    def children(self):
        if "tpgts" in self.spec.features:
            return [TPGNode(self.ctx, self, f"tpg{t.tag}", t) for t in self.target.tpgs.values()]
        tpg = self.target.tpgs.get(1) or next(iter(self.target.tpgs.values()), None)
        return tpg_children(self, tpg) if tpg else []

    def summary(self):
        if "tpgts" in self.spec.features:
            return f"TPGs: {len(self.target.tpgs)}", None
        tpg = next(iter(self.target.tpgs.values()), None)
        if tpg and tpg.nexus:
            return f"nexus {tpg.nexus}", True
        return "", None

    def info_data(self):
        return {"path": self.path, "wwn": self.name, "fabric": self.target.fabric.name,
                "tpgs": sorted(self.target.tpgs)}

    def groups(self):
        if "tpgts" not in self.spec.features and self.target.tpgs:
            return tpg_groups(next(iter(self.target.tpgs.values())))
        return {}

    def __getattr__(self, item):
        # fabrics without TPG tags expose the TPG's own commands on the target
        if item.startswith("ui_") and "tpgts" not in self.spec.features and self.target.tpgs:
            tpgn = TPGNode(self.ctx, self.parent, self.name, next(iter(self.target.tpgs.values())))
            return getattr(tpgn, item)
        raise AttributeError(item)

    @writes
    def ui_create(self, tag: str | None = None):
        """Create TPG TAG (the next free one when omitted).
        Example: /iscsi/iqn.2003-01.org.example:t1 create 2"""
        if "tpgts" not in self.spec.features:
            raise LioError(f"{self.target.fabric.name} targets have a single TPG")
        t = int(tag) if tag is not None and str(tag).isdigit() else None
        if tag is not None and t is None or t is not None and not 1 <= t <= 65535:
            raise LioError(f"TPG tag {tag!r} is not in 1-65535")
        if t is None:
            t = next(i for i in range(1, 65536) if i not in self.target.tpgs)
        if t in self.target.tpgs:
            raise LioError(f"TPG {t} already exists on {self.path}")
        plan = tg.plan_tpg_at(self.spec, self.target.path, t,
                              default_portal=bool(self.ctx.pref("auto_add_default_portal", True))
                              and False, enable=bool(self.ctx.pref("auto_enable_tpgt", True)))
        return Result(plan=plan, message=f"Created TPG {t}.")

    @writes
    def ui_delete(self, tag: str):
        """Delete TPG TAG with everything in it.
        Example: /iscsi/iqn.2003-01.org.example:t1 delete tpg2"""
        t = int(tag.removeprefix("tpg")) if tag.removeprefix("tpg").isdigit() else None
        if t not in self.target.tpgs:
            raise LioError(f"TPG {tag} does not exist on {self.path}")
        return Result(plan=tg.plan_delete_tpg(self.target.tpgs[t]), message=f"Deleted TPG {t}.")


def tpg_groups(tpg: TPG) -> dict[str, str]:
    g = {}
    for name, sub in (("attribute", "attrib"), ("parameter", "param"), ("auth", "auth")):
        if os.path.isdir(f"{tpg.path}/{sub}"):
            g[name] = f"{tpg.path}/{sub}"
    return g


def tpg_children(parent: Node, tpg: TPG) -> list[Node]:
    fab = tpg.target.fabric
    out: list[Node] = []
    if fab.has("acls"):
        out.append(AclsNode(parent.ctx, parent, "acls", tpg))
    out.append(LunsNode(parent.ctx, parent, "luns", tpg))
    if fab.has("nps"):
        out.append(PortalsNode(parent.ctx, parent, "portals", tpg))
    return out


class TPGNode(Node):
    kind = "tpg"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return tpg_children(self, self.tpg)

    def summary(self):
        t = self.tpg
        bits = []
        if t.target.fabric.name == "iscsi":
            gen = configfs.read(t.path + "/attrib/generate_node_acls") == "1"
            auth = configfs.read(t.path + "/attrib/authentication") == "1"
            bits.append("gen-acls" if gen else "no-gen-acls")
            bits.append("auth" if auth else "no-auth")
        if t.nexus:
            bits.append(f"nexus {t.nexus}")
        return ", ".join(bits), t.enabled

    def groups(self):
        return tpg_groups(self.tpg)

    def info_data(self):
        d = self.tpg.to_json(self.ctx.show_secrets)
        d["path"] = self.path
        return d

    @writes
    def ui_enable(self):
        """Enable this TPG.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 enable"""
        if not os.path.exists(self.tpg.path + "/enable"):
            raise LioError(f"{self.path}: this fabric has no TPG enable switch")
        plan = Plan()
        plan.write(self.tpg.path + "/enable", "1")
        return Result(plan=plan, message=f"{self.path} enabled.")

    @writes
    def ui_disable(self):
        """Disable this TPG (logged-in sessions are dropped).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 disable"""
        if not os.path.exists(self.tpg.path + "/enable"):
            raise LioError(f"{self.path}: this fabric has no TPG enable switch")
        plan = Plan()
        plan.write(self.tpg.path + "/enable", "0")
        return Result(plan=plan, message=f"{self.path} disabled.")

    @writes
    def ui_set_nexus(self, wwn: str | None = None):
        """Set the loopback/vhost nexus initiator WWN (generated when omitted).
        Example: /vhost/naa.5001405000000abc/tpg1 set_nexus
        Example: /loopback/naa.5001405000000abd set_nexus naa.5001405000000abe"""
        if not self.tpg.target.fabric.has("nexus"):
            raise LioError(f"{self.path}: this fabric has no nexus")
        from lioctl import wwn as w
        value = w.normalize(("naa", "free"), wwn)[0] if wwn else w.generate("naa")
        plan = Plan()
        plan.write(self.tpg.path + "/nexus", value, undoable=False)
        return Result(plan=plan, message=f"{self.path}: nexus {value}")


class LunsNode(Node):
    kind = "luns"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [LunNode(self.ctx, self, f"lun{lun.index}", lun) for lun in self.tpg.luns.values()]

    def summary(self):
        return f"LUNs: {len(self.tpg.luns)}", None

    @writes
    def ui_create(self, storage_object: str, lun: str | None = None, add_mapped_luns: str | None = None):
        """Create a LUN for a backstore path (/backstores/fileio/disk1) or a device/file path
        (a backstore is created for it).
Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns create /backstores/fileio/disk1
Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns create /srv/disk2.img lun=3 add_mapped_luns=false"""
        snap = self.ctx.snap
        plan = Plan()
        so = None
        if storage_object.startswith("/backstores/"):
            parts = storage_object.strip("/").split("/")
            if len(parts) != 3:
                raise LioError(f"{storage_object!r} is not a backstore path (/backstores/KIND/NAME)")
            so = snap.so(parts[1].split(":")[0], parts[2])
            if so is None:
                raise LioError(f"backstore {parts[1]}/{parts[2]} does not exist")
        else:
            path = os.path.abspath(storage_object)
            used = bs.devices_in_use(snap)
            if os.path.realpath(path) in used:
                so = used[os.path.realpath(path)]
            else:
                name = os.path.basename(path).replace(" ", "_") or "disk"
                kind = "block" if os.path.exists(path) and bs._is_block(path) else "fileio"
                if snap.so(kind, name):
                    raise LioError(f"backstore {kind}/{name} already exists for another path")
                sub = (bs.plan_block(snap, name, path) if kind == "block"
                       else bs.plan_fileio(snap, name, path))
                plan.extend(sub)
                so_path = [op.path for op in sub if type(op).__name__ == "Mkdir"][-1]
                so = StorageObject(kind, os.path.basename(os.path.dirname(so_path)), name, so_path)
                so.__dict__["enabled"] = True
        amap = self.ctx.pref("auto_add_mapped_luns", True) if add_mapped_luns is None \
            else _b(add_mapped_luns, "add_mapped_luns")
        sub, idx = tg.plan_lun(self.tpg, so, lun, add_mapped_luns=bool(amap))
        plan.extend(sub)
        n_acl = len(self.tpg.acls) if amap and self.tpg.target.fabric.has("acls") else 0
        msg = f"Created LUN {idx}." + (f" Created {n_acl} mapped LUN(s)." if n_acl else "")
        return Result(plan=plan, message=msg, data={"lun": idx})

    @writes
    def ui_delete(self, lun: str):
        """Delete LUN (and the mapped LUNs that point at it).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns delete lun0"""
        i = tg.check_lun_index(str(lun).removeprefix("lun"))
        if i not in self.tpg.luns:
            raise LioError(f"LUN {i} does not exist in {self.path}")
        return Result(plan=tg.plan_delete_lun(self.tpg.luns[i]), message=f"Deleted LUN {i}.")


class LunNode(Node):
    kind = "lun"

    def __init__(self, ctx, parent, name, lun: Lun):
        super().__init__(ctx, parent, name)
        self.lun = lun

    def summary(self):
        so = self.lun.storage_object
        if so is None:
            return f"{self.lun.so_path or '(no backstore)'}", False
        return f"{so.tree_path} ({so.udev_path or so.plugin})", True

    def info_data(self):
        d = self.lun.to_json()
        d["path"] = self.path
        d["alua_tg_pt_gp"] = self.lun.alua_tg_pt_gp
        return d

    @writes
    def ui_set_alua(self, group: str):
        """Put this LUN in ALUA target port group GROUP of its backstore.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/luns/lun0 set_alua ao_group"""
        so = self.lun.storage_object
        if so is None or group not in so.alua_tpgs:
            raise LioError(f"{self.path}: no ALUA group {group!r} on its backstore")
        plan = Plan()
        plan.write(self.lun.path + "/alua_tg_pt_gp", group)
        return Result(plan=plan, message=f"{self.path}: ALUA group {group}")


class PortalsNode(Node):
    kind = "portals"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [PortalNode(self.ctx, self, p.name, p) for p in self.tpg.portals.values()]

    def summary(self):
        return f"Portals: {len(self.tpg.portals)}", None

    @writes
    def ui_create(self, ip_address: str = "0.0.0.0", ip_port: str | None = None):
        """Create a network portal (IPv4, or IPv6 as ::1 or [::1]; port 3260 by default).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals create 192.0.2.10
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals create ::1 3261"""
        text = ip_address
        if ip_port is not None:
            host = f"[{ip_address.strip('[]')}]" if ":" in ip_address.strip("[]") else ip_address
            text = f"{host}:{ip_port}"
        plan, name = tg.plan_portal(self.tpg, text)
        return Result(plan=plan, message=f"Created network portal {name}.")

    @writes
    def ui_delete(self, ip_address: str, ip_port: str | None = None):
        """Delete a network portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals delete 0.0.0.0 3260"""
        text = ip_address
        if ip_port is not None:
            host = f"[{ip_address.strip('[]')}]" if ":" in ip_address.strip("[]") else ip_address
            text = f"{host}:{ip_port}"
        _, _, name = tg.parse_portal(text)
        if name not in self.tpg.portals:
            raise LioError(f"portal {name} does not exist in {self.path}")
        plan = Plan()
        plan.rmdir(self.tpg.portals[name].path)
        return Result(plan=plan, message=f"Deleted network portal {name}")


class PortalNode(Node):
    kind = "portal"

    def __init__(self, ctx, parent, name, portal: Portal):
        super().__init__(ctx, parent, name)
        self.portal = portal

    def summary(self):
        p = self.portal
        return ("iser" if p.iser else "") + (" offload" if p.offload else "") or "OK", True

    def info_data(self):
        d = self.portal.to_json()
        d["path"] = self.path
        return d

    def _toggle(self, fname, label, on):
        f = f"{self.portal.path}/{fname}"
        if not os.path.exists(f):
            raise LioError(f"{self.path}: {label} is not supported by this kernel")
        plan = Plan()
        plan.write(f, "1" if _b(on, label) else "0")
        return Result(plan=plan, message=f"{self.path}: {label} {'on' if _b(on, label) else 'off'}")

    @writes
    def ui_enable_iser(self, boolean: str):
        """Turn iSER on or off for this portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals/192.0.2.10:3260 enable_iser true"""
        return self._toggle("iser", "iser", boolean)

    @writes
    def ui_enable_offload(self, boolean: str):
        """Turn cxgbit offload on or off for this portal.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/portals/192.0.2.10:3260 enable_offload false"""
        return self._toggle("cxgbit", "offload", boolean)


class AclsNode(Node):
    kind = "acls"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return [AclNode(self.ctx, self, a.wwn, a) for a in self.tpg.acls.values()]

    def summary(self):
        return f"ACLs: {len(self.tpg.acls)}", None

    @writes
    def ui_create(self, wwn: str, add_mapped_luns: str | None = None, tag: str | None = None):
        """Create an ACL for initiator WWN, mapping every LUN unless add_mapped_luns=false.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls create iqn.1994-05.com.example:client1
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls create iqn.1994-05.com.example:client1 add_mapped_luns=false"""
        amap = self.ctx.pref("auto_add_mapped_luns", True) if add_mapped_luns is None \
            else _b(add_mapped_luns, "add_mapped_luns")
        plan, w = tg.plan_acl(self.tpg, wwn, add_mapped_luns=bool(amap), tag=tag)
        n = len(self.tpg.luns) if amap else 0
        return Result(plan=plan, message=f"Created Node ACL for {w}." +
                      (f" Created {n} mapped LUN(s)." if n else ""))

    @writes
    def ui_delete(self, wwn: str):
        """Delete the ACL for initiator WWN (its sessions are dropped).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls delete iqn.1994-05.com.example:client1"""
        a = self.child(wwn)
        if a is None:
            raise LioError(f"ACL {wwn} does not exist in {self.path}")
        return Result(plan=tg.plan_delete_acl(a.acl), message=f"Deleted Node ACL {a.name}.")

    @writes
    def ui_untag(self, wwn_or_tag: str):
        """Remove the tag of the ACL named WWN_OR_TAG, or of every ACL with that tag, as targetcli's
        untag does; they keep their settings.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls untag db-servers"""
        tagged = [a for a in self.tpg.acls.values() if wwn_or_tag in (a.wwn, a.tag)]
        if not tagged:
            raise LioError(f"no ACL named or tagged {wwn_or_tag} in {self.path}")
        return _untag_result(self.path, [a for a in tagged if a.tag])


class AclNode(Node):
    kind = "acl"

    def __init__(self, ctx, parent, name, acl: NodeACL):
        super().__init__(ctx, parent, name)
        self.acl = acl

    def children(self):
        return [MappedLunNode(self.ctx, self, f"mapped_lun{m.index}", m)
                for m in self.acl.mapped_luns.values()]

    def summary(self):
        return f"Mapped LUNs: {len(self.acl.mapped_luns)}", None

    def groups(self):
        g = {}
        for name, sub in (("attribute", "attrib"), ("parameter", "param"), ("auth", "auth")):
            if os.path.isdir(f"{self.acl.path}/{sub}"):
                g[name] = f"{self.acl.path}/{sub}"
        return g

    def info_data(self):
        d = self.acl.to_json(self.ctx.show_secrets)
        d["path"] = self.path
        return d

    @writes
    def ui_create(self, mapped_lun: str, tpg_lun_or_backstore: str, write_protect: str = "false"):
        """Map TPG LUN (number, lunN, or backstore path) as MAPPED_LUN for this initiator.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 create 0 lun0
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 create 1 /backstores/fileio/disk2 write_protect=true"""
        i = tg.check_lun_index(str(mapped_lun).removeprefix("mapped_lun"))
        if i in self.acl.mapped_luns:
            raise LioError(f"mapped LUN {i} already exists in {self.path}")
        tpg = self.acl.tpg
        src = tpg_lun_or_backstore
        lun = None
        if src.startswith("/backstores/"):
            lun = next((x for x in tpg.luns.values() if x.storage_object
                        and x.storage_object.tree_path == src.rstrip("/")), None)
        elif src.removeprefix("lun").isdigit():
            lun = tpg.luns.get(int(src.removeprefix("lun")))
        if lun is None:
            raise LioError(f"{src} is not a LUN of {tpg.tree_path}")
        plan = tg.plan_mapped_lun_at(self.acl.path, i, lun.path, _b(write_protect, "write_protect"))
        return Result(plan=plan, message=f"Created Mapped LUN {i}.")

    @writes
    def ui_delete(self, mapped_lun: str):
        """Delete mapped LUN MAPPED_LUN.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 delete 0"""
        i = tg.check_lun_index(str(mapped_lun).removeprefix("mapped_lun"))
        if i not in self.acl.mapped_luns:
            raise LioError(f"mapped LUN {i} does not exist in {self.path}")
        return Result(plan=tg.plan_delete_mapped_lun(self.acl.mapped_luns[i]),
                      message=f"Deleted Mapped LUN {i}.")

    @writes
    def ui_set_tag(self, tag: str):
        """Tag this ACL (ACLs with the same tag share settings in targetcli's model).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1 set_tag group1"""
        plan = Plan()
        plan.write(self.acl.path + "/tag", tag)
        return Result(plan=plan, message=f"{self.path}: tag {tag}")

    @writes
    def ui_untag(self):
        """Remove this ACL's tag (targetcli's untag); its settings stay.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:c1 untag"""
        return _untag_result(self.path, [self.acl] if self.acl.tag else [])


def _untag_result(where: str, acls: list[NodeACL]) -> Result:
    """The kernel clears a node ACL's tag when "NULL" is written to it (as rtslib does)."""
    plan = Plan()
    for a in acls:
        plan.write(a.path + "/tag", "NULL")
    names = ", ".join(a.wwn for a in acls)
    return Result(plan=plan, data={"untagged": [a.wwn for a in acls]},
                  message=f"{where}: untagged {names}" if acls else f"{where}: no tag to remove")


class MappedLunNode(Node):
    kind = "mapped-lun"

    def __init__(self, ctx, parent, name, ml: MappedLun):
        super().__init__(ctx, parent, name)
        self.ml = ml

    def summary(self):
        return f"lun{self.ml.tpg_lun} ({'ro' if self.ml.write_protect else 'rw'})", True

    def info_data(self):
        d = self.ml.to_json()
        d["path"] = self.path
        return d

    @writes
    def ui_set_write_protect(self, boolean: str):
        """Make this mapping read-only (true) or read-write (false).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1/acls/iqn.1994-05.com.example:client1/mapped_lun0 set_write_protect true"""
        plan = Plan()
        plan.write(self.ml.path + "/write_protect", "1" if _b(boolean, "write_protect") else "0")
        return Result(plan=plan, message=f"{self.path}: write_protect {boolean}")
