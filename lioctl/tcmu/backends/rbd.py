"""A Ceph RBD image through librbd's asynchronous C API (lioctl/tcmu/librbd.py): the
lioctl_rbd subtype. Config: see lioctl/tcmu/rbdspec.py.

Devices with the same cluster settings share one librados connection. Settings the handler
imposes on it:
- rbd_skip_partial_discard=false: a discard that does not cover whole 64 KiB units would
  otherwise leave the data in place, and the LUN says unmapped blocks read back as zeros;
- rados_osd_op_timeout / rados_mon_op_timeout / client_mount_timeout = the config's timeout
  (20 s by default, under the kernel's 30 s cmd_time_out): an operation on a cluster that does
  not answer (an OSD stopped) fails with -ETIMEDOUT, which the initiator sees as NOT READY,
  instead of waiting for ever; the image stays usable and I/O resumes when the OSD is back.
COMPARE AND WRITE is librbd's compare-and-write, an OSD-side compare-extent + write: atomic
against every gateway and client of the image. librbd takes exactly 512 bytes within one
512-byte sector, so an rbd LUN offers COMPARE AND WRITE of one block when its logical block
is 512 bytes (the default) and not at all otherwise (block limits VPD: 0)."""

from __future__ import annotations

import errno
import threading

from lioctl.tcmu import librbd, rbdspec
from lioctl.tcmu.backends.base import Backend

_clusters: dict[tuple, librbd.Cluster] = {}
_clusters_lock = threading.Lock()
CAW_BYTES = 512


def _connect(spec: rbdspec.RbdSpec) -> librbd.Cluster:
    t = str(spec.timeout or rbdspec.DEFAULT_TIMEOUT)
    key = (spec.conf_path(), spec.id or "admin", spec.keyring, spec.cluster or "ceph", t)
    with _clusters_lock:
        c = _clusters.get(key)
        if c is None:
            c = librbd.Cluster(spec.conf_path(), spec.id or "admin", spec.keyring, spec.cluster or "ceph",
                               {"rbd_skip_partial_discard": "false", "rados_osd_op_timeout": t,
                                "rados_mon_op_timeout": t, "client_mount_timeout": t})
            _clusters[key] = c
        c.users += 1
        return c


def _disconnect(c: librbd.Cluster) -> None:
    with _clusters_lock:
        c.users -= 1
        if c.users > 0:
            return
        for k, v in list(_clusters.items()):
            if v is c:
                del _clusters[k]
    c.close()


class RbdBackend(Backend):
    config_help = "POOL/IMAGE[@SNAP][;conf=PATH][;id=NAME][;keyring=PATH][;cluster=NAME][;timeout=SECONDS]"
    asynchronous = True
    blocking = True         # its synchronous calls (VERIFY) wait for the network: I/O threads
    opens_slowly = True     # a cluster connect and an image open: seconds, or the timeout
    thin = True
    nonrotational = True

    def __init__(self, spec: rbdspec.RbdSpec):
        self.spec = spec
        self.cluster = _connect(spec)
        try:
            self.image = librbd.Image(self.cluster, spec.pool, spec.image, spec.snap, spec.read_only)
        except BaseException:
            _disconnect(self.cluster)
            raise
        self.read_only = spec.read_only
        self.thin = not spec.read_only      # a snapshot offers no UNMAP (thin provisioning VPD: none)
        self.size = self.image.size()
        self.object_size = self.image.object_size()
        self.compare_and_write_max = CAW_BYTES
        self.errors = 0
        self.timeouts = 0           # operations the cluster did not answer in time
        self.reachable = True       # False from a timed-out operation to the next success

    @classmethod
    def check_config(cls, config: str, size: int, others: list[str]) -> None:
        """A config string that parses, naming an image no other backstore serves (the
        cluster itself is asked by the lioctl command: lioctl/ceph.py)."""
        from lioctl.errors import LioError
        try:
            spec = rbdspec.parse_config(config)
        except rbdspec.SpecError as e:
            raise LioError(str(e)) from None
        for other in others:
            if other.startswith("lioctl_rbd/"):
                try:
                    theirs = rbdspec.parse_config(other[len("lioctl_rbd/"):])
                except rbdspec.SpecError:
                    continue
                if theirs.same_image(spec) and theirs.snap == spec.snap:
                    raise LioError(f"another user backstore already serves RBD image {spec.name}")

    @classmethod
    def open(cls, config: str, size: int) -> "RbdBackend":
        return cls(rbdspec.parse_config(config))

    # results pass through here on librbd's thread: counts only, never blocks
    def _track(self, done):
        def finished(ret, extra=None):
            if ret < 0:
                self.errors += 1
                if -ret == errno.ETIMEDOUT:
                    self.timeouts += 1
                    self.reachable = False
            else:
                self.reachable = True
            done(ret, extra)
        return finished

    # the asynchronous form
    def aio_readv(self, bufs, offset, done):
        self.image.aio_readv(bufs, offset, self._track(done))

    def aio_writev(self, bufs, offset, done):
        self.image.aio_writev(bufs, offset, self._track(done))

    def aio_flush(self, done):
        self.image.aio_flush(self._track(done))

    def aio_discard(self, offset, length, done):
        self.image.aio_discard(offset, length, self._track(done))

    def aio_write_zeroes(self, offset, length, done):
        self.image.aio_write_zeroes(offset, length, self._track(done))

    def aio_write_same(self, offset, length, block, done):
        self.image.aio_writesame(offset, length, block, self._track(done))

    def aio_compare_and_write(self, offset, compare, data, done):
        """One 512-byte sector. librbd 16.2 reports a mismatch as the offset of the object
        extent plus the offset within the compared data (not the image offset of the byte):
        either form is turned into the offset within the data."""
        if len(data) != CAW_BYTES or offset % CAW_BYTES:
            raise OSError(errno.EINVAL, "compare-and-write takes one 512-byte sector")
        obj = self.object_size

        def compared(ret, mismatch):
            if mismatch is not None:
                rel = mismatch - offset
                if not 0 <= rel < CAW_BYTES:
                    rel = mismatch - offset // obj * obj
                mismatch = rel if 0 <= rel < CAW_BYTES else 0
            done(ret, mismatch)
        self.image.aio_compare_and_write(offset, compare, data, self._track(compared))

    def in_flight(self) -> int:
        return self.image.in_flight()

    def completion_fd(self) -> int:
        return self.image.fileno()

    def reap(self) -> int:
        return self.image.reap()

    def changed(self, notify):
        self.image.watch(notify)

    def current_size(self) -> int:
        return self.image.size()

    # the synchronous form (VERIFY, MODE SELECT's flush): on an I/O thread, reaping right there
    # until its operation is done (whoever reaps it, this thread or the event loop, sets ev)
    def _wait(self, start, *args) -> int:
        ev = threading.Event()
        out = []

        def done(ret, extra=None):
            out.append(ret)
            ev.set()
        start(*args, done)
        while not ev.wait(0.005):
            self.image.reap()
        if out[0] < 0:
            raise OSError(-out[0], f"rbd {self.spec.name}: {errno.errorcode.get(-out[0], out[0])}")
        return out[0]

    def readv(self, bufs, offset):
        return self._wait(self.aio_readv, bufs, offset)

    def writev(self, bufs, offset, sync=False):
        bufs = [b if isinstance(b, memoryview) and not b.readonly else memoryview(bytearray(b)) for b in bufs]
        self._wait(self.aio_writev, bufs, offset)
        if sync:
            self.flush()

    def flush(self):
        self._wait(self.aio_flush)

    def discard(self, offset, length):
        self._wait(self.aio_discard, offset, length)

    def resize(self, size):
        """The LUN's new size reaches the image: it grows (never shrinks under a LUN here)."""
        if size > self.image.size():
            self.image.resize(size)
        self.size = size

    def close(self):
        if self.image is not None:
            self.image.close()
            self.image = None
            _disconnect(self.cluster)
