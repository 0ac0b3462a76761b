"""Decoding TCM-USER netlink events, and the family lookup against the host's own nlctrl."""

from __future__ import annotations

import struct

from lioctl.tcmu import netlink as nl


def _msg(family: int, cmd: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = nl.GENLHDR.pack(cmd, 2, 0) + b"".join(nl._attr(t, p) for t, p in attrs)
    return nl.NLMSGHDR.pack(nl.NLMSGHDR.size + len(body), family, 0, 0, 0) + body


def test_decode_added_and_reconfig_in_one_datagram():
    fam = 0x1F
    data = _msg(fam, nl.ADDED_DEVICE, [(nl.ATTR_DEVICE, b"tcm-user/3/d1/lioctl_file//srv/d1.img\0"),
                                       (nl.ATTR_MINOR, struct.pack("<I", 4)),
                                       (nl.ATTR_DEVICE_ID, struct.pack("<I", 9))])
    data += _msg(fam, nl.RECONFIG_DEVICE, [(nl.ATTR_DEVICE, b"tcm-user/3/d1/lioctl_file//srv/d1.img\0"),
                                          (nl.ATTR_MINOR, struct.pack("<I", 4)),
                                          (nl.ATTR_DEV_SIZE, struct.pack("<Q", 1 << 34)),
                                          (nl.ATTR_WRITECACHE, b"\x01")])
    data += _msg(0x10, 1, [])                     # another family: ignored
    added, reconf = nl.decode(data, fam)
    assert (added.name, added.device, added.minor, added.device_id) == \
        ("added", "tcm-user/3/d1/lioctl_file//srv/d1.img", 4, 9)
    assert (reconf.name, reconf.dev_size, reconf.writecache, reconf.dev_cfg) == ("reconfig", 1 << 34, 1, None)


def test_truncated_datagram_is_not_a_crash():
    data = _msg(0x1F, nl.REMOVED_DEVICE, [(nl.ATTR_MINOR, struct.pack("<I", 1))])
    assert nl.decode(data[:-3], 0x1F) == []
    assert nl.decode(b"\x01\x02", 0x1F) == []


def test_family_lookup_on_the_host():
    ev = nl.Events.__new__(nl.Events)
    import socket
    ev.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nl.NETLINK_GENERIC)
    try:
        ev.sock.bind((0, 0))
        fid, groups = ev._resolve("nlctrl")
        assert fid == nl.GENL_ID_CTRL and "notify" in groups
    finally:
        ev.sock.close()
