"""A corrupt ring fails its own device only: the handler logs one line, stops serving that
device and keeps serving the others (one event loop serves them all, so a walk that never
ends would hang every LUN and grow without bound)."""

from __future__ import annotations

import logging
import os
import signal
import struct

import pytest

from lioctl.tcmu import daemon as D
from lioctl.tcmu import ring as R
from lioctl.tcmu.backends.ram import RamBackend
from tcmu_sim import sim_device

READ_8 = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0)


@pytest.fixture
def handler(monkeypatch):
    monkeypatch.setenv("LIOCTL_TCMU_IO_THREADS", "0")
    monkeypatch.setenv("LIOCTL_TCMU_DISK_THREADS", "0")
    d = D.Daemon()
    devs = []
    for minor in (0, 1):
        r, w = os.pipe()
        k, dev = sim_device(RamBackend(1 << 20), w)
        dev.minor, dev.hba, dev.name, dev.backend = minor, "user_1", f"d{minor}", dev.emulator.backend
        dev.unit, dev.subtype, dev.config, dev.started = dev.emulator.unit, "lioctl_ram", f"d{minor}", 0
        d.devices[minor] = dev
        d.watch(dev.fd, dev, edge=True)
        devs.append((k, dev, r))
    yield d, devs
    for _, dev, r in devs:
        os.close(r)
        if dev.fd >= 0:
            os.close(dev.fd)
    d.ep.close()


@pytest.fixture
def bounded():
    """A hang becomes a test failure rather than a stuck test run."""
    def expire(*_):
        raise TimeoutError("the ring walk did not end")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 5)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def corrupt(k, how: str) -> None:
    first = k.queue(READ_8, data_in=4096)
    size = struct.unpack_from("<I", k.buf, 128)[0] & ~7
    k.queue(READ_8, data_in=4096)
    if how == "head inside an entry":
        struct.pack_into("<I", k.buf, R.MB_CMD_HEAD, size + 8)
    elif how == "iovec into the ring":
        struct.pack_into("<Q", k.buf, 128 + 48, 128)     # a read's data over the entries
    elif how == "tail inside an entry":
        struct.pack_into("<I", k.buf, R.MB_CMD_TAIL, 16)  # reads as a PAD of length 0
    else:
        raise AssertionError(how)
    return first


@pytest.mark.parametrize("how", ["head inside an entry", "iovec into the ring", "tail inside an entry"])
def test_a_corrupt_ring_fails_that_device_and_the_other_is_served(handler, bounded, how, caplog):
    d, ((k0, dev0, _), (k1, dev1, _)) = handler
    corrupt(k0, how)
    with caplog.at_level(logging.ERROR, "lioctl.tcmu"):
        d._service(dev0)
    assert 0 not in d.devices and dev0.fd == -1
    assert d.failed["user_1/d0"].startswith("corrupt command ring: ")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("user_1/d0: corrupt command ring") \
        and errors[0].endswith("; no longer served")
    assert [f["device"] for f in d.status()["failed"]] == ["user_1/d0"]
    # the other device goes on
    cid = k1.queue(READ_8, data_in=4096)
    d._service(dev1)
    assert k1.reap()[cid]["status"] == 0 and 1 in d.devices


def test_a_rescan_claims_a_failed_device_again_with_a_reset_ring(handler, monkeypatch):
    """SIGHUP's rescan: a device failed for a corrupt ring must not resume from its stale tail."""
    d, ((k0, dev0, _), _) = handler
    corrupt(k0, "head inside an entry")
    d._service(dev0)
    assert "user_1/d0" in d.failed
    opened = []

    class Reopened:
        def __init__(self, minor, name):
            self.minor, self.key, self.fd = minor, "user_1/d0", -1
            self.subtype = self.config = "x"

        def open_medium(self):
            pass

        def claim(self, restart):
            opened.append(restart)
            raise OSError(5, "stop here")

    monkeypatch.setattr(D, "Device", Reopened)
    monkeypatch.setattr(D, "scan", lambda: [(0, "tcm-user/1/d0/lioctl_ram/d0"), (1, "tcm-user/1/d1/lioctl_ram/d1")])
    d.rescan(restart=False)
    assert opened == [True]


def test_a_medium_that_opens_slowly_is_opened_off_the_loop_and_served_once_open(handler, monkeypatch):
    """An RBD image's open (a cluster connect: seconds, or its timeout) runs on a thread of its
    own: the loop serves the other devices meanwhile, and the device is claimed and in the
    status only once open; one removed while opening is closed when its open ends."""
    import select
    import threading

    from lioctl.tcmu import backends
    d, ((k0, dev0, _), _) = handler
    gate = threading.Event()
    claimed, closed, threads = [], [], []

    class SlowMedium(RamBackend):
        opens_slowly = True

    class Opening:
        def __init__(self, minor, name):
            self.minor, self.key, self.subtype, self.config = minor, f"user_1/s{minor}", "lioctl_rbd", "p/i"
            self.broken = None
            r, self.fd = os.pipe()
            os.close(r)

        def open_medium(self):
            threads.append(threading.current_thread())
            assert gate.wait(5)
            self.backend = SlowMedium(1 << 20)
            self.unit = dev0.unit

        def claim(self, restart):
            claimed.append((self.minor, restart))

        def drain(self):
            return 0

        def status(self):
            return {}

        def close(self):
            closed.append(self.minor)
            os.close(self.fd)

    monkeypatch.setitem(backends.BACKENDS, "lioctl_rbd", SlowMedium)
    monkeypatch.setattr(D, "Device", Opening)
    d.attach(5, "tcm-user/1/s5/lioctl_rbd/p/i", restart=True)
    d.attach(6, "tcm-user/1/s6/lioctl_rbd/p/i", restart=False)
    assert d.status()["opening"] == ["user_1/s5", "user_1/s6"] and 5 not in d.devices
    cid = k0.queue(READ_8, data_in=4096)           # the others are served meanwhile
    d._service(dev0)
    assert k0.reap()[cid]["status"] == 0
    d.detach(6)                                     # removed while its medium opens
    gate.set()
    for t in threads:
        t.join(5)
    assert select.select([d.completions.fd], [], [], 5)[0]
    d._completions()
    assert all(t is not threading.main_thread() for t in threads)
    assert claimed == [(5, True)] and 5 in d.devices and d.status()["opening"] == []
    assert closed == [6] and 6 not in d.devices
    d.detach(5)
    assert closed == [6, 5]
