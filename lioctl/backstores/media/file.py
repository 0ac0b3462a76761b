"""The path medium: a file or block device (and any CFGSTRING a subtype takes as typed: the
medium of whatever no other medium's form claims). Served by lioctl_file (the default
subtype), or by the kernel's fileio and block kinds when `lioctl export` needs no handler."""

from __future__ import annotations

import os
import stat

from lioctl.backstores import block, fileio
from lioctl.backstores.media.base import Medium, Prepared
from lioctl.errors import LioError, NotFound
from lioctl.tcmu import config as tcmu_config
from lioctl.tcmu.backends import BACKENDS, backend


def check_device(device: str) -> str:
    """Return 'block' or 'file'; one-line errors for everything else."""
    try:
        st = os.stat(device)
    except FileNotFoundError:
        raise NotFound(f"{device}: no such file or device") from None
    except OSError as e:
        raise LioError(f"{device}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LioError(f"{device} is a directory; give a block device or a regular file")
    if stat.S_ISCHR(st.st_mode):
        raise LioError(f"{device} is a character device; give a block device or a regular file")
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise LioError(f"{device} is not a block device or a regular file")
    if not os.access(device, os.R_OK):
        raise LioError(f"{device} is not readable")
    return "block" if stat.S_ISBLK(st.st_mode) else "file"


class Path(Medium):
    name = "file"
    form = "DEVICE|FILE"
    what = "file"
    nouns = ("file", "block device")

    def takes(self, arg):
        return True

    def prepare(self, snap, arg, size, options, subtype=None):
        if subtype is None and ":" in arg:   # a subtype's own form names the subtype
            subtype, arg = next(((s, c) for s in BACKENDS if (c := backend(s).from_cfgstring(arg)) is not None),
                                (None, arg))
        if size is None:                    # export: the file's own size
            size = backend(subtype or tcmu_config.DEFAULT_SUBTYPE).medium_size(arg)
            if not size:
                raise LioError(f"file {arg} is empty; give --lun-size to use it")
        return Prepared(subtype, arg, size)

    def export_names(self, arg, size):
        device = os.path.abspath(arg)
        return device, device, device

    def export_kind(self, device, size, user):
        # a missing file with a size is created sparse, as fileio's create does
        kind = "file" if not os.path.exists(device) and size else check_device(device)
        if user:
            return None
        return block.KIND if kind == "block" else fileio.KIND

    def plan_kernel(self, snap, kind, name, device, size, readonly, wwn, hba):
        if kind is fileio.KIND:
            # fileio has no read-only mode: --readonly write-protects the mapped LUN / demo mode
            return fileio.plan_fileio(snap, name, device, size, write_back=not readonly, wwn=wwn, hba=hba)
        return block.plan_block(snap, name, device, True if readonly else None, wwn=wwn, hba=hba)

    def exports(self, snap, arg, options, loose=False):
        real = os.path.realpath(arg)
        return [so for so in snap.storage_objects.values() if so.kind.backed_by(so, real)]


MEDIUM = Path()
