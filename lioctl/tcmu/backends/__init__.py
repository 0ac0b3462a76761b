"""lioctl's own user-backstore subtypes (handlers): where a user backstore's blocks live, chosen
by the subtype in dev_config (`lioctl_file/PATH`, `lioctl_ram/NAME`).

Adding a subtype (lioctl_rbd, say) is one module and one line here: a Backend subclass in
lioctl/tcmu/backends/<name>.py with its I/O (open, readv, writev, flush, discard) and its
configuration rules (check_config: what create refuses; backing_file: a file create makes when
missing; medium_size: the size of what the config names; config_completion and config_help:
how CFGSTRING completes and is described), then its entry in BACKENDS. Everything else reads
this table: the handler claims these subtypes' devices, `/backstores/user:NAME` appears with its
create and changemedium, saveconfig files using it are checked by its rules, and its tests go
in tests/unit/test_tcmu_*.py (I/O) and the kernel's test_tcmu.py (served through the kernel)."""

from __future__ import annotations

from lioctl.tcmu.backends.base import Backend
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.backends.ram import RamBackend

BACKENDS: dict[str, type[Backend]] = {
    "lioctl_file": FileBackend,
    "lioctl_ram": RamBackend,
}


def open_backend(subtype: str, config: str, size: int) -> Backend:
    cls = BACKENDS.get(subtype)
    if cls is None:
        raise ValueError(f"no backend for subtype {subtype!r}")
    return cls.open(config, size)
