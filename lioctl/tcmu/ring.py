"""The TCMU command ring: the binary layout of include/uapi/linux/target_core_user.h and the
rules for walking it, over any writable buffer (the UIO mapping, or a bytearray in tests).

Nothing here knows about devices or file descriptors, and of SCSI only how long a CDB is
(scsi/opcodes.py): the caller reads the doorbell, asks for new commands, answers them (in any
order) and rings back once per batch.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from lioctl.tcmu.scsi import opcodes

# struct tcmu_mailbox
MB_VERSION = 0          # u16
MB_FLAGS = 2            # u16
MB_CMDR_OFF = 4         # u32
MB_CMDR_SIZE = 8        # u32
MB_CMD_HEAD = 12        # u32, written by the kernel
MB_CMD_TAIL = 64        # u32, written by us
MAILBOX_SIZE = 128

CAP_OOOC = 1
CAP_READ_LEN = 2
CAP_TMR = 4
CAP_KEEP_BUF = 8

# struct tcmu_cmd_entry_hdr
OP_PAD = 0
OP_CMD = 1
OP_TMR = 2
OP_MASK = 7
UFLAG_UNKNOWN_OP = 1
UFLAG_READ_LEN = 2
UFLAG_KEEP_BUF = 4

# len_op, cmd_id, iov_cnt, cdb_off and iov[0] (base, len): one read per command; flags,
# iov_bidi_cnt and iov_dif_cnt are skipped (the kernel sets no flag we act on, and sends
# neither bidi nor DIF iovecs to a handler that did not ask for them)
ENTRY_IOV0 = struct.Struct("<IH2xI12xQ16xQQ")
ANSWER = struct.Struct("<HBBBxxxI")     # @4: cmd_id, kflags, uflags, scsi_status, read_len
IOV = struct.Struct("<QQ")              # iov_base (offset into the mapping), iov_len
IOV_OFF = 48
SENSE_OFF = 16
SENSE_SIZE = 96
ENTRY_MIN = 112
U32 = struct.Struct("<I")
_IOVS: dict[int, struct.Struct] = {}

# scsi_command_size() by opcode; 0: variable length, look at cdb[7]
_CDB_LEN_BY_OP = bytes(0 if c == opcodes.VARIABLE_LENGTH_CDB else opcodes.CDB_LENGTH_BY_GROUP[c >> 5]
                       for c in range(256))


def cdb_length(opcode: int, cdb7: int = 0) -> int:
    return _CDB_LEN_BY_OP[opcode] or cdb7 + 8


class RingError(Exception):
    """The ring holds something that cannot be a valid entry; the device needs a reset."""


class Command(NamedTuple):
    """A tuple, made without a Python-level constructor on the per-command path."""
    cmd_id: int
    cdb: bytes
    iovecs: list            # memoryviews of the data area, in order
    length: int             # total bytes the iovecs hold
    unknown_op: bool = False

    @property
    def opcode(self) -> int:
        return self.cdb[0] if self.cdb else -1


_new = tuple.__new__


class Ring:
    """One device's mailbox + command ring + data area.

    `take()` returns the commands the kernel queued since the last call; `complete()` writes
    one answer at the tail slot, so answers may come in any order (the kernel matches them by
    cmd_id, like libtcmu's out-of-order completion)."""

    def __init__(self, buf, *, check_version: bool = True):
        self.mv = memoryview(buf).cast("B")
        self.version, self.flags, self.cmdr_off, self.cmdr_size = struct.unpack_from("<HHII", self.mv, 0)
        if check_version and self.version not in (1, 2):
            raise RingError(f"unsupported TCMU mailbox version {self.version}")
        if self.cmdr_size == 0 or self.cmdr_off < MAILBOX_SIZE or self.cmdr_off + self.cmdr_size > len(self.mv):
            raise RingError(f"mailbox describes a ring outside the mapping "
                            f"(off {self.cmdr_off}, size {self.cmdr_size}, map {len(self.mv)})")
        self.read_len = bool(self.flags & CAP_READ_LEN)
        # iovecs may only point here: a corrupt one into the mailbox or ring would have a
        # read's data overwrite entries (and a walk over them never end)
        self.data_off = self.cmdr_off + self.cmdr_size
        # everything between tail and our read position has been taken but not yet answered
        self.next = self.tail
        self.pending = 0
        # answers bounded by cmd_head rather than by `next`: while another walker (the native
        # path's ring thread) moves the position, as its own threads bound theirs. Answers never
        # outnumber the commands taken, so the tail slot is always a taken entry
        self.bound_by_head = False

    # mailbox fields
    @property
    def tail(self) -> int:
        return U32.unpack_from(self.mv, MB_CMD_TAIL)[0]

    def take(self) -> list[Command]:
        """Parse every entry between our position and cmd_head. PAD and TMR entries are
        skipped (the kernel skips them too when it reaps answers); an op we do not know is
        returned flagged so it gets answered with UNKNOWN_OP.

        The per-command path: a command with one iovec (every 4 KiB I/O) is parsed inline from
        one unpack of its header and first iovec. A malformed entry raises RingError and the
        device fails, so the position is only stored when the whole batch parsed. The walk
        is bounded by the distance to cmd_head: an entry that would step over it (a head off an
        entry boundary) is corrupt, not a reason to go round the ring again."""
        mv = self.mv
        head = U32.unpack_from(mv, MB_CMD_HEAD)[0]
        nxt = self.next
        if head == nxt:
            return []
        size = self.cmdr_size
        if head >= size or head & 7:
            raise RingError(f"cmd_head {head} is outside the ring or misaligned")
        base = self.cmdr_off
        end = len(mv)
        data = self.data_off
        last = end - ENTRY_IOV0.size     # an entry this far in can be read with its first iovec
        out = []
        taken = 0
        left = (head - nxt) % size       # bytes of entries between our position and cmd_head
        while left:
            off = base + nxt
            if off > last:
                raise RingError(f"ring entry at {nxt} runs past the mapping")
            len_op, cmd_id, iov_cnt, cdb_off, b, n = ENTRY_IOV0.unpack_from(mv, off)
            length = len_op & ~OP_MASK
            if length == 0 or length > left or length > size - nxt:
                raise RingError(f"ring entry at {nxt} has length {length} ({left} bytes to cmd_head {head})")
            left -= length
            op = len_op & OP_MASK
            if op == OP_CMD:
                taken += 1
                if iov_cnt == 1 and length >= ENTRY_MIN and data <= b and b + n <= end and cdb_off + 7 < end:
                    cl = _CDB_LEN_BY_OP[mv[cdb_off]] or mv[cdb_off + 7] + 8
                    # copied, not viewed: answers overwrite entries (and CDBs) out of order
                    out.append(_new(Command, (cmd_id, mv[cdb_off:cdb_off + cl].tobytes(), [mv[b:b + n]], n, False)))
                else:
                    out.append(self._parse(off, cmd_id, length, iov_cnt, cdb_off))
            elif op != OP_PAD and op != OP_TMR:
                taken += 1
                out.append(Command(cmd_id, b"", [], 0, True))
            nxt += length
            if nxt == size:
                nxt = 0
        self.next = nxt
        self.pending += taken
        return out

    def _parse(self, off: int, cmd_id: int, length: int, iov_cnt: int, cdb_off: int) -> Command:
        """A command the inline path did not take: several iovecs, or something corrupt (iovecs
        past the entry or outside the data area, a CDB outside the mapping) which fails the
        device rather than have its data land in the ring."""
        mv = self.mv
        if length < ENTRY_MIN or IOV_OFF + iov_cnt * IOV.size > length:
            raise RingError(f"ring entry {cmd_id} has {iov_cnt} iovecs in {length} bytes")
        size = len(mv)
        data = self.data_off
        if iov_cnt == 1:
            b, n = IOV.unpack_from(mv, off + IOV_OFF)
            if b < data or b + n > size:
                raise RingError(f"ring entry {cmd_id} has an iovec outside the data area ({b:#x}+{n:#x})")
            iovecs = [mv[b:b + n]]
            total = n
        else:
            # one unpack for every iovec: a 1 MiB command may bring 256 of them
            st = _IOVS.get(iov_cnt)
            if st is None:
                st = _IOVS[iov_cnt] = struct.Struct(f"<{2 * iov_cnt}Q")
            flat = st.unpack_from(mv, off + IOV_OFF) if iov_cnt else ()
            bases, lens = flat[0::2], flat[1::2]
            total = sum(lens)
            if iov_cnt and (min(bases) < data or max(b + n for b, n in zip(bases, lens)) > size):
                raise RingError(f"ring entry {cmd_id} has an iovec outside the data area")
            iovecs = [mv[b:b + n] for b, n in zip(bases, lens)]
        if cdb_off >= size:
            raise RingError(f"ring entry {cmd_id} has its CDB outside the mapping ({cdb_off:#x})")
        opcode = mv[cdb_off]
        n = cdb_length(opcode, mv[cdb_off + 7] if cdb_off + 7 < size else 0)
        # copied, not viewed: answers overwrite entries (and CDBs inside them) out of order
        return Command(cmd_id, bytes(mv[cdb_off:min(cdb_off + n, size)]), iovecs, total)

    def complete(self, cmd_id: int, status: int, sense: bytes = b"", read_len: int | None = None,
                 unknown_op: bool = False) -> None:
        """Write one answer into the slot at cmd_tail (past any PAD/TMR) and advance the tail.
        The doorbell is the caller's: one write per batch. Every slot stepped over lies
        between cmd_tail and what take() walked: anything else (a zero length, a tail off an
        entry boundary) is a corrupt ring, not a loop."""
        if self.pending <= 0:
            raise RingError("more answers than commands taken")
        mv = self.mv
        base = self.cmdr_off
        size = self.cmdr_size
        tail = U32.unpack_from(mv, MB_CMD_TAIL)[0]
        nxt = U32.unpack_from(mv, MB_CMD_HEAD)[0] % size if self.bound_by_head else self.next
        if tail >= size or tail & 7:
            raise RingError(f"cmd_tail {tail} is outside the ring or misaligned")
        left = (nxt - tail) % size          # bytes of taken entries from the tail on
        while True:
            off = base + tail
            len_op = U32.unpack_from(mv, off)[0]
            length = len_op & ~OP_MASK
            if length == 0 or length > left:
                raise RingError(f"ring entry at tail {tail} has length {length} ({left} bytes taken)")
            op = len_op & OP_MASK
            if op != OP_PAD and op != OP_TMR:
                if length < (ENTRY_MIN if sense else SENSE_OFF):    # or the answer spills over
                    raise RingError(f"ring entry at tail {tail} is {length} bytes, too short to answer")
                break
            left -= length
            tail = (tail + length) % size
        uflags = UFLAG_UNKNOWN_OP if unknown_op else 0
        if read_len is not None and self.read_len:
            uflags |= UFLAG_READ_LEN
        ANSWER.pack_into(mv, off + 4, cmd_id, mv[off + 6], uflags, status, read_len or 0)
        if sense:
            s = sense[:SENSE_SIZE]
            mv[off + SENSE_OFF:off + SENSE_OFF + len(s)] = s
        self.pending -= 1
        tail = (tail + length) % size
        left -= length
        # skip trailing PAD/TMR so the tail never rests before an entry nobody will answer
        while left:
            len_op = U32.unpack_from(mv, base + tail)[0]
            op = len_op & OP_MASK
            if op != OP_PAD and op != OP_TMR:
                break
            length = len_op & ~OP_MASK
            if length == 0 or length > left:
                raise RingError(f"ring entry at tail {tail} has length {length} ({left} bytes taken)")
            left -= length
            tail = (tail + length) % size
        U32.pack_into(mv, MB_CMD_TAIL, tail)
