"""A block device's size: what the backstore planners check a size against and the TCMU
handler's lioctl_file subtype validates with. Standard library only (the handler imports it)."""

from __future__ import annotations

import os


def size(dev: str) -> int:
    """Bytes, by seeking to the end (works for any block device, no ioctl or sysfs name needed)."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
