"""A Ceph RBD image through librbd's asynchronous C API (lioctl/tcmu/librbd.py): the
lioctl_rbd subtype. Config: see lioctl/tcmu/rbdspec.py.

Devices with the same cluster settings share one librados connection. Settings the handler
imposes on it:
- rbd_cache=false, as tcmu-runner's rbd handler and the kernel's rbd driver have no cache of
  librbd's in front either: a write completes once the OSDs have it, so FUA and writes with
  the write cache off need no flush of their own (durable_writes);
- rbd_skip_partial_discard=false: a discard that does not cover whole 64 KiB units would
  otherwise leave the data in place, and the LUN says unmapped blocks read back as zeros;
- rados_osd_op_timeout / rados_mon_op_timeout / client_mount_timeout = the config's timeout
  (20 s by default; the backstore's cmd_time_out is 30 s more): an operation on a cluster that does
  not answer (an OSD stopped) fails with -ETIMEDOUT, which the initiator sees as NOT READY,
  instead of waiting for ever; the image stays usable and I/O resumes when the OSD is back.
The backstore's cmd_time_out is that timeout + CMD_TIME_OUT_MARGIN (50 s by default, not the
kernel's 30): the kernel's own timer is then the last resort against a hung handler, not a
race with a command that is only slow. A command the kernel times out fails at the initiator
with LUN COMMUNICATION FAILURE, an I/O error nothing retries (fio's verify at QD32 met it in
a guest starved of CPU); the handler still answers it when librbd completes it, which the
kernel takes and drops (it keeps the command's id until then): the ring stays sound.
A client the cluster blocklisted (an admin's `ceph osd blocklist add`, the usual step before
`rbd rm` of an image in use, or another gateway breaking the lock) gets ESHUTDOWN for every
operation, on every image of its connection: the image is reopened on a new connection, off
the loop, and commands answer NOT READY, becoming ready (the initiator retries) meanwhile. An
image that no longer exists then is MEDIUM NOT PRESENT from then on, and says so in the status.
A handler restarted after a crash takes the exclusive locks its predecessor held (their owners'
addresses are in the handler's private runtime directory): otherwise writes would wait for the
dead client's watch to time out (30 s, the kernel's default command timeout).
COMPARE AND WRITE is librbd's compare-and-write, an OSD-side compare-extent + write: atomic
against every gateway and client of the image. librbd takes exactly 512 bytes within one
512-byte sector, so an rbd LUN offers COMPARE AND WRITE of one block when its logical block
is 512 bytes (the default) and not at all otherwise (block limits VPD: 0)."""

from __future__ import annotations

import errno
import logging
import os
import threading

from lioctl import rundir
from lioctl.errors import LioError
from lioctl.tcmu import librbd, rbdspec
from lioctl.tcmu.backends.base import Backend

_clusters: dict[tuple, librbd.Cluster] = {}
_clusters_lock = threading.Lock()
CAW_BYTES = 512
CMD_TIME_OUT_MARGIN = 30   # seconds the kernel waits beyond the cluster operation timeout
CLIENTS = "rbd-clients"     # in Backend.state_dir: this handler's cluster client addresses
_dead: set[str] | None = None   # a crashed predecessor's (read at the first connect)
log = logging.getLogger("lioctl.tcmu")


def _connect(spec: rbdspec.RbdSpec) -> librbd.Cluster:
    t = str(spec.timeout or rbdspec.DEFAULT_TIMEOUT)
    key = (spec.conf_path(), spec.id or "admin", spec.keyring, spec.cluster or "ceph", t)
    with _clusters_lock:
        c = _clusters.get(key)
        if c is None or c.blocklisted:
            c = librbd.Cluster(spec.conf_path(), spec.id or "admin", spec.keyring, spec.cluster or "ceph",
                               {"rbd_cache": "false", "rbd_skip_partial_discard": "false", "rados_osd_op_timeout": t,
                                "rados_mon_op_timeout": t, "client_mount_timeout": t})
            _clusters[key] = c
            _record(c.address)
        c.users += 1
        return c


def _record(address: str) -> None:
    """Keep this handler's client addresses in its private runtime directory; the first time,
    read what a previous handler left there (it is dead: this one holds the handler lock)."""
    global _dead
    if Backend.state_dir is None:
        return
    try:
        if _dead is None:
            try:
                fd = rundir.open_private(CLIENTS, os.O_RDONLY, directory=Backend.state_dir)
                with os.fdopen(fd) as f:
                    _dead = set(f.read().split())
            except FileNotFoundError:
                _dead = set()
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        fd = rundir.open_private(CLIENTS, flags, directory=Backend.state_dir)
        try:
            os.write(fd, f"{address}\n".encode())
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("cannot record the RBD client %s in %s: %s", address, Backend.state_dir, e)


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
    durable_writes = True   # rbd_cache=false

    def __init__(self, spec: rbdspec.RbdSpec):
        self.spec = spec
        self.cluster, self.image = self._open()
        self.retired: list[librbd.Image] = []   # blocklisted images, closed once idle
        self.reopening = False
        self.error: str | None = None           # why the image cannot be served (the status)
        self.notify = None
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
        cluster itself is asked by the lioctl command: lioctl/backstores/media/rbd.py)."""
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
    def kernel_attributes(cls, config: str) -> dict[str, str]:
        try:
            timeout = rbdspec.parse_config(config).timeout
        except rbdspec.SpecError:
            return {}
        return {"cmd_time_out": str((timeout or rbdspec.DEFAULT_TIMEOUT) + CMD_TIME_OUT_MARGIN)}

    @classmethod
    def open(cls, config: str, size: int) -> "RbdBackend":
        return cls(rbdspec.parse_config(config))

    def _open(self, efd: int | None = None) -> tuple[librbd.Cluster, librbd.Image]:
        spec = self.spec
        cluster = _connect(spec)
        try:
            image = librbd.Image(cluster, spec.pool, spec.image, spec.snap, spec.read_only, efd)
        except BaseException:
            _disconnect(cluster)
            raise
        image.on_error, image.on_recovered = self._failed, self._recovered
        if _dead and not spec.read_only:
            try:
                for owner in image.lock_owners():
                    if owner in _dead:
                        image.break_lock(owner)
                        log.info("rbd %s: took the exclusive lock of a crashed handler's client %s", spec.name, owner)
            except OSError as e:
                log.warning("rbd %s: %s", spec.name, e)
        return cluster, image

    # failures pass through here before their done(), on whichever thread reaps: counts and
    # the cluster's state, never blocks
    def _failed(self, image, ret):
        self.errors += 1
        if ret == -errno.ETIMEDOUT:
            self.timeouts += 1
            self.reachable = False
            image.failing = True        # _recovered at its next success
        elif ret == -errno.ESHUTDOWN:
            self._blocklisted(image)
            ret = -errno.ENOMEDIUM if self.error else -errno.EAGAIN
        return ret

    def _recovered(self):
        self.reachable = True

    def _blocklisted(self, image) -> None:
        """The cluster refused this image's client: reopen it on a new connection, on a thread
        (once; commands meanwhile are becoming ready, and a deleted image is then gone)."""
        if image is not self.image or self.reopening or self.error:
            return
        self.reopening = True
        self.cluster.blocklisted = True
        threading.Thread(target=self._reopen, name=f"rbd-reopen-{self.spec.name}", daemon=True).start()

    def _reopen(self) -> None:
        old = self.image
        try:
            cluster, image = self._open(old.efd)
            old.own_efd, image.own_efd = False, True
            if self.notify is not None:
                image.watch(self.notify)
            self.retired.append(old)        # closed by reap() once its operations have ended
            self.cluster, self.image = cluster, image
            log.info("rbd %s: reopened after its client was blocklisted", self.spec.name)
        except OSError as e:
            if e.errno == errno.ENOENT:
                self.error = f"image {self.spec.name} no longer exists (deleted while exported)"
                log.error("rbd %s", self.error)
            else:       # the next blocklisted answer tries again
                self.reachable = False
                log.error("rbd %s: cannot reopen it after its client was blocklisted: %s", self.spec.name, e)
        finally:
            self.reopening = False

    def _live(self):
        """The image to start an operation on; OSError once it is gone (answered at once)."""
        if self.error:
            raise OSError(errno.ENOMEDIUM, self.error)
        return self.image

    # the asynchronous form
    def aio_readv(self, bufs, offset, done):
        if self.error:      # _live(), inline: the per-command path
            raise OSError(errno.ENOMEDIUM, self.error)
        self.image.aio_readv(bufs, offset, done)

    def aio_writev(self, bufs, offset, done):
        if self.error:
            raise OSError(errno.ENOMEDIUM, self.error)
        self.image.aio_writev(bufs, offset, done)

    def aio_flush(self, done):
        self._live().aio_flush(done)

    def aio_discard(self, offset, length, done):
        self._live().aio_discard(offset, length, done)

    def aio_write_zeroes(self, offset, length, done):
        self._live().aio_write_zeroes(offset, length, done)

    def aio_write_same(self, offset, length, block, done):
        self._live().aio_writesame(offset, length, block, done)

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
        self._live().aio_compare_and_write(offset, compare, data, compared)

    def in_flight(self) -> int:
        return self.image.in_flight() + sum(i.in_flight() for i in self.retired)

    def completion_fd(self) -> int:
        return self.image.fileno()      # a reopened image signals on the same eventfd

    def reap(self) -> int:
        n = self.image.reap()
        if self.retired:
            for old in list(self.retired):
                n += old.reap()
                if not old.pending:
                    self.retired.remove(old)
                    cluster = old.cluster
                    old.close()
                    _disconnect(cluster)
        return n

    def changed(self, notify):
        self.notify = notify
        self.image.watch(notify)

    def current_size(self) -> int:
        return self.image.size()

    # the synchronous form (VERIFY, MODE SELECT's flush): on an I/O thread, reaping right there
    # until its operation is done (whoever reaps it, this thread or the event loop, sets ev)
    def _wait(self, start, *args) -> int:
        ev = threading.Event()
        out = []
        comps = librbd.completions()

        def done(ret, extra=None):
            out.append(ret)
            ev.set()
        start(*args, done)
        while not ev.wait(0.005):
            self.image.reap(comps)
        if out[0] < 0:
            raise OSError(-out[0], f"rbd {self.spec.name}: {errno.errorcode.get(-out[0], out[0])}")
        return out[0]

    def readv(self, bufs, offset):
        return self._wait(self.aio_readv, bufs, offset)

    def writev(self, bufs, offset, sync=False):
        bufs = [b if isinstance(b, memoryview) and not b.readonly else memoryview(bytearray(b)) for b in bufs]
        self._wait(self.aio_writev, bufs, offset)     # durable: no flush for sync

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
        for old in self.retired:
            old.close()
            _disconnect(old.cluster)
        self.retired = []
        if self.image is not None:
            self.image.close()
            self.image = None
            _disconnect(self.cluster)
