"""The ring walker against the simulated kernel side: PAD wrap-around, scattered iovecs,
out-of-order answers, TMR and unknown entries, malformed entries."""

from __future__ import annotations

import random
import struct

import pytest

from lioctl.tcmu import ring as R
from tcmu_sim import SimKernel


def test_mailbox_is_read():
    k = SimKernel(ring_size=4096)
    r = R.Ring(k.buf)
    assert (r.version, r.cmdr_off, r.cmdr_size, r.read_len) == (2, 128, 4096, True)


def test_bad_mailbox_is_refused():
    buf = bytearray(1024)
    struct.pack_into("<HHII", buf, 0, 2, 0, 128, 8192)   # ring larger than the mapping
    with pytest.raises(R.RingError):
        R.Ring(buf)
    struct.pack_into("<HHII", buf, 0, 9, 0, 128, 512)
    with pytest.raises(R.RingError):
        R.Ring(buf)


def test_commands_are_parsed_with_cdb_and_scattered_iovecs():
    k = SimKernel()
    data = bytes(range(256)) * 64          # 16 KiB over 4 randomly placed data blocks
    cid = k.queue(bytes([0x2A, 0, 0, 0, 0, 9, 0, 0, 32, 0]), data_out=data)
    r = R.Ring(k.buf)
    (cmd,) = r.take()
    assert cmd.cmd_id == cid and cmd.cdb == bytes([0x2A, 0, 0, 0, 0, 9, 0, 0, 32, 0])
    assert cmd.length == len(data) and b"".join(bytes(v) for v in cmd.iovecs) == data
    assert len(cmd.iovecs) > 1             # the simulator scattered the blocks


def test_pad_wraparound_many_times_in_order():
    k = SimKernel(ring_size=1024, data_blocks=8)
    r = R.Ring(k.buf)
    cdb16 = bytes([0x88] + [0] * 15)
    seen = 0
    for i in range(500):
        cid = k.queue(cdb16[:1] + bytes([i & 0xFF]) + cdb16[2:], data_in=512)
        (cmd,) = r.take()
        assert cmd.cmd_id == cid and cmd.cdb[1] == i & 0xFF
        cmd.iovecs[0][:3] = b"abc"
        r.complete(cmd.cmd_id, 0)
        got = k.reap()
        assert got[cid]["status"] == 0 and got[cid]["data"][:3] == b"abc"
        seen += 1
    assert seen == 500 and r.tail == k.head   # tail moved past every PAD


def test_out_of_order_answers_are_matched_by_id():
    k = SimKernel(ring_size=2048, data_blocks=64)
    r = R.Ring(k.buf)
    rng = random.Random(7)
    for _round in range(50):
        ids = [k.queue(bytes([0x00, 0, 0, 0, 0, n & 0xFF])) for n in range(rng.randint(1, 8))]
        cmds = r.take()
        assert [c.cmd_id for c in cmds] == ids
        rng.shuffle(cmds)
        for c in cmds:
            r.complete(c.cmd_id, 2 if c.cdb[5] % 2 else 0, sense=b"\x70\x00\x05")
        got = k.reap()
        assert sorted(got) == sorted(ids)
        for c in cmds:
            assert got[c.cmd_id]["status"] == (2 if c.cdb[5] % 2 else 0)
    assert r.pending == 0


def test_partial_batches_keep_the_kernel_consistent():
    """Answer some, reap, queue more, answer the rest: the kernel never sees an unknown id."""
    k = SimKernel(ring_size=1024, data_blocks=64)
    r = R.Ring(k.buf)
    outstanding = []
    rng = random.Random(3)
    answered = 0
    for _ in range(400):
        try:
            k.queue(bytes(6))
        except BufferError:
            pass
        outstanding += r.take()
        rng.shuffle(outstanding)
        for c in outstanding[:rng.randint(0, len(outstanding))]:
            r.complete(c.cmd_id, 0)
            outstanding.remove(c)
            answered += 1
        k.reap()
    for c in outstanding:
        r.complete(c.cmd_id, 0)
    k.reap()
    assert not k.cmds and answered > 100


def test_tmr_entries_are_skipped_and_unknown_ops_flagged():
    k = SimKernel()
    r = R.Ring(k.buf)
    k.queue_raw(32, R.OP_TMR)
    unknown = k.queue_raw(112, 5)
    cid = k.queue(bytes(6))
    cmds = r.take()
    assert [(c.cmd_id, c.unknown_op) for c in cmds] == [(unknown, True), (cid, False)]
    r.complete(cid, 0)
    r.complete(unknown, 2, unknown_op=True)
    got = k.reap()
    assert got[unknown]["uflags"] & R.UFLAG_UNKNOWN_OP
    assert not got[cid]["uflags"] & R.UFLAG_UNKNOWN_OP


def test_read_len_flag_only_when_the_kernel_offers_it():
    for flags, expect in ((R.CAP_OOOC | R.CAP_READ_LEN, 36), (R.CAP_OOOC, None)):
        k = SimKernel(flags=flags)
        r = R.Ring(k.buf)
        cid = k.queue(bytes([0x12, 0, 0, 0, 255, 0]), data_in=255)
        (c,) = r.take()
        r.complete(c.cmd_id, 0, read_len=36)
        assert k.reap()[cid]["read_len"] == expect


def test_malformed_entry_is_a_ring_error_not_a_crash():
    k = SimKernel()
    r = R.Ring(k.buf)
    struct.pack_into("<IHBB", k.buf, 128, 0 | R.OP_CMD, 1, 0, 0)    # zero length
    struct.pack_into("<I", k.buf, R.MB_CMD_HEAD, 112)
    with pytest.raises(R.RingError):
        r.take()
    struct.pack_into("<I", k.buf, R.MB_CMD_HEAD, 13)                # misaligned head
    with pytest.raises(R.RingError):
        r.take()


@pytest.mark.parametrize("where", ["past the mapping", "into the ring", "into the mailbox", "cdb past the mapping",
                                   "second iovec into the ring", "iovecs past the entry"])
def test_an_entry_pointing_outside_the_data_area_is_a_ring_error(where):
    """The kernel never writes these; a read's data must not land in the ring or mailbox."""
    k = SimKernel()
    r = R.Ring(k.buf)
    k.queue(bytes([0x28] + [0] * 9), data_in=8192 if where.startswith("second") else 4096, scatter=True)
    off = 128
    iov_cnt = struct.unpack_from("<I", k.buf, off + 8)[0]
    if where == "past the mapping":
        struct.pack_into("<QQ", k.buf, off + 48, len(k.buf) - 10, 4096)
    elif where == "into the ring":
        struct.pack_into("<QQ", k.buf, off + 48, 128, 4096)
    elif where == "into the mailbox":
        struct.pack_into("<QQ", k.buf, off + 48, 0, 64)
    elif where == "cdb past the mapping":
        struct.pack_into("<Q", k.buf, off + 24, len(k.buf) + 1)
        struct.pack_into("<I", k.buf, off + 8, 2)          # through the slow path too
    elif where == "second iovec into the ring":
        assert iov_cnt == 2
        struct.pack_into("<QQ", k.buf, off + 64, 200, 4096)
    else:
        struct.pack_into("<I", k.buf, off + 8, 1000)
    with pytest.raises(R.RingError):
        r.take()


def test_more_answers_than_commands_is_refused():
    k = SimKernel()
    r = R.Ring(k.buf)
    with pytest.raises(R.RingError):
        r.complete(1, 0)
