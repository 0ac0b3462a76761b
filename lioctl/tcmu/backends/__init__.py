"""Where a user backstore's blocks live. A backend is chosen by the subtype in dev_config
(`lioctl_file/PATH`, `lioctl_ram/NAME`); new kinds register in BACKENDS."""

from __future__ import annotations

from lioctl.tcmu.backends.base import Backend
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.backends.ram import RamBackend

BACKENDS = {"lioctl_file": FileBackend, "lioctl_ram": RamBackend}


def open_backend(subtype: str, config: str, size: int) -> Backend:
    cls = BACKENDS.get(subtype)
    if cls is None:
        raise ValueError(f"no backend for subtype {subtype!r}")
    return cls.open(config, size)
