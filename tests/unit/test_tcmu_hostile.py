"""Commands an initiator may send to hurt the handler or read others' data: every buffer it
can make the handler allocate is bounded, a data-in buffer never returns another command's
bytes, a WRITE whose data-out does not match its CDB writes nothing, and long serials or
zero-length WRITE SAME are answered as the kernel's own backstores answer them.

The kernel's answers were taken in the guest (Debian 6.1, fileio behind tcm_loop, sg_raw):
WRITE(10) of 8 blocks with 512 bytes of data-out, or of 1 block with 1024 bytes, is CHECK
CONDITION ILLEGAL REQUEST 0x0E/0x03 and writes nothing; a READ(10) of 1 block into an 8 KiB
buffer, or of 0 blocks into 4 KiB, is CHECK CONDITION NOT READY 0x08/0x00, and of 8 blocks into
512 bytes ILLEGAL REQUEST 0x24/0x00, no data sent either way; TEST UNIT READY with a 4 KiB data-in buffer returns no data;
Block Limits has WSNZ=1 and WRITE SAME(10) of 0 blocks is ILLEGAL REQUEST 0x24/0x00; VPD 0x83
with a 247-character serial has a T10 designator whose one-byte length wrapped (0x04)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap

import pytest

from lioctl.tcmu import ring as R
from tcmu_sim import Harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def cdb10(op, lba, n, flags=0):
    return struct.pack(">BBIBHB", op, flags, lba, 0, n, 0)


def sense_of(res):
    assert res["status"] == 2, res
    s = res["sense"]
    return s[2] & 0xF, s[12], s[13]


@pytest.mark.parametrize("blocks,data_in", [(1, 8192), (0, 4096), (8, 4097)])
def test_a_read_into_a_longer_buffer_is_refused_like_fileio(blocks, data_in):
    """The buffer's tail would carry another command's bytes (the simulated kernel leaves
    random bytes in reused data blocks, as the real one does)."""
    h = Harness()
    assert h.run(cdb10(0x2A, 5, 1), data_out=os.urandom(512))["status"] == 0
    r = h.run(cdb10(0x28, 5, blocks), data_in=data_in)
    assert sense_of(r) == (2, 0x08, 0x00) and r["data"] == b""   # LOGICAL UNIT COMMUNICATION FAILURE


def test_a_read_into_a_shorter_buffer_is_refused_like_fileio():
    h = Harness()
    r = h.run(cdb10(0x28, 0, 8), data_in=512)
    assert sense_of(r) == (5, 0x24, 0x00) and r["data"] == b""          # INVALID FIELD IN CDB


@pytest.mark.parametrize("cdb", [bytes(6), bytes([0x1B, 0, 0, 0, 1, 0]), bytes([0x1E, 0, 0, 0, 0, 0]),
                                 bytes([0x35] + [0] * 9), bytes([0x2F, 0, 0, 0, 0, 0, 0, 0, 1, 0])],
                         ids=["TEST UNIT READY", "START STOP", "PREVENT ALLOW", "SYNCHRONIZE CACHE", "VERIFY"])
def test_a_command_without_data_in_returns_zeros_in_a_data_in_buffer(cdb):
    """Seen in the guest: TEST UNIT READY with a 4 KiB data-in buffer through a user backstore
    returned the previous WRITE's bytes."""
    for flags in (R.CAP_OOOC | R.CAP_READ_LEN, R.CAP_OOOC):      # with or without read_len
        h = Harness(kernel_flags=flags)
        r = h.run(cdb, data_in=4096)
        assert r["status"] == 0 and r["data"] == bytes(4096)


@pytest.mark.parametrize("blocks,data_out", [(8, 512), (1, 1024), (8, 1), (0, 512), (1, 0)])
def test_a_write_with_the_wrong_data_out_length_is_refused_and_writes_nothing(blocks, data_out):
    h = Harness()
    before = bytes(h.backend.mv[:8192])
    r = h.run(cdb10(0x2A, 2, blocks), data_out=b"\x5a" * data_out)
    assert sense_of(r) == (5, 0x0E, 0x03)       # INVALID FIELD IN COMMAND INFORMATION UNIT
    assert bytes(h.backend.mv[:8192]) == before
    assert h.run(cdb10(0x2A, 2, 1), data_out=b"\x5a" * 512)["status"] == 0    # the right length works
    assert h.run(cdb10(0x2A, 2, 0))["status"] == 0


def test_vpd_83_with_the_longest_unit_serial_configfs_takes():
    h = Harness()
    h.unit.serial = "0123456789abcdef" * 15 + "0123456789abcd"       # 254, configfs's most
    h.unit.product = "p" * 16
    r = h.run(bytes([0x12, 1, 0x83, 0x04, 0x00, 0]), data_in=1024)
    assert r["status"] == 0, r
    d = r["data"]
    page_len = struct.unpack_from(">H", d, 2)[0]
    pos, designators = 4, []
    while pos < 4 + page_len:
        n = d[pos + 3]
        designators.append(d[pos:pos + 4 + n])
        pos += 4 + n
    assert pos == 4 + page_len and r["read_len"] == pos
    naa, t10 = designators
    assert naa[:4] == bytes((0x01, 0x03, 0x00, 0x10))
    assert t10[:2] == bytes((0x02, 0x01)) and t10[3] == 255 and t10[-1] == 0
    assert t10[4:12] == b"LIO-ORG " and t10[12:].startswith(b"p" * 16 + b":0123456789abcdef")


def test_block_limits_say_wsnz_and_zero_length_write_same_is_refused():
    h = Harness()
    b0 = h.run(bytes([0x12, 1, 0xB0, 0, 64, 0]), data_in=64)["data"]
    assert b0[4] & 0x01
    assert sense_of(h.run(cdb10(0x41, 0, 0), data_out=bytes(512))) == (5, 0x24, 0)


STRESS = textwrap.dedent("""
    import os, resource, struct, sys, tempfile
    from lioctl.tcmu.backends.file import FileBackend
    from tcmu_sim import Harness
    LUN = 256 << 20
    with tempfile.NamedTemporaryFile() as f:
        f.truncate(LUN)                                   # sparse: costs no memory
        h = Harness(FileBackend(f.name, LUN), max_sectors=0xFFFF, max_write_same_blocks=LUN // 512)
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        limit = vm + (64 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        n = LUN // 512
        out = {}
        # VERIFY(16) BYTCHK=3 over the whole LUN with one block of data-out: 512 bytes in,
        # three times the LUN's size allocated before
        out["verify same"] = h.run(struct.pack(">BBQIBB", 0x8F, 0x06, 0, n, 0, 0), data_out=bytes(512))
        out["verify differs"] = h.run(struct.pack(">BBQIBB", 0x8F, 0x06, 0, n, 0, 0), data_out=b"\\1" * 512)
        out["verify differs late"] = h.run(struct.pack(">BBQIBB", 0x8F, 0x06, 0x1000, n - 0x1000, 0, 0),
                                           data_out=bytes(511) + b"\\1")
        out["verify 10"] = h.run(struct.pack(">BBIBHB", 0x2F, 0x06, 0, 0, 0xFFFF, 0), data_out=bytes(512))
        out["write same unmap"] = h.run(struct.pack(">BBQIBB", 0x93, 0x08, 0, n, 0, 0), data_out=bytes(512))
        h.run(struct.pack(">BBIBHB", 0x2A, 0, 3000, 0, 1, 0), data_out=b"\\11" * 512)
        out["verify differs in a later piece"] = h.run(struct.pack(">BBQIBB", 0x8F, 0x06, 0, n, 0, 0),
                                                       data_out=bytes(512))
        out["write same 64M"] = h.run(struct.pack(">BBQIBB", 0x93, 0, 0, (64 << 20) // 512, 0, 0),
                                      data_out=b"\\7" * 512)
        out["caw 255"] = h.run(struct.pack(">BBQxxxBxx", 0x89, 0, 0, 255), data_out=b"\\7" * (510 * 512))
        for k, r in out.items():
            s = r["sense"]
            print(k + "|" + "%d %x/%02x/%02x %s" % (r["status"], s[2] & 15, s[12], s[13], s[3:7].hex()))
""")


def test_no_cdb_makes_the_handler_allocate_beyond_a_bound():
    """The emulator under RLIMIT_AS = what it has mapped + 64 MiB, over a 256 MiB LUN (VERIFY
    BYTCHK=3 of the whole LUN allocated 768 MiB before)."""
    p = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True, timeout=120,
                       cwd=HERE, env=dict(os.environ, PYTHONPATH=os.pathsep.join((ROOT, HERE))))
    assert p.returncode == 0, p.stderr
    got = dict(line.split("|") for line in p.stdout.splitlines())
    assert got == {
        "verify same": "0 0/00/00 00000000",
        "verify differs": "2 e/1d/00 00000000",          # MISCOMPARE at byte 0
        "verify differs late": "2 e/1d/00 000001ff",     # at the first block's last byte
        "verify 10": "0 0/00/00 00000000",
        "write same unmap": "0 0/00/00 00000000",
        "verify differs in a later piece": "2 e/1d/00 00177000",     # LBA 3000 * 512
        "write same 64M": "0 0/00/00 00000000",
        "caw 255": "0 0/00/00 00000000",                  # 255 blocks of 7s, as WRITE SAME left
    }, p.stdout
