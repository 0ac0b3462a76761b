"""fileio: a file (created sparse when missing) or a block device, through the page cache or not."""

from __future__ import annotations

import os

from lioctl import blockdev
from lioctl.backstores import common
from lioctl.errors import LioError, NotFound
from lioctl.plan import CreateFile, Plan
from lioctl.saveconfig import rules
from lioctl.units import parse_bool, parse_size


def plan_fileio(snap, name: str, file: str, size=None, write_back: bool = True,
                sparse: bool = True, wwn: str | None = None, model_alias: bool = True,
                hba: str | None = None, create_missing: bool = True) -> Plan:
    common.check_new_name(snap, KIND.name, name)
    if not file.startswith("/"):
        file = os.path.abspath(file)
    if "," in file or "\n" in file:
        raise LioError(f"file {file!r}: the kernel cannot take a path with ',' or newline")
    common.check_device_free(snap, file, "file")
    create = None
    if os.path.exists(file):
        if os.path.isdir(file):
            raise LioError(f"{file} is a directory; give a regular file or a block device")
        if common.is_block(file):
            size_bytes = blockdev.size(file)
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
            raise NotFound(f"file {file} does not exist; give a size to create it")
        if not create_missing:
            raise NotFound(f"file {file} does not exist")
        parent = os.path.dirname(file) or "."
        if not os.path.isdir(parent):
            raise LioError(f"cannot create {file}: directory {parent} does not exist")
        size_bytes = parse_size(size)
        create = CreateFile(file, size_bytes, sparse)
    plan, path = common.start(KIND, name, hba)
    if create:
        plan.ops.insert(0, create)
    if common.is_block(file):
        plan.write(f"{path}/control", f"fd_dev_name={file}", undoable=False)
    else:
        plan.write(f"{path}/control", f"fd_dev_name={file},fd_dev_size={size_bytes}", undoable=False)
    if write_back:
        plan.write(f"{path}/attrib/emulate_write_cache", "1", undoable=False)
        plan.write(f"{path}/control", "fd_buffered_io=1", undoable=False)
    plan.write(f"{path}/udev_path", file, undoable=False)
    common.enable(plan, path, wwn=wwn, model_alias=model_alias)
    return plan


class Fileio(common.Kind):
    name = "fileio"
    hba = "fileio"
    module = "target_core_file"
    identity = ("dev", "size", "write_back")
    completes = {"file_or_dev": "file"}

    def create(self, ctx, name, file_or_dev, size=None, write_back="true", sparse="true", wwn=None):
        """Create fileio storage object NAME on FILE_OR_DEV: a file (created sparse with SIZE
        when missing; SIZE takes K, M, G, T) or a block device. write_back=false for
        write-through; sparse=false allocates the whole file.
        Example: /backstores/fileio create disk1 /srv/disk1.img 10G
        Example: /backstores/fileio create disk2 /srv/disk2.img 1G write_back=false"""
        plan = plan_fileio(ctx.snap, name, file_or_dev, size, parse_bool(write_back, "write_back"),
                           parse_bool(sparse, "sparse"), wwn, common.model_alias(ctx))
        return plan, f"Created fileio {name} with file {file_or_dev}"

    def device(self, so):
        return so.info.get("File", "")

    def summary(self, so):
        return [so.udev_path or "?", common.size_text(so),
                "write-back" if so.write_back else "write-thru"]

    def json(self, so):
        return {"write_back": so.write_back}

    def dump(self, so, attributes):
        return {"write_back": so.write_back, "wwn": so.wwn, "dev": so.udev_path, "size": so.size,
                "aio": common.info_value(so, "async") == "1" or "Async: 1" in so.info.get("_raw", "")}

    def check_saved(self, saved, path, earlier):
        common.check_dev(saved, path)
        common.check_size(saved, path, positive=False)

    def check_backing(self, saved, path):
        dev = saved["dev"]  # checked by check_saved: no control characters
        if not os.path.exists(dev):
            rules.err(path + ".dev", f"backing file {dev} of storage object fileio/{saved['name']} does not exist", NotFound)

    def plan_saved(self, saved, hba):
        return plan_fileio(None, saved["name"], saved["dev"], saved.get("size") or None,
                           bool(saved.get("write_back")), wwn=saved.get("wwn") or None,
                           model_alias=False, hba=hba, create_missing=False)


KIND = Fileio()
