"""pscsi: SCSI pass-through to a device of this host, by /dev path or H:C:T:L."""

from __future__ import annotations

import os
import re

from lioctl.backstores import common
from lioctl.errors import LioError, NotFound
from lioctl.plan import Plan

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
        raise NotFound(f"SCSI device {dev} does not exist")
    base = os.path.basename(os.path.realpath(dev))
    link = f"/sys/class/block/{base}/device"
    if not os.path.exists(link):
        raise LioError(f"{dev} is not a SCSI device (give /dev/sdX or H:C:T:L)")
    return os.path.basename(os.path.realpath(link)), dev


def plan_pscsi(snap, name: str, dev: str, hba: str | None = None) -> Plan:
    common.check_new_name(snap, KIND.name, name)
    hctl, devpath = _hctl_of(dev)
    if not HCTL.match(hctl):
        raise LioError(f"{dev}: cannot find its SCSI address")
    h, c, t, l = hctl.split(":")
    plan, path = common.start(KIND, name, hba)
    plan.write(f"{path}/control",
               f"scsi_host_id={h},scsi_channel_id={c},scsi_target_id={t},scsi_lun_id={l}",
               undoable=False)
    if devpath:
        plan.write(f"{path}/udev_path", devpath, undoable=False)
    common.enable(plan, path, serial=False)      # the device's own serial and model
    return plan


class Pscsi(common.Kind):
    name = "pscsi"
    hba = "pscsi"
    module = "target_core_pscsi"
    identity = ("dev",)
    completes = {"dev": "block device"}

    def create(self, ctx, name, dev):
        """Create pscsi (SCSI pass-through) storage object NAME for DEV: a /dev/sdX-style
        device or its H:C:T:L address.
        Example: /backstores/pscsi create tape0 /dev/st0
        Example: /backstores/pscsi create disk3 2:0:0:0"""
        return plan_pscsi(ctx.snap, name, dev), f"Created pscsi storage object {name} using {dev}"

    def size(self, so):
        return common.device_size(so)

    def summary(self, so):
        return [so.udev_path or "?", common.size_text(so)]

    def dump(self, so, attributes):
        return {"dev": so.udev_path}

    def check_saved(self, saved, path, earlier):
        common.check_dev(saved, path)

    def plan_saved(self, saved, hba):
        if not saved.get("dev"):
            raise LioError(f"pscsi/{saved['name']}: its SCSI device is not known; cannot re-create it")
        return plan_pscsi(None, saved["name"], saved["dev"], hba=hba)


KIND = Pscsi()
