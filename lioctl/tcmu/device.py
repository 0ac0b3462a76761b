"""One user backstore being served: its UIO node and mapping, its ring, the SCSI emulation
over its backend, and its counters. Configuration comes from the device's configfs directory."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import mmap
import os
import re
import stat
import threading
import time
from dataclasses import dataclass

from lioctl import configfs
from lioctl.tcmu import completion
from lioctl.tcmu.backends import open_backend
from lioctl.tcmu.config import key_of, parse_uio_name
from lioctl.tcmu.ring import Command, Ring, RingError
from lioctl.tcmu.scsi import opcodes as op
from lioctl.tcmu.scsi import sense as S
from lioctl.tcmu.scsi.asynchronous import AsyncCommands
from lioctl.tcmu.scsi.emulator import Emulator, Unit, synchronous_write
from lioctl.tcmu.scsi.sense import CHECK_CONDITION

try:
    from lioctl.tcmu import _fastpath      # setup.py builds it when a C compiler is there
except ImportError:
    _fastpath = None

CORE = "/sys/kernel/config/target/core"
UIO_CLASS = "/sys/class/uio"
DOORBELL = b"\0\0\0\0"
PARALLEL_MIN = 128 * 1024   # smaller commands cost less inline than a thread hand-off
# the native path's largest read: larger ones go to the I/O threads, whose doorbells (where the
# kernel copies the data out) overlap the next reads. Measured in the guest (ext4, 1 MiB reads
# at QD8, one round): 261 MiB/s on the threads, 239 with every read in C on the loop
NATIVE_MAX_READ = PARALLEL_MIN - 1
# and its largest write-back write copied inline, by where the kernel completes the device's
# commands (completion.py): with cmd_completion_affinity -2 on a target exporting it, larger
# ones go to the same copy threads; else the ring thread copies them all (into the file's
# mapping when resident). Measured in the guest, 1 MiB writes at QD8, 2 rounds (MiB/s, lioctl |
# tcmu-runner): with the kernel's default affinity the threads gain nothing and cost the
# hand-off (2486 us of handler CPU per write against about 1300 inline); with -2, inline swings
# between 171 and 406 from round to round, and the copy threads writing into the mapping hold
# 368-383 | 278-329 on xfs and tmpfs (README, "1 MiB writes: where the copy goes").
# LIOCTL_TCMU_INLINE_WRITE_MAX (bytes) sets the limit whatever the affinity
INLINE_WRITES = 1 << 62
try:
    NATIVE_MAX_WRITE = max(0, int(os.environ["LIOCTL_TCMU_INLINE_WRITE_MAX"]))
except (KeyError, ValueError):
    NATIVE_MAX_WRITE = None
READS = {op.READ_6, op.READ_10, op.READ_12, op.READ_16}
WRITES = {op.WRITE_6, op.WRITE_10, op.WRITE_12, op.WRITE_16,
          op.WRITE_VERIFY_10, op.WRITE_VERIFY_12, op.WRITE_VERIFY_16}
MEDIUM_OPS = {op.SYNCHRONIZE_CACHE_10, op.SYNCHRONIZE_CACHE_16, op.UNMAP, op.WRITE_SAME_10,
              op.WRITE_SAME_16, op.VERIFY_10, op.VERIFY_12, op.VERIFY_16}
log = logging.getLogger("lioctl.tcmu")
# LIOCTL_TCMU_NATIVE=0 serves every command in Python (to compare, or to rule the C out)
NATIVE = _fastpath is not None and os.environ.get("LIOCTL_TCMU_NATIVE", "1") != "0"
# after a doorbell, how long the native path waits for the initiator's next command before
# going back to sleep in the event loop: a wake-up costs more than the command under emulation
# (guest, ext4, medians of 2: 4k QD1 1049 IOPS without, 1658 with 100 us, 2398 with 500 us;
# 4k QD32 4825, 4477, 3859: at 500 it takes CPU fio and the kernel need). 0: never waits.
# Few waits catch the command at QD1 ("spin_hits" in status: 1% in the guest; at QD32 45-50%):
# the next one comes later than 100 us, and the wait pays by keeping the CPU from going idle
# before it, not by catching it. So stopping the waits that catch nothing (tried: 3 in 4
# caught, else 1 in 16) cost QD1 a third (guest, dm-delay, 4k writes: 1030 IOPS against 1563)
try:
    SPIN_NS = max(0, int(float(os.environ.get("LIOCTL_TCMU_SPIN_US", "100")) * 1000))
except ValueError:
    SPIN_NS = 100_000
# threads per device that copy reads larger than NATIVE_MAX_READ from the page cache into the
# ring, each answering and ringing the doorbell itself, as tcmu-runner's file handler does with
# its 2 (guest, ext4, 1 MiB reads at QD8, medians of 2: 280 MiB/s with 2, 244 with 16, against
# tcmu-runner's 283 and 283). The daemon sets it from LIOCTL_TCMU_COPY_THREADS
COPY_THREADS = 2
# and those per device for what waits for the medium (reads the page cache does not hold,
# O_DIRECT, durable writes): as many as the I/O threads (LIOCTL_TCMU_DISK_THREADS)
WAIT_THREADS = 16
# a thread per device that waits for the kernel's notifications and walks the ring in C, as
# tcmu-runner's command thread does, so a plain READ or WRITE never wakes the Python loop (it
# is woken for the rest: _fastpath.c's ring thread). LIOCTL_TCMU_RING_THREAD=0: the loop
# waits for every notification itself (to compare)
RING_THREAD = os.environ.get("LIOCTL_TCMU_RING_THREAD", "1") != "0"
# the wait lane submits to io_uring (one system call per walk, one reaper thread answering a
# batch of completions with one doorbell) where the kernel allows it; else, and with
# LIOCTL_TCMU_URING=0, a thread per command in flight
URING = os.environ.get("LIOCTL_TCMU_URING", "1") != "0"


class PyRingLock:
    """_fastpath.RingLock's Python twin, for an install without the C extension: the ring's
    lock and the doorbell protocol of everyone answering (see RingLock in _fastpath.c)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.bell_pending = False
        self.bell_busy = False
        self.doorbells = 0      # doorbell writes, as the native RingLock counts them

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        self._lock.release()

    def claim_bell(self) -> bool:
        self.bell_pending = True
        if self.bell_busy:
            return False
        self.bell_busy = True
        return True

    def ring_bell(self, fd: int) -> None:
        try:
            while True:
                self.bell_pending = False
                self.doorbells += 1
                os.write(fd, DOORBELL)
                with self:
                    if not self.bell_pending:
                        self.bell_busy = False
                        return
        except OSError:
            with self:
                self.bell_busy = False
            raise


def ring_lock():
    return _fastpath.RingLock() if _fastpath is not None else PyRingLock()


def _read(path: str) -> str:
    return configfs.read(path, "")


def _int(path: str, default: int) -> int:
    try:
        return int(_read(path).split()[-1])
    except (ValueError, IndexError):
        return default


def device_size(cfs: str) -> int:
    """Bytes: attrib/dev_size, or on kernels without it the Size in the device's info."""
    size = _int(f"{cfs}/attrib/dev_size", 0)
    if size <= 0:
        m = re.search(r"\bSize:\s*(\d+)", _read(f"{cfs}/info"))
        size = int(m.group(1)) if m else 0
    return size


def unit_from_configfs(cfs: str, name: str, size: int) -> Unit:
    bs = _int(f"{cfs}/attrib/hw_block_size", 512)
    serial = _read(f"{cfs}/wwn/vpd_unit_serial").rpartition(":")[2].strip()
    wce = _int(f"{cfs}/attrib/emulate_write_cache", 0) == 1
    product = _read(f"{cfs}/wwn/product_id")
    if product in ("", "USER"):     # the kernel's placeholder: the backstore name, as targetcli does
        product = name[:16]
    return Unit(block_size=bs, num_blocks=size // bs, max_sectors=_int(f"{cfs}/attrib/hw_max_sectors", 128),
                serial=serial, vendor=_read(f"{cfs}/wwn/vendor_id") or "LIO-ORG",
                product=product, revision=_read(f"{cfs}/wwn/revision") or "0001",
                write_cache=wce, write_cache_default=wce)


@dataclass
class Counters:
    commands: int = 0
    reads: int = 0
    writes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    errors: int = 0
    batches: int = 0
    max_batch: int = 0
    threaded: int = 0           # commands run on an I/O thread
    cached: int = 0             # reads of a blocking backend answered from the page cache inline
    native: int = 0             # commands answered by the native path (_fastpath.c)
    copied: int = 0             # of them, those its copy threads answered (large reads; writes below)
    mapped: int = 0             # of those, copied from the file's mapping (not preadv2)
    mapped_writes: int = 0      # write-back writes of 128 KiB or more copied into that mapping
    copied_writes: int = 0      # write-back writes its copy threads did (Device.follow_completion)
    handovers: int = 0          # times its ring thread woke the loop for an entry of Python's
    spins: int = 0              # waits of the native path for more after a doorbell
    spin_hits: int = 0          # of them, those that caught a command
    asynchronous: int = 0       # commands started on an asynchronous backend
    latency_us_total: int = 0   # their submission-to-answer time, summed
    latency_us_max: int = 0


class Device:
    def __init__(self, minor: int, uio_name: str):
        parsed = parse_uio_name(uio_name)
        if parsed is None:
            raise ValueError(f"uio{minor} ({uio_name!r}) is not a TCMU device")
        self.minor = minor
        self.uio_name = uio_name
        self.hba, self.name, self.subtype, self.config = parsed
        self.cfs = f"{CORE}/{self.hba}/{self.name}"
        self.counters = Counters()
        self.started = time.time()
        self.fd = -1
        self.map = None
        self.backend = None
        self.pool = None                    # set by the daemon: its I/O threads for memory
        self.disk_pool = None               # and for backends that may block
        self.futures: set = set()
        self.broken: RingError | None = None  # an I/O thread found the ring corrupt
        # the ring's tail and pending count, one writer at a time, and the doorbell of
        # everyone answering (Python's I/O threads, the native path and its threads)
        self.lock = ring_lock()
        self.queue = None                   # set by the daemon: completions of asynchronous backends
        self.acmds = None                   # AsyncCommands when the backend is asynchronous
        self.late: list = []                # answers of completed asynchronous commands
        self.fast = None                    # the native READ/WRITE path (_fastpath.c), if any
        self.native_done_fd = -1            # its threads hand commands back (the daemon watches it)
        self.copy_threads, self.wait_threads = COPY_THREADS, WAIT_THREADS
        self.ring_thread = RING_THREAD
        self.uring = URING
        self.on_bell_cpu = False            # a target completes its commands where the doorbell rang

    @property
    def key(self) -> str:
        return f"{self.hba}/{self.name}"

    def open(self, restart: bool) -> None:
        self.open_medium()
        self.claim(restart)

    def open_medium(self) -> None:
        """Open the backend and learn the unit's geometry: configfs reads and the backend's own
        open, nothing of the ring (the daemon runs this on a thread of its own for a backend
        whose open waits for the network)."""
        size = device_size(self.cfs)
        self.backend = open_backend(self.subtype, self.config, size)
        # the medium's own size wins (an RBD image grown while no handler ran)
        self.unit = unit_from_configfs(self.cfs, self.name, self.backend.size)
        self.unit.thin = self.backend.thin
        self.unit.nonrotational = self.backend.nonrotational
        self.unit.read_only = self.backend.read_only
        self.emulator = Emulator(self.unit, self.backend)
        if self.backend.asynchronous and self.queue is not None:
            self.start_async()

    def claim(self, restart: bool) -> None:
        """Map the ring (after open_medium). On restart the ring may hold answered and
        unanswered entries from a dead handler: block the device, reset the ring (the kernel
        fails what was in flight with BUSY so initiators retry), map it, then unblock."""
        blocked = False
        try:
            if restart:
                blocked = _action(self.cfs, "block_dev", "1")
                _action(self.cfs, "reset_ring", "1")
            self.fd = os.open(_uio_node(self.minor), os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
            map_size = int(_read(f"{UIO_CLASS}/uio{self.minor}/maps/map0/size"), 16)
            self.map = mmap.mmap(self.fd, map_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self.ring = Ring(self.map)
            self.start_fast()
        except BaseException:
            self.close()
            raise
        finally:
            if blocked:
                _action(self.cfs, "block_dev", "0")

    def start_fast(self) -> None:
        """Plain READs and WRITEs answered in C straight from the ring (_fastpath.c): under
        emulation the Python per command is most of a queue-depth-1 I/O's time. Only for a
        backend with a descriptor the C may use as Python would (FileBackend.native_fd)."""
        self.stop_fast()
        b = self.backend
        fd = getattr(b, "native_fd", None)
        if not NATIVE or fd is None or self.ring is None:
            return
        copy_threads, wait_threads = min(64, self.copy_threads), min(64, self.wait_threads)
        threads = bool(copy_threads or wait_threads or self.ring_thread)
        if threads and self.native_done_fd < 0:
            self.native_done_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        dfd = b.native_dfd if b.native_dfd is not None else fd
        self.fast = _fastpath.FastPath(self.ring.mv, fd, self.fd, self.lock, self.native_done_fd, dfd)
        self.fast.spin_ns = SPIN_NS
        if threads:
            self.fast.start(copy_threads, wait_threads, self.uring)
            if self.uring and not self.fast.uring and wait_threads:
                log.info("%s: no io_uring (%s): the wait lane uses threads", self.key,
                         os.strerror(self.fast.uring_errno))
        self.fast_config()
        if self.ring_thread:
            # owned by Python until its first drain() hands it over
            self.fast.start_ring(self.fd, 4, self.ring.next)
            self.ring.bound_by_head = True

    @property
    def ring_threaded(self) -> bool:
        """Whether the native path's ring thread waits for the kernel's notifications (the
        loop then waits for native_done_fd only)."""
        return self.fast is not None and self.fast.ring_running

    def stop_fast(self) -> None:
        """Before the ring's mapping or the backend's descriptor goes away: what its threads
        hold is answered first (their initiators are waiting)."""
        fast = self.fast
        if fast is not None and fast.ring_running:
            self.ring.next = fast.stop_ring()
        if fast is not None and fast.in_flight:
            self.quiesce()
        self.fast = None
        if fast is not None:
            c = self.counters
            for key, n in _native_counts(fast):
                setattr(c, key, getattr(c, key) + n)
            fast.close()

    def fast_config(self) -> None:
        """Tell the native path what it may serve: called whenever what decides a READ's or a
        WRITE's answer may have changed (after Python served a batch, which is where MODE
        SELECT and unit attentions happen; a resize; a reconfiguration)."""
        f = self.fast
        if f is None:
            return
        b, u = self.backend, self.unit
        f.enabled = self.emulator.ua is None and self.broken is None
        f.num_blocks, f.block_size = u.num_blocks, u.block_size
        f.reads = b.native_reads()
        f.max_read = NATIVE_MAX_READ
        f.max_write = (NATIVE_MAX_WRITE if NATIVE_MAX_WRITE is not None else
                       NATIVE_MAX_READ if self.on_bell_cpu else INLINE_WRITES)
        f.bell_yield = self.on_bell_cpu
        f.writes = not u.read_only and u.write_cache and not b.writes_wait
        f.writable, f.write_back = not u.read_only, u.write_cache

    def follow_completion(self, known: dict[str, list[int]] | None = None) -> None:
        """Serve the way where the kernel completes this device's commands asks (completion.py):
        when a target exporting it completes them on the CPU that rang the doorbell, large
        write-back writes go to the copy threads and whoever rings yields the CPU to that
        completion work. The daemon calls this as a device starts and every few seconds after,
        since a LUN may be added or a target's affinity set at any time; a few configfs reads
        (`known`: the targets the daemon's pass over every device has read already)."""
        here = completion.on_doorbell_cpu(self.cfs, known=known)
        if here != self.on_bell_cpu:
            self.on_bell_cpu = here
            log.info("%s: %s", self.key,
                     "a target completes its commands on the doorbell's CPU (-2): large writes on "
                     "copy threads, the CPU yielded after each doorbell" if here else
                     "no target completes its commands on the doorbell's CPU: large writes inline")
            self.fast_config()

    def start_async(self) -> None:
        """Medium commands go to the backend's aio calls, answers come back through the queue."""
        b = self.backend
        self.acmds = AsyncCommands(self.emulator, self.queue)
        self.unit.max_compare_write_blocks = b.compare_and_write_max // self.unit.block_size
        b.changed(lambda: self.queue.post(self.size_changed))

    def size_changed(self) -> None:
        """On the loop, after the medium changed elsewhere (`rbd resize`): a new size becomes the
        LUN's capacity, the next command gets CAPACITY DATA HAS CHANGED, and configfs's
        dev_size follows (so save and ls show it)."""
        if self.backend is None:
            return
        try:
            size = self.backend.current_size()
        except OSError as e:
            log.warning("%s: cannot read the medium's size: %s", self.key, e)
            return
        u = self.unit
        if size // u.block_size == u.num_blocks:
            return
        log.info("%s: medium is now %d bytes (was %d)", self.key, size, u.num_blocks * u.block_size)
        self.backend.size = size
        u.num_blocks = size // u.block_size
        self.emulator.unit_attention(S.CAPACITY_DATA_HAS_CHANGED)
        self.fast_config()
        try:
            with open(f"{self.cfs}/attrib/dev_size", "w") as f:
                f.write(str(size))
        except OSError as e:
            log.warning("%s: cannot set dev_size=%d: %s", self.key, size, e.strerror)

    def _late(self, cmd, opc, started, r) -> None:
        """On the loop: an asynchronous command's answer, written with the others of this
        wake-up and one doorbell (_flush_late). Latency from the clock read once per batch
        taken and once per wake-up (the queue's stamp): a clock read is a system call under
        emulation."""
        us = int((self.queue.stamp - started) * 1e6) if self.queue.stamp > started else 0
        c = self.counters
        c.latency_us_total += us
        if us > c.latency_us_max:
            c.latency_us_max = us
        if not self.late:
            self.queue.later(self._flush_late)
        self.late.append((cmd, opc, r))

    def _flush_late(self) -> None:
        answers, self.late = self.late, []
        if self.fd < 0 or getattr(self, "ring", None) is None or self.broken is not None:
            return      # closed (or failed) meanwhile: the kernel has reset or dropped them
        try:
            self._deliver(answers)
        except RingError as e:
            self.broken = e
        except OSError:
            pass        # the device went away; the event loop notices on its next read

    def drain(self) -> int:
        """Serve the ring now: with the ring thread, Python takes the ring from it, serves what
        is queued and hands it back."""
        if not self.ring_threaded:
            return self._drain()
        fast = self.fast
        self.ring.next = fast.pause()
        done = self._drain()
        fast.resume(self.ring.next)
        return done

    def native_wake(self) -> None:
        """On the loop, when native_done_fd fired: the threads handed commands back, or the
        ring thread met an entry for Python (or news came while Python serves), or an I/O
        thread found the ring corrupt."""
        self.reap_native()
        if self.broken is not None:
            raise self.broken
        if self.ring_threaded and self.fast.py_owns:
            self.drain()

    def _drain(self) -> int:
        """Answer what the kernel queued: small commands at once; large reads and writes go to
        the I/O threads, which answer and ring the doorbell themselves (the kernel copies a
        read's data out in that doorbell write, so it runs off the event loop too).

        Plain READs and write-back WRITEs of a file backend are answered by the native path
        (_fastpath.c) until the first command it leaves to Python; from there on Python serves.

        This is the per-command path: under emulation every Python step shows in a
        queue-depth-1 job's latency, so the opcode is read once and calls are few."""
        fast = native = self.fast
        done = 0
        if fast is not None and not self.futures and self.broken is None:
            # the native path first, before any of the Python path's set-up: when it answered
            # everything (every plain READ and WRITE), that is all there is to do
            r = fast.serve(self.ring.next, True)
            if r is not None:
                self.ring.next, done, rest = r
                if not rest:
                    return done
            native = None           # it stopped at an entry for Python: no second try now
        ring, execute, c = self.ring, self.emulator.execute, self.counters
        take, deliver = ring.take, self._deliver
        lock, futures = self.lock, self.futures
        acmds = self.acmds
        atable = acmds.table if acmds is not None else {}
        late = self._late
        # a backend that may block sends every command through _on_thread; memory only large ones
        backend = self.emulator.backend
        if backend.blocking:
            pool, big = self.disk_pool, 0
        else:
            pool, big = self.pool, PARALLEL_MIN
        # ...except a small read whose data the page cache holds: answered here, as from memory
        # (a thread hand-off costs more than the copy); one that would wait goes to a thread
        cached = self.emulator.read_cached if backend.blocking and backend.readv_nowait is not None else None
        if self.broken is not None:
            raise self.broken
        while True:
            # Only while an I/O thread may be answering do the ring's tail and pending count
            # need the lock (a future leaves the set after its thread let go of the lock).
            # Python 3.11 reads the clock on every lock acquire: a system call under emulation.
            # The native path's threads answer under the lock too, with their own bound.
            if futures:
                mine = False
                with lock:
                    if native is not None and (r := native.serve(ring.next, False)) is not None:
                        ring.next, k, _ = r
                        done += k
                        mine = k > 0 and self._claim_bell()
                    batch = take()
                if mine:
                    self._ring_bell()
            else:
                # (it takes the lock itself, and rings through the shared doorbell)
                if native is not None and (r := native.serve(ring.next, True)) is not None:
                    ring.next, k, _ = r     # answered, and the doorbell rung
                    done += k
                batch = take()
            native = fast
            if not batch:
                return done
            c.batches += 1
            started = None
            n = len(batch)
            if n > c.max_batch:
                c.max_batch = n
            answers = []
            for cmd in batch:
                cdb = cmd.cdb
                if cmd.unknown_op:
                    answers.append((cmd, -1, None))
                elif cdb and cdb[0] in atable:
                    c.asynchronous += 1
                    opc = cdb[0]
                    if started is None:
                        started = time.monotonic()
                    r = acmds.submit(cdb, cmd.iovecs, cmd.length, functools.partial(late, cmd, opc, started))
                    if r is not None:
                        answers.append((cmd, opc, r))
                elif cached is not None and cmd.length < PARALLEL_MIN and cdb[0] in READS and \
                        (r := cached(cdb, cmd.iovecs, cmd.length)) is not None:
                    c.cached += 1
                    answers.append((cmd, cdb[0], r))
                elif pool is not None and cmd.length >= big and self._on_thread(cdb):
                    self._to_thread(pool, cmd)
                else:
                    if cdb and cdb[0] == op.COMPARE_AND_WRITE and self._threads_busy():
                        # atomic against every write: let the threads' writes land first
                        self.quiesce()
                    answers.append((cmd, cdb[0] if cdb else -1, execute(cdb, cmd.iovecs, cmd.length)))
            done += n
            if answers:
                deliver(answers)
            if fast is not None:
                self.fast_config()

    def _on_thread(self, cdb: bytes) -> bool:
        """Whether a command goes to an I/O thread (asked for every command when the backend
        may block, only for large ones when it is memory):
        - reads: they may wait for the medium, and the kernel copies a read's data out in
          the doorbell write, so a thread's doorbell overlaps the next read;
        - writes that must reach the medium (write cache off, FUA, WRITE AND VERIFY), and
          every write to a backend without a page cache in front (O_DIRECT);
        - flushes, discards and verifies, on a backend that may block.
        A write-back write lands in the page cache after the kernel already copied its data
        in at submission: on a thread it gains nothing and pays the hand-offs (1 MiB writes
        at qd8 in the guest: 175 MiB/s on threads, 248 inline). With O_DIRECT it waits for
        the disk, on the loop it stalled every device (dm-delay 5 ms, 4k QD32: 75 IOPS)."""
        opc = cdb[0] if cdb else -1
        if opc in READS:
            return True
        if opc in WRITES:
            return self.emulator.backend.writes_wait or bool(synchronous_write(self.emulator.unit, cdb))
        return opc in MEDIUM_OPS and self.emulator.backend.blocking

    def _answer(self, answers) -> None:
        """Write (command, opcode, response) answers into the ring and count them (the caller
        holds the lock while I/O threads run, and rings the doorbell after)."""
        c = self.counters
        complete = self.ring.complete
        c.commands += len(answers)
        for cmd, opc, r in answers:
            if r is None:
                complete(cmd.cmd_id, CHECK_CONDITION, unknown_op=True)
                c.errors += 1
                continue
            status = r.status
            complete(cmd.cmd_id, status, r.sense, r.read_len)
            if opc in READS:
                c.reads += 1
                c.read_bytes += cmd.length
            elif opc in WRITES:
                c.writes += 1
                c.write_bytes += cmd.length
            if status:
                c.errors += 1

    def _threads_busy(self) -> bool:
        """Whether Python's I/O threads or the native path's may be answering now (only the
        loop hands them work, so on the loop a False stays true until it does)."""
        f = self.fast
        return bool(self.futures) or (f is not None and (f.in_flight > 0 or f.ring_running))

    def _deliver(self, answers) -> None:
        """On the loop: write answers and ring the doorbell once, under the lock and through
        the threads' shared doorbell only while threads may be answering too."""
        if self._threads_busy():
            with self.lock:
                self._answer(answers)
                mine = self._claim_bell()
            if mine:
                self._ring_bell()
        else:
            self._answer(answers)
            os.write(self.fd, DOORBELL)

    def _claim_bell(self) -> bool:
        """Under the lock, after writing answers: whether the caller rings the doorbell (no one
        is ringing it now) or leaves it to the one who is (who rings once more for these)."""
        return self.lock.claim_bell()

    def _ring_bell(self) -> None:
        """Without the lock: ring until no answer is left waiting. The kernel copies a read's
        data to the initiator inside the doorbell write (1 MiB: milliseconds under
        emulation), so other threads meanwhile write their answers into the ring and the
        loop takes new commands, and one write covers every answer written before it (as
        tcmu-runner's aio_command_finish does)."""
        self.lock.ring_bell(self.fd)

    def _work(self, cmd) -> None:
        """On an I/O thread: run one command, answer it, ring the doorbell (or leave it to the
        thread ringing it now)."""
        r = self.emulator.execute(cmd.cdb, cmd.iovecs, cmd.length)
        with self.lock:
            if self.fd < 0:
                return
            try:
                self._answer([(cmd, cmd.opcode, r)])
            except RingError as e:
                self.broken = e     # the event loop fails the device on its next doorbell
                self._wake_loop()
                return
            mine = self._claim_bell()
        if mine:
            try:
                self._ring_bell()
            except OSError:
                pass    # the device went away; the event loop notices on its next read

    def _wake_loop(self) -> None:
        """From an I/O thread: with the ring thread, no doorbell wakes the loop any more."""
        if self.ring_threaded:
            self.fast.enabled = 0       # it leaves every command to Python, which fails the ring
            try:
                os.eventfd_write(self.native_done_fd, 1)
            except OSError:
                pass

    def quiesce(self) -> None:
        """Wait until Python's I/O threads and the native path's threads have answered their
        commands (before closing or resetting, and before a COMPARE AND WRITE)."""
        fast = self.fast
        if fast is not None and fast.in_flight:
            fast.wait_idle()
            try:
                self.reap_native()
            except (OSError, RingError):
                pass    # going away or failed: the kernel resets the ring
        if self.futures:
            concurrent.futures.wait(list(self.futures))

    def reap_native(self) -> None:
        """On the loop, when the native path's threads handed commands back (a short transfer
        or an error): Python serves them, on its I/O threads, with its senses."""
        fast = self.fast
        failed = fast.reap() if fast is not None else None
        if not failed:
            return
        mv = self.ring.mv
        cmds = [Command(cmd_id, cdb, [mv[b:b + n] for b, n in iovs], sum(n for _, n in iovs))
                for cmd_id, cdb, iovs in failed]
        with self.lock:
            self.ring.pending += len(cmds)      # taken by the native path, answered by Python
        pool = self.disk_pool if self.backend.blocking else self.pool
        if pool is None:
            self._deliver([(cmd, cmd.opcode, self.emulator.execute(cmd.cdb, cmd.iovecs, cmd.length))
                           for cmd in cmds])
            return
        for cmd in cmds:
            self._to_thread(pool, cmd)

    def _to_thread(self, pool, cmd) -> None:
        """Hand a command to one of Python's I/O threads (_work answers it)."""
        self.counters.threaded += 1
        fut = pool.submit(self._work, cmd)
        self.futures.add(fut)
        fut.add_done_callback(self.futures.discard)

    def reconfigure(self, dev_size=None, writecache=None, dev_cfg=None) -> None:
        """Python holds the ring meanwhile: the ring thread serves nothing under half-made
        settings."""
        if self.ring_threaded:
            self.ring.next = self.fast.pause()
        try:
            self._reconfigure(dev_size, writecache, dev_cfg)
        finally:
            if self.ring_threaded:      # (a new medium: a new native path)
                self.fast.resume(self.ring.next)

    def _reconfigure(self, dev_size, writecache, dev_cfg) -> None:
        if dev_cfg is not None and dev_cfg != f"{self.subtype}/{self.config}":
            subtype, _, config = dev_cfg.partition("/")
            new = open_backend(subtype, config, self.backend.size)
            self.stop_fast()        # it writes through the old backend's descriptor
            self.backend.close()
            self.backend = self.emulator.backend = new
            self.subtype, self.config = subtype, config
            self.acmds = None
            if new.asynchronous and self.queue is not None:
                self.start_async()
            self.start_fast()
        if dev_size is not None:
            self.backend.resize(dev_size)
            if dev_size // self.unit.block_size != self.unit.num_blocks:
                self.unit.num_blocks = dev_size // self.unit.block_size
                if self.backend.asynchronous:      # an initiator of a networked medium is told
                    self.emulator.unit_attention(S.CAPACITY_DATA_HAS_CHANGED)
        if writecache is not None:
            if self.unit.write_cache and not writecache:
                self.backend.flush()
            self.unit.write_cache = self.unit.write_cache_default = bool(writecache)
        self.fast_config()

    def status(self) -> dict:
        u = self.unit
        extra = {}
        b = self.backend
        if b is not None and b.asynchronous:
            c = self.counters
            extra = {"backend_in_flight": b.in_flight(),
                     "latency_us_avg": c.latency_us_total // c.asynchronous if c.asynchronous else 0}
            if hasattr(b, "reachable"):
                extra.update(image=b.spec.name, cluster_reachable=b.reachable, backend_errors=b.errors,
                             timeouts=b.timeouts, read_only=b.read_only, error=b.error)
        return {**extra, "name": self.name, "hba": self.hba, "uio": f"uio{self.minor}", "subtype": self.subtype,
                "config": self.config, "size": u.num_blocks * u.block_size, "block_size": u.block_size,
                "write_cache": u.write_cache,
                "in_flight": (self.ring.pending + (self.fast.in_flight if self.fast else 0)) if self.map else 0,
                "io_threads": len(self.futures) + (self.fast.in_flight if self.fast else 0),
                "ring_size": self.ring.cmdr_size if self.map else 0,
                "ring_thread": self.ring_threaded,
                "uring": bool(self.fast is not None and self.fast.uring),
                "completes_on_doorbell_cpu": self.on_bell_cpu,
                "large_writes": "copy threads" if self.fast is not None and self.fast.max_write < INLINE_WRITES
                else "inline",
                "doorbells": self.lock.doorbells,
                "served_since": int(self.started), **self.counted()}

    def counted(self) -> dict:
        """The counters, with what the native path answered (also counted as "native")."""
        out = vars(self.counters).copy()
        f = self.fast
        if f is not None:
            for key, n in _native_counts(f):
                out[key] += n
        return out

    def close(self) -> None:
        self.stop_fast()                # the ring thread first: it takes no more commands
        self.quiesce()
        if self.backend is not None and self.backend.asynchronous:
            # librbd writes into the data area until its operations end: close it first
            self.backend.close()
            self.backend = None
        ring = getattr(self, "ring", None)
        if ring is not None:
            ring.mv.release()
            self.ring = None
        if self.map is not None:
            try:
                self.map.close()
            except (BufferError, ValueError):
                pass
            self.map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.native_done_fd >= 0:
            os.close(self.native_done_fd)
            self.native_done_fd = -1
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def _native_counts(f) -> tuple:
    return (("commands", f.commands), ("native", f.commands), ("copied", f.copied), ("mapped", f.mapped),
            ("mapped_writes", f.mapped_writes), ("copied_writes", f.copied_writes),
            ("threaded", f.waited),
            ("handovers", f.handovers), ("batches", f.walks), ("spins", f.spins), ("spin_hits", f.spin_hits),
            ("reads", f.reads_done),
            ("writes", f.writes_done), ("read_bytes", f.read_bytes), ("write_bytes", f.write_bytes))


def _action(cfs: str, name: str, value: str) -> bool:
    try:
        with open(f"{cfs}/action/{name}", "w") as f:
            f.write(value)
        return True
    except OSError as e:
        log.warning("%s/action/%s=%s: %s", cfs, name, value, e.strerror)
        return False


def _uio_node(minor: int) -> str:
    """/dev/uioN, made from sysfs if udev has not (yet) created it."""
    path = f"/dev/uio{minor}"
    if not os.path.exists(path):
        major, mnr = _read(f"{UIO_CLASS}/uio{minor}/dev").split(":")
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(int(major), int(mnr)))
        except FileExistsError:
            pass
    return path


def lioctl_devices() -> list[str]:
    """'user_N/NAME' of every TCMU device of lioctl's subtypes present now."""
    return [k for k in (key_of(name) for _, name in scan()) if k]


def scan() -> list[tuple[int, str]]:
    """(minor, uio name) of every TCMU device present now."""
    out = []
    try:
        entries = os.listdir(UIO_CLASS)
    except OSError:
        return out
    for e in entries:
        if e.startswith("uio") and e[3:].isdigit():
            name = _read(f"{UIO_CLASS}/{e}/name")
            if name.startswith("tcm-user/"):
                out.append((int(e[3:]), name))
    return sorted(out)
