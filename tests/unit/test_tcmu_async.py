"""The asynchronous backend form over the simulated ring: commands in flight at once,
completions on foreign threads handed to the loop through the CompletionQueue, answered out
of order with one doorbell per wake-up; FUA chains a flush; UNMAP's discards; COMPARE AND
WRITE's miscompare offset; timeouts as NOT READY; a capacity change as a unit attention."""

from __future__ import annotations

import errno
import os
import select
import struct
import threading

import pytest

from lioctl.tcmu.aio import CompletionQueue
from lioctl.tcmu.backends.ram import RamBackend
from tcmu_sim import sim_device


class FakeAio(RamBackend):
    """RAM with the asynchronous form: each operation is held until release() and then
    completed on a thread of its own (as librbd completes on its threads)."""
    asynchronous = True
    blocking = True
    compare_and_write_max = 512

    def __init__(self, size=8 << 20):
        super().__init__(size)
        self.held = []
        self.log = []
        self.fail_with = 0

    def _op(self, name, fn, done):
        self.log.append(name)
        self.held.append((fn, done))

    def release(self, order=None):
        held, self.held = self.held, []
        threads = []
        for i in (order or range(len(held))):
            fn, done = held[i]

            def finish(fn=fn, done=done):
                if self.fail_with:
                    done(-self.fail_with, None)
                    return
                r = fn()
                done(*(r if isinstance(r, tuple) else (r, None)))
            t = threading.Thread(target=finish)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        return len(held)

    def aio_readv(self, bufs, offset, done):
        self._op("read", lambda: self.readv(bufs, offset), done)

    def aio_writev(self, bufs, offset, done):
        self._op("write", lambda: self.writev(bufs, offset) or 0, done)

    def aio_flush(self, done):
        self._op("flush", lambda: 0, done)

    def aio_discard(self, offset, length, done):
        self._op("discard", lambda: self.discard(offset, length) or 0, done)

    def aio_write_zeroes(self, offset, length, done):
        self._op("zeroes", lambda: self.writev([bytes(length)], offset) or 0, done)

    def aio_write_same(self, offset, length, block, done):
        self._op("same", lambda: self.writev([block * (length // len(block))], offset) or 0, done)

    def aio_compare_and_write(self, offset, compare, data, done):
        def caw():
            have = bytes(self.mv[offset:offset + len(compare)])
            if have != compare:
                return -errno.EILSEQ, next(i for i in range(len(have)) if have[i] != compare[i])
            self.writev([data], offset)
            return 0
        self._op("caw", caw, done)

    def in_flight(self):
        return len(self.held)


def rw(opcode, lba, blocks, flags=0):
    return struct.pack(">BBIBHB", opcode, flags, lba, 0, blocks, 0)


@pytest.fixture
def adev():
    r, w = os.pipe()
    q = CompletionQueue()
    b = FakeAio()
    k, dev = sim_device(b, w, queue=q, write_cache=True)
    yield k, dev, b, q, r
    q.close()
    os.close(r)
    os.close(w)


def pump(q):
    """What the daemon does when the queue's eventfd is readable."""
    assert select.select([q.fd], [], [], 5)[0], "no completion woke the loop"
    return q.run()


def test_completion_queue_wakes_once_for_a_burst_and_flushes_once():
    q = CompletionQueue()
    got, flushed = [], []
    ts = [threading.Thread(target=q.post, args=(got.append, i)) for i in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    flush = lambda: flushed.append(1)   # noqa: E731
    q.later(flush)
    q.later(flush)                       # asked twice in one batch: run once
    assert select.select([q.fd], [], [], 1)[0]
    assert q.run() == 50 and sorted(got) == list(range(50)) and flushed == [1]
    assert q.signalled is False and not select.select([q.fd], [], [], 0)[0]   # 50 posts, one wake-up
    q.post(got.append, 99)               # after a run: the loop is woken again
    assert select.select([q.fd], [], [], 1)[0] and q.run() == 1 and got[-1] == 99
    q.close()


def test_many_commands_in_flight_answered_out_of_order_one_doorbell_per_wakeup(adev):
    k, dev, b, q, bell = adev
    data = [os.urandom(4096) for _ in range(16)]
    ids = [k.queue(rw(0x2A, 8 * i, 8), data_out=d) for i, d in enumerate(data)]
    assert dev.drain() == 16
    assert k.reap() == {} and b.in_flight() == 16          # nothing answered yet, all started
    b.release(order=list(range(15, -1, -1)))                # completed in reverse
    assert pump(q) == 16
    got = k.reap()
    assert set(got) == set(ids) and all(v["status"] == 0 for v in got.values())
    assert len(os.read(bell, 64)) == 4                       # one doorbell for the 16 answers
    rids = [k.queue(rw(0x28, 8 * i, 8), data_in=4096) for i in range(16)]
    dev.drain()
    b.release()
    pump(q)
    got = k.reap()
    assert [got[r]["data"] for r in rids] == data
    assert dev.counters.asynchronous == 32 and dev.counters.threaded == 0


def test_fua_and_no_write_cache_chain_a_flush_before_the_answer(adev):
    k, dev, b, q, bell = adev
    w = k.queue(rw(0x2A, 0, 8, flags=0x08), data_out=os.urandom(4096))      # FUA
    dev.drain()
    assert b.log == ["write"]
    b.release()
    pump(q)
    assert k.reap() == {} and b.log == ["write", "flush"]    # not answered before the flush
    b.release()
    pump(q)
    assert k.reap()[w]["status"] == 0
    s = k.queue(bytes([0x35]) + bytes(9))                     # SYNCHRONIZE CACHE(10)
    dev.drain()
    b.release()
    pump(q)
    assert k.reap()[s]["status"] == 0 and b.log[-1] == "flush"


def test_a_backend_with_durable_writes_answers_fua_and_write_through_without_a_flush():
    """RBD with rbd_cache=false: a completed write is on the OSDs, so FUA, WRITE AND VERIFY,
    COMPARE AND WRITE and writes with the write cache off are answered after the write alone
    (one cluster round trip, not two); SYNCHRONIZE CACHE still flushes."""
    r, w = os.pipe()
    q = CompletionQueue()
    b = FakeAio()
    b.durable_writes = True
    k, dev = sim_device(b, w, queue=q, write_cache=False)
    try:
        ids = [k.queue(rw(0x2A, 0, 8, flags=0x08), data_out=os.urandom(4096)),    # FUA
               k.queue(rw(0x2A, 8, 8), data_out=os.urandom(4096)),                # write cache off
               k.queue(rw(0x2E, 16, 8), data_out=os.urandom(4096))]               # WRITE AND VERIFY
        dev.drain()
        b.release()
        pump(q)
        got = k.reap()
        assert [got[i]["status"] for i in ids] == [0, 0, 0] and b.log == ["write"] * 3
        s = k.queue(bytes([0x35]) + bytes(9))
        dev.drain()
        b.release()
        pump(q)
        assert k.reap()[s]["status"] == 0 and b.log[-1] == "flush"
    finally:
        q.close()
        os.close(r)
        os.close(w)


def test_unmap_answers_after_every_discard_and_reads_back_zeros(adev):
    k, dev, b, q, bell = adev
    k.queue(rw(0x2A, 0, 64), data_out=b"\xAA" * 32768)
    dev.drain()
    b.release()
    pump(q)
    k.reap()
    params = struct.pack(">HH4x", 6 + 32, 32) + struct.pack(">QI4x", 0, 8) + struct.pack(">QI4x", 16, 8)
    u = k.queue(bytes([0x42, 0, 0, 0, 0, 0, 0]) + struct.pack(">H", len(params)) + b"\0", data_out=params)
    dev.drain()
    held = b.held
    b.held = [held[0]]
    b.release()
    pump(q)
    assert k.reap() == {}                                    # one discard of two: no answer
    b.held = [held[1]]
    b.release()
    pump(q)
    assert k.reap()[u]["status"] == 0
    r = k.queue(rw(0x28, 0, 64), data_in=32768)
    dev.drain()
    b.release()
    pump(q)
    data = k.reap()[r]["data"]
    assert data[:4096] == bytes(4096) and data[4096:8192] == b"\xAA" * 4096 and data[8192:12288] == bytes(4096)


def test_compare_and_write_success_miscompare_offset_and_one_block_only(adev):
    k, dev, b, q, bell = adev
    k.queue(rw(0x2A, 4, 1), data_out=b"A" * 512)
    dev.drain()
    b.release()
    pump(q)
    k.reap()

    def caw(lba, blocks, payload):
        return k.queue(struct.pack(">BBQ3xB2x", 0x89, 0, lba, blocks), data_out=payload)
    ok = caw(4, 1, b"A" * 512 + b"B" * 512)
    dev.drain()
    b.release()
    pump(q)
    assert k.reap()[ok]["status"] == 0
    bad = caw(4, 1, b"B" * 300 + b"X" + b"B" * 211 + b"C" * 512)
    dev.drain()
    b.release()
    pump(q)
    got = k.reap()[bad]
    assert got["status"] == 2 and got["sense"][2] == 0x0E and got["sense"][12:14] == b"\x1d\x00"
    assert got["sense"][0] & 0x80 and struct.unpack(">I", got["sense"][3:7])[0] == 300
    two = caw(4, 2, bytes(2048))
    dev.drain()
    assert k.reap()[two]["sense"][2] == 0x05                  # ILLEGAL REQUEST: one block only
    assert dev.unit.max_compare_write_blocks == 1


def test_a_timed_out_cluster_is_not_ready_and_read_only_refuses_writes(adev):
    k, dev, b, q, bell = adev
    b.fail_with = errno.ETIMEDOUT
    r = k.queue(rw(0x28, 0, 8), data_in=4096)
    dev.drain()
    b.release()
    pump(q)
    got = k.reap()[r]
    assert got["status"] == 2 and got["sense"][2] == 0x02 and got["sense"][12:14] == b"\x04\x00"
    b.fail_with = 0
    dev.unit.read_only = True
    w = k.queue(rw(0x2A, 0, 8), data_out=bytes(4096))
    dev.drain()
    got = k.reap()[w]
    assert got["sense"][2] == 0x07 and got["sense"][12:14] == b"\x27\x00"   # DATA PROTECT
    assert b.log == ["read"]                                  # the write never reached it


def test_a_capacity_change_is_a_unit_attention_once_and_read_capacity_shows_it(adev):
    k, dev, b, q, bell = adev
    b.current_size = lambda: 16 << 20
    dev.size_changed()
    inq = k.queue(bytes([0x12, 0, 0, 0, 96, 0]), data_in=96)
    r1 = k.queue(rw(0x28, 0, 8), data_in=4096)
    r2 = k.queue(rw(0x28, 0, 8), data_in=4096)
    dev.drain()
    got = k.reap()
    assert got[inq]["status"] == 0                          # INQUIRY is not held up
    assert got[r1]["sense"][2] == 0x06 and got[r1]["sense"][12:14] == b"\x2a\x09"
    b.release()
    pump(q)
    assert k.reap()[r2]["status"] == 0                       # reported once
    rc = k.queue(bytes([0x25]) + bytes(9), data_in=8)
    dev.drain()
    last, bs = struct.unpack(">II", k.reap()[rc]["data"])
    assert (last + 1) * bs == 16 << 20
