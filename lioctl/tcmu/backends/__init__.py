"""Where a user backstore's blocks live. A backend is chosen by the subtype in dev_config
(`lioctl_file/PATH`, `lioctl_ram/NAME`, `lioctl_rbd/POOL/IMAGE...`); new kinds register in
BACKENDS. The RBD backend is imported only when a device needs it: the file and RAM
backends work without Ceph's libraries."""

from __future__ import annotations

from lioctl.tcmu.backends.base import Backend
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.backends.ram import RamBackend

BACKENDS = {"lioctl_file": FileBackend, "lioctl_ram": RamBackend, "lioctl_rbd": "lioctl.tcmu.backends.rbd:RbdBackend"}


def open_backend(subtype: str, config: str, size: int) -> Backend:
    cls = BACKENDS.get(subtype)
    if isinstance(cls, str):
        import importlib
        module, _, name = cls.partition(":")
        cls = getattr(importlib.import_module(module), name)
    if cls is None:
        raise ValueError(f"no backend for subtype {subtype!r}")
    return cls.open(config, size)
