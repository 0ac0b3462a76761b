"""One logical unit's command set: CDB decoding, range checks and sense, over a backend.

`execute()` never raises: every CDB, however malformed, gets a status (GOOD or CHECK
CONDITION with fixed-format sense) so the daemon always answers the kernel.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from lioctl.tcmu.scsi import inquiry, modes, opcodes as op
from lioctl.tcmu.scsi import sense as S
from lioctl.tcmu.scsi.sense import CheckCondition, illegal


@dataclass
class Unit:
    """What the initiator is told about the device (filled from the device's configfs)."""
    block_size: int = 512
    num_blocks: int = 0
    max_sectors: int = 128
    serial: str = ""
    vendor: str = "LIO-ORG"
    product: str = "TCMU device"
    revision: str = "0001"
    write_cache: bool = False
    write_cache_default: bool = False
    read_only: bool = False
    thin: bool = True
    nonrotational: bool = False
    max_unmap_blocks: int = 0x100000
    max_unmap_descriptors: int = 256
    max_write_same_blocks: int = 0x100000
    max_compare_write_blocks: int = 1
    optimal_transfer_blocks: int = 0     # 0: the maximum transfer length


@dataclass(slots=True)
class Response:
    status: int = S.GOOD
    sense: bytes = b""
    read_len: int | None = None


GOOD = Response()
# The largest buffer one command may make the handler allocate, whatever its CDB asks for:
# VERIFY, WRITE SAME and COMPARE AND WRITE work through the medium in pieces this size.
CHUNK = 1 << 20
# (LBA, transfer length) by CDB group: 10-byte (1, 2), 16-byte (4), 12-byte (5)
_S10, _S16, _S12 = struct.Struct(">xxIxH"), struct.Struct(">xxQI"), struct.Struct(">xxII")
_LBA_LEN = {1: _S10, 2: _S10, 4: _S16, 5: _S12}
ZERO_CHUNK = bytes(CHUNK)
_ZEROS = memoryview(ZERO_CHUNK)          # sliced without a copy


def _be(b: bytes) -> int:
    return int.from_bytes(b, "big")


def limit(iovecs, n: int) -> list:
    """The first n bytes of a scatter list, as a list of memoryviews."""
    out = []
    for v in iovecs:
        if n <= 0:
            break
        if len(v) > n:
            v = v[:n]
        out.append(v)
        n -= len(v)
    return out


def gather(iovecs, n: int) -> bytes:
    return b"".join(bytes(v) for v in limit(iovecs, n))


def piece(iovecs, start: int, n: int) -> bytes:
    """Bytes start..start+n of a scatter list (a bounded window, for chunked compares)."""
    out = []
    for v in iovecs:
        k = len(v)
        if start >= k:
            start -= k
            continue
        part = v[start:start + n]
        out.append(part)
        n -= len(part)
        start = 0
        if n <= 0:
            break
    return b"".join(out)


def zero(iovecs, skip: int = 0) -> None:
    """Zero the buffers from byte `skip` on: data-area blocks are reused across commands and
    devices unzeroed, and the kernel returns a data-in buffer whole unless told a shorter
    length (and a read_len of 0 it ignores), so what a command does not fill must be cleared."""
    for v in iovecs:
        k = len(v)
        if skip >= k:
            skip -= k
            continue
        while skip < k:
            m = min(k - skip, CHUNK)
            v[skip:skip + m] = _ZEROS[:m]
            skip += m
        skip = 0


def scatter(iovecs, data: bytes, zero_rest: bool = True) -> int:
    """Copy data into the buffers; returns the bytes placed."""
    pos = 0
    mv = memoryview(data)
    for v in iovecs:
        n = min(len(v), len(data) - pos)
        if n > 0:
            v[:n] = mv[pos:pos + n]
            pos += n
        if zero_rest and n < len(v):
            zero([v], max(n, 0))
    return pos


class Emulator:
    def __init__(self, unit: Unit, backend):
        self.unit = unit
        self.backend = backend
        table = {
            op.TEST_UNIT_READY: self.good,
            op.START_STOP_UNIT: self.good,
            op.ALLOW_MEDIUM_REMOVAL: self.good,
            op.SEND_DIAGNOSTIC: self.send_diagnostic,
            op.REQUEST_SENSE: self.request_sense,
            op.INQUIRY: self.inquiry,
            op.READ_CAPACITY_10: self.read_capacity_10,
            op.SERVICE_ACTION_IN_16: self.service_action_in,
            op.MODE_SENSE_6: self.mode_sense,
            op.MODE_SENSE_10: self.mode_sense,
            op.MODE_SELECT_6: self.mode_select,
            op.MODE_SELECT_10: self.mode_select,
            op.READ_6: self.read, op.READ_10: self.read, op.READ_12: self.read, op.READ_16: self.read,
            op.WRITE_6: self.write, op.WRITE_10: self.write, op.WRITE_12: self.write,
            op.WRITE_16: self.write,
            op.WRITE_VERIFY_10: self.write, op.WRITE_VERIFY_12: self.write,
            op.WRITE_VERIFY_16: self.write,
            op.VERIFY_10: self.verify, op.VERIFY_12: self.verify, op.VERIFY_16: self.verify,
            op.SYNCHRONIZE_CACHE_10: self.synchronize_cache,
            op.SYNCHRONIZE_CACHE_16: self.synchronize_cache,
            op.WRITE_SAME_10: self.write_same, op.WRITE_SAME_16: self.write_same,
            op.UNMAP: self.unmap,
            op.COMPARE_AND_WRITE: self.compare_and_write,
        }
        # one lookup per command: the handler and the shortest CDB it may read
        self.dispatch = {c: (fn, _min_len(c)) for c, fn in table.items()}
        self.ua: tuple[int, int] | None = None   # a pending unit attention (ASC, ASCQ)

    def unit_attention(self, asc_ascq: tuple[int, int]) -> None:
        """Report asc_ascq (CAPACITY DATA HAS CHANGED) to the next command that takes one. The
        handler sees no I_T nexus: the first initiator to send a command gets it."""
        self.ua = asc_ascq

    def take_unit_attention(self, opcode: int) -> Response | None:
        if self.ua is None or opcode in _NO_UA:
            return None
        ua, self.ua = self.ua, None
        return Response(S.CHECK_CONDITION, S.fixed(S.UNIT_ATTENTION, ua))

    # entry point
    def execute(self, cdb: bytes, iovecs, length: int) -> Response:
        try:
            if not cdb:
                raise illegal(S.INVALID_FIELD_IN_CDB)
            if self.ua is not None:
                ua = self.take_unit_attention(cdb[0])
                if ua is not None:
                    return ua
            entry = self.dispatch.get(cdb[0])
            if entry is None:
                raise illegal(S.INVALID_OPCODE)
            if len(cdb) < entry[1]:
                raise illegal(S.INVALID_FIELD_IN_CDB)
            return entry[0](cdb, iovecs, length)
        except CheckCondition as e:
            return Response(S.CHECK_CONDITION, e.sense)
        except (IndexError, struct.error, ValueError):
            return Response(S.CHECK_CONDITION, S.fixed(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_CDB))
        except OSError:
            return Response(S.CHECK_CONDITION, S.fixed(S.MEDIUM_ERROR, S.UNRECOVERED_READ_ERROR))
        except Exception:   # a bug must not take the device down: the initiator gets an error
            return Response(S.CHECK_CONDITION, S.fixed(S.HARDWARE_ERROR, (0x44, 0x00)))

    # helpers
    def _data_in(self, iovecs, length: int, data: bytes, alloc: int) -> Response:
        data = data[:alloc]
        n = scatter(iovecs, data)
        return Response(read_len=n) if n < length else GOOD

    def _range(self, lba: int, n: int) -> None:
        if lba + n > self.unit.num_blocks:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.LBA_OUT_OF_RANGE)

    def _writable(self) -> None:
        if self.unit.read_only:
            raise CheckCondition(S.DATA_PROTECT, S.WRITE_PROTECTED)

    @staticmethod
    def _write_error(e: OSError) -> CheckCondition:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return CheckCondition(S.DATA_PROTECT, S.SPACE_ALLOCATION_FAILED)
        return CheckCondition(S.MEDIUM_ERROR, S.WRITE_ERROR)

    def _read_blocks(self, lba: int, n: int) -> bytes:
        buf = bytearray(n * self.unit.block_size)
        try:
            got = self.backend.readv([memoryview(buf)], lba * self.unit.block_size)
        except OSError:
            raise CheckCondition(S.MEDIUM_ERROR, S.UNRECOVERED_READ_ERROR)
        if got < len(buf):
            buf[got:] = bytes(len(buf) - got)
        return bytes(buf)

    def _write_bufs(self, bufs, offset: int, sync: bool) -> None:
        try:
            self.backend.writev(bufs, offset, sync)
        except OSError as e:
            raise self._write_error(e)

    # commands
    def good(self, cdb, iovecs, length) -> Response:
        if length:
            zero(iovecs)
        return GOOD

    def send_diagnostic(self, cdb, iovecs, length) -> Response:
        if not cdb[1] & 0x04 and (cdb[1] >> 5):   # only the default self-test is offered
            raise illegal()
        return self.good(cdb, iovecs, length)

    def request_sense(self, cdb, iovecs, length) -> Response:
        if cdb[1] & 0x01:    # descriptor format
            data = bytes((0x72, 0, 0, 0, 0, 0, 0, 0))
        else:
            data = S.fixed(S.NO_SENSE, (0, 0))
        return self._data_in(iovecs, length, data, cdb[4])

    def inquiry(self, cdb, iovecs, length) -> Response:
        return self._data_in(iovecs, length, inquiry.answer(self.unit, cdb), _be(cdb[3:5]))

    def read_capacity_10(self, cdb, iovecs, length) -> Response:
        last = self.unit.num_blocks - 1
        data = struct.pack(">II", min(last, 0xFFFFFFFF), self.unit.block_size)
        return self._data_in(iovecs, length, data, 8)

    def service_action_in(self, cdb, iovecs, length) -> Response:
        if cdb[1] & 0x1F != op.SA_READ_CAPACITY_16:
            raise illegal()
        lbp = 0xC000 if self.unit.thin else 0   # LBPME, LBPRZ
        data = struct.pack(">QIBBH", self.unit.num_blocks - 1, self.unit.block_size, 0, 0, lbp) + bytes(16)
        return self._data_in(iovecs, length, data, _be(cdb[10:14]))

    def mode_sense(self, cdb, iovecs, length) -> Response:
        alloc = cdb[4] if cdb[0] == op.MODE_SENSE_6 else _be(cdb[7:9])
        return self._data_in(iovecs, length, modes.sense(self.unit, cdb), alloc)

    def mode_select(self, cdb, iovecs, length) -> Response:
        plen = cdb[4] if cdb[0] == op.MODE_SELECT_6 else _be(cdb[7:9])
        if plen > length:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        before = self.unit.write_cache
        modes.select(self.unit, cdb, gather(iovecs, plen))
        if before and not self.unit.write_cache:
            self.backend.flush()      # turning the cache off: what it held must reach the medium
        return self.good(cdb, iovecs, length)

    @staticmethod
    def _lba_len(cdb) -> tuple[int, int]:
        s = _RW_LBA_LEN.get(cdb[0])
        if s is not None:       # the reads and writes: one lookup
            return s.unpack_from(cdb)
        c = cdb[0]
        if c in (op.READ_6, op.WRITE_6):
            return ((cdb[1] & 0x1F) << 16) | (cdb[2] << 8) | cdb[3], cdb[4] or 256
        return _LBA_LEN[c >> 5].unpack_from(cdb)

    # The per-command hot path: a READ's or WRITE's extent is checked (range, write protection,
    # data length) inline in one call rather than through _range/_writable/_write_bufs (a call
    # each, under emulation); the asynchronous path (scsi/asynchronous.py) checks through these too.
    def read_extent(self, cdb, length) -> tuple[int, int]:
        """(byte offset, byte count) of a READ, or the CHECK CONDITION the kernel answers."""
        s = _RW_LBA_LEN.get(cdb[0])     # _lba_len's own first step: no second call per command
        lba, n = s.unpack_from(cdb) if s is not None else self._lba_len(cdb)
        unit = self.unit
        if lba + n > unit.num_blocks:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.LBA_OUT_OF_RANGE)
        want = n * unit.block_size
        if want != length:
            # a data-in buffer longer than the transfer (its tail holds another command's data)
            # or shorter: the kernel's fileio (6.1, through tcm_loop) refuses both, with these
            # senses, and sends no data; so does the handler (CHECK CONDITION copies nothing)
            if want < length:
                raise CheckCondition(S.NOT_READY, S.LOGICAL_UNIT_COMMUNICATION_FAILURE)
            raise illegal()
        return lba * unit.block_size, want

    def write_extent(self, cdb, length) -> tuple[int, int]:
        """(byte offset, byte count) of a WRITE, or the CHECK CONDITION the kernel answers."""
        s = _RW_LBA_LEN.get(cdb[0])     # _lba_len's own first step: no second call per command
        lba, n = s.unpack_from(cdb) if s is not None else self._lba_len(cdb)
        unit = self.unit
        if lba + n > unit.num_blocks:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.LBA_OUT_OF_RANGE)
        if unit.read_only:
            raise CheckCondition(S.DATA_PROTECT, S.WRITE_PROTECTED)
        want = n * unit.block_size
        if want != length:
            # more or less data-out than the CDB's transfer length: the kernel's own backstores
            # refuse it and write nothing (target_cmd_size_check), with this sense
            raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_COMMAND_IU)
        return lba * unit.block_size, want

    def read(self, cdb, iovecs, length) -> Response:
        offset, want = self.read_extent(cdb, length)
        if want == 0:
            return GOOD
        try:
            got = self.backend.readv(iovecs, offset)
        except OSError:
            raise CheckCondition(S.MEDIUM_ERROR, S.UNRECOVERED_READ_ERROR)
        if got < want:       # past the end of a short backing file: zeros, like a sparse one
            zero(iovecs, got)
        return GOOD

    def read_cached(self, cdb, iovecs, length) -> Response | None:
        """A READ answered without waiting for the medium (backend.readv_nowait: the page cache),
        or None when any of it would wait (or anything unusual happens: a unit attention, a
        malformed CDB, an error), for execute() on an I/O thread to answer."""
        if self.ua is not None:
            return None
        try:
            offset, want = self.read_extent(cdb, length)
        except CheckCondition as e:
            return Response(S.CHECK_CONDITION, e.sense)
        except (IndexError, struct.error, ValueError):
            return None
        if want == 0:
            return GOOD
        try:
            got = self.backend.readv_nowait(iovecs, offset)
        except OSError:
            return None
        return GOOD if got == want else None

    def write(self, cdb, iovecs, length) -> Response:
        offset, want = self.write_extent(cdb, length)
        if want == 0:
            return GOOD
        sync = synchronous_write(self.unit, cdb)
        try:
            self.backend.writev(iovecs, offset, sync)
        except OSError as e:
            raise self._write_error(e)
        return GOOD

    def verify(self, cdb, iovecs, length) -> Response:
        lba, n = self._lba_len(cdb)
        self._range(lba, n)
        bytchk = (cdb[1] >> 1) & 0x3
        if bytchk == 0 or n == 0:
            return self.good(cdb, iovecs, length)
        bs = self.unit.block_size
        if bytchk == 2:
            raise illegal()
        if length < (n * bs if bytchk == 1 else bs):
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        # compared a piece at a time: BYTCHK=3 sends one block for the whole range, so the
        # range (up to the LUN's size) must never be built in memory
        per = max(1, CHUNK // bs)
        pattern = gather(iovecs, bs) * min(n, per) if bytchk == 3 else b""
        done = 0
        while done < n:
            k = min(per, n - done)
            have = self._read_blocks(lba + done, k)
            expect = pattern[:k * bs] if bytchk == 3 else piece(iovecs, done * bs, k * bs)
            if have != expect:
                first = next(i for i in range(len(have)) if have[i] != expect[i])
                raise CheckCondition(S.MISCOMPARE, S.MISCOMPARE_DURING_VERIFY, info=done * bs + first)
            done += k
        return self.good(cdb, iovecs, length)

    def synchronize_cache(self, cdb, iovecs, length) -> Response:
        if cdb[0] == op.SYNCHRONIZE_CACHE_10:
            lba, n = _be(cdb[2:6]), _be(cdb[7:9])
        else:
            lba, n = _be(cdb[2:10]), _be(cdb[10:14])
        self._range(lba, n)
        try:
            self.backend.flush()
        except OSError as e:
            raise self._write_error(e)
        return self.good(cdb, iovecs, length)

    def write_same_args(self, cdb, iovecs) -> tuple[int, int, bool, bytes]:
        """(LBA, blocks, UNMAP bit, the block) of a valid WRITE SAME to a writable unit."""
        if cdb[0] == op.WRITE_SAME_10:
            lba, n = _be(cdb[2:6]), _be(cdb[7:9])
            ndob = False
        else:
            lba, n = _be(cdb[2:10]), _be(cdb[10:14])
            ndob = bool(cdb[1] & 0x01)
        unmap = bool(cdb[1] & 0x08)
        if cdb[1] & 0x10:            # ANCHOR: no anchored state here
            raise illegal()
        if n == 0 or n > self.unit.max_write_same_blocks:
            raise illegal()
        self._range(lba, n)
        self._writable()
        bs = self.unit.block_size
        if ndob:
            block = bytes(bs)
        else:
            block = gather(iovecs, bs)
            if len(block) < bs:
                raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        return lba, n, unmap, block

    def write_same(self, cdb, iovecs, length) -> Response:
        lba, n, unmap, block = self.write_same_args(cdb, iovecs)
        bs = self.unit.block_size
        offset, total = lba * bs, n * bs
        if unmap and self.unit.thin and not any(block):
            try:
                self.backend.discard(offset, total)
            except OSError as e:
                raise self._write_error(e)
            return self.good(cdb, iovecs, length)
        per = max(1, min(n, (1 << 20) // bs))
        chunk = ZERO_CHUNK[:per * bs] if not any(block) else block * per
        sync = not self.unit.write_cache
        while total:
            k = min(total, len(chunk))
            self._write_bufs([memoryview(chunk)[:k]], offset, sync)
            offset += k
            total -= k
        return self.good(cdb, iovecs, length)

    def unmap_ranges(self, cdb, iovecs, length) -> list[tuple[int, int]]:
        """The (LBA, blocks) an UNMAP's parameter list names, each checked; [] for none."""
        if not self.unit.thin:
            raise illegal(S.INVALID_OPCODE)
        self._writable()
        plen = _be(cdb[7:9])
        if plen == 0:
            return []
        if plen < 8 or plen > length:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        data = gather(iovecs, plen)
        bdl = _be(data[2:4])
        if bdl % 16 or 8 + bdl > len(data):
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        count = bdl // 16
        if count > self.unit.max_unmap_descriptors:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
        ranges = []
        for i in range(count):
            lba, n = struct.unpack_from(">QI", data, 8 + 16 * i)
            if n > self.unit.max_unmap_blocks:
                raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
            self._range(lba, n)
            if n:
                ranges.append((lba, n))
        return ranges

    def unmap(self, cdb, iovecs, length) -> Response:
        bs = self.unit.block_size
        for lba, n in self.unmap_ranges(cdb, iovecs, length):
            try:
                self.backend.discard(lba * bs, n * bs)
            except OSError as e:
                raise self._write_error(e)
        return self.good(cdb, iovecs, length)

    def compare_and_write(self, cdb, iovecs, length) -> Response:
        lba, n = _be(cdb[2:10]), cdb[13]
        if n == 0:
            return self.good(cdb, iovecs, length)
        if 2 * n > max(self.unit.max_sectors, 2):
            raise illegal()
        self._range(lba, n)
        self._writable()
        bs = self.unit.block_size
        data = gather(iovecs, 2 * n * bs)
        if len(data) < 2 * n * bs:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        expect, new = data[:n * bs], data[n * bs:]
        have = self._read_blocks(lba, n)
        if have != expect:
            first = next(i for i in range(len(have)) if have[i] != expect[i])
            raise CheckCondition(S.MISCOMPARE, S.MISCOMPARE_DURING_VERIFY, info=first)
        self._write_bufs([memoryview(new)], lba * bs, not self.unit.write_cache)
        return self.good(cdb, iovecs, length)


# commands a pending unit attention does not hold up (SAM-5 5.14; the kernel answers REPORT LUNS)
_NO_UA = frozenset((op.INQUIRY, op.REQUEST_SENSE))
_WRITE_VERIFY = frozenset((op.WRITE_VERIFY_10, op.WRITE_VERIFY_12, op.WRITE_VERIFY_16))


def synchronous_write(unit: Unit, cdb) -> bool:
    """Whether a WRITE or WRITE AND VERIFY must be durable when answered: no write cache,
    FUA (not in WRITE 6), or a verify."""
    return not unit.write_cache or (cdb[1] & 0x08 and cdb[0] != op.WRITE_6) or cdb[0] in _WRITE_VERIFY
# (LBA, transfer length) of the 10/12/16-byte reads and writes, by opcode
_RW_LBA_LEN = {c: _LBA_LEN[c >> 5] for c in (
    op.READ_10, op.READ_12, op.READ_16, op.WRITE_10, op.WRITE_12, op.WRITE_16,
    op.WRITE_VERIFY_10, op.WRITE_VERIFY_12, op.WRITE_VERIFY_16)}


def _min_len(opcode: int) -> int:
    if opcode == op.VARIABLE_LENGTH_CDB:
        return 10
    return op.CDB_LENGTH_BY_GROUP[opcode >> 5] if opcode < 0xC0 else 6
