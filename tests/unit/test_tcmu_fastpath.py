"""The native READ/WRITE path (lioctl/tcmu/_fastpath.c) against the Python path it stands in
front of: two simulated kernels fed the same commands, one device served with the C path and
one without, over two files that start the same. After every batch the two rings (mailbox,
answers, data area), the two files and the two devices' counters must be byte for byte the
same: the C path answers only what Python would answer GOOD, having done the same I/O, and
leaves everything else to Python. Then the same over corrupted rings (seeded, bounded), and
the cases the differential cannot reach: a command on an I/O thread while the C path answers,
a read the page cache does not hold, a unit attention, a resize, a closed mapping."""

from __future__ import annotations

import concurrent.futures
import ctypes
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lioctl.tcmu import ring as R
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.scsi import modes
from lioctl.tcmu.scsi import opcodes as op
from lioctl.tcmu.scsi import sense as S
from ring_mutations import assert_only_answers_changed, corrupt, mutations
from tcmu_sim import full_doorbell, sim_device

from lioctl.tcmu import _fastpath       # tests/setup.sh builds it: missing is a failure

BLOCK = 512
SIZE = 1 << 20
BLOCKS = SIZE // BLOCK
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=400,
                suppress_health_check=list(HealthCheck))


class Pair:
    """The same commands into two simulated kernels: `native` served with the C path, `python`
    without it."""

    def __init__(self, tmp_path, content: bytes, pool=None, ring_size=16384, data_blocks=256, threads=(0, 0),
                 direct=False, ring_thread=False, uring=False, **unit):
        self.null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        self.sides = {}
        for name in ("native", "python"):
            path = tmp_path / f"{name}.img"
            path.write_bytes(content)
            b = FileBackend(str(path), len(content), direct=direct)
            n = name == "native"
            k, dev = sim_device(b, self.null, pool, ring_size=ring_size, data_blocks=data_blocks, native=n,
                                copy_threads=threads[0] if n else 0, wait_threads=threads[1] if n else 0,
                                aligned=direct, ring_thread=ring_thread and n, uring=uring and n, **unit)
            self.sides[name] = (k, dev, b, path)

    def queue(self, cdb: bytes, data_out: bytes = b"", data_in: int = 0) -> None:
        for k, *_ in self.sides.values():
            k.queue(cdb, data_out=data_out, data_in=data_in)

    def drain(self) -> dict:
        out = {}
        for name, (k, dev, _, _) in self.sides.items():
            dev.drain()
            dev.quiesce()
            out[name] = k.reap()
        return out

    def close(self) -> None:
        for _, dev, b, _ in self.sides.values():
            dev.stop_fast()
            b.close()
        os.close(self.null)


def rw(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    if opcode in (op.READ_6, op.WRITE_6):
        return bytes([opcode, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, blocks & 0xFF, 0])
    if opcode >> 5 in (1, 2):
        return struct.pack(">BBIBHB", opcode, flags, lba & 0xFFFFFFFF, 0, blocks & 0xFFFF, 0)
    if opcode >> 5 == 5:
        return struct.pack(">BBIIBB", opcode, flags, lba & 0xFFFFFFFF, blocks & 0xFFFFFFFF, 0, 0)
    return struct.pack(">BBQIBB", opcode, flags, lba & (2 ** 64 - 1), blocks & 0xFFFFFFFF, 0, 0)


def mode_select_wce(unit, on: bool) -> tuple[bytes, bytes]:
    page = bytearray(modes._page(unit, 0x08, modes.PC_CURRENT))
    page[2] = (page[2] & ~0x04) | (0x04 if on else 0)
    data = bytes(4) + bytes(page)
    return bytes([op.MODE_SELECT_6, 0x10, 0, 0, len(data), 0]), data


RW_OPS = [op.READ_6, op.READ_10, op.READ_12, op.READ_16, op.WRITE_6, op.WRITE_10, op.WRITE_12,
          op.WRITE_16, op.WRITE_VERIFY_10]
plain = st.tuples(st.just("rw"), st.sampled_from([op.READ_10, op.READ_16, op.WRITE_10, op.WRITE_12]),
                  st.integers(0, BLOCKS - 16), st.integers(1, 16), st.just(0), st.just(0))
command = st.one_of(
    plain, plain, plain,
    st.tuples(st.just("rw"), st.sampled_from(RW_OPS),
              st.one_of(st.integers(0, BLOCKS - 1), st.integers(BLOCKS - 16, BLOCKS + 16),
                        st.integers(0, 2 ** 64 - 1)),
              st.one_of(st.integers(1, 16), st.integers(0, 300)),
              st.sampled_from([0, 0, 0, 0x08, 0x10, 0xE0, 0x02]),
              st.sampled_from([0, 0, 0, 0, BLOCK, -BLOCK, 7])),                # data length skew
    st.tuples(st.just("other"), st.sampled_from([bytes(6), bytes([op.INQUIRY, 0, 0, 0, 96, 0]),
                                                  bytes([op.SYNCHRONIZE_CACHE_10]) + bytes(9),
                                                  bytes([0xFF]) + bytes(5)])),
    st.tuples(st.just("wce"), st.booleans()),
)
batches = st.lists(st.lists(command, min_size=1, max_size=8), min_size=1, max_size=6)


def queue_command(pair: Pair, c, seed: int) -> None:
    if c[0] == "rw":
        _, opc, lba, blocks, flags, skew = c
        cdb = rw(opc, lba, blocks, flags)
        if opc == op.READ_6 or opc == op.WRITE_6:
            blocks = blocks & 0xFF or 256
        n = max(0, min(blocks * BLOCK + skew, 64 * 1024))
        if opc in (op.READ_6, op.READ_10, op.READ_12, op.READ_16):
            pair.queue(cdb, data_in=n)
        else:
            pair.queue(cdb, data_out=bytes((seed + i) & 0xFF for i in range(n)))
    elif c[0] == "other":
        pair.queue(c[1], data_in=96 if c[1][0] == op.INQUIRY else 0)
    else:
        cdb, data = mode_select_wce(pair.sides["python"][1].unit, c[1])
        pair.queue(cdb, data_out=data)


def assert_same(pair: Pair, got: dict) -> None:
    (kn, dn, _, pn), (kp, dp, _, pp) = pair.sides["native"], pair.sides["python"]
    assert got["native"] == got["python"]
    assert bytes(kn.buf) == bytes(kp.buf)
    assert pn.read_bytes() == pp.read_bytes()
    cn, cp = dn.counted(), dp.counted()
    for key in ("commands", "reads", "writes", "read_bytes", "write_bytes", "errors"):
        assert cn[key] == cp[key], key


def test_the_native_path_answers_exactly_as_python_does(tmp_path, record_property):
    cases = {"batches": 0, "native": 0}
    pair = Pair(tmp_path, bytes(range(256)) * (SIZE // 256), write_cache=True)

    @FUZZ
    @given(work=batches)
    def one(work):
        for i, batch in enumerate(work):
            for j, c in enumerate(batch):
                queue_command(pair, c, i * 31 + j)
            assert_same(pair, pair.drain())
            cases["batches"] += 1

    try:
        one()
        cases["native"] = pair.sides["native"][1].counted()["native"]
    finally:
        pair.close()
    print(f"\nnative differential: {cases['batches']} batches, {cases['native']} commands answered in C")
    record_property("native_fuzz_batches", cases["batches"])
    # it must have had work to do, and stepped aside for the rest
    assert cases["batches"] >= 1000 and cases["native"] >= 200
    assert pair.sides["python"][1].counted()["native"] == 0


@pytest.mark.parametrize("ring_thread", [False, True], ids=["loop", "ring_thread"])
def test_a_corrupt_ring_fails_the_native_path_as_it_fails_python(tmp_path, bounded, record_property, ring_thread):
    """The C path reads every ring field a hostile or broken kernel could get wrong. Over
    corrupted rings: the walk ends; when Python serves the batch the C path serves it the same
    (same ring bytes, same file); when Python finds the ring corrupt (RingError) the native
    device does too, having answered at most commands before the corruption; and no byte
    changes outside the answers' fields and the tail. With the ring thread, it walks the
    corrupted ring first (woken as by the kernel), then the loop takes the ring."""
    cases = {"total": 0, "ring_error": 0, "served": 0}
    content = bytes(range(256)) * (64 * 1024 // 256)

    @FUZZ
    @given(n=st.integers(1, 6), muts=mutations)
    def one(n, muts):
        pair = Pair(tmp_path, content, ring_size=1024, data_blocks=16, write_cache=True, ring_thread=ring_thread)
        kn, dn = pair.sides["native"][:2]
        notify, kn.notify_fd = kn.notify_fd, -1         # the ring thread is woken once corrupted
        try:
            entries = []
            for i in range(n):
                entries.append(pair.sides["native"][0].head)
                pair.queue(rw(op.READ_10 if i % 2 else op.WRITE_10, i, 1),
                           data_out=b"" if i % 2 else bytes([i]) * 512, data_in=512 if i % 2 else 0)
            controls = {}
            for name, (k, *_rest) in pair.sides.items():
                buf = k.buf
                corrupt(buf, entries, muts)
                controls[name] = bytes(buf[:k.data_off])
            if ring_thread:
                walks = dn.fast.ring_walks
                os.eventfd_write(notify, 1)
                wait_for(lambda: dn.fast.ring_walks > walks, "the ring thread walks", timeout=5)
            outcome = {}
            for name, (k, dev, _, _) in pair.sides.items():
                bounded()
                try:
                    dev.drain()
                    outcome[name] = "served"
                except R.RingError:
                    outcome[name] = "ring_error"
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                assert_only_answers_changed(controls[name], k.buf, entries, f"{name}: ")
            assert outcome["native"] == outcome["python"]
            cases["total"] += 1
            cases[outcome["python"]] += 1
            if outcome["python"] == "served":
                kn, kp = pair.sides["native"][0], pair.sides["python"][0]
                assert bytes(kn.buf) == bytes(kp.buf)
                assert pair.sides["native"][3].read_bytes() == pair.sides["python"][3].read_bytes()
        finally:
            pair.close()

    one()
    print(f"\nnative ring fuzzer{' (ring thread)' if ring_thread else ''}: {cases['total']} cases "
          f"({cases['ring_error']} RingError, {cases['served']} served)")
    record_property("native_ring_fuzz_cases" + ("_ring_thread" if ring_thread else ""), cases["total"])
    assert cases["total"] >= 300 and cases["ring_error"] >= 30 and cases["served"] >= 30


def backing_file(tmp_path, content: bytes, cls=FileBackend):
    """A FileBackend over d.img holding `content`, and the path."""
    path = tmp_path / "d.img"
    path.write_bytes(content)
    return cls(str(path), len(content)), path


def one_device(tmp_path, content: bytes, pool=None, **unit):
    b, _ = backing_file(tmp_path, content)
    r, w = os.pipe()
    k, dev = sim_device(b, w, pool, native=True, **unit)
    return k, dev, b, r


def test_reads_and_write_back_writes_are_answered_in_c_and_the_doorbell_rung(tmp_path):
    data = os.urandom(SIZE)
    k, dev, b, bell = one_device(tmp_path, data, write_cache=True)
    rd = k.queue(rw(op.READ_16, 8, 8), data_in=4096)
    wr = k.queue(rw(op.WRITE_10, 16, 8), data_out=b"W" * 4096)
    fua = k.queue(rw(op.WRITE_10, 24, 8, flags=0x08), data_out=b"F" * 4096)     # durable: Python's
    assert dev.drain() == 3
    got = k.reap()
    assert got[rd]["data"] == data[4096:8192] and got[wr]["status"] == got[fua]["status"] == 0
    assert dev.counted()["native"] == 2 and dev.counted()["writes"] == 2
    assert os.read(bell, 64)
    assert os.pread(b.fd, 8192, 16 * 512) == b"W" * 4096 + b"F" * 4096
    dev.stop_fast()
    assert dev.counters.native == 2         # folded into the device's own when it stops
    b.close()


def test_with_the_write_cache_off_or_read_only_writes_go_to_python(tmp_path):
    k, dev, b, _ = one_device(tmp_path, bytes(SIZE), write_cache=False)
    k.queue(rw(op.WRITE_10, 0, 1), data_out=b"x" * 512)
    dev.drain()
    assert k.reap() and dev.counted()["native"] == 0
    dev.unit.write_cache = True
    dev.unit.read_only = True
    dev.fast_config()
    w = k.queue(rw(op.WRITE_10, 0, 1), data_out=b"y" * 512)
    dev.drain()
    got = k.reap()[w]
    assert got["status"] == 2 and got["sense"][2] == S.DATA_PROTECT and dev.counted()["native"] == 0
    dev.stop_fast()
    b.close()


def test_a_unit_attention_or_a_resize_reaches_the_initiator_through_python(tmp_path):
    k, dev, b, _ = one_device(tmp_path, bytes(SIZE), write_cache=True)
    b.current_size = lambda: SIZE // 2
    dev.cfs = str(tmp_path)             # size_changed writes attrib/dev_size there
    os.makedirs(tmp_path / "attrib")
    dev.size_changed()
    r1 = k.queue(rw(op.READ_10, 0, 1), data_in=512)
    dev.drain()
    got = k.reap()[r1]
    assert got["status"] == 2 and got["sense"][2] == 0x06      # UNIT ATTENTION, from Python
    beyond = k.queue(rw(op.READ_10, BLOCKS // 2, 1), data_in=512)      # past the new end
    inside = k.queue(rw(op.READ_10, 0, 1), data_in=512)
    dev.drain()
    got = k.reap()
    assert got[beyond]["sense"][12] == 0x21 and got[inside]["status"] == 0
    assert dev.counted()["native"] == 0     # the batch with the error went to Python...
    r2 = k.queue(rw(op.READ_10, 0, 1), data_in=512)
    dev.drain()
    assert k.reap()[r2]["status"] == 0 and dev.counted()["native"] == 1     # ...and C is back
    dev.stop_fast()
    b.close()


def cold_file(tmp_path, data: bytes):
    """A file backend over `data` out of the page cache (skips where files are memory)."""
    b, path = backing_file(tmp_path, data)
    if not b.blocking:
        b.close()
        pytest.skip(f"{tmp_path} is memory: nothing waits")
    os.fsync(b.fd)
    # DONTNEED drops only what it can at that moment (a page still being written back, or in
    # another CPU's LRU batch, stays): again until mincore says none is left
    deadline = time.monotonic() + 10
    while True:
        os.posix_fadvise(b.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if resident_pages(b.fd, len(data)) == 0:
            return b, path
        if time.monotonic() > deadline:
            b.close()
            pytest.skip(f"{path} stays in the page cache")
        time.sleep(0.05)


def resident_pages(fd: int, size: int) -> int:
    """How many of the file's pages the page cache holds (mincore over a mapping, which
    faults nothing in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        vec = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
        assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        return sum(v & 1 for v in vec.raw)
    finally:
        libc.munmap(addr, size)


def test_a_read_the_page_cache_does_not_hold_goes_to_an_io_thread(tmp_path):
    """RWF_NOWAIT: the C path never waits for the medium on the event loop. (Its miss may
    start the kernel's readahead, which a fast disk finishes before Python looks: then
    Python answers from the page cache, and else on a thread.)"""
    data = os.urandom(SIZE)
    b, path = cold_file(tmp_path, data)
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait)
        try:
            r, w = os.pipe()
            k, dev = sim_device(b, w, pool, native=True, write_cache=True)
            rd = k.queue(rw(op.READ_10, 64, 8), data_in=4096)
            dev.drain()
            assert dev.counted()["native"] == 0
            c = dev.counters
            assert (c.threaded, c.cached) in ((1, 0), (0, 1))
            assert (k.reap() == {}) == (c.threaded == 1)
        finally:
            gate.set()
        dev.quiesce()
        got = k.reap()
        if c.threaded:
            assert got[rd]["data"] == data[64 * 512:64 * 512 + 4096]
        dev.stop_fast()
    b.close()


def gated_writes(tmp_path, data: bytes):
    """A file backend over `data` whose writes wait for the returned gate (a write held on
    an I/O thread), and its path."""
    gate = threading.Event()

    class Slow(FileBackend):
        def writev(self, bufs, offset, sync=False):
            gate.wait()
            super().writev(bufs, offset, sync)

    b, path = backing_file(tmp_path, data, Slow)
    return b, path, gate


def test_while_an_io_thread_answers_the_c_path_answers_under_the_lock_and_rings_once_free(tmp_path):
    """A FUA write waits on an I/O thread; reads behind it are answered in C meanwhile (under
    the device lock, through the shared doorbell), and the thread's answer lands after."""
    data = os.urandom(SIZE)
    b, path, gate = gated_writes(tmp_path, data)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        r, w = os.pipe()
        k, dev = sim_device(b, w, pool, native=True, write_cache=True)
        k.queue(rw(op.READ_10, 0, 1), data_in=512)       # the page cache holds it (just written)
        dev.drain()
        k.reap()
        fua = k.queue(rw(op.WRITE_10, 0, 1, flags=0x08), data_out=b"F" * 512)
        dev.drain()
        assert dev.futures and dev.counters.threaded == 1
        reads = [k.queue(rw(op.READ_10, 8 + i, 1), data_in=512) for i in range(4)]
        dev.drain()
        got = k.reap()
        assert set(got) == set(reads) and dev.counted()["native"] == 5
        assert all(got[x]["data"] == data[(8 + i) * 512:(9 + i) * 512] for i, x in enumerate(reads))
        assert os.read(r, 64)
        gate.set()
        dev.quiesce()
        assert k.reap()[fua]["status"] == 0 and not dev.lock.bell_busy
        dev.stop_fast()
    b.close()
    assert path.read_bytes()[:512] == b"F" * 512


def test_o_direct_and_memory_backends_and_a_closed_path(tmp_path):
    path = tmp_path / "d.img"
    path.write_bytes(bytes(SIZE))
    try:
        direct = FileBackend(str(path), SIZE, direct=True)
    except OSError:
        direct = None
    if direct is not None:
        # O_DIRECT: no inline reads; the native path's wait threads read and write through dfd
        assert direct.native_reads() == 0 and direct.native_dfd == direct.dfd != direct.fd
        direct.close()
    from lioctl.tcmu.backends.ram import RamBackend
    assert RamBackend(4096).native_fd is None
    k, dev, b, _ = one_device(tmp_path, bytes(SIZE), write_cache=True)
    fast = dev.fast
    assert isinstance(fast, _fastpath.FastPath)
    dev.stop_fast()
    with pytest.raises(ValueError):
        fast.serve(0, True)
    k.queue(rw(op.READ_10, 0, 1), data_in=512)
    dev.drain()                             # Python serves on without it
    assert k.reap() and dev.counters.native == 0
    dev.ring.mv.release()                   # nothing of the C path holds the mapping now
    b.close()


def served_in_one_call(k, dev, data, first, later, during) -> None:
    """One drain() answers `first` and the command `during` (on a thread) queues into `later`
    meanwhile, in one walk after the doorbell."""
    t = threading.Thread(target=during)
    t.start()
    assert dev.drain() == 2
    t.join(10)
    got = k.reap()
    assert got[first]["data"] == data[:4096] and got[later[0]]["data"] == data[4096:8192]
    assert dev.fast.bursts == 1


def test_commands_queued_while_the_doorbell_rings_are_served_in_the_same_call(tmp_path):
    """The doorbell is where the kernel completes what was answered, and its initiator queues
    more meanwhile: the native path looks at the ring again after ringing and serves them at
    once (no wake-up of the Python loop per command at QD32). The doorbell pipe is kept full,
    so the handler's write waits until the 'kernel' thread has queued the next command."""
    data = os.urandom(SIZE)
    b, path = backing_file(tmp_path, data)
    r, w = full_doorbell()
    k, dev = sim_device(b, w, None, native=True, write_cache=True)
    first = k.queue(rw(op.READ_10, 0, 8), data_in=4096)
    later = []

    def kernel():
        while struct.unpack_from("<I", k.buf, 64)[0] == 0:     # cmd_tail: the first is answered
            pass
        later.append(k.queue(rw(op.READ_10, 8, 8), data_in=4096))
        while True:                                             # now let the doorbell through
            try:
                if not os.read(r, 1 << 16):
                    return
            except BlockingIOError:
                if later and dev.fast.commands == 2:
                    return

    served_in_one_call(k, dev, data, first, later, kernel)
    dev.stop_fast()
    b.close()


def test_a_command_arriving_just_after_the_doorbell_is_served_without_a_wake_up(tmp_path):
    """After ringing, the native path waits up to spin_ns for the initiator's next command."""
    data = os.urandom(SIZE)
    b, path = backing_file(tmp_path, data)
    r, w = os.pipe()
    k, dev = sim_device(b, w, None, native=True, write_cache=True)
    dev.fast.spin_ns = 10 ** 9                  # long enough for any host; it ends at the command
    first = k.queue(rw(op.READ_10, 0, 8), data_in=4096)
    later = []

    def initiator():
        os.read(r, 4)                           # the first answer's doorbell
        later.append(k.queue(rw(op.READ_10, 8, 8), data_in=4096))

    served_in_one_call(k, dev, data, first, later, initiator)
    # each wait is counted, and whether it caught a command: the second came during a wait
    # that caught it (then the wait after it caught nothing), or before the first doorbell's
    # write returned (no wait for it), or the walk after the catch left it to Python (seen
    # once in CI; a RWF_NOWAIT read that would have waited, with no wait thread here, does)
    counted = dev.fast.spins, dev.fast.spin_hits
    assert counted in ((2, 1), (1, 0), (1, 1))
    dev.fast.spin_ns = 0
    k.queue(rw(op.READ_10, 16, 8), data_in=4096)
    assert dev.drain() == 1 and dev.fast.bursts == 1        # no wait: back to the loop
    assert (dev.fast.spins, dev.fast.spin_hits) == counted
    dev.stop_fast()
    b.close()


# Copy threads: reads larger than max_read, answered (and the doorbell rung) off the loop

def copy_device(tmp_path, content: bytes, pool=None, threads: int = 2, **unit):
    b, path = backing_file(tmp_path, content)
    r, w = os.pipe()
    os.set_blocking(r, False)
    k, dev = sim_device(b, w, pool, native=True, copy_threads=threads, **unit)
    return k, dev, b, r


def meaning(answers: dict) -> dict:
    """Answers with only the sense bytes the sense says it has (none for GOOD): the rest of
    the field is whatever its slot held before, and answers from threads land in other slots
    than Python's."""
    return {i: dict(a, sense=a["sense"][:8 + a["sense"][7]] if a["status"] else b"") for i, a in answers.items()}


def answers_of(k, dev, ids, timeout=30.0) -> dict:
    """The answers to `ids`, polled from the ring as the copy threads write them."""
    got, deadline = {}, time.monotonic() + timeout
    while not set(ids) <= set(got):
        got.update(k.reap())
        if dev.native_done_fd >= 0 and select.select([dev.native_done_fd], [], [], 0)[0]:
            dev.native_wake()           # what the daemon does when a thread hands back
        assert time.monotonic() < deadline, f"unanswered: {set(ids) - set(got)}"
    return got


def test_large_reads_are_answered_by_copy_threads_which_ring_the_doorbell(tmp_path):
    data = os.urandom(4 * SIZE)
    k, dev, b, bell = copy_device(tmp_path, data, write_cache=True)
    assert dev.fast.copy_threads == 0       # started as work comes
    big = [k.queue(rw(op.READ_10, i * 512, 512), data_in=256 * 1024) for i in range(6)]
    small = k.queue(rw(op.READ_10, 8, 8), data_in=4096)
    assert dev.drain() == 7                 # taken: one answered here, six handed to the threads
    assert 1 <= dev.fast.copy_threads <= 2 and dev.fast.wait_threads == 0
    got = answers_of(k, dev, big + [small])
    for i, x in enumerate(big):
        assert got[x]["status"] == 0 and got[x]["data"] == data[i * 256 * 1024:(i + 1) * 256 * 1024]
    assert got[small]["data"] == data[4096:8192]
    assert dev.fast.copied == 6 and dev.counted()["native"] == 7 and dev.counted()["reads"] == 7
    assert dev.fast.mapped == 6             # from the file's mapping: every page was resident
    dev.quiesce()
    assert dev.fast.in_flight == 0 and not dev.lock.bell_busy and not dev.lock.bell_pending
    assert os.read(bell, 1 << 16)           # rung by the threads: the loop did not ring for them
    assert 1 <= dev.lock.doorbells <= 7     # counted (status "doorbells"), at most one per answer
    assert dev.status()["in_flight"] == 0 if hasattr(dev, "minor") else True
    assert "tcmu-copy" in thread_names()    # top -H and the bench tell them apart
    dev.stop_fast()
    assert dev.counters.native == 7
    b.close()


@pytest.mark.parametrize("why", ["env", "completion on the doorbell's CPU", None])
def test_large_write_back_writes_are_copied_by_copy_threads(tmp_path, monkeypatch, why):
    """When a target completes the device's commands on the doorbell's CPU (-2, read from
    configfs by follow_completion), or with LIOCTL_TCMU_INLINE_WRITE_MAX, write-back WRITEs
    of 128 KiB or more go to the copy threads (into the page cache), so the ring thread only
    walks; a FUA one is not theirs (it must be durable: the wait lane, here Python's), small
    ones stay inline. By default all are inline, and the file holds the same either way."""
    from lioctl.tcmu import completion, device
    if why == "env":
        monkeypatch.setattr(device, "NATIVE_MAX_WRITE", 128 * 1024 - 1)
    data = bytearray(os.urandom(4 * SIZE))
    k, dev, b, bell = copy_device(tmp_path, bytes(data), write_cache=True)
    if why is not None and why != "env":
        monkeypatch.setattr(completion, "on_doorbell_cpu", lambda cfs, **kw: True)
        dev.follow_completion()
    threaded = why is not None
    assert bool(dev.fast.bell_yield) == (why not in ("env", None))
    chunk = 256 * 1024
    big = []
    for i in range(4):
        payload = os.urandom(chunk)
        big.append(k.queue(rw(op.WRITE_10, i * 512, 512), data_out=payload))
        data[i * chunk:(i + 1) * chunk] = payload
    small = k.queue(rw(op.WRITE_10, 4096, 8), data_out=b"s" * 4096)
    data[4096 * 512:4096 * 512 + 4096] = b"s" * 4096
    fua = k.queue(rw(op.WRITE_10, 2048, 512, flags=0x08), data_out=b"F" * chunk)
    data[2048 * 512:2048 * 512 + chunk] = b"F" * chunk
    dev.drain()
    got = answers_of(k, dev, big + [small, fua])
    assert all(got[x]["status"] == 0 for x in big + [small, fua])
    dev.quiesce()
    assert dev.fast.copied == dev.fast.copied_writes == (4 if threaded else 0)
    assert dev.fast.mapped_writes == 4          # resident pages, either way into the mapping
    assert dev.counted()["writes"] == 6
    assert os.pread(b.fd, len(data), 0) == bytes(data)
    if why is not None and why != "env":        # the target's affinity set back: inline again
        monkeypatch.setattr(completion, "on_doorbell_cpu", lambda cfs, **kw: False)
        dev.follow_completion()
        assert dev.fast.max_write > 1 << 40 and not dev.fast.bell_yield
    dev.stop_fast()
    b.close()


def test_a_read_a_copy_thread_cannot_finish_is_served_by_python_with_its_answer(tmp_path):
    """The file is cut short under the device: the copy thread's read comes back short, it hands
    the read back (done_fd), and Python serves it as it would have alone (here: zeros past
    the end of the file); the same answers as Python's alone."""
    data = os.urandom(SIZE)
    answers = {}
    for name, threads in (("copy", 2), ("python", 0)):
        d = tmp_path / name
        d.mkdir()
        k, dev, b, _ = copy_device(d, data, threads=threads, write_cache=True)
        os.ftruncate(b.fd, SIZE // 2)
        x = k.queue(rw(op.READ_10, BLOCKS // 2 - 256, 512), data_in=256 * 1024)   # half past the end
        y = k.queue(rw(op.READ_10, 0, 512), data_in=256 * 1024)
        dev.drain()
        got = answers_of(k, dev, [x, y])
        got = meaning(got)
        answers[name] = (got[x], got[y], dev.fast.copied)
        dev.quiesce()
        dev.stop_fast()
        b.close()
    (cx, cy, handed), (px, py, _) = answers["copy"], answers["python"]
    assert cx == px and cy == py and cy["data"] == data[:256 * 1024]
    assert handed == 1                      # the short one went back to Python


def test_a_large_read_the_page_cache_does_not_hold_is_not_copied_from_the_mapping(tmp_path):
    """mincore first: touching a page that is not resident would read the medium on a copy
    thread. The read goes to a wait thread as before, and its answer is the file's."""
    data = os.urandom(4 * SIZE)
    b, path = cold_file(tmp_path, data)
    r, w = os.pipe()
    k, dev = sim_device(b, w, None, native=True, copy_threads=2, wait_threads=2, write_cache=True)
    x = k.queue(rw(op.READ_10, 512, 512), data_in=256 * 1024)
    dev.drain()
    got = answers_of(k, dev, [x])
    assert got[x]["status"] == 0 and got[x]["data"] == data[256 * 1024:512 * 1024]
    assert dev.fast.mapped == 0 and dev.fast.waited == 1
    dev.stop_fast()
    b.close()


@pytest.mark.parametrize("setting", ["0", "1"])
def test_lioctl_tcmu_map_reads_0_leaves_the_mapping_out(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("LIOCTL_TCMU_MAP_READS", setting)
    data = os.urandom(4 * SIZE)
    k, dev, b, _ = copy_device(tmp_path, data, write_cache=True)
    reads = [k.queue(rw(op.READ_10, i * 512, 512), data_in=256 * 1024) for i in range(3)]
    dev.drain()
    got = answers_of(k, dev, reads)
    assert all(got[x]["data"] == data[i * 256 * 1024:(i + 1) * 256 * 1024] for i, x in enumerate(reads))
    assert dev.fast.copied == 3 and dev.fast.mapped == (0 if setting == "0" else 3)
    dev.stop_fast()
    b.close()


# a process whose copy thread has read from a mapping (so the handler is in place), then
# faults on a mapping of its own: it must die of SIGBUS, not loop or jump somewhere
SOMEONE_ELSES_SIGBUS = """
import mmap, os, pathlib, sys
from test_tcmu_fastpath import SIZE, answers_of, copy_device, op, rw
d = pathlib.Path(sys.argv[1]); d.mkdir()
k, dev, b, _ = copy_device(d, os.urandom(4 * SIZE), write_cache=True)
x = k.queue(rw(op.READ_10, 0, 512), data_in=256 * 1024)
dev.drain()
answers_of(k, dev, [x])
assert dev.fast.mapped == 1
fd = os.open(d / "other", os.O_RDWR | os.O_CREAT)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192)
os.ftruncate(fd, 0)
print("alive", flush=True)
m[4096]
print("not reached", flush=True)
"""


def test_a_sigbus_while_copying_from_the_mapping_falls_back_to_preadv2(tmp_path):
    """The file cut short after mincore said resident (a race made certain here by skipping
    mincore): the copy faults with SIGBUS past the end, the copy thread jumps out of it and
    preadv2 comes back short, so Python answers as it would have alone; the process lives on,
    and a fault of someone else's still reaches the handler that was there before."""
    data = os.urandom(SIZE)
    k, dev, b, _ = copy_device(tmp_path, data, write_cache=True)
    dev.fast.map_check = 0
    first = k.queue(rw(op.READ_10, 0, 512), data_in=256 * 1024)        # maps the file whole
    dev.drain()
    assert answers_of(k, dev, [first])[first]["data"] == data[:256 * 1024] and dev.fast.mapped == 1
    os.ftruncate(b.fd, SIZE // 2)
    x = k.queue(rw(op.READ_10, BLOCKS // 2 - 256, 512), data_in=256 * 1024)   # half past the end
    y = k.queue(rw(op.READ_10, 0, 512), data_in=256 * 1024)
    dev.drain()
    got = meaning(answers_of(k, dev, [x, y]))
    assert got[x]["status"] == 0 and got[x]["data"] == data[SIZE // 2 - 128 * 1024:SIZE // 2] + bytes(128 * 1024)
    assert got[y]["data"] == data[:256 * 1024]
    assert dev.fast.mapped == 2 and dev.fast.copied == 2     # x went back to Python
    dev.quiesce()
    dev.stop_fast()
    b.close()
    probe = subprocess.run([sys.executable, "-c", SOMEONE_ELSES_SIGBUS, str(tmp_path / "probe")],
                           capture_output=True, text=True, cwd=os.path.dirname(__file__))
    assert probe.stdout == "alive\n" and probe.returncode == -signal.SIGBUS


def inline_device(tmp_path, b):
    r, w = os.pipe()
    os.set_blocking(r, False)
    return sim_device(b, w, None, native=True, write_cache=True)


def test_a_large_write_back_write_goes_into_the_mapping_when_its_pages_are_resident(tmp_path):
    """Copied into the file's shared mapping (what a read of it then sees, what fdatasync
    writes back), counted in mapped_writes; smaller ones, and one the page cache does not
    hold (a fault would read it from the medium first), go through pwritev2."""
    data = bytearray(os.urandom(4 * SIZE))
    b, path = backing_file(tmp_path, bytes(data))
    k, dev = inline_device(tmp_path, b)
    big, small = os.urandom(256 * 1024), os.urandom(4096)
    x = k.queue(rw(op.WRITE_10, 512, 512), data_out=big)
    y = k.queue(rw(op.WRITE_10, 8, 8), data_out=small)
    dev.drain()
    got = k.reap()
    assert got[x]["status"] == got[y]["status"] == 0
    data[256 * 1024:512 * 1024], data[4096:8192] = big, small
    assert dev.fast.mapped_writes == 1 and dev.counted()["native"] == 2
    os.fdatasync(b.fd)                          # SYNCHRONIZE CACHE's: the mapping's pages too
    assert path.read_bytes() == bytes(data)
    dev.stop_fast()
    b.close()


def test_a_large_write_to_pages_the_page_cache_does_not_hold_is_pwritev2s(tmp_path):
    data = os.urandom(4 * SIZE)
    b, path = cold_file(tmp_path, data)
    k, dev = inline_device(tmp_path, b)
    big = os.urandom(256 * 1024)
    x = k.queue(rw(op.WRITE_10, 512, 512), data_out=big)
    dev.drain()
    assert k.reap()[x]["status"] == 0 and dev.fast.mapped_writes == 0
    assert os.pread(b.fd, len(big), 256 * 1024) == big
    dev.stop_fast()
    b.close()


@pytest.mark.parametrize("setting", ["0", "1"])
def test_lioctl_tcmu_map_writes_0_keeps_the_mapping_read_only(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("LIOCTL_TCMU_MAP_WRITES", setting)
    data = os.urandom(4 * SIZE)
    b, path = backing_file(tmp_path, data)
    k, dev = inline_device(tmp_path, b)
    big = os.urandom(256 * 1024)
    x = k.queue(rw(op.WRITE_10, 0, 512), data_out=big)
    dev.drain()
    assert k.reap()[x]["status"] == 0 and dev.fast.mapped_writes == (setting == "1")
    assert path.read_bytes() == big + data[len(big):]
    dev.stop_fast()
    b.close()


def test_a_sigbus_while_writing_into_the_mapping_falls_back_to_pwritev2(tmp_path):
    """The file cut short under the mapping (mincore skipped, as a race would): the store
    past the end faults with SIGBUS, the walk jumps out of it and pwritev2 writes the whole
    range (growing the file), as it would have alone."""
    data = os.urandom(SIZE)
    b, path = backing_file(tmp_path, data)
    k, dev = inline_device(tmp_path, b)
    dev.fast.map_check = 0
    first = k.queue(rw(op.WRITE_10, 0, 512), data_out=data[:256 * 1024])   # maps the file whole
    dev.drain()
    assert k.reap()[first]["status"] == 0 and dev.fast.mapped_writes == 1
    os.ftruncate(b.fd, SIZE // 2)
    big = os.urandom(256 * 1024)
    x = k.queue(rw(op.WRITE_10, BLOCKS // 2 - 256, 512), data_out=big)       # half past the end
    dev.drain()
    assert k.reap()[x]["status"] == 0 and dev.fast.mapped_writes == 1
    assert os.path.getsize(path) == SIZE // 2 + 128 * 1024
    assert os.pread(b.fd, len(big), SIZE // 2 - 128 * 1024) == big
    dev.stop_fast()
    b.close()


def test_stopping_the_native_path_answers_what_the_copy_threads_hold(tmp_path):
    data = os.urandom(4 * SIZE)
    k, dev, b, _ = copy_device(tmp_path, data, write_cache=True)
    reads = [k.queue(rw(op.READ_16, i * 256, 512), data_in=256 * 1024) for i in range(8)]
    dev.drain()
    dev.stop_fast()                         # at once: some are still on the threads
    got = k.reap()
    assert set(got) == set(reads) and all(got[x]["status"] == 0 for x in reads)
    assert dev.fast is None and dev.counters.native == 8
    b.close()


def uring_or_skip(dev) -> None:
    """The host's kernel may refuse io_uring (a seccomp policy, kernel.io_uring_disabled):
    then the wait lane has threads, which the other tests cover."""
    if not dev.fast.uring:
        pytest.skip(f"no io_uring here: {os.strerror(dev.fast.uring_errno)}")


@pytest.mark.parametrize("direct,ring_thread,uring", [(False, False, False), (True, False, False),
                                                      (False, True, False), (True, False, True),
                                                      (False, True, True)],
                         ids=["buffered", "o_direct", "ring_thread", "o_direct_uring", "ring_thread_uring"])
def test_threads_answer_as_python_does(tmp_path, monkeypatch, record_property, direct, ring_thread, uring):
    """The differential above with the native path's threads: reads over 2 KiB on two copy
    threads, durable writes (FUA, the write cache off) and, with O_DIRECT, every READ and
    WRITE on two wait threads (or io_uring), answers landing in any order. The answers
    (status, sense, data), the files and the counters must be the same as Python's. A write
    (or MODE SELECT) is alone in flight, as an initiator ordering it against the reads would
    make it. With the ring thread, it serves the commands as they are queued, and hands the
    ring to Python at the others (drain() takes it as the daemon's wake-up would)."""
    import lioctl.tcmu.device as device
    monkeypatch.setattr(device, "NATIVE_MAX_READ", 2048)
    cases = {"batches": 0}
    try:
        pair = Pair(tmp_path, bytes(range(256)) * (SIZE // 256), threads=(2, 2), direct=direct,
                    ring_thread=ring_thread, uring=uring, write_cache=True)
    except OSError as e:
        pytest.skip(f"{tmp_path}: no O_DIRECT ({e})")
    k, dev, b, path = pair.sides["native"]
    dev.fast.map_write_min = 512                # its write-back writes into the mapping too
    if uring:
        try:
            uring_or_skip(dev)
        except BaseException:
            pair.close()
            raise

    def drain_both() -> None:
        got = pair.drain()
        assert meaning(got["native"]) == meaning(got["python"])
        assert path.read_bytes() == pair.sides["python"][3].read_bytes()

    @FUZZ
    @given(work=batches)
    def one(work):
        for i, batch in enumerate(work):
            for j, c in enumerate(batch):
                alone = c[0] == "wce" or (c[0] == "rw" and c[1] in RW_OPS[4:])
                if alone:
                    drain_both()
                queue_command(pair, c, i * 31 + j)
                if alone:
                    drain_both()
            drain_both()
            cases["batches"] += 1

    try:
        one()
        copied, waited, mapped = dev.fast.copied, dev.fast.waited, dev.fast.mapped
        mapped_writes = dev.fast.mapped_writes
        walks, handovers = dev.fast.ring_walks, dev.fast.handovers
        submits, wait_threads = dev.fast.uring_submits, dev.fast.wait_threads
        cn, cp = dev.counted(), pair.sides["python"][1].counted()
    finally:
        pair.close()
    for key in ("commands", "reads", "writes", "read_bytes", "write_bytes", "errors"):
        assert cn[key] == cp[key], key
    kind = ("ring_thread" if ring_thread else "direct" if direct else "buffered") + ("_uring" if uring else "")
    print(f"\nthread differential ({kind}): {cases['batches']} batches, "
          f"{copied} reads on copy threads ({mapped} from the mapping), {mapped_writes} writes into it, {waited} commands on wait threads or io_uring "
          f"({submits} submissions), {walks} walks of the ring thread, {handovers} hand-overs to Python")
    record_property(f"thread_fuzz_batches_{kind}", cases["batches"])
    assert cases["batches"] >= 1000 and waited >= 100
    # io_uring takes every command that waits: no wait thread starts
    assert (submits >= 100 and wait_threads == 0) if uring else submits == 0
    assert copied == 0 if direct else copied >= 200
    assert mapped == 0 if direct else mapped >= copied // 2     # the file was just written: resident
    assert mapped_writes == 0 if direct else mapped_writes >= 100   # O_DIRECT: every write waits
    assert (walks >= 1000 and handovers >= 100) if ring_thread else walks == handovers == 0


def test_an_io_thread_answering_while_the_c_path_is_in_the_doorbell_keeps_the_ring_whole(tmp_path):
    """The C path answers reads while a FUA write is on a Python I/O thread, then waits in the
    doorbell (the pipe is full); the thread's answer lands meanwhile. Its bound is Ring.next,
    so the walk must have moved it first (the C path walks under the lock then): otherwise the
    thread finds the tail past Ring.next and fails the ring."""
    data = os.urandom(SIZE)
    b, path, gate = gated_writes(tmp_path, data)
    r, w = full_doorbell()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        k, dev = sim_device(b, w, pool, native=True, write_cache=True)
        fua = k.queue(rw(op.WRITE_10, 0, 1, flags=0x08), data_out=b"F" * 512)
        dev.drain()
        assert dev.futures
        reads = [k.queue(rw(op.READ_10, 8 + i, 1), data_in=512) for i in range(4)]
        loop = threading.Thread(target=dev.drain)
        loop.start()
        deadline = time.monotonic() + 30
        while struct.unpack_from("<I", k.buf, R.MB_CMD_TAIL)[0] == 0:     # the reads answered
            assert time.monotonic() < deadline
        gate.set()                              # the write's answer, while the loop rings
        concurrent.futures.wait(list(dev.futures), timeout=30)
        while loop.is_alive():                  # let the doorbells through
            try:
                os.read(r, 1 << 16)
            except BlockingIOError:
                pass
            assert time.monotonic() < deadline
        got = k.reap()
        assert dev.broken is None and set(got) == {fua, *reads}
        assert all(got[x]["data"] == data[(8 + i) * 512:(9 + i) * 512] for i, x in enumerate(reads))
        dev.stop_fast()
    b.close()


@pytest.mark.parametrize("uring", [False, True], ids=["threads", "uring"])
def test_a_read_the_page_cache_does_not_hold_goes_to_a_wait_thread(tmp_path, uring):
    """With wait threads, a read that would wait is taken by the native path all the same: a
    wait thread (or io_uring) reads it from the medium, answers and rings (the loop never
    waits); the commands behind it are served on meanwhile."""
    data = os.urandom(SIZE)
    b, path = cold_file(tmp_path, data)
    r, w = os.pipe()
    k, dev = sim_device(b, w, None, native=True, wait_threads=2, write_cache=True, uring=uring)
    if uring:
        uring_or_skip(dev)
    cold = k.queue(rw(op.READ_10, 64, 8), data_in=4096)
    fua = k.queue(rw(op.WRITE_10, 512, 8, flags=0x08), data_out=b"F" * 4096)    # durable: waits too
    wr = k.queue(rw(op.WRITE_10, 1024, 8), data_out=b"W" * 4096)                # write-back: inline
    assert dev.drain() == 3
    got = answers_of(k, dev, [cold, fua, wr])
    assert got[cold]["data"] == data[64 * 512:64 * 512 + 4096] and got[fua]["status"] == got[wr]["status"] == 0
    assert dev.fast.waited == 2 and dev.counted()["native"] == 3 and dev.counters.threaded == 0
    dev.stop_fast()
    assert dev.counters.threaded == 2       # counted as on an I/O thread, and as native
    b.close()
    assert path.read_bytes()[512 * 512:1025 * 512] == b"F" * 4096 + data[520 * 512:1024 * 512] + b"W" * 512


def test_a_burst_of_commands_that_wait_gets_threads_beside_an_idle_one(tmp_path):
    """A wait thread signalled but not yet awake is still idle: a burst of durable writes
    must start more threads than the one idle (it took a whole burst on two threads: O_DIRECT
    4k writes at QD32 fell from 4174 IOPS on Python's threads to 2434). Ten times: whether
    the idle thread wakes before the burst ends is the host's timing."""
    data = os.urandom(SIZE)
    b, path = backing_file(tmp_path, data)
    for attempt in range(10):
        r, w = os.pipe()
        k, dev = sim_device(b, w, None, native=True, wait_threads=8, write_cache=True)
        first = k.queue(rw(op.WRITE_10, 0, 8, flags=0x08), data_out=b"1" * 4096)
        dev.drain()
        answers_of(k, dev, [first])
        deadline = time.monotonic() + 30
        while dev.fast.wait_threads != 1 or dev.fast.in_flight:     # one thread, idle
            assert time.monotonic() < deadline
        burst = [k.queue(rw(op.WRITE_10, 8 * (i + 1), 8, flags=0x08), data_out=bytes([attempt + i]) * 4096)
                 for i in range(8)]
        assert dev.drain() == 8
        assert dev.fast.wait_threads >= 2, attempt
        got = answers_of(k, dev, burst)
        assert all(got[x]["status"] == 0 for x in burst) and dev.fast.waited == 9
        dev.stop_fast()
        os.close(r)
        os.close(w)
        assert path.read_bytes()[4096:9 * 4096] == b"".join(bytes([attempt + i]) * 4096 for i in range(8))
    b.close()


def test_a_read_io_uring_cannot_finish_is_served_by_python_with_its_answer(tmp_path):
    """The file is cut short under the device: io_uring's read comes back short, the reaper
    hands it back (done_fd) and Python serves it as it would have alone; the read before the
    cut is answered by the reaper."""
    data = os.urandom(SIZE)
    answers = {}
    for name, uring in (("uring", True), ("python", False)):
        d = tmp_path / name
        d.mkdir()
        b, _ = cold_file(d, data)
        r, w = os.pipe()
        k, dev = sim_device(b, w, None, native=uring, wait_threads=2 if uring else 0, write_cache=True,
                            uring=uring)
        if uring:
            uring_or_skip(dev)
        os.ftruncate(b.fd, SIZE // 2)
        x = k.queue(rw(op.READ_10, BLOCKS // 2 - 8, 16), data_in=8192)     # half past the end
        y = k.queue(rw(op.READ_10, 0, 16), data_in=8192)
        dev.drain()
        got = meaning(answers_of(k, dev, [x, y]))
        answers[name] = (got[x], got[y], dev.fast.waited if uring else None)
        dev.quiesce()
        dev.stop_fast()
        b.close()
        os.close(r)
        os.close(w)
    (ux, uy, waited), (px, py, _) = answers["uring"], answers["python"]
    assert ux == px and uy == py and uy["data"] == data[:8192]
    assert waited == 1                      # the short one went back to Python


def test_stopping_the_native_path_answers_what_io_uring_holds(tmp_path):
    """stop_fast() at once after the walk: the reaper answers every read still in flight
    before the mapping may go."""
    data = os.urandom(SIZE)
    b, _ = cold_file(tmp_path, data)
    r, w = os.pipe()
    k, dev = sim_device(b, w, None, native=True, wait_threads=2, write_cache=True, uring=True)
    uring_or_skip(dev)
    reads = [k.queue(rw(op.READ_10, i * 64, 16), data_in=8192) for i in range(16)]
    assert dev.drain() == 16
    submits = dev.fast.uring_submits
    dev.stop_fast()
    got = k.reap()
    assert set(got) == set(reads) and dev.fast is None
    assert all(got[x]["status"] == 0 and got[x]["data"] == data[i * 64 * 512:i * 64 * 512 + 8192]
               for i, x in enumerate(reads))
    assert dev.counters.native == 16 and 1 <= submits <= 2     # one walk, one submission (or two)
    b.close()
    os.close(r)
    os.close(w)


def ring_thread_device(tmp_path, data: bytes, **unit):
    b, path = backing_file(tmp_path, data)
    r, w = os.pipe()
    k, dev = sim_device(b, w, None, native=True, copy_threads=2, wait_threads=2, ring_thread=True, **unit)
    return k, dev, b


def wait_for(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what


def test_the_ring_thread_serves_reads_and_writes_and_hands_python_the_rest(tmp_path):
    """With the ring thread, a READ or WRITE is answered with no call from the loop (nothing
    here calls drain). A TEST UNIT READY makes it hand the ring over and wake the loop through
    native_done_fd; the loop's wake-up (native_wake) answers it and hands the ring back; the
    next READ is the thread's again."""
    data = os.urandom(SIZE)
    k, dev, b = ring_thread_device(tmp_path, data, write_cache=True)
    f = dev.fast
    assert f.ring_running and not f.py_owns and dev.ring_threaded
    wait_for(lambda: "tcmu-ring" in thread_names(), "the ring thread named")
    rd = k.queue(rw(op.READ_10, 8, 8), data_in=4096)
    wr = k.queue(rw(op.WRITE_10, 64, 8), data_out=b"W" * 4096)
    got = answers_of(k, dev, [rd, wr])
    assert got[rd]["data"] == data[4096:8192] and got[wr]["status"] == 0
    # (the walk is counted once its doorbell and spin are over: after the answers are seen)
    wait_for(lambda: f.ring_walks >= 1, "the ring thread's walk counted")
    assert f.handovers == 0 and not select.select([dev.native_done_fd], [], [], 0)[0]
    tur = k.queue(bytes(6))
    wait_for(lambda: select.select([dev.native_done_fd], [], [], 0)[0], "the loop is woken")
    assert f.py_owns and f.handovers == 1 and k.reap() == {}
    dev.native_wake()
    assert not f.py_owns and k.reap()[tur]["status"] == 0
    rd2 = k.queue(rw(op.READ_16, 64, 8), data_in=4096)
    assert answers_of(k, dev, [rd2])[rd2]["data"] == b"W" * 4096
    assert dev.counted()["native"] == 3 and dev.counters.commands == 1
    dev.stop_fast()
    assert dev.ring.next == struct.unpack_from("<I", k.buf, R.MB_CMD_HEAD)[0]
    b.close()
    assert path_bytes(tmp_path)[64 * 512:72 * 512] == b"W" * 4096


def thread_names() -> list[str]:
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def path_bytes(tmp_path) -> bytes:
    return (tmp_path / "d.img").read_bytes()


def test_stopping_the_ring_thread_under_a_stream_of_commands_loses_none(tmp_path):
    """Commands queued from another thread while the ring thread serves them, then the native
    path stopped in the middle: every command is answered (by the thread, or by Python's drain
    after), and the ring's position is the thread's."""
    data = os.urandom(SIZE)
    k, dev, b = ring_thread_device(tmp_path, data, write_cache=True)
    ids = []

    lock = threading.Lock()             # the simulated kernel's, as queue and reap share state

    def feed():
        for i in range(200):
            while True:
                try:
                    with lock:
                        ids.append(k.queue(rw(op.READ_10, (i * 8) % (BLOCKS - 8), 8), data_in=4096))
                    break
                except BufferError:
                    time.sleep(0)           # the ring is full: the test's reap frees it

    t = threading.Thread(target=feed)
    t.start()
    got = {}
    while t.is_alive() or len(got) < len(ids):
        with lock:
            got.update(k.reap())
        if len(ids) >= 100 and dev.fast is not None:
            dev.stop_fast()                 # the loop serves the rest now
        if dev.fast is None:
            dev.drain()
    t.join()
    got.update(k.reap())
    assert set(got) == set(ids) and all(a["status"] == 0 for a in got.values())
    assert all(got[x]["data"] == data[(i * 8) % (BLOCKS - 8) * 512:][:4096] for i, x in enumerate(ids))
    b.close()
