"""ramdisk (rd_mcp): blocks in kernel memory, or none at all with nullio (writes discarded)."""

from __future__ import annotations

from lioctl.backstores import common
from lioctl.plan import Plan
from lioctl.units import parse_bool, parse_size


def plan_ramdisk(snap, name: str, size, nullio: bool = False, wwn: str | None = None,
                 model_alias: bool = True, hba: str | None = None) -> Plan:
    common.check_new_name(snap, KIND.name, name)
    pages = (parse_size(size) + 4095) // 4096
    plan, path = common.start(KIND, name, hba)
    plan.write(f"{path}/control", f"rd_pages={pages}", undoable=False)
    if nullio:
        plan.write(f"{path}/control", "rd_nullio=1", undoable=False)
    common.enable(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


class Ramdisk(common.Kind):
    name = "ramdisk"
    hba = "rd_mcp"
    module = "target_core_mod"
    identity = ("size", "nullio")
    lossy = True

    def create(self, ctx, name, size, nullio="false", wwn=None):
        """Create ramdisk storage object NAME of SIZE in kernel memory (nullio=true: no memory,
        writes are discarded).
        Example: /backstores/ramdisk create rd1 1G
        Example: /backstores/ramdisk create null1 10G nullio=true"""
        plan = plan_ramdisk(ctx.snap, name, size, parse_bool(nullio, "nullio"), wwn, common.model_alias(ctx))
        return plan, f"Created ramdisk {name} with size {size}"

    def size(self, so):
        pages, page_size = so.info.get("PAGES/PAGE_SIZE", "0*0").split("*")
        return int(pages) * int(page_size)

    def dump(self, so, attributes):
        d = {"wwn": so.wwn, "size": so.size}
        if common.info_value(so, "nullio") == "1":
            d["nullio"] = True
        return d

    def check_saved(self, saved, path, earlier):
        common.check_size(saved, path)

    def plan_saved(self, saved, hba):
        return plan_ramdisk(None, saved["name"], saved["size"], bool(saved.get("nullio")),
                            wwn=saved.get("wwn") or None, model_alias=False, hba=hba)

    def recreate_loss(self, saved):
        if not saved.get("nullio"):
            return "re-created empty: a ramdisk's data cannot be brought back"
        return None


KIND = Ramdisk()
