"""MODE SENSE (6/10) and MODE SELECT (6/10): read-write error recovery, caching (WCE follows
the device's write cache), control and informational exceptions pages. Only WCE is
changeable; MODE SELECT accepts a page that changes nothing else."""

from __future__ import annotations

import struct

from lioctl.tcmu.scsi import sense as S
from lioctl.tcmu.scsi.sense import CheckCondition, illegal

PC_CURRENT, PC_CHANGEABLE, PC_DEFAULT, PC_SAVED = range(4)
PAGE_ORDER = (0x01, 0x08, 0x0A, 0x1C)


def _page(unit, code: int, pc: int) -> bytes:
    changeable = pc == PC_CHANGEABLE
    if code == 0x01:                      # read-write error recovery
        p = bytearray(12)
        p[0], p[1] = 0x01, 0x0A
        return bytes(p)
    if code == 0x08:                      # caching
        p = bytearray(20)
        p[0], p[1] = 0x08, 0x12
        if changeable:
            p[2] = 0x04
        else:
            wce = unit.write_cache if pc == PC_CURRENT else unit.write_cache_default
            p[2] = 0x04 if wce else 0x00
            p[12] = 0x20                  # DRA: read-ahead disabled
        return bytes(p)
    if code == 0x0A:                      # control
        p = bytearray(12)
        p[0], p[1] = 0x0A, 0x0A
        if not changeable:
            p[2] = 0x02                   # GLTSD
            p[3] = 0x10                   # unrestricted reordering allowed
            p[5] = 0x40                   # TAS
            p[8], p[9] = 0xFF, 0xFF       # busy timeout: unlimited
        return bytes(p)
    if code == 0x1C:                      # informational exceptions control
        p = bytearray(12)
        p[0], p[1] = 0x1C, 0x0A
        return bytes(p)
    raise illegal()


def sense(unit, cdb: bytes) -> bytes:
    ten = cdb[0] == 0x5A
    dbd = bool(cdb[1] & 0x08)
    llbaa = ten and bool(cdb[1] & 0x10)
    pc = cdb[2] >> 6
    code = cdb[2] & 0x3F
    subpage = cdb[3]
    if pc == PC_SAVED:
        raise CheckCondition(S.ILLEGAL_REQUEST, S.SAVING_PARAMETERS_NOT_SUPPORTED)
    if subpage not in (0x00, 0xFF):
        raise illegal()
    if code == 0x3F:
        pages = b"".join(_page(unit, c, pc) for c in PAGE_ORDER)
    else:
        pages = _page(unit, code, pc)
    dev_specific = 0x10 | (0x80 if unit.read_only else 0)    # DPOFUA, WP
    blocks = unit.num_blocks
    if dbd:
        desc = b""
    elif llbaa:
        desc = struct.pack(">QII", blocks, 0, unit.block_size)
    else:
        desc = struct.pack(">IB", min(blocks, 0xFFFFFFFF), 0) + unit.block_size.to_bytes(3, "big")
    if ten:
        body = desc + pages
        return struct.pack(">HBBBBH", 6 + len(body), 0, dev_specific, 0x01 if llbaa and desc else 0, 0,
                           len(desc)) + body
    body = desc + pages
    if 3 + len(body) > 255:
        raise illegal()
    return bytes((3 + len(body), 0, dev_specific, len(desc))) + body


def select(unit, cdb: bytes, data: bytes) -> None:
    """Apply a MODE SELECT parameter list; anything but WCE must equal the current value."""
    ten = cdb[0] == 0x55
    if cdb[1] & 0x01:                     # SP: nothing here can be saved
        raise illegal()
    if not data:
        return
    if ten:
        if len(data) < 8:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        bdl = struct.unpack_from(">H", data, 6)[0]
        pos = 8 + bdl
    else:
        if len(data) < 4:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        pos = 4 + data[3]
    if pos > len(data):
        raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
    new_wce = unit.write_cache
    while pos < len(data):
        if pos + 2 > len(data):
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        code = data[pos] & 0x3F
        if data[pos] & 0x40:              # sub-page format: none supported
            raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
        length = data[pos + 1] + 2
        given = data[pos:pos + length]
        if len(given) < length:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.PARAMETER_LIST_LENGTH_ERROR)
        try:
            current = _page(unit, code, PC_CURRENT)
            mask = _page(unit, code, PC_CHANGEABLE)
        except CheckCondition:
            raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
        if len(given) != len(current):
            raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
        for i in range(2, len(current)):
            if (given[i] ^ current[i]) & ~mask[i] & 0xFF:
                raise CheckCondition(S.ILLEGAL_REQUEST, S.INVALID_FIELD_IN_PARAMETER_LIST)
        if code == 0x08:
            new_wce = bool(given[2] & 0x04)
        pos += length
    unit.write_cache = new_wce
