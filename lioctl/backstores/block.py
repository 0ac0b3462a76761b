"""block (iblock): a block device, opened exclusively unless exclusive=false (Linux 6.17+)."""

from __future__ import annotations

import os
import re
import shlex
import stat
from dataclasses import dataclass

from lioctl import configfs
from lioctl.backstores import common
from lioctl.errors import LioError, NotFound
from lioctl.plan import Op, Plan
from lioctl.saveconfig import rules
from lioctl.units import parse_bool


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


def plan_block(snap, name: str, dev: str, readonly: bool | None = None,
               wwn: str | None = None, model_alias: bool = True, hba: str | None = None,
               exclusive: bool | None = None) -> Plan:
    """exclusive: None leaves the kernel's default (the device opened exclusively); False
    shares it with other openers (Linux 6.17+), so another backstore may use it too."""
    common.check_new_name(snap, KIND.name, name)
    if not os.path.exists(dev):
        raise NotFound(f"block device {dev} does not exist")
    if not common.is_block(dev):
        raise LioError(f"{dev} is not a block device")
    if exclusive is not False:
        common.check_device_free(snap, dev, "device")
    if readonly is None:  # auto-detect, as an admin would expect of a read-only device
        ro = configfs.read(f"/sys/class/block/{os.path.basename(os.path.realpath(dev))}/ro", "0")
        readonly = ro == "1"
    plan, path = common.start(KIND, name, hba)
    plan.write(f"{path}/control", f"udev_path={dev}", undoable=False)
    plan.write(f"{path}/control", f"readonly={int(bool(readonly))}", undoable=False)
    if exclusive is not None:
        plan.write(f"{path}/control", f"exclusive={int(exclusive)}", undoable=False)
        if not exclusive:
            plan.add(CheckSharedOpen(path))
    plan.write(f"{path}/udev_path", dev, undoable=False)
    common.enable(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


def is_readonly(so) -> bool:
    return so.info.get("readonly", "0") == "1" or "ro" == so.info.get("Mode", "")


class Block(common.Kind):
    name = "block"
    hba = "iblock"
    module = "target_core_iblock"
    identity = ("dev", "readonly")
    completes = {"dev": "block device"}

    def create(self, ctx, name, dev, readonly=None, wwn=None, exclusive=None):
        """Create block storage object NAME on block device DEV (read-only devices are
        detected; readonly=true forces it); exclusive=false shares the device with other
        openers (Linux 6.17+).
        Example: /backstores/block create disk1 /dev/sdb
        Example: /backstores/block create vol1 /dev/vg0/vol1 readonly=true
        Example: /backstores/block create b1 /dev/sdb exclusive=false"""
        plan = plan_block(ctx.snap, name, dev, None if readonly is None else parse_bool(readonly, "readonly"),
                          wwn, common.model_alias(ctx),
                          exclusive=None if exclusive is None else parse_bool(exclusive, "exclusive"))
        return plan, f"Created block storage object {name} using {dev}"

    def size(self, so):
        return common.device_size(so)

    def summary(self, so):
        return [so.udev_path or "?", common.size_text(so)] + (["ro"] if is_readonly(so) else [])

    def json(self, so):
        return {"readonly": is_readonly(so)}

    def dump(self, so, attributes):
        d = {"write_back": so.write_back, "readonly": common.info_value(so, "readonly") == "1",
             "wwn": so.wwn, "dev": so.udev_path}
        # Only rtslib-fb 2.2.4 and later take `exclusive` (Debian bookworm's 2.1.75 refuses the
        # whole object for it, dropping its LUNs); exclusive is the default of every version and
        # all a kernel before 6.17 can do (no `exclusive` in its info), so it is written only
        # when off, the one case an older rtslib could not reproduce anyway.
        if common.info_value(so, "exclusive") == "0":
            d["exclusive"] = False
        return d

    def check_saved(self, saved, path, earlier):
        common.check_dev(saved, path)

    def check_backing(self, saved, path):
        dev, name = saved["dev"], saved["name"]  # checked by check_saved
        try:
            st = os.stat(dev)
        except OSError:
            rules.err(path + ".dev", f"block device {dev} of storage object block/{name} does not exist", NotFound)
        if not stat.S_ISBLK(st.st_mode):
            rules.err(path + ".dev", f"{dev} of storage object block/{name} is not a block device")

    def plan_saved(self, saved, hba):
        return plan_block(None, saved["name"], saved["dev"], bool(saved.get("readonly")),
                          wwn=saved.get("wwn") or None, model_alias=False, hba=hba)


KIND = Block()
