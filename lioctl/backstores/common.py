"""What every backstore kind shares: the Kind interface, HBA allocation, the name and in-use
checks, the start and tail of a create plan, removal (with the inverse that re-makes an object
as it was) and the saveconfig form of the parts every storage object has.

One HBA directory per storage object (core/<hba>_<N>/<name>), as rtslib does, so targetcli and
rtslib read what lioctl makes and the other way round.

Storage objects here are the tree model's (lioctl/tree/snapshot.py), used only through their
attributes: the model imports this package, not the other way round.
"""

from __future__ import annotations

import inspect
import os
import re
import stat
from dataclasses import dataclass, field

from lioctl import configfs, wwn as wwnmod
from lioctl.errors import AlreadyExists, InUse, LioError
from lioctl.names import check_object_name
from lioctl.plan import Modprobe, Op, Plan
from lioctl.plan.ops import Incomplete, Rmdir, capture, restore
from lioctl.saveconfig import rules
from lioctl.units import human


class Kind:
    """One kind of backstore. Its module (lioctl/backstores/<kind>.py) subclasses this and adds
    `create(ctx, NAME, ...)`, the tree's create command: its signature is the grammar, its
    docstring the help; it returns (plan, message)."""

    name = ""                   # /backstores/NAME, and saveconfig's "plugin"
    hba = ""                    # its HBA directories in core/: <hba>_<N>
    module = ""                 # the kernel module that provides it
    identity: tuple[str, ...] = ()  # saved keys only creation sets: a change re-creates it
    user_space = False          # a handler in user space serves its blocks (TCMU)
    lossy = False               # its data lives only in the kernel or a handler: a removal
    #                             cannot be undone whole, so it runs after every other one
    planned_attributes: frozenset[str] = frozenset()  # attributes its own plan writes
    completes: dict[str, str] = {}  # create parameter -> what completes it ("file", "block device")

    def creator(self, ctx):
        """The tree's create for this kind, bound to the command's context (help reads the
        signature and docstring, without the context)."""
        fn = self.create

        def create(*args, **kw):
            return fn(ctx, *args, **kw)
        sig = inspect.signature(fn)
        create.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
        create.__doc__ = fn.__doc__
        create.usage = getattr(fn, "usage", None)     # a usage line of its own (grammar.usage)
        return create

    def completion(self, param: str, handler: str | None = None) -> str | None:
        return self.completes.get(param)

    def complete_spec(self, word: str, given: dict, handler: str | None) -> tuple[list, bool]:
        """(value, what) candidates of create's own for a SIZE or CFGSTRING being typed, and
        whether they are all there is; `given`: the KEY=VALUE parameters typed so far."""
        return [], False

    # ---- the running object (so: a tree.snapshot.StorageObject)
    def device(self, so) -> str:
        """Its backing path when udev_path is empty (fileio shows it in info)."""
        return ""

    def size(self, so) -> int:
        return int(so.info.get("Size", 0))

    def backed_by(self, so, real: str) -> bool:
        """Whether the object serves the file or device at `real` (a realpath)."""
        return bool(so.udev_path) and os.path.realpath(so.udev_path) == real

    def summary(self, so) -> list[str]:
        """The parts of its `ls` line, before activated/deactivated."""
        return [size_text(so)]

    def json(self, so) -> dict:
        """What `info`/--json show beyond what every storage object has."""
        return {}

    # ---- saveconfig.json
    def dump(self, so, attributes: dict) -> dict:
        """Its own keys, after attributes (given: read once), name, plugin and alua_tpgs."""
        return {"wwn": so.wwn, "size": so.size}

    def check_saved(self, saved: dict, path: str, earlier: list[dict]) -> None:
        """One-line errors (naming the JSON path) for what its plan would refuse or the kernel
        misread; `earlier`: the objects of this kind checked before it in the same file."""
        raise NotImplementedError(self.name)

    def check_backing(self, saved: dict, path: str) -> None:
        """Refuses a backing file or device that is not there (after check_saved). Apart from
        check_saved because at boot a missing one is no fault of the file: restore --boot names
        that object, skips what needs it and restores the rest."""

    def saved_paths(self, saved: dict) -> list[str]:
        """The files and devices a saved object needs (the boot units wait for them)."""
        dev = saved.get("dev")
        return [dev] if isinstance(dev, str) else []

    def plan_saved(self, saved: dict, hba: str) -> Plan:
        """Made again as saved (restore, or the inverse of a removal), in HBA `hba`; its
        attributes are the caller's except planned_attributes."""
        raise NotImplementedError(self.name)

    def recreate_loss(self, saved: dict) -> str | None:
        """What re-making it from `saved` cannot bring back, if anything."""
        return None


def size_text(so) -> str:
    return f"({human(so.size)})" if so.size else ""


def info_value(so, key: str) -> str | None:
    """A `Key: value` of the kernel's info text (spaces collapsed)."""
    m = re.search(rf"(?<![A-Za-z]){re.escape(key)}: ([^: ]+)", " ".join(so.info.get("_raw", "").split()))
    return m.group(1) if m else None


def device_size(so) -> int:
    """A block or SCSI device's size from sysfs, by its udev path."""
    dev = os.path.basename(os.path.realpath(so.udev_path)) if so.udev_path else ""
    sectors = configfs.read(f"/sys/class/block/{dev}/size") if dev else None
    return int(sectors) * 512 if sectors else 0


def check_dev(saved: dict, path: str) -> str:
    dev = rules.text(saved.get("dev"), path + ".dev", "dev")
    if not dev or "," in dev:
        rules.err(path + ".dev", f"{dev!r} is not a device path the kernel can take (empty or with ',')")
    return dev


def check_size(saved: dict, path: str, positive: bool = True) -> int:
    size = rules.int_range(saved.get("size"), 0, rules.S64 - 1, path + ".size", "size")
    if size == 0 and positive:
        rules.err(path + ".size", "size must be positive")
    return size


def free_hba(kind: Kind, taken: set[str] = frozenset()) -> str:
    used = set(taken)
    try:
        used |= set(os.listdir(configfs.CORE))
    except OSError:
        pass
    for i in range(1 << 20):
        if f"{kind.hba}_{i}" not in used:
            return f"{kind.hba}_{i}"
    raise LioError(f"no free {kind.hba} HBA index")


def check_new_name(snap, kind: str, name: str) -> None:
    """snap None: the object is being made again, its name already checked."""
    check_object_name(name, "backstore name")
    if snap is not None and snap.so(kind, name):
        raise AlreadyExists(f"backstore {kind}/{name} already exists", obj=f"/backstores/{kind}/{name}")


def is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def devices_in_use(snap) -> dict:
    """Backing paths of existing storage objects (realpath) -> the object using it."""
    out = {}
    for so in (snap.storage_objects.values() if snap is not None else ()):
        if so.udev_path:
            out[os.path.realpath(so.udev_path)] = so
    return out


def check_device_free(snap, dev: str, what: str) -> None:
    so = devices_in_use(snap).get(os.path.realpath(dev))
    if so is not None:
        raise InUse(f"{what} {dev} is already used by backstore {so.plugin}/{so.name}")


def start(kind: Kind, name: str, hba: str | None) -> tuple[Plan, str]:
    """The module, the HBA (a free one unless given) and the object's directory."""
    plan = Plan()
    plan.add(Modprobe(kind.module))
    path = object_path(hba or free_hba(kind), name)
    if not os.path.isdir(os.path.dirname(path)):
        plan.mkdir(os.path.dirname(path))
    plan.mkdir(path)
    return plan, path


def enable(plan: Plan, path: str, *, wwn: str | None = None, model_alias: bool = False,
           serial: bool = True) -> None:
    """Enable the configured object, then give it its unit serial (generated unless given) and
    the model alias (INQUIRY shows the object's name)."""
    plan.write(f"{path}/enable", "1", undoable=False)
    if serial:
        plan.write(f"{path}/wwn/vpd_unit_serial", wwnmod.unit_serial(wwn),
                   undoable=False)
    if model_alias:
        plan.write(f"{path}/attrib/emulate_model_alias", "1", undoable=False)


def model_alias(ctx) -> bool:
    return bool(ctx.pref("export_backstore_name_as_model", True))


def check_enabled(so) -> None:
    """Before a LUN is made on it."""
    if not so.enabled:
        raise LioError(f"backstore {so.plugin}/{so.name} is not enabled (not configured)")


def object_path(hba: str, name: str) -> str:
    return f"{configfs.CORE}/{hba}/{name}"


def users_of(so) -> list[str]:
    return [f"LUN {lun.index} of {lun.tpg.target.wwn} tpg{lun.tpg.tag}" for lun in so.luns]


def check_unused(so, force: bool) -> None:
    """In use, a deletion fails naming the user, unless forced (its LUNs then go first)."""
    if so.luns and not force:
        raise InUse(f"backstore {so.plugin}/{so.name} is used by {users_of(so)[0]}"
                       + (f" and {len(so.luns) - 1} more" if len(so.luns) > 1 else "")
                       + "; delete the LUN first or use --force", obj=so.tree_path)


def plan_remove_objects(snap, sos: list) -> Plan:
    """The objects themselves (their ALUA groups, then each HBA left empty); LUNs are the
    caller's business. Lossy kinds go after every other removal, so that a later failure can
    only come from another of these few steps. (Removing an object takes ~15 ms in the emulated
    guest, but the kernel serializes those removals: running them concurrently gained nothing.)"""
    plan = Plan()
    going = {id(so) for so in sos}
    kept_hbas = {so.hba for so in snap.storage_objects.values() if id(so) not in going}
    for lossy in (False, True):
        batch = [so for so in sos if so.kind.lossy == lossy]
        for so in batch:
            for tg in so.alua_tpgs:
                if tg != "default_tg_pt_gp":
                    plan.rmdir(f"{so.path}/alua/{tg}")
        for so in batch:
            plan.add(RemoveStorageObject(so.path, so=so))
        hbas = {so.hba: os.path.dirname(so.path) for so in batch if so.hba not in kept_hbas}
        for path in hbas.values():
            plan.rmdir(path)
    return plan


ALUA_RW = ("alua_access_state", "alua_access_status", "alua_write_metadata", "alua_access_type",
           "preferred", "nonop_delay_msecs", "trans_delay_msecs", "implicit_trans_secs",
           "alua_support_offline", "alua_support_standby", "alua_support_transitioning",
           "alua_support_active_nonoptimized", "alua_support_unavailable",
           "alua_support_active_optimized")
ALUA_NAMED = {"alua_access_type": ["None", "Implicit", "Explicit", "Implicit and Explicit"],
              "alua_access_status": ["None", "Altered by Explicit STPG", "Altered by Implicit ALUA"]}


def saved_value(v: str):
    """A number where the text is one (rtslib stores attributes as numbers)."""
    try:
        return int(v)
    except ValueError:
        return v


def rw_group(path: str, as_text: bool = False) -> dict:
    """A group's read-write files as saveconfig keeps them: attributes as numbers where they
    parse, parameters as text (as rtslib does)."""
    values = configfs.read_group(path, writable=True)
    return values if as_text else {k: saved_value(v) for k, v in values.items()}


def dump_alua(so, name: str) -> dict:
    """The kernel shows access type and status as words; the format stores their index."""
    values = configfs.read_group(f"{so.path}/alua/{name}", ("tg_pt_gp_id",) + ALUA_RW)
    d = {"name": name, "tg_pt_gp_id": saved_value(values["tg_pt_gp_id"] or "0")}
    for p in ALUA_RW:
        v = values[p]
        if v is not None and p in ALUA_NAMED and v in ALUA_NAMED[p]:
            d[p] = ALUA_NAMED[p].index(v)
        else:
            d[p] = saved_value(v) if v is not None else None
    return d


def dump_storage_object(so) -> dict:
    d: dict = {}
    attrs = rw_group(so.path + "/attrib")
    if attrs:
        d["attributes"] = attrs
    d["name"] = so.name
    d["plugin"] = so.plugin
    d["alua_tpgs"] = [dump_alua(so, name) for name in so.alua_tpgs]
    d.update(so.kind.dump(so, attrs))
    return d


@dataclass(frozen=True)
class RemoveStorageObject(Rmdir):
    """Removing a storage object keeps what re-making it takes: how it was made (backing file or
    device, size, from the kernel's info) and every setting (attributes, WWN, default ALUA group).
    These are read when the step runs, from a fresh view of the object."""

    so: object = field(default=None, kw_only=True, repr=False, compare=False)

    def apply(self):
        made = dump_storage_object(self.so.fresh())
        values = tuple((f, v) for f, v in capture(self.path)
                       if os.path.basename(f) not in ("enable", "udev_path"))
        os.rmdir(self.path)
        return RecreateStorageObject(self.path, so=self.so, made=made, values=values)


@dataclass(frozen=True)
class RecreateStorageObject(Op):
    """The inverse of RemoveStorageObject: made again in its HBA, then its settings set back."""

    so: object = field(default=None, kw_only=True, repr=False, compare=False)
    made: dict = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    values: tuple = field(default=(), kw_only=True, repr=False, compare=False)

    def apply(self):
        from lioctl.plan import executor   # thread pools: only a rollback needs them here
        kind = self.so.kind
        executor.execute(kind.plan_saved(self.made, self.so.hba), fault_hook=False)
        failures = restore(self.values)
        loss = kind.recreate_loss(self.made)
        if loss:
            failures.append((self.path, loss))
        if failures:
            raise Incomplete(failures)
        return RemoveStorageObject(self.path, so=self.so)

    def sh(self):
        return f"# re-create {short(self.path)}"

    def describe(self):
        return f"re-create {self.path}"


def short(path: str) -> str:
    return path[len(configfs.ROOT) + 1:] if path.startswith(configfs.ROOT + "/") else path
