"""librados and librbd's C API through ctypes, for the handler's RBD backend.

Completions are not Python callbacks on librbd's threads: the image's event notification
(rbd_set_image_notification) bumps an eventfd the handler's loop watches, and the loop reaps
finished operations in batches (rbd_poll_io_events). A ctypes callback on a librbd thread
costs a Python thread state and a GIL hand-off per operation: on the host, 4 KiB reads at
QD32 ran at 8.4k/s (38 us of CPU each) with callbacks and 36.7k/s (18 us) polled.

Why not python3-rbd here: its 16.2 Image has aio_read/aio_write/aio_flush/aio_discard/
aio_write_zeroes but neither compare_and_write nor writesame nor update_watch, and it hands
out no rbd_image_t for ctypes to call those on. A second handle on the same image (opened
through ctypes) would pass the exclusive lock back and forth with the first on every
COMPARE AND WRITE. So the handler speaks to librbd.so.1 directly, one handle per image:
- every I/O is one rbd_aio_* call whose completion callback (on a librbd thread) hands the
  result on; nothing waits on a thread per command;
- reads and writes go straight between the TCMU data area and librbd as iovecs
  (rbd_aio_readv/writev): no copy in Python either way.
The lioctl command itself (create, resize, listings, completion) uses python3-rbd/rados
(lioctl/ceph.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading

PACKAGES = "python3-rbd python3-rados (librbd1, librados2)"


class CephError(OSError):
    pass


class Missing(ImportError):
    pass


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)      # (completion, arg)
_WATCH_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)                   # (arg)
_lib = None
_lock = threading.Lock()


def _load():
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        try:
            rados = ctypes.CDLL("librados.so.2", use_errno=True)
            rbd = ctypes.CDLL("librbd.so.1", use_errno=True)
        except OSError as e:
            raise Missing(f"librbd/librados are not installed (Debian: apt install {PACKAGES}): {e}")
        P, S, U64, I = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_int
        PP = ctypes.POINTER(ctypes.c_void_p)
        sig = {
            (rados, "rados_create2"): (I, [PP, S, S, U64]),
            (rados, "rados_conf_read_file"): (I, [P, S]),
            (rados, "rados_conf_set"): (I, [P, S, S]),
            (rados, "rados_connect"): (I, [P]),
            (rados, "rados_shutdown"): (None, [P]),
            (rados, "rados_ioctx_create"): (I, [P, S, PP]),
            (rados, "rados_ioctx_destroy"): (None, [P]),
            (rados, "rados_getaddrs"): (I, [P, PP]),
            (rados, "rados_buffer_free"): (None, [P]),
            (rbd, "rbd_open"): (I, [P, S, PP, S]),
            (rbd, "rbd_open_read_only"): (I, [P, S, PP, S]),
            (rbd, "rbd_close"): (I, [P]),
            (rbd, "rbd_get_size"): (I, [P, ctypes.POINTER(U64)]),
            (rbd, "rbd_stat"): (I, [P, P, ctypes.c_size_t]),
            (rbd, "rbd_resize"): (I, [P, U64]),
            (rbd, "rbd_aio_create_completion"): (I, [P, P, PP]),   # callback: NULL or a _CALLBACK
            (rbd, "rbd_aio_get_return_value"): (ctypes.c_ssize_t, [P]),
            (rbd, "rbd_set_image_notification"): (I, [P, I, I]),
            (rbd, "rbd_poll_io_events"): (I, [P, P, I]),
            (rbd, "rbd_aio_release"): (None, [P]),
            (rbd, "rbd_aio_readv"): (I, [P, P, I, U64, P]),
            (rbd, "rbd_aio_read"): (I, [P, U64, ctypes.c_size_t, P, P]),
            (rbd, "rbd_aio_write"): (I, [P, U64, ctypes.c_size_t, P, P]),
            (rbd, "rbd_aio_writev"): (I, [P, P, I, U64, P]),
            (rbd, "rbd_aio_flush"): (I, [P, P]),
            (rbd, "rbd_aio_discard"): (I, [P, U64, U64, P]),
            (rbd, "rbd_aio_write_zeroes"): (I, [P, U64, ctypes.c_size_t, P, I, I]),
            (rbd, "rbd_aio_writesame"): (I, [P, U64, ctypes.c_size_t, P, ctypes.c_size_t, P, I]),
            (rbd, "rbd_aio_compare_and_write"): (I, [P, U64, ctypes.c_size_t, P, P, P,
                                                     ctypes.POINTER(U64), I]),
            (rbd, "rbd_update_watch"): (I, [P, ctypes.POINTER(U64), _WATCH_CALLBACK, P]),
            (rbd, "rbd_update_unwatch"): (I, [P, U64]),
            (rbd, "rbd_lock_get_owners"): (I, [P, ctypes.POINTER(I), P, ctypes.POINTER(ctypes.c_size_t)]),
            (rbd, "rbd_lock_get_owners_cleanup"): (None, [P, ctypes.c_size_t]),
            (rbd, "rbd_lock_break"): (I, [P, I, S]),
        }
        for (lib, name), (res, args) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _lib = (rados, rbd)
        return _lib


def check(ret: int, what: str) -> int:
    if ret < 0:
        raise CephError(-ret, f"{what}: {os.strerror(-ret)}")
    return ret


class Cluster:
    """One librados connection (shared by the images opened with the same settings)."""

    def __init__(self, conf: str | None, client: str, keyring: str | None, cluster: str,
                 settings: dict[str, str]):
        rados, _ = _load()
        self.rados = rados
        self.handle = ctypes.c_void_p()
        check(rados.rados_create2(ctypes.byref(self.handle), cluster.encode(), f"client.{client}".encode(), 0),
              "rados_create2")
        try:
            # the handler's own log settings first: librados must not write a log of its own
            # or open an admin socket named after a pid, whatever ceph.conf says
            if conf:
                check(rados.rados_conf_read_file(self.handle, conf.encode()), f"cannot read {conf}")
            else:
                check(rados.rados_conf_read_file(self.handle, None), "cannot read the Ceph configuration")
            for k, v in {"log_file": "", "admin_socket": "", **settings}.items():
                check(rados.rados_conf_set(self.handle, k.encode(), str(v).encode()), f"option {k}")
            if keyring:
                check(rados.rados_conf_set(self.handle, b"keyring", keyring.encode()), "keyring")
            check(rados.rados_connect(self.handle), "cannot connect to the cluster")
            addr = ctypes.c_void_p()
            check(rados.rados_getaddrs(self.handle, ctypes.byref(addr)), "rados_getaddrs")
            self.address = ctypes.string_at(addr.value).decode()
            rados.rados_buffer_free(addr)
        except BaseException:
            rados.rados_shutdown(self.handle)
            raise
        self.users = 0
        self.blocklisted = False    # the cluster refused this client (EBLOCKLISTED): open a new one

    def ioctx(self, pool: str) -> ctypes.c_void_p:
        io = ctypes.c_void_p()
        check(self.rados.rados_ioctx_create(self.handle, pool.encode(), ctypes.byref(io)), f"pool {pool}")
        return io

    def close(self) -> None:
        if self.handle:
            self.rados.rados_shutdown(self.handle)
            self.handle = ctypes.c_void_p()


EVENT_TYPE_EVENTFD = 2


class Image:
    """An open image; `aio_*` calls start one operation whose done(ret, extra) is called once,
    by reap() (on whichever thread calls it: the event loop when `fileno()` is readable), with
    ret >= 0 or -errno (extra: the mismatch offset of a compare)."""

    def __init__(self, cluster: Cluster, pool: str, name: str, snap: str | None, read_only: bool,
                 efd: int | None = None):
        _, self.rbd = _load()
        self.cluster = cluster
        self.io = cluster.ioctx(pool)
        self.handle = ctypes.c_void_p()
        opener = self.rbd.rbd_open_read_only if read_only or snap else self.rbd.rbd_open
        r = opener(self.io, name.encode(), ctypes.byref(self.handle), snap.encode() if snap else None)
        if r < 0:
            cluster.rados.rados_ioctx_destroy(self.io)
            what = f"image {pool}/{name}" + (f"@{snap}" if snap else "")
            raise CephError(-r, f"{what}: {os.strerror(-r)}")
        self.pending: dict[int, tuple] = {}     # completion -> (done, keep-alive objects, mismatch)
        self.watch_handle = None
        self.on_error = _same       # (image, -errno) -> the -errno done() gets
        self.on_recovered = _nothing
        self.failing = False        # set by on_error's owner: on_recovered at the next success
        # an image reopened in place of a blocklisted one signals on its predecessor's eventfd
        self.own_efd = efd is None
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) if efd is None else efd
        self.comps = completions()
        r = self.rbd.rbd_set_image_notification(self.handle, self.efd, EVENT_TYPE_EVENTFD)
        if r < 0:
            self.rbd.rbd_close(self.handle)
            cluster.rados.rados_ioctx_destroy(self.io)
            if self.own_efd:
                os.close(self.efd)
            raise CephError(-r, f"rbd_set_image_notification: {os.strerror(-r)}")
        self._callback = _CALLBACK(self._called_back)     # kept alive as long as the image

    # geometry
    def size(self) -> int:
        v = ctypes.c_uint64()
        check(self.rbd.rbd_get_size(self.handle, ctypes.byref(v)), "rbd_get_size")
        return v.value

    def object_size(self) -> int:
        info = (ctypes.c_uint64 * 32)()      # rbd_image_info_t: size, obj_size, ...
        check(self.rbd.rbd_stat(self.handle, info, ctypes.sizeof(info)), "rbd_stat")
        return info[1]

    def resize(self, size: int) -> None:
        check(self.rbd.rbd_resize(self.handle, size), "rbd_resize")

    # the exclusive lock (images with the exclusive-lock feature)
    def lock_owners(self) -> list[str]:
        """Client addresses ('127.0.0.1:0/NONCE') holding the image's exclusive lock."""
        mode, n = ctypes.c_int(), ctypes.c_size_t(8)
        owners = (ctypes.c_char_p * 8)()
        r = self.rbd.rbd_lock_get_owners(self.handle, ctypes.byref(mode), owners, ctypes.byref(n))
        if r == -errno.ENOENT or r == -errno.EOPNOTSUPP or r == -errno.EINVAL:
            return []       # nobody holds it, or the image has no exclusive lock
        check(r, "rbd_lock_get_owners")
        got = [owners[i].decode() for i in range(n.value)]
        self.rbd.rbd_lock_get_owners_cleanup(owners, n.value)
        return got

    def break_lock(self, owner: str) -> None:
        """Take the exclusive lock from a dead owner (librbd blocklists it first)."""
        check(self.rbd.rbd_lock_break(self.handle, 0, owner.encode()), f"rbd_lock_break {owner}")

    # asynchronous I/O: every operation is keyed by its completion's address while in flight
    # (an address is reused only after rbd_aio_release, and its entry is popped before that)
    def _start(self, done, keep, mismatch=None, callback=None) -> int:
        comp = ctypes.c_void_p()
        r = self.rbd.rbd_aio_create_completion(None, callback, ctypes.byref(comp))
        if r < 0:
            raise CephError(-r, f"rbd_aio_create_completion: {os.strerror(-r)}")
        comp = comp.value
        self.pending[comp] = (done, keep, mismatch)
        return comp

    def _submitted(self, r: int, comp: int) -> None:
        if r < 0:       # refused at once: no completion will come
            self.pending.pop(comp, None)
            self.rbd.rbd_aio_release(comp)
            raise CephError(-r, os.strerror(-r))

    def _called_back(self, comp, arg) -> None:
        """On a librbd thread: an operation whose completion librbd 16.2 does not put on the
        event notification (compare-and-write: measured, its aio never reached
        rbd_poll_io_events), so it comes as a callback."""
        ret = self.rbd.rbd_aio_get_return_value(comp)
        done, _, mismatch = self.pending.pop(comp, _NONE)
        self.rbd.rbd_aio_release(comp)
        if done is not None:
            if ret < 0:
                ret = self.on_error(self, ret)
            done(ret, mismatch.value if mismatch is not None and ret == -errno.EILSEQ else None)

    def fileno(self) -> int:
        """Readable when operations have finished: then reap()."""
        return self.efd

    def reap(self, comps=None) -> int:
        """Call done() of every finished operation; returns how many. The event loop reaps
        into the image's own array; any other thread passes one of its own. A failure's
        -errno goes through on_error first (the backend's accounting: it may map it); the
        first success after failures calls on_recovered."""
        rbd, pending = self.rbd, self.pending
        if comps is None:
            comps = self.comps
        size = len(comps)
        n = 0
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass
        poll, value, release = rbd.rbd_poll_io_events, rbd.rbd_aio_get_return_value, rbd.rbd_aio_release
        while True:
            got = poll(self.handle, comps, size)
            if got <= 0:
                return n
            for i in range(got):
                comp = comps[i]
                ret = value(comp)
                done, _, mismatch = pending.pop(comp, _NONE)
                release(comp)
                if done is None:
                    continue
                if ret < 0:
                    ret = self.on_error(self, ret)
                    done(ret, mismatch.value if mismatch is not None and ret == -errno.EILSEQ else None)
                else:
                    if self.failing:
                        self.failing = False
                        self.on_recovered()
                    done(ret, None)
            n += got
            if got < size:      # drained: anything later bumps the eventfd again
                return n

    def aio_readv(self, bufs, offset: int, done) -> None:
        if len(bufs) == 1:      # every 4 KiB command: no iovec array
            b = bufs[0]
            buf = ctypes.c_char.from_buffer(b)
            comp = self._start(done, buf)
            self._submitted(self.rbd.rbd_aio_read(self.handle, offset, len(b), ctypes.byref(buf), comp), comp)
            return
        iov = _iovecs(bufs)
        comp = self._start(done, (iov, bufs))
        self._submitted(self.rbd.rbd_aio_readv(self.handle, iov, len(iov), offset, comp), comp)

    def aio_writev(self, bufs, offset: int, done) -> None:
        if len(bufs) == 1:
            b = bufs[0]
            buf = ctypes.c_char.from_buffer(b)
            comp = self._start(done, buf)
            self._submitted(self.rbd.rbd_aio_write(self.handle, offset, len(b), ctypes.byref(buf), comp), comp)
            return
        iov = _iovecs(bufs)
        comp = self._start(done, (iov, bufs))
        self._submitted(self.rbd.rbd_aio_writev(self.handle, iov, len(iov), offset, comp), comp)

    def aio_flush(self, done) -> None:
        comp = self._start(done, None)
        self._submitted(self.rbd.rbd_aio_flush(self.handle, comp), comp)

    def aio_discard(self, offset: int, length: int, done) -> None:
        comp = self._start(done, None)
        self._submitted(self.rbd.rbd_aio_discard(self.handle, offset, length, comp), comp)

    def aio_write_zeroes(self, offset: int, length: int, done) -> None:
        comp = self._start(done, None)
        self._submitted(self.rbd.rbd_aio_write_zeroes(self.handle, offset, length, comp, 0, 0), comp)

    def aio_writesame(self, offset: int, length: int, block: bytes, done) -> None:
        buf = ctypes.create_string_buffer(block, len(block))
        comp = self._start(done, (buf,))
        self._submitted(self.rbd.rbd_aio_writesame(self.handle, offset, length, buf, len(block), comp, 0), comp)

    def aio_compare_and_write(self, offset: int, compare: bytes, data: bytes, done) -> None:
        """librbd takes 512 bytes within one 512-byte sector; a mismatch ends with -EILSEQ and
        done's extra is the image offset of the first differing byte."""
        mismatch = ctypes.c_uint64()
        cmp_buf = ctypes.create_string_buffer(compare, len(compare))
        buf = ctypes.create_string_buffer(data, len(data))
        comp = self._start(done, (cmp_buf, buf), mismatch, self._callback)
        self._submitted(self.rbd.rbd_aio_compare_and_write(self.handle, offset, len(data), cmp_buf, buf, comp,
                                                           ctypes.byref(mismatch), 0), comp)

    # size changes made elsewhere (rbd resize, another gateway)
    def watch(self, changed) -> None:
        """changed() runs on a librbd thread whenever the image's header changes."""
        self._watch_cb = _WATCH_CALLBACK(lambda arg: changed())
        h = ctypes.c_uint64()
        check(self.rbd.rbd_update_watch(self.handle, ctypes.byref(h), self._watch_cb, None), "rbd_update_watch")
        self.watch_handle = h.value

    def in_flight(self) -> int:
        return len(self.pending)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Reap until nothing is in flight (or timeout)."""
        import select
        import time
        end = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            left = 0.1 if end is None else min(0.1, end - time.monotonic())
            if left <= 0:
                return False
            select.select([self.efd], [], [], left)
            self.reap()
        return True

    def close(self) -> None:
        """Waits for the operations in flight: librbd writes into their buffers until then."""
        if not self.handle:
            return
        self.wait_idle()
        if self.watch_handle is not None:
            self.rbd.rbd_update_unwatch(self.handle, self.watch_handle)
            self.watch_handle = None
        self.rbd.rbd_close(self.handle)
        self.cluster.rados.rados_ioctx_destroy(self.io)
        self.handle = ctypes.c_void_p()
        if self.own_efd:
            os.close(self.efd)


_NONE = (None, None, None)


def completions():
    """An array for reap(): a batch of finished operations' completions."""
    return (ctypes.c_void_p * 128)()


def _same(image, ret):
    return ret


def _nothing():
    pass


def _iovecs(bufs) -> ctypes.Array:
    """struct iovec[] over writable buffers (the TCMU data area's memoryviews), without copying."""
    iov = (_IOVec * len(bufs))()
    for i, b in enumerate(bufs):
        iov[i].iov_base = ctypes.addressof(ctypes.c_char.from_buffer(b))
        iov[i].iov_len = len(b)
    return iov
