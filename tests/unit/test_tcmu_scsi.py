"""The SCSI emulation, driven through the simulated ring exactly as the daemon drives it."""

from __future__ import annotations

import errno
import os
import random
import struct

import pytest

from lioctl.tcmu.backends.file import FileBackend
from lioctl.tcmu.backends.ram import RamBackend
from lioctl.tcmu.scsi import inquiry
from tcmu_sim import Harness


def cdb10(op, lba, n, flags=0):
    return struct.pack(">BBIBHB", op, flags, lba, 0, n, 0)


def cdb16(op, lba, n, flags=0):
    return struct.pack(">BBQIBB", op, flags, lba, n, 0, 0)


def sense_of(res):
    s = res["sense"]
    assert res["status"] == 2
    assert s[0] & 0x7F == 0x70 and s[7] == 0x0A
    return s[2] & 0xF, s[12], s[13]


@pytest.fixture
def h():
    return Harness()


def test_test_unit_ready_and_start_stop(h):
    assert h.run(bytes(6))["status"] == 0
    assert h.run(bytes([0x1B, 0, 0, 0, 1, 0]))["status"] == 0


def test_standard_inquiry(h):
    r = h.run(bytes([0x12, 0, 0, 0, 96, 0]), data_in=96)
    d = r["data"]
    assert r["status"] == 0 and d[0] == 0 and d[2] == 6 and d[7] & 0x02
    assert d[8:16] == b"LIO-ORG " and d[16:32] == b"disk1".ljust(16) and len(d) == 96


def test_inquiry_allocation_length_truncates_and_short_answers_report_read_len(h):
    assert len(h.run(bytes([0x12, 0, 0, 0, 36, 0]), data_in=36)["data"]) == 36
    r = h.run(bytes([0x12, 1, 0x80, 0, 255, 0]), data_in=255)
    assert r["read_len"] == 4 + 36 and r["data"][4:] == h.unit.serial.encode()


def test_vpd_pages(h):
    r = h.run(bytes([0x12, 1, 0, 0, 255, 0]), data_in=255)
    assert list(r["data"][4:4 + r["data"][3]]) == [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]
    d83 = h.run(bytes([0x12, 1, 0x83, 0, 255, 0]), data_in=255)["data"]
    assert d83[4:8] == bytes([0x01, 0x03, 0x00, 0x10])
    assert d83[8:24] == inquiry.naa_designator(h.unit.serial)
    b0 = h.run(bytes([0x12, 1, 0xB0, 0, 255, 0]), data_in=255)["data"]
    assert struct.unpack_from(">I", b0, 8)[0] == h.unit.max_sectors
    b2 = h.run(bytes([0x12, 1, 0xB2, 0, 255, 0]), data_in=255)["data"]
    assert b2[5] & 0x80 and b2[5] & 0x04     # LBPU, LBPRZ
    assert sense_of(h.run(bytes([0x12, 1, 0x99, 0, 255, 0]), data_in=255)) == (5, 0x24, 0)
    assert sense_of(h.run(bytes([0x12, 0, 0x80, 0, 255, 0]), data_in=255)) == (5, 0x24, 0)


def test_naa_designator_matches_lio():
    # LIO: 0x6 | OUI 0x001405 | the serial's hex digits (non-hex skipped), 13 bytes of them
    assert inquiry.naa_designator("7f3a1c2e-9b4d-4e1a-8c55-0123456789ab").hex() == \
        "60014057f3a1c2e9b4d4e1a8c5501234"


def test_read_capacity(h):
    r10 = h.run(bytes([0x25] + [0] * 9), data_in=8)["data"]
    assert struct.unpack(">II", r10) == (h.unit.num_blocks - 1, 512)
    r16 = h.run(bytes([0x9E, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0]), data_in=32)["data"]
    last, bs = struct.unpack_from(">QI", r16)
    assert (last, bs) == (h.unit.num_blocks - 1, 512) and r16[14] & 0xC0 == 0xC0
    assert sense_of(h.run(bytes([0x9E, 0x11] + [0] * 14), data_in=32)) == (5, 0x24, 0)


@pytest.mark.parametrize("op_w,op_r,mk", [(0x0A, 0x08, "6"), (0x2A, 0x28, "10"), (0xAA, 0xA8, "12"),
                                          (0x8A, 0x88, "16")])
def test_write_read_every_size(h, op_w, op_r, mk):
    data = os.urandom(8 * 512)

    def cdb(op, lba, n):
        if mk == "6":
            return bytes([op, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, n, 0])
        if mk == "10":
            return cdb10(op, lba, n)
        if mk == "12":
            return struct.pack(">BBIIBB", op, 0, lba, n, 0, 0)
        return cdb16(op, lba, n)
    assert h.run(cdb(op_w, 100, 8), data_out=data)["status"] == 0
    assert h.run(cdb(op_r, 100, 8), data_in=len(data))["data"] == data


def test_fua_and_no_write_cache_write_synchronously():
    class Spy(RamBackend):
        syncs = []

        def writev(self, bufs, offset, sync=False):
            self.syncs.append(sync)
            super().writev(bufs, offset, sync)
    h = Harness(Spy(1 << 20), write_cache=True)
    h.run(cdb10(0x2A, 0, 1), data_out=bytes(512))
    h.run(cdb10(0x2A, 0, 1, flags=0x08), data_out=bytes(512))
    h.unit.write_cache = False
    h.run(cdb10(0x2A, 0, 1), data_out=bytes(512))
    assert Spy.syncs == [False, True, True]


def test_out_of_range(h):
    last = h.unit.num_blocks
    assert sense_of(h.run(cdb10(0x28, last - 1, 2), data_in=1024)) == (5, 0x21, 0)
    assert sense_of(h.run(cdb16(0x8A, last, 1), data_out=bytes(512))) == (5, 0x21, 0)
    assert h.run(cdb10(0x28, last - 1, 1), data_in=512)["status"] == 0


def test_invalid_opcode(h):
    assert sense_of(h.run(bytes([0xC7, 0, 0, 0, 0, 0]))) == (5, 0x20, 0)
    assert sense_of(h.run(bytes([0xA0] + [0] * 11), data_in=16)) == (5, 0x20, 0)   # REPORT LUNS is the kernel's


def test_mode_sense_caching_page_follows_write_cache(h):
    for wce in (True, False):
        h.unit.write_cache = wce
        d = h.run(bytes([0x1A, 0, 0x08, 0, 255, 0]), data_in=255)["data"]
        assert d[3] == 8                       # block descriptor
        page = d[4 + 8:]
        assert page[0] == 0x08 and bool(page[2] & 0x04) == wce
        d10 = h.run(bytes([0x5A, 0x08, 0x3F, 0, 0, 0, 0, 1, 0, 0]), data_in=256)["data"]
        assert struct.unpack_from(">H", d10, 6)[0] == 0     # DBD: no descriptor
        assert bytes([0x08, 0x12]) in d10
    assert sense_of(h.run(bytes([0x1A, 0, 0xC8, 0, 255, 0]), data_in=255)) == (5, 0x39, 0)


def test_mode_select_changes_wce_only(h):
    h.unit.write_cache = True
    cur = h.run(bytes([0x1A, 0x08, 0x08, 0, 255, 0]), data_in=255)["data"]
    page = bytearray(cur[4:])
    page[2] &= ~0x04
    plist = bytes(4) + bytes(page)
    assert h.run(bytes([0x15, 0x10, 0, 0, len(plist), 0]), data_out=plist)["status"] == 0
    assert h.unit.write_cache is False
    page[3] = 0x55                             # not changeable
    plist = bytes(4) + bytes(page)
    assert sense_of(h.run(bytes([0x15, 0x10, 0, 0, len(plist), 0]), data_out=plist)) == (5, 0x26, 0)


def test_request_sense(h):
    d = h.run(bytes([0x03, 0, 0, 0, 18, 0]), data_in=18)["data"]
    assert d[0] == 0x70 and d[2] == 0 and d[7] == 10


def test_unmap_reads_back_zeros(h):
    data = os.urandom(64 * 512)
    h.run(cdb10(0x2A, 0, 64), data_out=data)
    plist = struct.pack(">HHI", 6 + 16, 16, 0) + struct.pack(">QII", 8, 16, 0)
    assert h.run(bytes([0x42, 0, 0, 0, 0, 0, 0, 0, len(plist), 0]), data_out=plist)["status"] == 0
    got = h.run(cdb10(0x28, 0, 64), data_in=len(data))["data"]
    assert got[:8 * 512] == data[:8 * 512] and got[8 * 512:24 * 512] == bytes(16 * 512)
    assert got[24 * 512:] == data[24 * 512:]
    bad = struct.pack(">HHI", 22, 16, 0) + struct.pack(">QII", h.unit.num_blocks, 1, 0)
    assert sense_of(h.run(bytes([0x42, 0, 0, 0, 0, 0, 0, 0, len(bad), 0]), data_out=bad)) == (5, 0x21, 0)


def test_write_same_pattern_and_unmap(h):
    block = os.urandom(512)
    assert h.run(cdb10(0x41, 10, 20), data_out=block)["status"] == 0
    assert h.run(cdb10(0x28, 10, 20), data_in=20 * 512)["data"] == block * 20
    assert h.run(cdb16(0x93, 10, 5, flags=0x08), data_out=bytes(512))["status"] == 0
    assert h.run(cdb10(0x28, 10, 5), data_in=5 * 512)["data"] == bytes(5 * 512)
    assert h.run(cdb16(0x93, 20, 2, flags=0x01))["status"] == 0       # NDOB
    assert h.run(cdb10(0x28, 20, 2), data_in=1024)["data"] == bytes(1024)
    assert sense_of(h.run(cdb10(0x41, 0, 0), data_out=block)) == (5, 0x24, 0)


def test_compare_and_write(h):
    old, new = os.urandom(512), os.urandom(512)
    h.run(cdb10(0x2A, 7, 1), data_out=old)
    caw = struct.pack(">BBQBBBBBB", 0x89, 0, 7, 0, 0, 0, 1, 0, 0)
    assert h.run(caw, data_out=old + new)["status"] == 0
    assert h.run(cdb10(0x28, 7, 1), data_in=512)["data"] == new
    wrong = bytearray(new)
    wrong[100] ^= 0xFF
    r = h.run(caw, data_out=bytes(wrong) + old)
    key, asc, ascq = sense_of(r)
    assert (key, asc, ascq) == (0xE, 0x1D, 0) and r["sense"][0] & 0x80
    assert struct.unpack_from(">I", r["sense"], 3)[0] == 100
    assert h.run(cdb10(0x28, 7, 1), data_in=512)["data"] == new


def test_verify(h):
    data = os.urandom(1024)
    h.run(cdb10(0x2A, 3, 2), data_out=data)
    assert h.run(cdb10(0x2F, 3, 2))["status"] == 0
    assert h.run(cdb10(0x2F, 3, 2, flags=0x02), data_out=data)["status"] == 0
    assert sense_of(h.run(cdb10(0x2F, 3, 2, flags=0x02), data_out=bytes(1024)))[0] == 0xE
    assert sense_of(h.run(cdb10(0x2F, h.unit.num_blocks, 1))) == (5, 0x21, 0)


def test_synchronize_cache_flushes():
    class Spy(RamBackend):
        flushed = 0

        def flush(self):
            Spy.flushed += 1
    h = Harness(Spy(1 << 20))
    assert h.run(cdb10(0x35, 0, 0))["status"] == 0
    assert h.run(cdb16(0x91, 0, 0))["status"] == 0
    assert Spy.flushed == 2


def test_io_errors_become_medium_errors():
    class Failing(RamBackend):
        def readv(self, bufs, offset):
            raise OSError(errno.EIO, "boom")

        def writev(self, bufs, offset, sync=False):
            raise OSError(errno.EIO, "boom")
    h = Harness(Failing(1 << 20))
    assert sense_of(h.run(cdb10(0x28, 0, 1), data_in=512)) == (3, 0x11, 0)
    assert sense_of(h.run(cdb10(0x2A, 0, 1), data_out=bytes(512))) == (3, 0x0C, 0)

    class Full(RamBackend):
        def writev(self, bufs, offset, sync=False):
            raise OSError(errno.ENOSPC, "full")
    assert sense_of(Harness(Full(1 << 20)).run(cdb10(0x2A, 0, 1), data_out=bytes(512))) == (7, 0x27, 7)


def test_file_backend_punches_holes(tmp_path):
    path = tmp_path / "disk.img"
    path.touch()
    fb = FileBackend(str(path), 4 << 20)
    assert os.path.getsize(path) == 4 << 20 and os.stat(path).st_blocks == 0   # sparse
    h = Harness(fb)
    data = os.urandom(1 << 20)
    for i in range(0, 2048, 64):
        assert h.run(cdb10(0x2A, i, 64), data_out=data[i * 512:(i + 64) * 512])["status"] == 0
    assert h.run(cdb10(0x35, 0, 0))["status"] == 0
    used = os.stat(path).st_blocks
    with open(path, "rb") as f:
        assert f.read(1 << 20) == data
    plist = struct.pack(">HHI", 22, 16, 0) + struct.pack(">QII", 0, 2048, 0)
    assert h.run(bytes([0x42, 0, 0, 0, 0, 0, 0, 0, len(plist), 0]), data_out=plist)["status"] == 0
    assert os.stat(path).st_blocks < used
    assert h.run(cdb10(0x28, 0, 64), data_in=64 * 512)["data"] == bytes(64 * 512)


def test_fuzz_every_random_cdb_is_answered():
    """Random CDBs (every opcode, random fields and lengths, random data-out): each one gets a
    status, and CHECK CONDITION always comes with well-formed fixed sense."""
    h = Harness(size=1 << 20)
    rng = random.Random(20261122)
    statuses = set()
    for i in range(20000):
        opc = rng.randrange(256) if i % 3 else rng.choice(
            [0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x1A, 0x25, 0x28, 0x2A, 0x2F, 0x35, 0x41, 0x42, 0x55,
             0x5A, 0x88, 0x89, 0x8A, 0x8F, 0x91, 0x93, 0x9E, 0xA8, 0xAA])
        n = rng.choice([0, 1, 5, 6, 10, 12, 16, rng.randrange(17)])
        cdb = bytes([opc]) + bytes(rng.getrandbits(8) for _ in range(max(0, n - 1))) if n else b""
        if rng.random() < 0.3:    # small lengths so reads/writes often stay in range
            cdb = cdb[:2] + bytes(len(cdb[2:9])) + cdb[9:] if len(cdb) > 9 else cdb
        out = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 8, 24, 512, 1024])))
        r = h.run(cdb or b"\x00" * 0, data_out=out, data_in=rng.choice([0, 0, 36, 512, 4096]))
        statuses.add(r["status"])
        assert r["status"] in (0, 2)
        if r["status"] == 2:
            sense_of(r)
    assert statuses == {0, 2}
