"""INQUIRY: standard data and the VPD pages 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2, shaped like
the kernel's own backstores answer them (target_core_spc.c) so a LUN looks the same to an
initiator whichever backstore serves it."""

from __future__ import annotations

import struct

from lioctl.tcmu.scsi.sense import illegal

SUPPORTED_VPD = (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2)
LIO_COMPANY_ID = 0x001405  # OpenFabrics IEEE company id, as LIO puts in its NAA designator


def _pad(s: str, n: int) -> bytes:
    return s.encode("ascii", "replace")[:n].ljust(n, b" ")


def standard(unit) -> bytes:
    b = bytearray(96)
    b[0] = 0x00                 # connected direct-access block device
    b[2] = 0x06                 # SPC-4
    b[3] = 0x12                 # HiSup, response data format 2
    b[4] = len(b) - 5
    b[7] = 0x02                 # CmdQue
    b[8:16] = _pad(unit.vendor, 8)
    b[16:32] = _pad(unit.product, 16)
    b[32:36] = _pad(unit.revision, 4)
    struct.pack_into(">HHH", b, 58, 0x00A0, 0x0460, 0x04C0)  # SAM-5, SPC-4, SBC-3
    return bytes(b)


def naa_designator(serial: str) -> bytes:
    """NAA IEEE Registered Extended: LIO's company id, then up to 25 hex digits of the unit
    serial (spc_gen_naa_6h_vendor_specific), so the identifier matches LIO's for the same
    vpd_unit_serial."""
    b = bytearray(16)
    b[0] = 0x60 | ((LIO_COMPANY_ID >> 20) & 0xF)
    b[1] = (LIO_COMPANY_ID >> 12) & 0xFF
    b[2] = (LIO_COMPANY_ID >> 4) & 0xFF
    b[3] = (LIO_COMPANY_ID & 0xF) << 4
    off, high = 3, False
    for ch in serial:
        if off >= 16:
            break
        try:
            v = int(ch, 16)
        except ValueError:
            continue
        if not high:
            b[off] |= v
            off += 1
            high = True
        else:
            b[off] = v << 4
            high = False
    return bytes(b)


def _page(code: int, body: bytes) -> bytes:
    return bytes((0x00, code)) + struct.pack(">H", len(body)) + body


def vpd(unit, code: int) -> bytes:
    if code == 0x00:
        return _page(0x00, bytes(SUPPORTED_VPD))
    if code == 0x80:
        return _page(0x80, unit.serial.encode("ascii", "replace"))
    if code == 0x83:
        return _page(0x83, _designators(unit))
    if code == 0xB0:
        return _page(0xB0, _block_limits(unit))
    if code == 0xB1:
        body = bytearray(0x3C)
        body[1] = 0x01 if unit.nonrotational else 0x00   # medium rotation rate
        return _page(0xB1, bytes(body))
    if code == 0xB2:
        body = bytearray(4)
        if unit.thin:
            body[1] = 0x80 | 0x40 | 0x20 | 0x04   # LBPU, LBPWS, LBPWS10, LBPRZ
            body[2] = 0x02                        # thin provisioned
        return _page(0xB2, bytes(body))
    raise illegal()


def _designators(unit) -> bytes:
    out = bytearray()
    if unit.serial:
        out += bytes((0x01, 0x03, 0x00, 0x10)) + naa_designator(unit.serial)
    # T10 vendor ID: vendor, "product:serial", NUL. Its length is one byte: a long unit serial
    # (configfs takes up to 254 characters) is cut so the designator stays within 255 bytes
    # and ends in its NUL. The kernel's spc_emulate_evpd_83 writes it whole and lets the
    # length byte wrap (6.1 in the guest: a 247-character serial gave length 0x04, so an
    # initiator walking the page lands mid-string); a valid, shortened designator is better.
    ident = (_pad(unit.vendor, 8) + f"{unit.product.strip()}:{unit.serial}".encode("ascii", "replace"))[:254] + b"\0"
    out += bytes((0x02, 0x01, 0x00, len(ident))) + ident
    return bytes(out)


def _block_limits(unit) -> bytes:
    body = bytearray(0x3C)
    body[0] = 0x01                                    # WSNZ: a zero-length WRITE SAME is refused,
                                                      # as by the kernel's backstores (sbc_setup_write_same)
    body[1] = unit.max_compare_write_blocks           # max COMPARE AND WRITE length (blocks)
    struct.pack_into(">H", body, 2, 1)                # optimal transfer length granularity
    struct.pack_into(">I", body, 4, unit.max_sectors)  # maximum transfer length
    struct.pack_into(">I", body, 8, unit.optimal_transfer_blocks or unit.max_sectors)  # optimal
    if unit.thin:
        struct.pack_into(">I", body, 16, unit.max_unmap_blocks)
        struct.pack_into(">I", body, 20, unit.max_unmap_descriptors)
        struct.pack_into(">I", body, 24, 1)           # unmap granularity
    struct.pack_into(">Q", body, 32, unit.max_write_same_blocks)
    return bytes(body)


def answer(unit, cdb: bytes) -> bytes:
    evpd = cdb[1] & 0x01
    page = cdb[2]
    if cdb[1] & 0x02:            # CmdDt is obsolete
        raise illegal()
    if not evpd:
        if page:
            raise illegal()
        return standard(unit)
    return vpd(unit, page)
