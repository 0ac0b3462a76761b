"""lioctl's own user-backstore subtypes (handlers): where a user backstore's blocks live, chosen
by the subtype in dev_config (`lioctl_file/PATH`, `lioctl_ram/NAME`).

Adding a subtype (lioctl_rbd, say) is one module and one line here: a Backend subclass in
lioctl/tcmu/backends/<name>.py with its I/O (open, readv, writev, flush, discard) and its
configuration rules (from_cfgstring: a CFGSTRING form of its own, such as rbd:POOL/IMAGE;
check_config: what create refuses; backing_file: a file create makes when
missing; medium_size: the size of what the config names; config_completion, complete_config
and config_help: how CFGSTRING completes and is described), then its entry in BACKENDS (as
"module:Class" when its module is costly to import). Everything else reads
this table: the handler claims these subtypes' devices, `/backstores/user:NAME` appears with its
create and changemedium, saveconfig files using it are checked by its rules, and its tests go
in tests/unit/test_tcmu_*.py (I/O) and the kernel's test_tcmu.py (served through the kernel)."""

from __future__ import annotations

import importlib

from lioctl.tcmu.backends.base import Backend
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.backends.ram import RamBackend

# subtype -> its Backend, or "module:Class" for one whose module is costly to import (a
# library binding, say): it is imported when first asked for
BACKENDS: dict[str, type[Backend] | str] = {
    "lioctl_file": FileBackend,
    "lioctl_ram": RamBackend,
    "lioctl_rbd": "lioctl.tcmu.backends.rbd:RbdBackend",
}


def backend(subtype: str) -> type[Backend] | None:
    """The Backend class of one of lioctl's subtypes; None for any other (tcmu-runner's)."""
    cls = BACKENDS.get(subtype)
    if isinstance(cls, str):
        module, _, name = cls.partition(":")
        cls = BACKENDS[subtype] = getattr(importlib.import_module(module), name)
    return cls


def open_backend(subtype: str, config: str, size: int) -> Backend:
    cls = backend(subtype)
    if cls is None:
        raise ValueError(f"no backend for subtype {subtype!r}")
    return cls.open(config, size)
