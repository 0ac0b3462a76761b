"""The bundled handler against commands an initiator shapes to hurt it, side by side with the
kernel's own fileio backstore (the oracle), both behind tcm_loop, sent with sg_raw: transfer
lengths that disagree with the data buffer, and a data-in buffer on a command that returns
no data (data-area blocks are reused across commands and devices without being zeroed)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess

import pytest

from initiator import wait_for

CORE = "/sys/kernel/config/target/core"
PATTERN = b"\x5a" * (1 << 20)


def ok(p):
    assert p.returncode == 0, f"{p.args}: {p.stderr}"
    return p


def sg_of(so: str) -> str:
    serial = open(f"{so}/wwn/vpd_unit_serial").read().split(":")[1].strip()

    def find():
        for d in os.listdir("/sys/block"):
            try:
                if serial.encode() in open(f"/sys/block/{d}/device/vpd_pg80", "rb").read():
                    return "/dev/" + os.listdir(f"/sys/block/{d}/device/scsi_generic")[0]
            except OSError:
                continue
    return wait_for(find, f"the SCSI generic node of {so}")


def sg_raw(dev: str, cdb: str, *, data_in: int = 0, data_out: int = 0, tmp) -> dict:
    """status, sense key/asc/ascq and the data-in bytes the initiator received."""
    out = tmp / "in.bin"
    src = tmp / "out.bin"
    src.write_bytes(PATTERN[:data_out])
    args = ["sg_raw", "-v"]
    if data_in:
        args += ["-r", str(data_in), "-o", str(out)]
    if data_out:
        args += ["-s", str(data_out), "-i", str(src)]
    if out.exists():
        out.unlink()
    p = subprocess.run(args + [dev] + cdb.split(), capture_output=True, text=True, timeout=60)
    text = p.stdout + p.stderr
    status = re.search(r"SCSI Status: (\w[\w ]*?)\s*$", text, re.M).group(1)
    sense = re.search(r"sb_len=\d+, embedded_len=\d+\s*\n\s+((?:[0-9a-f]{2}\s+)+)", text)
    key = None
    if sense:
        b = bytes.fromhex("".join(sense.group(1).split()) + "00" * 14)
        key = (b[2] & 0xF, b[12], b[13])
    return {"status": status, "sense": key, "data": out.read_bytes() if out.exists() else b""}


@pytest.fixture
def luns(lioctl, tmp_path):
    """(fileio sg node, user sg node), both 512-byte blocks, 16 MiB, one tcm_loop target."""
    ok(lioctl("/backstores/fileio", "create", "ref", tmp_path / "ref.img", "16M"))
    ok(lioctl("/backstores/user", "create", "u1", "16M", tmp_path / "u1.img"))
    wwn = json.loads(ok(lioctl("/loopback", "create", "--json")).stdout)["wwn"]
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/fileio/ref"))
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/user/u1"))
    devs = (sg_of(glob.glob(f"{CORE}/fileio_*/ref")[0]), sg_of(glob.glob(f"{CORE}/user_*/u1")[0]))
    for d in devs:      # the LUN-added unit attention, once
        subprocess.run(["sg_turs", d], capture_output=True)
    yield devs
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", "u1"))
    ok(lioctl("/backstores/fileio", "delete", "ref"))


def both(luns, tmp_path, cdb, **kw):
    return [sg_raw(d, cdb, tmp=tmp_path, **kw) for d in luns]


def test_writes_with_mismatched_data_out_are_refused_like_fileio(luns, tmp_path):
    for blocks, data_out in ((8, 512), (1, 1024)):
        ref, user = both(luns, tmp_path, f"2a 00 00 00 00 10 00 00 {blocks:02x} 00", data_out=data_out)
        assert ref == user == {"status": "Check Condition", "sense": (5, 0x0E, 0x03), "data": b""}
    # and nothing was written
    ref, user = both(luns, tmp_path, "28 00 00 00 00 10 00 00 08 00", data_in=4096)
    assert ref == user == {"status": "Good", "sense": None, "data": bytes(4096)}


def test_no_stale_data_area_bytes_reach_an_initiator(luns, tmp_path):
    ref_dev, user_dev = luns
    # fill data-area blocks with a pattern: a 1 MiB write, then read it back
    for d in luns:
        assert sg_raw(d, "2a 00 00 00 00 00 00 08 00 00", data_out=1 << 20, tmp=tmp_path)["status"] == "Good"
        assert sg_raw(d, "28 00 00 00 00 00 00 08 00 00", data_in=1 << 20, tmp=tmp_path)["data"] == PATTERN
    # TEST UNIT READY with a 4 KiB data-in buffer: fileio sends nothing; the handler cannot
    # (the kernel ignores a read_len of 0), so it sends zeros, never the pattern
    ref, user = both(luns, tmp_path, "00 00 00 00 00 00", data_in=4096)
    assert ref == {"status": "Good", "sense": None, "data": b""}
    assert user["status"] == "Good" and user["data"] in (b"", bytes(4096))
    # a READ into a longer buffer (whose tail would be stale): fileio refuses it, so does the handler
    for cdb, data_in in (("28 00 00 00 00 08 00 00 01 00", 8192), ("28 00 00 00 00 08 00 00 00 00", 4096)):
        ref, user = both(luns, tmp_path, cdb, data_in=data_in)
        assert ref == user == {"status": "Check Condition", "sense": (2, 0x08, 0x00), "data": b""}
    # into a shorter buffer: refused too
    ref, user = both(luns, tmp_path, "28 00 00 00 00 00 00 00 08 00", data_in=512)
    assert ref == user == {"status": "Check Condition", "sense": (5, 0x24, 0x00), "data": b""}
