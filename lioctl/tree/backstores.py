"""Backstores (storage objects): validation and the configfs plan that creates or deletes each kind.

One HBA directory per storage object (core/<hba>_<N>/<name>), as rtslib does, so targetcli and
rtslib read what lioctl makes and the other way round.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
from dataclasses import dataclass, field

from lioctl import configfs, wwn as wwnmod
from lioctl.blockdev import size as block_device_size
from lioctl.errors import LioError
from lioctl.names import check_object_name
from lioctl.plan import CreateFile, Modprobe, Op, Plan, ServeUser, Write
from lioctl.plan.ops import Incomplete, Rmdir, capture, restore
from lioctl.tree.snapshot import HBA_OF_PLUGIN, Snapshot, StorageObject
from lioctl.units import parse_size

PLUGINS = ("block", "fileio", "pscsi", "ramdisk", "user")


def free_hba(plugin: str, taken: set[str] = frozenset()) -> str:
    prefix = HBA_OF_PLUGIN[plugin]
    used = set(taken)
    try:
        used |= set(os.listdir(configfs.CORE))
    except OSError:
        pass
    for i in range(1 << 20):
        if f"{prefix}_{i}" not in used:
            return f"{prefix}_{i}"
    raise LioError(f"no free {prefix} HBA index")


def check_new_name(snap: Snapshot, plugin: str, name: str) -> None:
    check_object_name(name, "backstore name")
    if snap.so(plugin, name):
        raise LioError(f"backstore {plugin}/{name} already exists")


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def devices_in_use(snap: Snapshot) -> dict[str, StorageObject]:
    """Backing paths of existing storage objects (realpath) -> the object using it."""
    out = {}
    for so in snap.storage_objects.values():
        if so.udev_path:
            out[os.path.realpath(so.udev_path)] = so
    return out


def _common_tail(plan: Plan, path: str, *, wwn: str | None, model_alias: bool,
                 serial: bool = True) -> None:
    if serial:
        plan.write(f"{path}/wwn/vpd_unit_serial", wwn or wwnmod.generate("unit_serial"),
                   undoable=False)
    if model_alias:
        plan.write(f"{path}/attrib/emulate_model_alias", "1", undoable=False)


def _start(snap: Snapshot, plugin: str, name: str, hba: str | None) -> tuple[Plan, str]:
    plan = Plan()
    plan.add(Modprobe(configfs.BACKSTORE_MODULES[HBA_OF_PLUGIN[plugin]]))
    hba = hba or free_hba(plugin)
    hba_path = f"{configfs.CORE}/{hba}"
    if not os.path.isdir(hba_path):
        plan.mkdir(hba_path)
    path = f"{hba_path}/{name}"
    plan.mkdir(path)
    return plan, path


def plan_fileio(snap: Snapshot, name: str, file: str, size=None, write_back: bool = True,
                sparse: bool = True, wwn: str | None = None, model_alias: bool = True,
                hba: str | None = None, create_missing: bool = True) -> Plan:
    check_new_name(snap, "fileio", name)
    if not file.startswith("/"):
        file = os.path.abspath(file)
    if "," in file or "\n" in file:
        raise LioError(f"file {file!r}: the kernel cannot take a path with ',' or newline")
    used = devices_in_use(snap)
    if os.path.realpath(file) in used:
        so = used[os.path.realpath(file)]
        raise LioError(f"file {file} is already used by backstore {so.plugin}/{so.name}")
    create = None
    if os.path.exists(file):
        if os.path.isdir(file):
            raise LioError(f"{file} is a directory; give a regular file or a block device")
        if _is_block(file):
            size_bytes = block_device_size(file)
        elif not os.path.isfile(file):
            raise LioError(f"{file} is not a regular file or a block device")
        else:
            if not os.access(file, os.R_OK | os.W_OK):
                raise LioError(f"file {file} is not readable and writable")
            size_bytes = os.path.getsize(file)
            if size is not None:
                want = parse_size(size)
                if want > size_bytes:
                    raise LioError(f"file {file} holds {size_bytes} bytes, less than the {want} asked for")
                size_bytes = want
            if size_bytes == 0:
                raise LioError(f"file {file} is empty; give a size to use it")
    else:
        if size is None:
            raise LioError(f"file {file} does not exist; give a size to create it")
        if not create_missing:
            raise LioError(f"file {file} does not exist")
        parent = os.path.dirname(file) or "."
        if not os.path.isdir(parent):
            raise LioError(f"cannot create {file}: directory {parent} does not exist")
        size_bytes = parse_size(size)
        create = CreateFile(file, size_bytes, sparse)
    plan, path = _start(snap, "fileio", name, hba)
    if create:
        plan.ops.insert(0, create)
    if _is_block(file):
        plan.write(f"{path}/control", f"fd_dev_name={file}", undoable=False)
    else:
        plan.write(f"{path}/control", f"fd_dev_name={file},fd_dev_size={size_bytes}", undoable=False)
    if write_back:
        plan.write(f"{path}/attrib/emulate_write_cache", "1", undoable=False)
        plan.write(f"{path}/control", "fd_buffered_io=1", undoable=False)
    plan.write(f"{path}/udev_path", file, undoable=False)
    plan.write(f"{path}/enable", "1", undoable=False)
    _common_tail(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


@dataclass(frozen=True)
class CheckSharedOpen(Op):
    """exclusive=0 in a block object's control is new in Linux 6.17; older kernels ignore it and
    open the device exclusively all the same. So, as rtslib does, read back what the kernel made
    of it (its info shows `exclusive: 0`) before enabling, and fail (rolled back) otherwise."""

    def apply(self):
        info = configfs.read(self.path + "/info", "") or ""
        if not re.search(r"\bexclusive:\s*0\b", info):
            raise LioError("this kernel always opens a block backstore's device exclusively "
                           "(exclusive=false needs Linux 6.17 or newer)")
        return None

    def sh(self):
        q = shlex.quote(self.path + "/info")
        return (f"grep -q 'exclusive: 0' {q} || "
                "{ echo 'exclusive=false needs Linux 6.17 or newer' >&2; exit 1; }")

    def describe(self):
        return f"check that {self.path} opens its device shared"


def plan_block(snap: Snapshot, name: str, dev: str, readonly: bool | None = None,
               wwn: str | None = None, model_alias: bool = True, hba: str | None = None,
               exclusive: bool | None = None) -> Plan:
    """exclusive: None leaves the kernel's default (the device opened exclusively); False
    shares it with other openers (Linux 6.17+), so another backstore may use it too."""
    check_new_name(snap, "block", name)
    if not os.path.exists(dev):
        raise LioError(f"block device {dev} does not exist")
    if not _is_block(dev):
        raise LioError(f"{dev} is not a block device")
    used = devices_in_use(snap)
    if os.path.realpath(dev) in used and exclusive is not False:
        so = used[os.path.realpath(dev)]
        raise LioError(f"device {dev} is already used by backstore {so.plugin}/{so.name}")
    if readonly is None:  # auto-detect, as an admin would expect of a read-only device
        ro = configfs.read(f"/sys/class/block/{os.path.basename(os.path.realpath(dev))}/ro", "0")
        readonly = ro == "1"
    plan, path = _start(snap, "block", name, hba)
    plan.write(f"{path}/control", f"udev_path={dev}", undoable=False)
    plan.write(f"{path}/control", f"readonly={int(bool(readonly))}", undoable=False)
    if exclusive is not None:
        plan.write(f"{path}/control", f"exclusive={int(exclusive)}", undoable=False)
        if not exclusive:
            plan.add(CheckSharedOpen(path))
    plan.write(f"{path}/udev_path", dev, undoable=False)
    plan.write(f"{path}/enable", "1", undoable=False)
    _common_tail(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


def plan_ramdisk(snap: Snapshot, name: str, size, nullio: bool = False, wwn: str | None = None,
                 model_alias: bool = True, hba: str | None = None) -> Plan:
    check_new_name(snap, "ramdisk", name)
    pages = (parse_size(size) + 4095) // 4096
    plan, path = _start(snap, "ramdisk", name, hba)
    plan.write(f"{path}/control", f"rd_pages={pages}", undoable=False)
    if nullio:
        plan.write(f"{path}/control", "rd_nullio=1", undoable=False)
    plan.write(f"{path}/enable", "1", undoable=False)
    _common_tail(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


HCTL = re.compile(r"^(\d+):(\d+):(\d+):(\d+)$")


def _hctl_of(dev: str) -> tuple[str, str]:
    """(H:C:T:L, /dev path) from either form."""
    m = HCTL.match(dev)
    if m:
        hctl = dev
        devs = os.listdir(f"/sys/class/scsi_device/{hctl}/device/block") \
            if os.path.isdir(f"/sys/class/scsi_device/{hctl}/device/block") else []
        return hctl, (f"/dev/{devs[0]}" if devs else "")
    if not os.path.exists(dev):
        raise LioError(f"SCSI device {dev} does not exist")
    base = os.path.basename(os.path.realpath(dev))
    link = f"/sys/class/block/{base}/device"
    if not os.path.exists(link):
        raise LioError(f"{dev} is not a SCSI device (give /dev/sdX or H:C:T:L)")
    return os.path.basename(os.path.realpath(link)), dev


def plan_pscsi(snap: Snapshot, name: str, dev: str, hba: str | None = None) -> Plan:
    check_new_name(snap, "pscsi", name)
    hctl, devpath = _hctl_of(dev)
    if not HCTL.match(hctl):
        raise LioError(f"{dev}: cannot find its SCSI address")
    h, c, t, l = hctl.split(":")
    plan, path = _start(snap, "pscsi", name, hba)
    plan.write(f"{path}/control",
               f"scsi_host_id={h},scsi_channel_id={c},scsi_target_id={t},scsi_lun_id={l}",
               undoable=False)
    if devpath:
        plan.write(f"{path}/udev_path", devpath, undoable=False)
    plan.write(f"{path}/enable", "1", undoable=False)
    return plan


# TCMU attributes that only take before enable, or that send a netlink RECONFIG after it
TCMU_BEFORE_ENABLE = ("max_data_area_mb", "data_pages_per_blk", "cmd_ring_size_mb", "emulate_write_cache",
                      "cmd_time_out", "qfull_time_out")
TCMU_CONTROL_ATTRS = ("dev_config", "dev_size", "nl_reply_supported")
# what `control=` may hand to a user backstore's control file (targetcli/rtslib pass it on as
# is; the kernel silently ignores keys it does not know, so lioctl names the ones it takes)
TCMU_CONTROL_KEYS = ("max_data_area_mb", "data_pages_per_blk", "cmd_ring_size_mb", "hw_block_size",
                     "hw_max_sectors")


def parse_control(control: str) -> list[tuple[str, str]]:
    """'max_data_area_mb=64,hw_block_size=4096' -> pairs, each key one the kernel takes."""
    pairs = []
    for item in control.split(","):
        key, eq, value = item.strip().partition("=")
        if key in ("dev_config", "dev_size"):
            raise LioError(f"control: {key} comes from the cfgstring and size arguments")
        if key == "nl_reply_supported":
            raise LioError("control: lioctl sets nl_reply_supported itself (-1: enable never "
                           "waits for a handler's reply)")
        if not eq or key not in TCMU_CONTROL_KEYS:
            raise LioError(f"control: {item.strip()!r} is not KEY=VALUE with KEY one of "
                           f"{', '.join(TCMU_CONTROL_KEYS)}")
        if not value.isdigit() or int(value) == 0:
            raise LioError(f"control: {key}={value!r} is not a positive number")
        if key in dict(pairs):
            raise LioError(f"control: {key} given twice")
        pairs.append((key, value))
    return pairs


def plan_user(snap: Snapshot, name: str, size, config: str, subtype: str | None = None,
              wwn: str | None = None, hw_max_sectors: int | None = None,
              model_alias: bool = True, hba: str | None = None, validate: bool = True,
              write_back: bool | None = True, attributes: dict | None = None,
              create_missing: bool = True, control: str | None = None) -> Plan:
    """TCMU backstore; dev_config is '<subtype>/<config>' and nl_reply_supported=-1 goes in
    before enable so enabling never waits for a netlink reply. A missing lioctl_file backing
    file is created sparse (like fileio). `attributes` (from a saved file) that the kernel
    only takes before enable are written before it; the rest are the caller's. `control`
    (targetcli's control=) goes to the control file before enable."""
    check_new_name(snap, "user", name)
    pairs = parse_control(control) if control else []
    if hw_max_sectors and "hw_max_sectors" in dict(pairs):
        raise LioError("hw_max_sectors given both as a parameter and in control=")
    size_bytes = parse_size(size)
    from lioctl.tcmu import config as tcmu_config, launcher
    subtype = subtype or tcmu_config.DEFAULT_SUBTYPE
    if validate:
        existing = [so.user_config for so in snap.storage_objects.values() if so.plugin == "user"]
        tcmu_config.validate(subtype, config, size_bytes, existing)
    create = None
    if subtype == "lioctl_file":
        path = tcmu_config.split_options(config)[1]
        if not os.path.exists(path):
            if not create_missing:
                raise LioError(f"backing file {path} of user backstore {name} does not exist")
            create = CreateFile(path, size_bytes, True)
    plan, path = _start(snap, "user", name, hba)
    if create:
        plan.ops.insert(0, create)
    plan.write(f"{path}/control", f"dev_config={subtype}/{config}", undoable=False)
    plan.write(f"{path}/control", f"dev_size={size_bytes}", undoable=False)
    if not hw_max_sectors and subtype in tcmu_config.SUBTYPES:
        # the kernel's default (128 sectors = 64 KiB) splits every large I/O into 64 KiB
        # commands, each a round trip through the ring; 1 MiB fits the data area many times
        hw_max_sectors = tcmu_config.DEFAULT_HW_MAX_SECTORS
    if "hw_max_sectors" in dict(pairs):
        hw_max_sectors = None
    if hw_max_sectors:
        plan.write(f"{path}/control", f"hw_max_sectors={int(hw_max_sectors)}", undoable=False)
    if pairs:
        plan.write(f"{path}/control", ",".join(f"{k}={v}" for k, v in pairs), undoable=False)
    plan.write(f"{path}/control", "nl_reply_supported=-1", undoable=False)
    attributes = dict(attributes or {})
    if write_back is not None and "emulate_write_cache" not in attributes:
        attributes["emulate_write_cache"] = "1" if write_back else "0"
    for k in TCMU_BEFORE_ENABLE:
        if k in attributes:
            plan.write(f"{path}/attrib/{k}", str(attributes[k]), undoable=False)
    plan.write(f"{path}/enable", "1", undoable=False)
    # no emulate_model_alias for TCMU: the handler answers INQUIRY (with the name as model)
    _common_tail(plan, path, wwn=wwn, model_alias=False)
    if subtype in tcmu_config.SUBTYPES:
        plan.add(ServeUser("/".join(path.split("/")[-2:]), serve=launcher.ensure_serving))
    return plan


def users_of(so: StorageObject) -> list[str]:
    return [f"LUN {lun.index} of {lun.tpg.target.wwn} tpg{lun.tpg.tag}" for lun in so.luns]


def plan_delete(snap: Snapshot, so: StorageObject, force: bool = False) -> Plan:
    """Delete a storage object; in use it fails naming the user, unless force (then LUNs go first)."""
    from lioctl.tree.targets import plan_delete_lun
    plan = Plan()
    if so.luns and not force:
        raise LioError(f"backstore {so.plugin}/{so.name} is used by {users_of(so)[0]}"
                       + (f" and {len(so.luns) - 1} more" if len(so.luns) > 1 else "")
                       + "; delete the LUN first or use --force")
    for lun in list(so.luns):
        plan.extend(plan_delete_lun(lun))
    plan.extend(plan_remove_object(snap, so))
    return plan


def plan_remove_object(snap: Snapshot, so: StorageObject) -> Plan:
    return plan_remove_objects(snap, [so])


# Removals whose inverse cannot bring everything back: a ramdisk's data lives only in the
# kernel, a TCMU device's in its handler. Planned after every other removal, so that a later
# failure can only come from another of these few steps.
LOSSY_PLUGINS = ("ramdisk", "user")


def plan_remove_objects(snap: Snapshot, sos: list[StorageObject]) -> Plan:
    """The objects themselves (their ALUA groups, then each HBA left empty); LUNs are the
    caller's business. (Removing an object takes ~15 ms in the emulated guest, but the kernel
    serializes those removals: running them concurrently gained nothing.)"""
    plan = Plan()
    going = {id(so) for so in sos}
    kept_hbas = {so.hba for so in snap.storage_objects.values() if id(so) not in going}
    for lossy in (False, True):
        batch = [so for so in sos if (so.plugin in LOSSY_PLUGINS) == lossy]
        for so in batch:
            for tg in so.alua_tpgs:
                if tg != "default_tg_pt_gp":
                    plan.rmdir(f"{so.path}/alua/{tg}")
        for so in batch:
            plan.add(RemoveStorageObject(so.path, plugin=so.plugin))
        hbas = {so.hba: os.path.dirname(so.path) for so in batch if so.hba not in kept_hbas}
        for path in hbas.values():
            plan.rmdir(path)
    return plan


@dataclass(frozen=True)
class RemoveStorageObject(Rmdir):
    """Removing a storage object keeps what re-making it takes: how it was made (backing file or
    device, size, from the kernel's info) and every setting (attributes, WWN, default ALUA group)."""

    plugin: str = field(default="", kw_only=True)

    def apply(self):
        from lioctl.saveconfig.dump import dump_storage_object
        so = StorageObject(self.plugin, os.path.basename(os.path.dirname(self.path)),
                           os.path.basename(self.path), self.path)
        made = dump_storage_object(so)
        values = tuple((f, v) for f, v in capture(self.path)
                       if os.path.basename(f) not in ("enable", "udev_path"))
        os.rmdir(self.path)
        return RecreateStorageObject(self.path, plugin=self.plugin, made=made, values=values)


@dataclass(frozen=True)
class RecreateStorageObject(Op):
    """The inverse of RemoveStorageObject: made again in its HBA, then its settings set back."""

    plugin: str = field(default="", kw_only=True)
    made: dict = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    values: tuple = field(default=(), kw_only=True, repr=False, compare=False)

    def apply(self):
        from lioctl.plan import executor
        executor.execute(plan_recreate(self.made, os.path.basename(os.path.dirname(self.path))),
                         fault_hook=False)
        failures = restore(self.values)
        if self.plugin == "ramdisk" and not self.made.get("nullio"):
            failures.append((self.path, "re-created empty: a ramdisk's data cannot be brought back"))
        if failures:
            raise Incomplete(failures)
        return RemoveStorageObject(self.path, plugin=self.plugin)

    def sh(self):
        return f"# re-create {_short(self.path)}"

    def describe(self):
        return f"re-create {self.path}"


def _short(path: str) -> str:
    return path[len(configfs.ROOT) + 1:] if path.startswith(configfs.ROOT + "/") else path


def plan_recreate(made: dict, hba: str) -> Plan:
    """A removed storage object made again in its own HBA, as dump_storage_object described it;
    its settings are the caller's (restore of the captured values)."""
    empty = Snapshot()      # the object is gone: no name or device clash to check
    name, plugin, wwn = made["name"], made["plugin"], made.get("wwn") or None
    if plugin == "fileio":
        return plan_fileio(empty, name, made["dev"], made.get("size") or None,
                           bool(made.get("write_back")), wwn=wwn, model_alias=False, hba=hba,
                           create_missing=False)
    if plugin == "block":
        return plan_block(empty, name, made["dev"], bool(made.get("readonly")), wwn=wwn,
                          model_alias=False, hba=hba)
    if plugin == "ramdisk":
        return plan_ramdisk(empty, name, made["size"], bool(made.get("nullio")), wwn=wwn,
                            model_alias=False, hba=hba)
    if plugin == "pscsi":
        if not made.get("dev"):
            raise LioError(f"pscsi/{name}: its SCSI device is not known; cannot re-create it")
        return plan_pscsi(empty, name, made["dev"], hba=hba)
    subtype, _, rest = (made.get("config") or "").partition("/")
    return plan_user(empty, name, made["size"], rest, subtype, wwn=wwn,
                     hw_max_sectors=made.get("hw_max_sectors"), model_alias=False, hba=hba,
                     validate=False, write_back=None, attributes=made.get("attributes"),
                     create_missing=False)


class ReconfigWrite(Write):
    """A write to a served user backstore's dev_config or dev_size: the kernel hands it to the
    handler as a RECONFIG event, and refuses it (ESRCH) when no handler listens for them."""

    def apply(self):
        try:
            return super().apply()
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise
            short = self.path[len(configfs.ROOT) + 1:] if self.path.startswith(configfs.ROOT) else self.path
            raise LioError(f"{short}: no TCMU handler is listening for the change "
                           "(start tcmu-runner, or lioctl's handler for its subtypes)") from None


def plan_change_medium(so: StorageObject, handler: str, cfgstring: str, size: int) -> Plan:
    """targetcli's changemedium: a new config (medium) and size for a user backstore that stays
    exported. A missing lioctl_file backing file is made sparse, as at create."""
    from lioctl.tcmu import config as tcmu_config, launcher
    plan = Plan()
    new_cfg = f"{handler}/{cfgstring}"
    changes = []
    if new_cfg != so.user_config:
        changes.append(ReconfigWrite(f"{so.path}/attrib/dev_config", new_cfg))
    if size != so.size:
        changes.append(ReconfigWrite(f"{so.path}/attrib/dev_size", str(size)))
    if not changes:
        return plan
    if handler == "lioctl_file":
        path = tcmu_config.split_options(cfgstring)[1]
        if not os.path.exists(path):
            plan.add(CreateFile(path, size, True))
    if handler in tcmu_config.SUBTYPES:
        plan.add(ServeUser(f"{so.hba}/{so.name}", serve=launcher.ensure_serving))   # the handler must be up to hear it
    for op in changes:
        plan.add(op)
    return plan
