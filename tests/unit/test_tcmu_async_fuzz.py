"""Seeded, bounded fuzzer over the asynchronous dispatch (the lioctl_rbd path:
lioctl/tcmu/scsi/asynchronous.py), which the synchronous CDB fuzzer of test_tcmu_fuzz.py does
not reach. Each case queues a burst of hostile CDBs on a device whose backend completes on
foreign threads, in a random order, some with the errors librbd gives (timed out, shut down,
no such image, I/O error); the handler is pumped as the daemon pumps it. Every command is
answered exactly once, GOOD or CHECK CONDITION with valid fixed-format sense (never the
HARDWARE ERROR that marks a bug), no data beyond a command's transfer length, nothing
written outside the LUN, nothing left in flight and the ring never marked broken.

It prints the number of cases (pytest -s) and records it in the junit XML."""

from __future__ import annotations

import errno
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lioctl.tcmu.aio import CompletionQueue
from test_tcmu_async import FakeAio, pump
from test_tcmu_fuzz import DATA_OUT, FUZZ, SENSE_KEYS, Fenced, allowed_data_in, buffers, cdbs
from tcmu_sim import sim_device

LUN = 8 << 20
ERRORS = [errno.ETIMEDOUT, errno.ESHUTDOWN, errno.ENOENT, errno.EIO, errno.ENOTCONN]


class FencedAio(Fenced, FakeAio):
    """FakeAio fenced as test_tcmu_fuzz's Fenced RAM LUN (an access outside the LUN is
    recorded, not failed: an exception would become sense and hide the bug), failing some
    completions as librbd can."""

    def __init__(self):
        super().__init__(LUN)
        self.rng = random.Random(0)
        self.fail_rate = 0.0

    def release(self, order=None):
        self.fail_with = self.rng.choice(ERRORS) if self.rng.random() < self.fail_rate else 0
        return super().release(order)


@pytest.fixture
def device():
    null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    q = CompletionQueue()
    b = FencedAio()
    k, dev = sim_device(b, null, queue=q, write_cache=True)
    yield k, dev, b, q
    q.close()
    os.close(null)


def test_fuzz_asynchronous_dispatch(device, record_property):
    k, dev, b, q = device
    cases = {"commands": 0, "good": 0, "check": 0}
    seen = {}                                # each CDB as the ring handed it on: cut or padded
    take = dev.ring.take

    def recording_take():
        cmds = take()
        seen.update((c.cmd_id, c.cdb) for c in cmds)
        return cmds
    dev.ring.take = recording_take

    @FUZZ
    @given(burst=st.lists(st.tuples(cdbs, buffers, st.binary(max_size=64)), min_size=1, max_size=6),
           seed=st.integers(0, 1 << 16), fail_rate=st.sampled_from([0.0, 0.0, 0.3, 1.0]))
    def one(burst, seed, fail_rate):
        b.rng.seed(seed)
        b.fail_rate = fail_rate
        queued = {}
        for cdb, (kind, size), payload in burst:
            size = min(size, 16 * 1024)      # a burst must fit the simulated data area
            if kind == "exact":
                kind = "out"
            if cdb and cdb[0] in DATA_OUT and kind == "in":
                kind = "out"
            data_out = (payload * (size // max(len(payload), 1) + 1))[:size] if kind == "out" else b""
            if kind == "out" and len(data_out) < size:
                data_out = bytes(size)
            cid = k.queue(cdb, data_out=data_out, data_in=size if kind == "in" else 0)
            queued[cid] = cdb
        dev.drain()
        got = k.reap()
        for _ in range(64):                  # a FUA write chains a flush, UNMAP many discards
            if not b.held:
                break
            order = list(range(len(b.held)))
            b.rng.shuffle(order)
            b.release(order)
            pump(q)
            for cid, answer in k.reap().items():
                assert cid not in got, f"command {cid} answered twice"
                got[cid] = answer
        assert not b.held, "the backend was still asked for work after 64 rounds"
        assert set(got) == set(queued), f"unanswered: {[queued[c].hex() for c in set(queued) - set(got)]}"
        assert dev.broken is None and not b.outside, b.outside
        for cid, answer in got.items():
            cdb = seen.get(cid, queued[cid])
            cases["commands"] += 1
            if answer["status"] == 0:
                cases["good"] += 1
                extra = answer["data"][allowed_data_in(cdb):] if cdb else answer["data"]
                assert not any(extra), f"{cdb.hex()}: {len(extra)} bytes beyond the transfer length"
            else:
                cases["check"] += 1
                s = answer["sense"][:18]
                assert answer["status"] == 2 and answer["data"] == b"", (cdb.hex(), answer["status"])
                assert s[0] & 0x7F == 0x70 and s[7] == 0x0A, s.hex()
                assert s[2] & 0xF in SENSE_KEYS, f"{cdb.hex()}: sense {s.hex()}"

    one()
    print(f"\nasynchronous dispatch fuzzer: {cases['commands']} commands "
          f"({cases['good']} GOOD, {cases['check']} CHECK CONDITION)")
    record_property("async_fuzz_commands", cases["commands"])
    assert cases["commands"] >= 1500 and cases["good"] >= 150 and cases["check"] >= 150
