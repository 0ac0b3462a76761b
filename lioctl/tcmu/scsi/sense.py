"""Status codes and fixed-format sense data (SPC-4 4.5.3)."""

from __future__ import annotations

GOOD = 0x00
CHECK_CONDITION = 0x02  # the SAM value; scsi.h's CHECK_CONDITION (0x01) is shifted
BUSY = 0x08
TASK_SET_FULL = 0x28

NO_SENSE = 0x0
NOT_READY = 0x2
MEDIUM_ERROR = 0x3
HARDWARE_ERROR = 0x4
ILLEGAL_REQUEST = 0x5
UNIT_ATTENTION = 0x6
DATA_PROTECT = 0x7
ABORTED_COMMAND = 0xB
MISCOMPARE = 0xE

# (ASC, ASCQ)
INVALID_OPCODE = (0x20, 0x00)
LBA_OUT_OF_RANGE = (0x21, 0x00)
INVALID_FIELD_IN_CDB = (0x24, 0x00)
INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
INVALID_FIELD_IN_COMMAND_IU = (0x0E, 0x03)   # the kernel's answer to a WRITE's data-out mismatch
PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00)
WRITE_ERROR = (0x0C, 0x00)
LOGICAL_UNIT_COMMUNICATION_FAILURE = (0x08, 0x00)
UNRECOVERED_READ_ERROR = (0x11, 0x00)
LOGICAL_UNIT_NOT_READY = (0x04, 0x00)
BECOMING_READY = (0x04, 0x01)       # the Linux initiator retries after a delay
MEDIUM_NOT_PRESENT = (0x3A, 0x00)
CAPACITY_DATA_HAS_CHANGED = (0x2A, 0x09)
MISCOMPARE_DURING_VERIFY = (0x1D, 0x00)
SAVING_PARAMETERS_NOT_SUPPORTED = (0x39, 0x00)
SPACE_ALLOCATION_FAILED = (0x27, 0x07)
WRITE_PROTECTED = (0x27, 0x00)

FIXED_SENSE_LEN = 18


def fixed(key: int, asc_ascq: tuple[int, int], info: int | None = None) -> bytes:
    """Fixed-format sense: response code 0x70, key in byte 2, INFORMATION in 3-6 when valid,
    additional length 10, ASC/ASCQ in bytes 12/13."""
    b = bytearray(FIXED_SENSE_LEN)
    b[0] = 0x70
    b[2] = key & 0xF
    if info is not None:
        b[0] |= 0x80
        b[3:7] = (info & 0xFFFFFFFF).to_bytes(4, "big")
    b[7] = 0x0A
    b[12], b[13] = asc_ascq
    return bytes(b)


class CheckCondition(Exception):
    """Raised anywhere in the emulation; becomes CHECK CONDITION with this sense."""

    def __init__(self, key: int, asc_ascq: tuple[int, int], info: int | None = None):
        super().__init__(f"sense key {key:#x} asc/ascq {asc_ascq[0]:#04x}/{asc_ascq[1]:#04x}")
        self.key = key
        self.asc_ascq = asc_ascq
        self.info = info

    @property
    def sense(self) -> bytes:
        return fixed(self.key, self.asc_ascq, self.info)


def illegal(asc_ascq=INVALID_FIELD_IN_CDB) -> CheckCondition:
    return CheckCondition(ILLEGAL_REQUEST, asc_ascq)
