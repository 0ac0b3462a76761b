"""WWN normalisation, judged against rtslib-fb's normalize_wwn (what targetcli accepts)."""

from __future__ import annotations

import pytest

from lioctl import wwn
from lioctl.errors import LioError

rtslib_utils = pytest.importorskip("rtslib_fb.utils", reason="rtslib-fb (and libudev) not installed")

AGREED = [
    (("iqn",), "iqn.2003-01.org.example:t1"),
    (("iqn",), "IQN.2003-01.ORG.Example:T1"),
    (("iqn",), "  iqn.2003-01.org.example:t1 "),
    (("iqn",), "iqn.1994-05.com.redhat:a1b2c3"),
    (("iqn", "naa", "eui"), "naa.5001405000000abc"),
    (("iqn", "naa", "eui"), "eui.0014050000000abc"),
    (("naa",), "naa.5001405000000ABC"),
    (("naa",), "50:01:40:50:00:00:0a:bc"),
    (("naa",), "0x5001405000000abc"),
    (("naa",), "5001405000000abc"),
    (("eui",), "eui.0014050000000abc"),
    (("ib",), "fe80:0000:0000:0000:0002:c903:0010:b6f1"),
    (("ib",), "0xfe800000000000000002c9030010b6f1"),
    (("ib", "naa", "free"), "ib.fe800000000000000002c9030010b6f1"),
]

BOTH_REJECT = [
    (("iqn",), "iqn.2003-01.org.example:a b"),
    (("iqn",), "iqn.2003-01.org.ex_ample:a"),
    (("iqn",), "iqn.bogus"),
    (("naa",), "naa.12"),
    (("naa",), "naa.7001405000000abc"),  # NAA type 7 does not exist
    (("eui",), "eui.00140500000abc"),
    (("ib",), "ib.1234"),
    (("iqn", "naa", "eui"), "not-an-iqn"),
]


@pytest.mark.parametrize("types,text", AGREED, ids=[t for _, t in AGREED])
def test_normalised_exactly_as_rtslib(types, text):
    assert wwn.normalize(types, text) == rtslib_utils.normalize_wwn(types, text)


@pytest.mark.parametrize("types,text", BOTH_REJECT, ids=[t for _, t in BOTH_REJECT])
def test_rejected_like_rtslib_with_a_message_naming_the_input(types, text):
    with pytest.raises(rtslib_utils.RTSLibError):
        rtslib_utils.normalize_wwn(types, text)
    with pytest.raises(LioError, match="is not valid as"):
        wwn.normalize(types, text)


@pytest.mark.parametrize("text", [
    "iqn.2003-13.org.example:t1",  # month 13
    "iqn.2003-00.org.example:t1",  # month 0
    "iqn.2003-01.-org.example:t1",  # label starting with '-'
    "iqn.2003-01.org.example:t1/x",  # '/' would escape the configfs directory
])
def test_iqn_stricter_than_rtslib_per_rfc3720(text):
    """rtslib's IQN regex lets these through; the kernel or RFC 3720 would not."""
    with pytest.raises(LioError):
        wwn.normalize(("iqn",), text)


@pytest.mark.parametrize("types,text", [(("naa",), "5001-4050-0000-0abc"),
                                        (("eui",), "00:14:05:00:00:00:0a:bc")])
def test_separators_in_naa_and_eui_like_rtslib(types, text):
    assert wwn.normalize(types, text) == rtslib_utils.normalize_wwn(types, text)


@pytest.mark.parametrize("kind", ["iqn", "naa", "eui"])
def test_generated_wwns_are_valid_and_unique(kind):
    made = {wwn.generate(kind) for _ in range(50)}
    assert len(made) == 50
    for w in made:
        assert wwn.normalize((kind,), w) == (w, kind)
        assert rtslib_utils.normalize_wwn((kind,), w) == (w, kind)


def test_iqn_label_makes_hostnames_usable():
    assert wwn.iqn_label("My_Host..Example--1.") == "my-host.example-1"
    iqn = f"iqn.2003-01.org.{wwn.iqn_label('Web_Server 01')}:{wwn.iqn_suffix('Disk #1')}"
    assert wwn.normalize(("iqn",), iqn)[0] == iqn
