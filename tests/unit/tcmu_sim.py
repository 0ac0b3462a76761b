"""A Python stand-in for target_core_user's side of the ring: it writes real tcmu_cmd_entry
structures (PAD at the wrap, iovecs scattered over the data area, CDB after the iovecs, as
the kernel lays them out) into a shared buffer, and reaps answers the way
tcmu_handle_completions() does, matching them by cmd_id."""

from __future__ import annotations

import mmap
import random
import struct

from lioctl.tcmu import ring as R

ENTRY_BASE = 112          # sizeof(struct tcmu_cmd_entry)
BLOCK = 4096              # data area block size (DATA_PAGES_PER_BLK 1)


class BrokenRing(Exception):
    pass


def align8(n: int) -> int:
    return (n + 7) & ~7


class SimKernel:
    def __init__(self, ring_size: int = 8192, data_blocks: int = 256, flags: int = R.CAP_OOOC | R.CAP_READ_LEN,
                 seed: int = 1, aligned: bool = False):
        self.ring_size = ring_size
        self.data_off = R.MAILBOX_SIZE + ring_size
        # aligned: page-aligned memory, as the kernel maps it (what O_DIRECT needs)
        self.buf = (mmap.mmap(-1, self.data_off + data_blocks * BLOCK) if aligned
                    else bytearray(self.data_off + data_blocks * BLOCK))
        struct.pack_into("<HHII", self.buf, 0, 2, flags, R.MAILBOX_SIZE, ring_size)
        self.head = 0
        self.last_cleaned = 0
        self.free_blocks = list(range(data_blocks))
        self.rng = random.Random(seed)
        self.cmds: dict[int, dict] = {}
        self.next_id = 1
        self.notify_fd = -1       # an eventfd bumped per command queued, as UIO's event count

    # ring space, as the kernel computes it
    def _space(self) -> int:
        tail = self.last_cleaned
        if self.head >= tail:
            return self.ring_size - (self.head - tail) - 8
        return tail - self.head - 8

    def _put_head(self, v: int) -> None:
        self.head = v % self.ring_size
        struct.pack_into("<I", self.buf, R.MB_CMD_HEAD, self.head)

    def _pad_to_end(self) -> None:
        n = self.ring_size - self.head
        struct.pack_into("<IHBB", self.buf, R.MAILBOX_SIZE + self.head, n | R.OP_PAD, 0, 0, 0)
        self._put_head(0)

    def queue(self, cdb: bytes, data_out: bytes = b"", data_in: int = 0, op: int = R.OP_CMD,
              scatter: bool = True) -> int:
        """Queue one command; returns its cmd_id. Data-out is copied into the data area."""
        length = max(len(data_out), data_in)
        nblocks = -(-length // BLOCK)
        if nblocks > len(self.free_blocks):
            raise BufferError("data area full")
        blocks = [self.free_blocks.pop(self.rng.randrange(len(self.free_blocks)) if scatter else 0)
                  for _ in range(nblocks)]
        # contiguous blocks merge into one iovec, as the kernel's new_block_to_iov() does
        iovs = []
        left = length
        for b in blocks:
            n = min(BLOCK, left)
            base = self.data_off + b * BLOCK
            if iovs and iovs[-1][0] + iovs[-1][1] == base:
                iovs[-1][1] += n
            else:
                iovs.append([base, n])
            left -= n
        base_size = align8(ENTRY_BASE + 16 * len(iovs))
        size = align8(base_size + len(cdb))
        if self.head + size > self.ring_size:
            if self._space() < self.ring_size - self.head + size:
                self.free_blocks.extend(blocks)
                raise BufferError("ring full")
            self._pad_to_end()
        if self._space() < size:
            self.free_blocks.extend(blocks)
            raise BufferError("ring full")
        cmd_id = self.next_id
        self.next_id = self.next_id % 0xFFFF + 1
        off = R.MAILBOX_SIZE + self.head
        self.buf[off:off + size] = bytes(size)
        struct.pack_into("<IHBB", self.buf, off, size | op, cmd_id, 0, 0)
        struct.pack_into("<IIIxxxxQ", self.buf, off + 8, len(iovs), 0, 0, off + base_size)
        for i, (b, n) in enumerate(iovs):
            struct.pack_into("<QQ", self.buf, off + 48 + 16 * i, b, n)
        self.buf[off + base_size:off + base_size + len(cdb)] = cdb
        pos = 0
        for b, n in iovs:
            chunk = data_out[pos:pos + n]
            # reused data blocks are not zeroed by the kernel: leave garbage behind data-out
            self.buf[b:b + n] = chunk + bytes(self.rng.getrandbits(8) for _ in range(n - len(chunk)))
            pos += n
        self.cmds[cmd_id] = {"iovs": iovs, "blocks": blocks, "data_in": data_in, "len": length}
        self._put_head(self.head + size)
        self._notify()
        return cmd_id

    def _notify(self) -> None:
        if self.notify_fd >= 0:
            import os
            os.eventfd_write(self.notify_fd, 1)

    def queue_raw(self, size: int, op: int) -> None:
        """An entry of another kind (TMR, or an op from a future kernel)."""
        if self.head + size > self.ring_size:
            self._pad_to_end()
        off = R.MAILBOX_SIZE + self.head
        cmd_id = self.next_id
        self.next_id += 1
        struct.pack_into("<IHBB", self.buf, off, size | op, cmd_id, 0, 0)
        if op not in (R.OP_PAD, R.OP_TMR):
            self.cmds[cmd_id] = {"iovs": [], "blocks": [], "data_in": 0, "len": 0}
        self._put_head(self.head + size)
        self._notify()
        return cmd_id

    def reap(self) -> dict[int, dict]:
        """Walk from the last cleaned entry to cmd_tail like tcmu_handle_completions()."""
        out = {}
        tail = struct.unpack_from("<I", self.buf, R.MB_CMD_TAIL)[0]
        while self.last_cleaned != tail:
            off = R.MAILBOX_SIZE + self.last_cleaned
            len_op, cmd_id, _kf, uflags = struct.unpack_from("<IHBB", self.buf, off)
            op, size = len_op & 7, len_op & ~7
            if op in (R.OP_PAD, R.OP_TMR):
                self.last_cleaned = (self.last_cleaned + size) % self.ring_size
                continue
            cmd = self.cmds.pop(cmd_id, None)
            if cmd is None:
                raise BrokenRing(f"cmd_id {cmd_id} not found, ring is broken")
            status, read_len = struct.unpack_from("<BxxxI", self.buf, off + 8)
            sense = bytes(self.buf[off + 16:off + 16 + 96])
            n = cmd["data_in"]
            if uflags & R.UFLAG_READ_LEN and read_len:      # a read_len of 0 is ignored
                n = min(n, read_len)
            elif status == 2:       # CHECK CONDITION without read_len: no data goes back
                n = 0
            data = b"".join(bytes(self.buf[b:b + k]) for b, k in cmd["iovs"])[:n]
            out[cmd_id] = {"status": status, "sense": sense, "data": data, "uflags": uflags,
                           "read_len": read_len if uflags & R.UFLAG_READ_LEN else None}
            self.free_blocks.extend(cmd["blocks"])
            self.last_cleaned = (self.last_cleaned + size) % self.ring_size
        return out


class Harness:
    """Simulated kernel + ring + emulation over a backend: one call per SCSI command."""

    def __init__(self, backend=None, size: int = 8 << 20, block_size: int = 512,
                 kernel_flags: int = R.CAP_OOOC | R.CAP_READ_LEN, **unit):
        from lioctl.tcmu.backends.ram import RamBackend
        from lioctl.tcmu.scsi.emulator import Emulator, Unit
        self.kernel = SimKernel(ring_size=16384, data_blocks=1024, flags=kernel_flags)
        self.ring = R.Ring(self.kernel.buf)
        self.backend = backend or RamBackend(size)
        self.unit = Unit(block_size=block_size, num_blocks=self.backend.size // block_size,
                         serial="7f3a1c2e-9b4d-4e1a-8c55-0123456789ab", product="disk1", **unit)
        self.emu = Emulator(self.unit, self.backend)

    def run(self, cdb: bytes, data_out: bytes = b"", data_in: int = 0) -> dict:
        cid = self.kernel.queue(bytes(cdb), data_out=data_out, data_in=data_in)
        for cmd in self.ring.take():
            if cmd.unknown_op:
                self.ring.complete(cmd.cmd_id, 2, unknown_op=True)
                continue
            r = self.emu.execute(cmd.cdb, cmd.iovecs, cmd.length)
            self.ring.complete(cmd.cmd_id, r.status, r.sense, r.read_len)
        return self.kernel.reap()[cid]


def sim_device(backend, doorbell_fd: int, pool=None, ring_size: int = 16384, data_blocks: int = 1024,
               queue=None, native: bool = False, copy_threads: int = 0, wait_threads: int = 0,
               aligned: bool = False, ring_thread: bool = False, uring: bool = False, **unit):
    """A Device served from the simulated ring over `backend`, without UIO or configfs: the
    doorbell goes to doorbell_fd. For Device.drain's tests and bench/tcmu_hot_path.py.
    native: with the C path (_fastpath.c) in front, as the daemon serves a file backend;
    copy_threads, wait_threads: its threads for large reads and for what waits (their
    hand-backs: Device.reap_native); ring_thread: with the ring thread, woken by an eventfd
    the simulated kernel bumps per command (k.notify_fd), as UIO's event count is; uring: the
    wait lane on io_uring (dev.fast.uring says whether the host allowed it)."""
    import os
    from lioctl.tcmu.device import Counters, Device, ring_lock
    from lioctl.tcmu.scsi.emulator import Emulator, Unit
    k = SimKernel(ring_size=ring_size, data_blocks=data_blocks, aligned=aligned)
    dev = Device.__new__(Device)
    dev.ring, dev.pool, dev.disk_pool, dev.lock = R.Ring(k.buf), pool, pool, ring_lock()
    dev.emulator = Emulator(Unit(num_blocks=backend.size // 512, **unit), backend)
    dev.counters, dev.futures, dev.map, dev.fd, dev.broken = Counters(), set(), None, doorbell_fd, None
    dev.backend, dev.unit, dev.queue, dev.acmds, dev.late = backend, dev.emulator.unit, queue, None, []
    dev.name, dev.hba, dev.cfs = "sim", "user_0", "/nonexistent"
    dev.fast, dev.native_done_fd, dev.on_bell_cpu = None, -1, False
    if native:
        from lioctl.tcmu import _fastpath
        if copy_threads or wait_threads or ring_thread:
            dev.native_done_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        dev.fast = _fastpath.FastPath(dev.ring.mv, backend.native_fd, doorbell_fd, dev.lock, dev.native_done_fd,
                                      backend.native_dfd)
        if copy_threads or wait_threads or ring_thread:
            dev.fast.start(copy_threads, wait_threads, uring)
        dev.fast_config()
        if ring_thread:
            k.notify_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            dev.fast.start_ring(k.notify_fd, 8, dev.ring.next)
            dev.ring.bound_by_head = True
            dev.drain()             # hands the ring to the thread, as the daemon's first drain
    if queue is not None and backend.asynchronous:
        dev.start_async()       # an asynchronous backend's answers come back through the queue
    return k, dev


def full_doorbell() -> tuple[int, int]:
    """A doorbell pipe (read end non-blocking) whose buffer is full: the handler's next
    doorbell write waits until the test reads from it."""
    import fcntl
    import os
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
    filler = os.open(f"/proc/self/fd/{w}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(filler, b"x" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.close(filler)
    return r, w
