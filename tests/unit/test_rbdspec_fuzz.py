"""Seeded, bounded fuzzer over lioctl_rbd's two text surfaces: the TCMU config string the
handler reads back from configfs (anyone with configfs write access wrote it) and the
`rbd:POOL/IMAGE[@SNAP]` argument an admin types. Each either parses to a spec that round-trips
through its own config string, with no value able to smuggle a separator, or is refused with
SpecError (one line, never another exception)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lioctl.tcmu.rbdspec import OPTIONS, SpecError, parse_config, parse_spec

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=3000,
                suppress_health_check=list(HealthCheck))
PIECES = st.sampled_from(["rbd", "vol1", "p", "/", "@", ";", "=", ",", ":", "\n", "\0", " ", "..",
                          "/etc/ceph/c.conf", "-1", "0", "7", "3601", "²", "١٢", "é", "x" * 300,
                          *OPTIONS, *(f"{o}=" for o in OPTIONS)])
NAMES = st.sampled_from(["rbd", "vol1", "img.v2", "a-b_c+d", "", "é", "x" * 300, "..", "a b"])
VALUES = st.one_of(st.lists(PIECES, max_size=3).map("".join), st.text(max_size=12),
                   st.sampled_from(["/etc/ceph/c.conf", "gw", "east", "7", "3600", "²", "١٢", " 7"]))
# near-valid: POOL/IMAGE[@SNAP] and options, with values (and sometimes names) drawn at random
shaped = st.builds(
    lambda pool, image, snap, opts: f"{pool}/{image}" + (f"@{snap}" if snap is not None else "")
    + "".join(f";{k}={v}" for k, v in opts),
    NAMES, NAMES, st.none() | NAMES,
    st.lists(st.tuples(st.sampled_from([*OPTIONS, *OPTIONS, "key", ""]), VALUES), max_size=4))
texts = st.one_of(shaped, shaped, st.lists(PIECES, max_size=12).map("".join), st.text(max_size=64))


def _check(spec) -> None:
    assert parse_config(spec.config()) == spec
    for v in (spec.pool, spec.image, spec.snap, spec.conf, spec.id, spec.keyring, spec.cluster):
        assert v is None or not any(c in v for c in ";\n\0"), spec
    assert spec.timeout is None or 0 < spec.timeout <= 3600


def test_fuzz_config_strings_and_specs(record_property):
    cases = {"total": 0, "parsed": 0}

    @FUZZ
    @given(text=texts)
    def one(text):
        cases["total"] += 1
        for parse in (parse_config, lambda t: parse_spec("rbd:" + t)):
            try:
                spec = parse(text)
            except SpecError as e:
                assert "\n" not in str(e).strip() or "\n" in text
                continue
            cases["parsed"] += 1
            _check(spec)

    one()
    print(f"\nrbd spec fuzzer: {cases['total']} strings, {cases['parsed']} parsed")
    record_property("rbdspec_fuzz_cases", cases["total"])
    assert cases["total"] >= 2000 and cases["parsed"] >= 50
