"""A regular file (sparse is fine) or a block device, with positional vectored I/O straight
between the file and the TCMU data area (no copies in Python)."""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from lioctl import blockdev
from lioctl.errors import InUse, LioError
from lioctl.tcmu.backends.base import Backend

OPTIONS = ("direct",)      # O_DIRECT
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
MEMORY_FILESYSTEMS = {0x01021994, 0x858458F6}     # tmpfs, ramfs (statfs f_type)
_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
        _libc.fstatfs.argtypes = (ctypes.c_int, ctypes.c_void_p)
    return _libc


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if libc().fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def in_memory(fd: int) -> bool:
    """Whether a regular file lives on tmpfs or ramfs, where I/O never waits for a medium."""
    buf = ctypes.create_string_buffer(256)      # struct statfs; f_type is its first word
    if libc().fstatfs(fd, buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value in MEMORY_FILESYSTEMS


def split_options(config: str) -> tuple[set[str], str]:
    """('direct;/srv/d.img') -> ({'direct'}, '/srv/d.img'): options end at the path's first '/'."""
    slash = config.find("/")
    head, tail = (config, "") if slash < 0 else (config[:slash], config[slash:])
    if ";" not in head:
        return set(), config
    opts, _, rest = head.rpartition(";")
    return {o for o in opts.split(";") if o}, rest + tail


class FileBackend(Backend):
    """lioctl_file: config `[OPTION;...]PATH` with an absolute PATH; the one option is `direct`."""

    config_completion = "file"
    config_help = "a file or block device (a missing file is created sparse)"

    @classmethod
    def check_config(cls, config, size, others):
        options, path = split_options(config)
        bad = options - set(OPTIONS)
        if bad:
            raise LioError(f"unknown lioctl_file option {sorted(bad)[0]!r} (known: {', '.join(OPTIONS)})")
        if not path.startswith("/"):
            raise LioError(f"lioctl_file wants an absolute file path, not {config!r}")
        for other in others:
            if other.startswith("lioctl_file/") and \
                    os.path.realpath(split_options(other[len("lioctl_file/"):])[1]) == os.path.realpath(path):
                raise InUse(f"another user backstore already uses {path}")
        if os.path.exists(path):
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                raise LioError(f"{path} is a directory")
            if not os.access(path, os.R_OK | os.W_OK):
                raise LioError(f"{path} is not readable and writable")
            if stat.S_ISBLK(st.st_mode):
                have = blockdev.size(path)
                if size > have:
                    raise LioError(f"size {size} is larger than block device {path} ({have} bytes)")
        else:
            parent = os.path.dirname(path) or "/"
            if not os.path.isdir(parent):
                raise LioError(f"backing file {path} does not exist and {parent} is not a directory")
            if not os.access(parent, os.W_OK):
                raise LioError(f"cannot create backing file {path}: {parent} is not writable")

    @classmethod
    def backing_file(cls, config):
        return split_options(config)[1]

    @classmethod
    def medium_size(cls, config):
        path = split_options(config)[1]
        return blockdev.size(path) if stat.S_ISBLK(os.stat(path).st_mode) else os.path.getsize(path)

    def __init__(self, path: str, size: int, direct: bool = False):
        self.path = path
        flags = os.O_RDWR | os.O_CLOEXEC
        self.fd = os.open(path, flags)
        self.dfd = os.open(path, flags | os.O_DIRECT) if direct else self.fd
        self.writes_wait = direct       # no page cache to land in: a write waits for the disk
        st = os.fstat(self.fd)
        self.is_block = stat.S_ISBLK(st.st_mode)
        self.blocking = direct or self.is_block or not in_memory(self.fd)
        # buffered reads of a file or device that may wait are tried from the page cache first
        # (RWF_NOWAIT); O_DIRECT reads always go to the medium
        self.nowait = self.blocking and not direct
        have = os.lseek(self.fd, 0, os.SEEK_END) if self.is_block else st.st_size
        if self.is_block and size > have:
            self.close()
            raise OSError(errno.ENOSPC, f"{path} has {have} bytes, the device wants {size}")
        if not self.is_block and have < size:
            os.ftruncate(self.fd, size)     # grow sparse to the configured size
        self.size = size
        self.native_fd, self.native_dfd = self.fd, self.dfd

    def native_reads(self):
        if self.dfd != self.fd:
            return 0
        return 2 if self.nowait else 0 if self.blocking else 1

    @classmethod
    def open(cls, config: str, size: int) -> "FileBackend":
        options, path = split_options(config)
        return cls(path, size, direct="direct" in options)

    def readv(self, bufs, offset):
        total = _total(bufs)
        try:
            got = os.preadv(self.dfd, bufs, offset)
        except OSError as e:
            if e.errno != errno.EINVAL or self.dfd == self.fd:
                raise
            got = os.preadv(self.fd, bufs, offset)   # unaligned buffer: not for O_DIRECT
        while 0 < got < total:
            rest = _skip(bufs, got)
            n = os.preadv(self.fd, rest, offset + got)
            if n == 0:
                break
            got += n
        return got

    def readv_nowait(self, bufs, offset):
        """Bytes read from the page cache alone (short when part of it is not there), or None
        when the first page would wait for the medium; a file system or device without
        RWF_NOWAIT turns this off for good."""
        if not self.nowait:
            return None
        try:
            return os.preadv(self.fd, bufs, offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            self.nowait = False
            return None

    def writev(self, bufs, offset, sync=False):
        total = _total(bufs)
        flags = os.RWF_DSYNC if sync else 0
        try:
            done = os.pwritev(self.dfd, bufs, offset, flags)
        except OSError as e:
            if e.errno != errno.EINVAL or self.dfd == self.fd:
                raise
            done = os.pwritev(self.fd, bufs, offset, flags)
        while done < total:
            n = os.pwritev(self.fd, _skip(bufs, done), offset + done, flags)
            if n == 0:
                raise OSError(errno.EIO, "short write")
            done += n

    def flush(self):
        os.fdatasync(self.fd)

    def discard(self, offset, length):
        try:
            fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
            return
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.ENODEV, errno.EINVAL):
                raise
        zeros = memoryview(bytes(min(length, 1 << 20)))
        while length:
            k = min(length, len(zeros))
            self.writev([zeros[:k]], offset)
            offset += k
            length -= k

    def resize(self, size):
        if not self.is_block and size > os.fstat(self.fd).st_size:
            os.ftruncate(self.fd, size)
        self.size = size

    def close(self):
        for fd in {self.fd, self.dfd}:
            try:
                os.close(fd)
            except OSError:
                pass


def _total(bufs) -> int:
    return len(bufs[0]) if len(bufs) == 1 else sum(map(len, bufs))


def _skip(bufs, n: int) -> list:
    out = []
    for b in bufs:
        if n >= len(b):
            n -= len(b)
            continue
        out.append(b[n:] if n else b)
        n = 0
    return out
