"""/backstores: the kinds (each one's create from lioctl/backstores/), targetcli's user:HANDLER
views of the user kind, storage objects and their ALUA groups."""

from __future__ import annotations

import inspect
import json
import sys

from lioctl import configfs
from lioctl.backstores import KINDS, user as bs_user
from lioctl.units import parse_size
from lioctl.errors import AlreadyExists, LioError, NotFound, UsageError
from lioctl.grammar import usage
from lioctl.names import check_object_name
from lioctl.plan import Plan
from lioctl.tree import targets as tg
from lioctl.tree.snapshot import StorageObject
from lioctl.tree.nodes.base import Context, Node, Result, _b, writes


class Backstores(Node):
    kind = "backstores"

    def children(self):
        return [BackstoreKind(self.ctx, self, k) for k in KINDS] + \
            [UserHandlerKind(self.ctx, self, f"user:{h}") for h in bs_user.handlers(self.ctx.snap)]

    def child(self, name: str):
        if name in KINDS:  # the usual case, without looking for TCMU handlers
            return BackstoreKind(self.ctx, self, name)
        found = super().child(name)
        if found is None and name.startswith("user:") and bs_user.known_handler(name[5:]):
            return UserHandlerKind(self.ctx, self, name)
        return found


class BackstoreKind(Node):
    kind = "backstore-kind"

    @property
    def backstore(self):
        """The kind's own code (lioctl/backstores/<kind>.py)."""
        return KINDS[self.name.split(":")[0]]

    def objects(self) -> list[StorageObject]:
        return [so for so in self.ctx.snap.storage_objects.values() if so.plugin == self.name]

    def children(self):
        return [StorageObjectNode(self.ctx, self, so.name, so) for so in self.objects()]

    def summary(self):
        return f"Storage Objects: {len(self.objects())}", None

    def completion(self, param: str) -> str | None:
        """What completes a create parameter here ("file", "block device")."""
        return self.backstore.completion(param)

    def complete_spec(self, word: str, given: dict) -> tuple[list, bool]:
        """Candidates of a medium's own for create's SIZE or CFGSTRING word (final: no other)."""
        return self.backstore.complete_spec(word, given, None)

    def help_target(self, command: str):
        if command == "create" and type(self).ui_create is BackstoreKind.ui_create:
            return self.backstore.creator(self.ctx)  # that kind's parameters
        return super().help_target(command)

    def exist_ok_create(self, *args, **kw):
        """--exist-ok: storage object NAME of this kind is there; what differs from the asked
        device, file, size, write_back or serial is named."""
        fn = self.backstore.creator(self.ctx)
        params = inspect.signature(fn).parameters
        args = tuple(a for a in args if not (isinstance(a, str) and a.startswith("--") and a[2:] in params))
        try:
            asked = inspect.signature(fn).bind(*args, **kw).arguments
        except TypeError:
            return None     # create itself names the usage error
        so = self.ctx.snap.so(self.name.split(":")[0], asked["name"])
        return ("storage_object", so, _differences(so, asked)) if so else None

    def ui_create(self, *args, **kw):
        """Create a storage object of this kind; `help create` here gives its parameters.
        Example: /backstores/fileio create disk1 /srv/disk1.img 10G
        Example: /backstores/ramdisk create rd1 1G"""
        fn = self.backstore.creator(self.ctx)
        params = inspect.signature(fn).parameters
        flags = [a for a in args if isinstance(a, str) and a.startswith("--") and a[2:] in params]
        if flags:       # `--create` is create=true, as grammar.bind makes it for other commands
            args = tuple(a for a in args if a not in flags)
            kw.update({a[2:]: "true" for a in flags})
        try:
            sig = inspect.signature(fn).bind(*args, **kw)
        except TypeError as e:
            msg = str(e).replace("got an unexpected keyword argument", "unknown parameter")
            raise UsageError(f"{self.path} create: {msg}; usage: {usage('create', fn)}") from None
        plan, message = fn(*sig.args, **sig.kwargs)
        return Result(plan=plan, message=message)
    ui_create.writes = True

    @writes
    def ui_delete(self, name: str, save: str | None = None):
        """Delete storage object NAME (refused while a LUN uses it, unless --force); save=true
        also drops it (and the LUNs on it) from the saved configuration, as targetcli's does.
        Example: /backstores/fileio delete disk1
        Example: /backstores/fileio delete disk1 save=true"""
        so = self.ctx.snap.so(self.name.split(":")[0], name)
        if so is None or so not in self.objects():
            raise NotFound(f"backstore {self.name}/{name} does not exist", obj=f"{self.path}/{name}")
        result = Result(plan=tg.plan_delete_storage_object(self.ctx.snap, so, self.ctx.force),
                        message=f"Deleted storage object {name}.")
        if save is not None and _b(save, "save"):
            result.after = lambda: _forget_saved(so, self.ctx)
        return result


def _differences(so: StorageObject, asked: dict) -> list[str]:
    """What an existing storage object has other than a create asked (only what was given)."""
    import os

    from lioctl import wwn as wwnmod
    out = []
    dev = asked.get("file_or_dev") or asked.get("dev")
    if dev and so.udev_path and os.path.realpath(dev) != os.path.realpath(so.udev_path):
        out.append(f"its device is {so.udev_path}, not {dev}")
    cfg = asked.get("cfgstring")
    if cfg and cfg not in so.user_config and cfg.removeprefix("rbd:") not in so.user_config:
        out.append(f"its config is {so.user_config}, not {cfg}")
    size = asked.get("size")
    if size is not None and not (isinstance(size, str) and size.startswith("rbd:")) \
            and parse_size(size) != so.size:
        out.append(f"its size is {so.size} bytes, not {parse_size(size)}")
    wb = asked.get("write_back")
    if wb is not None and _b(wb, "write_back") != so.write_back:
        out.append(f"write_back is {str(so.write_back).lower()}")
    wwn = asked.get("wwn")
    if wwn and wwnmod.unit_serial(wwn) != so.wwn:
        out.append(f"its unit serial is {so.wwn}, not {wwnmod.unit_serial(wwn)}")
    return out


class UserHandlerKind(BackstoreKind):
    """/backstores/user:HANDLER, targetcli's view of the user backstores of one TCMU handler."""
    kind = "backstore-kind"

    @property
    def handler(self) -> str:
        return self.name.split(":", 1)[1]

    def objects(self):
        return [so for so in self.ctx.snap.storage_objects.values()
                if so.kind is bs_user.KIND and bs_user.subtype_of(so) == self.handler]

    def completion(self, param: str) -> str | None:
        return self.backstore.completion(param, self.handler)

    def exist_ok_create(self, name: str, size: str, cfgstring: str, wwn: str | None = None,
                        hw_max_sectors: str | None = None, control: str | None = None,
                        write_back: str | None = None):
        so = next((s for s in self.objects() if s.name == name), None)
        asked = {"size": size, "cfgstring": cfgstring, "wwn": wwn, "write_back": write_back}
        return ("storage_object", so, _differences(so, asked)) if so else None
    def complete_spec(self, word: str, given: dict) -> tuple[list, bool]:
        return self.backstore.complete_spec(word, given, self.handler)

    @writes
    def ui_create(self, name: str, size: str, cfgstring: str, wwn: str | None = None,
                  hw_max_sectors: str | None = None, control: str | None = None,
                  write_back: str | None = None):
        """Create a user backstore served by this handler: CFGSTRING is the handler's config,
        control= targetcli's control-file string.
        Example: /backstores/user:lioctl_file create u1 1G /srv/u1.img control=max_data_area_mb=64"""
        plan, message = self.backstore.create(self.ctx, name, size, cfgstring, self.handler, wwn,
                                              hw_max_sectors, write_back, control)
        return Result(plan=plan, message=message)

    @writes
    def ui_changemedium(self, name: str, size: str, cfgstring: str):
        """Give user backstore NAME another medium (CFGSTRING) and SIZE while it stays exported,
        as targetcli's changemedium does: the kernel passes the change to the handler serving
        it (a RECONFIG event).
        Example: /backstores/user:lioctl_file changemedium u1 2G /srv/other.img"""
        so = self.ctx.snap.so(bs_user.KIND.name, name)
        if so is None or so not in self.objects():
            raise NotFound(f"backstore {self.name}/{name} does not exist", obj=f"{self.path}/{name}")
        plan = bs_user.plan_change_medium(self.ctx.snap, so, self.handler, cfgstring, size)
        return Result(plan=plan, message=f"{self.path}/{name}: medium {cfgstring}, size {size}"
                      if plan else f"{self.path}/{name} already has that medium and size")


def _forget_saved(so: StorageObject, ctx: Context) -> None:
    """After `delete NAME save=true`: the saved configuration without that object, the LUNs on
    it and the mapped LUNs to those; the rest of the file is kept as it is (rtslib drops the
    whole target that had such a LUN). Backups rotate as with save."""
    from lioctl.saveconfig import store   # start-up: gzip, shutil, datetime only to save
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
        parts = so.kind.summary(so) + ["activated" if so.luns else "deactivated"]
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

    def exist_ok_create(self, name: str, tag: str):
        if name not in self.parent.so.alua_tpgs:
            return None
        have = configfs.read(f"{self.parent.so.path}/alua/{name}/tg_pt_gp_id")
        return ("storage_object", self.parent.so, [] if have == str(tag) else
                [f"ALUA group {name} has tag {have}, not {tag}"])

    @writes
    def ui_create(self, name: str, tag: str):
        """Create ALUA target port group NAME with numeric TAG.
        Example: /backstores/fileio/disk1/alua create ao_group 2"""
        check_object_name(name, "ALUA group name")
        if name in self.parent.so.alua_tpgs:
            raise AlreadyExists(f"ALUA group {name} already exists on {self.parent.path}")
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
            raise NotFound(f"no ALUA group {name} on {self.parent.path}")
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
