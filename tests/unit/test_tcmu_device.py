"""Device.drain over the simulated ring: small commands inline, large reads and writes on the
I/O threads (answered out of order, doorbell rung by the thread), malformed entries answered."""

from __future__ import annotations

import concurrent.futures
import os
import struct

import pytest

from lioctl.tcmu.backends.ram import RamBackend
from lioctl.tcmu.device import PARALLEL_MIN
from tcmu_sim import full_doorbell, sim_device


def device(pool):
    r, w = os.pipe()                # the doorbell: each answered batch writes 4 bytes
    k, dev = sim_device(RamBackend(8 << 20), w, pool)
    return k, dev, r


def test_large_io_on_threads_small_inline():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        k, dev, bell = device(pool)
        data = os.urandom(PARALLEL_MIN * 2)
        w = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, len(data) // 512, 0), data_out=data)
        t = k.queue(bytes(6))
        assert dev.drain() == 2
        dev.quiesce()
        got = k.reap()
        assert got[w]["status"] == 0 and got[t]["status"] == 0
        assert dev.counters.commands == 2 and dev.counters.writes == 1 and dev.counters.threaded == 1
        assert os.read(bell, 64)            # the doorbell was rung
        r = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, len(data) // 512, 0), data_in=len(data))
        dev.drain()
        dev.quiesce()
        assert k.reap()[r]["data"] == data


@pytest.mark.parametrize("lock", ["c", "python"])
def test_threads_answer_while_another_rings_the_doorbell_and_one_ring_covers_them(lock, monkeypatch):
    """The kernel copies a read's data out inside the doorbell write: a thread in it must not
    hold up the others' answers (nor the loop). A doorbell pipe kept full makes the first
    ringer's write block; the other reads still land in the ring meanwhile, and once the pipe
    drains one more ring covers them all. With the C extension's RingLock, and with its
    Python twin (an install without a compiler)."""
    import threading
    from lioctl.tcmu import device as device_module
    if lock == "python":
        monkeypatch.setattr(device_module, "_fastpath", None)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        r, w = full_doorbell()
        k, dev = sim_device(RamBackend(8 << 20), w, pool)
        assert type(dev.lock).__name__ == ("RingLock" if lock == "c" else "PyRingLock")
        n = 8
        ids = [k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, PARALLEL_MIN // 512, 0), data_in=PARALLEL_MIN)
               for _ in range(n)]
        assert dev.drain() == n and dev.counters.threaded == n

        def every_answer_in_the_ring():     # while the ringer's doorbell write is stuck
            return dev.ring.pending == 0
        for _ in range(1000):
            if every_answer_in_the_ring():
                break
            threading.Event().wait(0.01)
        assert every_answer_in_the_ring() and dev.lock.bell_busy and len(dev.futures) >= 1
        while dev.futures:                  # let the doorbell through
            try:
                os.read(r, 1 << 16)
            except BlockingIOError:
                threading.Event().wait(0.001)
        got = k.reap()
        assert sorted(got) == sorted(ids) and all(a["status"] == 0 for a in got.values())
        assert not dev.lock.bell_busy and not dev.lock.bell_pending
        assert 2 <= dev.lock.doorbells < n      # the stuck one and at least one covering the rest


def test_inline_batch_counts_and_answers_every_kind():
    from lioctl.tcmu import ring as R
    k, dev, bell = device(None)
    data = os.urandom(4096)
    w = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 8, 0, 8, 0), data_out=data)
    r = k.queue(struct.pack(">BBIBHB", 0x28, 0, 8, 0, 8, 0), data_in=4096)
    bad = k.queue(bytes([0xFF]) + bytes(5))             # invalid opcode
    oor = k.queue(struct.pack(">BBQIBB", 0x88, 0, 1 << 40, 8, 0, 0), data_in=4096)
    k.queue_raw(64, 5)                                   # an op from a future kernel
    assert dev.drain() == 5
    got = k.reap()
    assert got[w]["status"] == 0 and got[r]["status"] == 0 and got[r]["data"] == data
    assert got[bad]["status"] == 2 and got[bad]["sense"][12] == 0x20      # INVALID OPCODE
    assert got[oor]["status"] == 2 and got[oor]["sense"][12] == 0x21      # LBA OUT OF RANGE
    assert [v["uflags"] & R.UFLAG_UNKNOWN_OP for v in got.values()].count(R.UFLAG_UNKNOWN_OP) == 1
    c = dev.counters
    assert (c.commands, c.reads, c.writes, c.read_bytes, c.write_bytes, c.errors) == (5, 2, 1, 8192, 4096, 3)
    assert len(os.read(bell, 64)) == 4                   # one doorbell for the whole batch
    assert dev.drain() == 0


def test_write_back_writes_stay_inline_while_reads_and_sync_writes_go_to_threads():
    import threading
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait)          # the one I/O thread is busy until the gate opens
        r, w = os.pipe()
        k, dev = sim_device(RamBackend(8 << 20), w, pool, write_cache=True)
        data = os.urandom(PARALLEL_MIN)
        blocks = len(data) // 512
        wb = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, blocks, 0), data_out=data)
        fua = k.queue(struct.pack(">BBIBHB", 0x2A, 0x08, 4096, 0, blocks, 0), data_out=data)
        rd = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, blocks, 0), data_in=len(data))
        assert dev.drain() == 3
        assert set(k.reap()) == {wb}            # answered on the event loop, threads still blocked
        gate.set()
        dev.quiesce()
        got = k.reap()
        assert set(got) == {fua, rd} and got[rd]["data"] == data and got[fua]["status"] == 0
        assert (dev.counters.writes, dev.counters.reads) == (2, 1)


class DiskBackend(RamBackend):
    blocking = True         # as a file on a disk: its I/O may wait for the medium


def test_a_backend_that_may_block_never_stalls_the_event_loop_on_it():
    import threading
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait)
        r, w = os.pipe()
        k, dev = sim_device(DiskBackend(8 << 20), w, pool, write_cache=True)
        data = os.urandom(4096)
        wb = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 8, 0, 8, 0), data_out=data)     # write-back
        rd = k.queue(struct.pack(">BBIBHB", 0x28, 0, 8, 0, 8, 0), data_in=4096)     # 4 KiB read
        sync = k.queue(struct.pack(">BBIBHB", 0x35, 0, 0, 0, 0, 0))                 # SYNCHRONIZE CACHE
        tur = k.queue(bytes(6))                                                     # TEST UNIT READY
        assert dev.drain() == 4
        assert dev.counters.threaded == 2
        # answered on the event loop: the write-back write and TEST UNIT READY; the read
        # and the flush wait for the blocked thread
        assert set(k.reap()) == {wb, tur}
        gate.set()
        dev.quiesce()
        got = k.reap()
        assert set(got) == {rd, sync} and got[rd]["data"] == data and got[sync]["status"] == 0


def test_compare_and_write_waits_for_the_writes_on_threads():
    """A write-through write on a disk runs on a thread; a COMPARE AND WRITE queued after it
    must compare against that write's data, not race it (VMware's ATS locks rely on this)."""
    import threading
    entered, gate, caw_read = threading.Event(), threading.Event(), threading.Event()

    class SlowDisk(DiskBackend):
        def writev(self, bufs, offset, sync=False):
            if not gate.is_set():
                entered.set()
                gate.wait()
            super().writev(bufs, offset, sync)

        def readv(self, bufs, offset):
            caw_read.set()
            return super().readv(bufs, offset)

    def opener():   # opens the gate once COMPARE AND WRITE reads, or after 1 s if it waits
        entered.wait(5)
        caw_read.wait(1)
        gate.set()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        r, w = os.pipe()
        k, dev = sim_device(SlowDisk(8 << 20), w, pool, write_cache=False, max_sectors=128)
        old, new = os.urandom(512), os.urandom(512)
        wr = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), data_out=old)
        caw = k.queue(struct.pack(">BBQ3xBBB", 0x89, 0, 0, 1, 0, 0), data_out=old + new)
        t = threading.Thread(target=opener)
        t.start()
        assert dev.drain() == 2
        dev.quiesce()
        t.join()
        got = k.reap()
        assert got[wr]["status"] == 0
        assert got[caw]["status"] == 0, got[caw]["sense"][:14].hex()     # not MISCOMPARE
        rd = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0), data_in=512)
        dev.drain()
        dev.quiesce()
        assert k.reap()[rd]["data"] == new


def test_the_device_size_comes_from_configfs_without_the_tree(tmp_path):
    """attrib/dev_size, else the Size the kernel's info shows (read by the handler itself,
    not through lioctl.tree: the handler imports nothing of the tree)."""
    from lioctl.tcmu.device import device_size
    (tmp_path / "attrib").mkdir()
    (tmp_path / "info").write_text("Status: ACTIVATED  Max Queue Depth: 0  SectorSize: 512  "
                                   "HwMaxSectors: 2048\n        Config: lioctl_ram/x Size: 1048576 "
                                   "MaxDataAreaMB: 1024 DataPagesPerBlk: 1\n")
    assert device_size(str(tmp_path)) == 1048576
    (tmp_path / "attrib" / "dev_size").write_text("2097152\n")
    assert device_size(str(tmp_path)) == 2097152
    assert device_size(str(tmp_path / "gone")) == 0


def file_on_disk(tmp_path, data: bytes):
    """lioctl_file on a file of the host's disk (a blocking backend), `data` at offset 0."""
    from lioctl.tcmu.backends.file import FileBackend
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    b = FileBackend(str(path), 8 << 20)
    b.blocking = b.nowait = True     # as on ext4 or xfs, whatever the host's /tmp is
    return b


def blocked_pool_device(backend, pool, gate):
    """A device whose one I/O thread is held until the gate opens: whatever goes to a thread is
    answered only after that."""
    pool.submit(gate.wait)
    r, w = os.pipe()
    return sim_device(backend, w, pool, write_cache=True)


def test_a_read_the_page_cache_holds_is_answered_on_the_event_loop(tmp_path):
    import threading
    data = os.urandom(8192)
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        k, dev = blocked_pool_device(file_on_disk(tmp_path, data), pool, gate)
        rd = k.queue(struct.pack(">BBIBHB", 0x28, 0, 8, 0, 8, 0), data_in=4096)       # just written: cached
        oor = k.queue(struct.pack(">BBQIBB", 0x88, 0, 1 << 40, 8, 0, 0), data_in=4096)
        assert dev.drain() == 2
        got = k.reap()          # the one I/O thread is still held: answered inline
        gate.set()
        assert set(got) == {rd, oor} and got[rd]["data"] == data[4096:]
        assert got[oor]["status"] == 2 and got[oor]["sense"][12] == 0x21      # LBA OUT OF RANGE
        assert (dev.counters.cached, dev.counters.threaded, dev.counters.reads) == (2, 0, 2)


def test_a_read_that_would_wait_for_the_medium_goes_to_a_thread(tmp_path):
    import threading
    data = os.urandom(8192)
    backend = file_on_disk(tmp_path, data)
    os.fsync(backend.fd)
    os.posix_fadvise(backend.fd, 0, 0, os.POSIX_FADV_DONTNEED)     # out of the page cache
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        k, dev = blocked_pool_device(backend, pool, gate)
        rd = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0), data_in=4096)
        big = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 256, 0), data_in=PARALLEL_MIN)
        assert dev.drain() == 2
        assert k.reap() == {} and dev.counters.threaded == 2 and dev.counters.cached == 0
        gate.set()
        dev.quiesce()
        got = k.reap()
        assert got[rd]["data"] == data[:4096] and got[big]["data"][:8192] == data


def test_partly_cached_reads_and_pending_unit_attentions_go_to_a_thread(tmp_path):
    import threading
    from lioctl.tcmu.scsi import sense as S
    backend = file_on_disk(tmp_path, os.urandom(8192))
    backend.readv_nowait = lambda bufs, offset: 512            # only the first page is there
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        k, dev = blocked_pool_device(backend, pool, gate)
        short = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0), data_in=4096)
        assert dev.drain() == 1 and dev.counters.threaded == 1
        gate.set()
        dev.quiesce()
        assert k.reap()[short]["status"] == 0
        del backend.readv_nowait
        dev.emulator.unit_attention(S.CAPACITY_DATA_HAS_CHANGED)
        ua = k.queue(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0), data_in=4096)
        assert dev.drain() == 1 and dev.counters.threaded == 2 and dev.counters.cached == 0
        dev.quiesce()
        got = k.reap()[ua]
        assert got["status"] == 2 and got["sense"][2] == 0x06          # UNIT ATTENTION


def test_o_direct_writes_go_to_a_thread_even_with_the_write_cache_on(tmp_path):
    """With O_DIRECT a write-back write has no page cache to land in: it waits for the disk,
    so it must not run on the event loop (which serves every device)."""
    import threading
    from lioctl.tcmu.backends.file import FileBackend
    path = tmp_path / "d.img"
    path.write_bytes(bytes(1 << 20))
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait)          # the one I/O thread is busy until the gate opens
        r, w = os.pipe()
        buffered = FileBackend(str(path), 1 << 20)
        k, dev = sim_device(buffered, w, pool, write_cache=True)
        wr = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 8, 0), data_out=b"B" * 4096)
        dev.drain()
        assert dev.counters.threaded == 0 and k.reap()[wr]["status"] == 0     # answered inline
        buffered.close()
        try:
            direct = FileBackend(str(path), 1 << 20, direct=True)
        except OSError:                 # a file system without O_DIRECT
            pytest.skip(f"no O_DIRECT on {tmp_path}")
        k, dev = sim_device(direct, w, pool, write_cache=True)
        wr = k.queue(struct.pack(">BBIBHB", 0x2A, 0, 8, 0, 8, 0), data_out=b"D" * 4096)
        dev.drain()
        assert dev.counters.threaded == 1 and k.reap() == {}        # waiting for the thread
        gate.set()
        dev.quiesce()
        assert k.reap()[wr]["status"] == 0
        direct.close()
        os.close(r)
        os.close(w)
    assert path.read_bytes()[:8192] == b"B" * 4096 + b"D" * 4096


def test_a_file_system_without_nowait_reads_turns_them_off(tmp_path, monkeypatch):
    import errno
    backend = file_on_disk(tmp_path, bytes(4096))

    def refuse(fd, bufs, offset, flags=0):
        raise OSError(errno.EOPNOTSUPP, "not supported")
    monkeypatch.setattr(os, "preadv", refuse)
    assert backend.readv_nowait([bytearray(512)], 0) is None and backend.nowait is False
    monkeypatch.undo()
    assert backend.readv_nowait([bytearray(512)], 0) is None        # off for good
    backend.close()
