"""Blocks in anonymous memory (zero pages until written): for tests and scratch LUNs."""

from __future__ import annotations

import mmap

from lioctl.tcmu.backends.base import Backend


class RamBackend(Backend):
    """lioctl_ram: config is any label."""

    config_help = "any label"
    nonrotational = True
    blocking = False

    def __init__(self, size: int):
        self.size = size
        self.mem = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
        self.mv = memoryview(self.mem)

    @classmethod
    def open(cls, config: str, size: int) -> "RamBackend":
        return cls(size)

    def readv(self, bufs, offset):
        pos = offset
        for b in bufs:
            n = max(0, min(len(b), self.size - pos))
            b[:n] = self.mv[pos:pos + n]
            pos += n
            if n < len(b):
                break
        return pos - offset

    def writev(self, bufs, offset, sync=False):
        pos = offset
        for b in bufs:
            if pos + len(b) > self.size:
                raise OSError(28, "write past the end of the RAM disk")
            self.mv[pos:pos + len(b)] = b
            pos += len(b)

    def discard(self, offset, length):
        length = max(0, min(length, self.size - offset))
        # MADV_DONTNEED on whole pages gives them back; the edges are zeroed by hand
        page = mmap.PAGESIZE
        start = -(-offset // page) * page
        end = (offset + length) // page * page
        if end > start and hasattr(self.mem, "madvise"):
            self.mv[offset:start] = bytes(start - offset)
            self.mem.madvise(mmap.MADV_DONTNEED, start, end - start)
            self.mv[end:offset + length] = bytes(offset + length - end)
        else:
            self.mv[offset:offset + length] = bytes(length)

    def resize(self, size):
        if size > self.size:
            mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
            mem[:self.size] = self.mv[:self.size]
            self.mv.release()
            self.mem.close()
            self.mem, self.mv = mem, memoryview(mem)
        self.size = size

    def close(self):
        self.mv.release()
        self.mem.close()
