"""Corruptions of a simulated ring's mailbox and entries, for the ring fuzzers
(test_tcmu_fuzz.py over the Python path, test_tcmu_fastpath.py over the native one), and the
one property both check: an answer changes nothing but answer fields and the tail."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from lioctl.tcmu import ring as R

U32 = st.integers(0, (1 << 32) - 1)
mutations = st.lists(st.one_of(
    st.tuples(st.just("head"), st.one_of(U32, st.integers(0, 1023).map(lambda v: v & ~7))),
    st.tuples(st.just("tail"), st.one_of(U32, st.integers(0, 1023).map(lambda v: v & ~7))),
    st.tuples(st.just("len_op"), st.integers(0, 7), U32),              # (entry index, value)
    st.tuples(st.just("iov_cnt"), st.integers(0, 7), st.one_of(st.integers(0, 4), U32)),
    st.tuples(st.just("cdb_off"), st.integers(0, 7), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.just("iov"), st.integers(0, 7), st.integers(0, (1 << 64) - 1), st.integers(0, 1 << 20)),
    st.tuples(st.just("byte"), st.integers(0, 1023), st.integers(0, 255)),
), min_size=1, max_size=4)


def corrupt(buf, entries: list[int], muts) -> None:
    """Apply mutations to a ring whose entries start at these ring offsets."""
    for m in muts:
        if m[0] in ("head", "tail"):
            struct.pack_into("<I", buf, R.MB_CMD_HEAD if m[0] == "head" else R.MB_CMD_TAIL, m[1])
            continue
        if m[0] == "byte":
            buf[R.MAILBOX_SIZE + m[1]] = m[2]
            continue
        off = R.MAILBOX_SIZE + entries[m[1] % len(entries)]
        if m[0] == "len_op":
            struct.pack_into("<I", buf, off, m[2])
        elif m[0] == "iov_cnt":
            struct.pack_into("<I", buf, off + 8, m[2])
        elif m[0] == "cdb_off":
            struct.pack_into("<Q", buf, off + 24, m[2])
        else:
            struct.pack_into("<QQ", buf, off + 48, m[2], m[3])


def assert_only_answers_changed(control: bytes, buf, entries: list[int], who: str = "") -> None:
    """Answers go into the ring (status, sense, cmd_id, the tail), data never does: what else
    changed in the mailbox and ring since `control` is at most those fields."""
    for i in (i for i in range(len(control)) if control[i] != buf[i]):
        if i < R.MAILBOX_SIZE:
            assert R.MB_CMD_TAIL <= i < R.MB_CMD_TAIL + 4, f"{who}mailbox byte {i} changed"
        else:
            slot = i - R.MAILBOX_SIZE
            assert any(e + 4 <= slot < e + R.ENTRY_MIN for e in entries), f"{who}ring byte {slot} changed"
