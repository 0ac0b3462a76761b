"""The medium commands over an asynchronous backend (see backends/base.py): READ, WRITE,
SYNCHRONIZE CACHE, UNMAP, WRITE SAME and COMPARE AND WRITE start backend operations and
answer when they complete, so a device keeps as many commands in flight as the kernel sends.

`submit()` checks the CDB like the synchronous emulation and either answers at once (a bad
CDB, a zero-length transfer) or returns None and later calls finish(Response) on the event
loop: every backend completion is re-posted to the loop (`post`), where the next step of a
multi-step command (a write's flush for FUA, the last of an UNMAP's discards) starts."""

from __future__ import annotations

import errno
import struct
import threading

from lioctl.tcmu.scsi import opcodes as op
from lioctl.tcmu.scsi import sense as S
from lioctl.tcmu.scsi.emulator import GOOD, Response, gather, synchronous_write, zero
from lioctl.tcmu.scsi.sense import CheckCondition, illegal

READS = (op.READ_6, op.READ_10, op.READ_12, op.READ_16)
WRITES = (op.WRITE_6, op.WRITE_10, op.WRITE_12, op.WRITE_16,
          op.WRITE_VERIFY_10, op.WRITE_VERIFY_12, op.WRITE_VERIFY_16)
# a cluster that does not answer within the backend's operation timeout (Ceph's EBLOCKLISTED
# is ESHUTDOWN)
UNREACHABLE = frozenset((errno.ETIMEDOUT, errno.ESHUTDOWN, errno.ECONNREFUSED, errno.ENOTCONN,
                         errno.EHOSTUNREACH))


def failure(ret: int, writing: bool) -> Response:
    """-errno of a backend operation as SCSI sense. A timed-out cluster is NOT READY (04/00):
    the Linux initiator fails the I/O rather than retrying it for ever. A medium being
    reopened (EAGAIN: an RBD client the cluster blocklisted) is becoming ready (04/01): the
    initiator retries after a delay. A medium that no longer exists (ENOMEDIUM: an image
    deleted while exported) is MEDIUM NOT PRESENT (3A/00)."""
    e = -ret
    if e == errno.EAGAIN:
        key, asc = S.NOT_READY, S.BECOMING_READY
    elif e == errno.ENOMEDIUM:
        key, asc = S.NOT_READY, S.MEDIUM_NOT_PRESENT
    elif e in UNREACHABLE:
        key, asc = S.NOT_READY, S.LOGICAL_UNIT_NOT_READY
    elif e in (errno.EROFS, errno.EPERM, errno.EACCES) and writing:
        key, asc = S.DATA_PROTECT, S.WRITE_PROTECTED
    elif e in (errno.ENOSPC, errno.EDQUOT) and writing:
        key, asc = S.DATA_PROTECT, S.SPACE_ALLOCATION_FAILED
    elif writing:
        key, asc = S.MEDIUM_ERROR, S.WRITE_ERROR
    else:
        key, asc = S.MEDIUM_ERROR, S.UNRECOVERED_READ_ERROR
    return Response(S.CHECK_CONDITION, S.fixed(key, asc))


class AsyncCommands:
    def __init__(self, emulator, queue):
        self.emu = emulator
        self.post, self.loop = queue.post, queue.loop
        t = {c: self.read for c in READS}
        t.update({c: self.write for c in WRITES})
        t.update({op.SYNCHRONIZE_CACHE_10: self.synchronize_cache, op.SYNCHRONIZE_CACHE_16: self.synchronize_cache,
                  op.UNMAP: self.unmap})
        b = emulator.backend
        if b.aio_write_zeroes is not None and b.aio_write_same is not None:
            t[op.WRITE_SAME_10] = t[op.WRITE_SAME_16] = self.write_same
        if b.aio_compare_and_write is not None:
            t[op.COMPARE_AND_WRITE] = self.compare_and_write
        self.table = t

    def _then(self, step, *args):
        """A done(ret, extra) for the backend that runs step(*args, ret, extra) on the loop: at
        once when it is called there (a backend reaped by the loop), else posted to it."""
        post, loop, ident = self.post, self.loop, threading.get_ident

        def done(ret, extra=None):
            if ident() == loop:
                step(*args, ret, extra)
            else:
                post(step, *args, ret, extra)
        return done

    def submit(self, cdb: bytes, iovecs, length: int, finish) -> Response | None:
        emu = self.emu
        try:
            ua = emu.take_unit_attention(cdb[0])
            if ua is not None:
                return ua
            return self.table[cdb[0]](cdb, iovecs, length, finish)
        except CheckCondition as e:
            return Response(S.CHECK_CONDITION, e.sense)
        except (IndexError, struct.error, ValueError):
            return Response(S.CHECK_CONDITION, S.fixed(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_CDB))
        except OSError as e:       # refused before it started (a closed image, no memory)
            return failure(-(e.errno or errno.EIO), cdb[0] not in READS)

    # READ
    def read(self, cdb, iovecs, length, finish):
        offset, want = self.emu.read_extent(cdb, length)
        if want == 0:
            return self.emu.good(cdb, iovecs, length)
        self.emu.backend.aio_readv(iovecs, offset, self._then(self._read_done, iovecs, want, finish))
        return None

    @staticmethod
    def _read_done(iovecs, want, finish, ret, extra):
        if ret < 0:
            finish(failure(ret, False))
            return
        if ret < want:
            zero(iovecs, ret)
        finish(GOOD)

    # WRITE (FUA, no write cache, WRITE AND VERIFY: then a flush)
    def write(self, cdb, iovecs, length, finish):
        emu = self.emu
        offset, want = emu.write_extent(cdb, length)
        if want == 0:
            return GOOD
        sync = bool(synchronous_write(emu.unit, cdb))
        emu.backend.aio_writev(iovecs, offset, self._then(self._written, sync, finish))
        return None

    def _written(self, sync, finish, ret, extra):
        if ret < 0:
            finish(failure(ret, True))
        elif sync:
            self._flush(finish)
        else:
            finish(GOOD)

    def _flush(self, finish):
        try:
            self.emu.backend.aio_flush(self._then(self._flushed, finish))
        except OSError as e:
            finish(failure(-(e.errno or errno.EIO), True))

    @staticmethod
    def _flushed(finish, ret, extra):
        finish(failure(ret, True) if ret < 0 else GOOD)

    # SYNCHRONIZE CACHE
    def synchronize_cache(self, cdb, iovecs, length, finish):
        if cdb[0] == op.SYNCHRONIZE_CACHE_10:
            lba, n = int.from_bytes(cdb[2:6], "big"), int.from_bytes(cdb[7:9], "big")
        else:
            lba, n = int.from_bytes(cdb[2:10], "big"), int.from_bytes(cdb[10:14], "big")
        self.emu._range(lba, n)
        if length:      # a buffer it does not fill goes back as zeros, as on the synchronous path
            zero(iovecs)
        self.emu.backend.aio_flush(self._then(self._flushed, finish))
        return None

    # UNMAP: every descriptor's discard at once; answered when the last one completes
    def unmap(self, cdb, iovecs, length, finish):
        ranges = self.emu.unmap_ranges(cdb, iovecs, length)
        if not ranges:
            return self.emu.good(cdb, iovecs, length)
        bs = self.emu.unit.block_size
        state = [len(ranges), None]     # operations left, first failure
        for lba, n in ranges:
            try:
                self.emu.backend.aio_discard(lba * bs, n * bs, self._then(self._part_done, state, finish))
            except OSError as e:
                self._part_done(state, finish, -(e.errno or errno.EIO), None)
        return None

    @staticmethod
    def _part_done(state, finish, ret, extra):
        if ret < 0 and state[1] is None:
            state[1] = failure(ret, True)
        state[0] -= 1
        if state[0] == 0:
            finish(state[1] or GOOD)

    # WRITE SAME: discard (UNMAP bit, zeros), write zeroes, or librbd's writesame
    def write_same(self, cdb, iovecs, length, finish):
        emu = self.emu
        lba, n, unmap, block = emu.write_same_args(cdb, iovecs)
        bs = emu.unit.block_size
        offset, total = lba * bs, n * bs
        done = self._then(self._written, not emu.unit.write_cache, finish)
        b = emu.backend
        if not any(block):
            if unmap and emu.unit.thin:
                b.aio_discard(offset, total, done)
            else:
                b.aio_write_zeroes(offset, total, done)
        else:
            b.aio_write_same(offset, total, bytes(block), done)
        return None

    # COMPARE AND WRITE: one atomic backend operation (librbd: an OSD-side compare-extent and
    # write, atomic against every client of the image, not only this handler)
    def compare_and_write(self, cdb, iovecs, length, finish):
        emu = self.emu
        lba, n = int.from_bytes(cdb[2:10], "big"), cdb[13]
        if n == 0:
            return emu.good(cdb, iovecs, length)
        bs = emu.unit.block_size
        if n * bs > emu.backend.compare_and_write_max:
            raise illegal()         # the block limits VPD page offers no more
        emu._range(lba, n)
        emu._writable()
        data = gather(iovecs, 2 * n * bs)
        if len(data) < 2 * n * bs:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        emu.backend.aio_compare_and_write(lba * bs, data[:n * bs], data[n * bs:],
                                          self._then(self._compared, finish))
        return None

    def _compared(self, finish, ret, extra):
        if ret == -errno.EILSEQ:
            finish(Response(S.CHECK_CONDITION, S.fixed(S.MISCOMPARE, S.MISCOMPARE_DURING_VERIFY,
                                                         info=extra or 0)))
        elif ret < 0:
            finish(failure(ret, True))
        elif not self.emu.unit.write_cache:
            self._flush(finish)
        else:
            finish(GOOD)
