"""WWN rules (iqn/naa/eui/ib/free), normalisation the way rtslib does it, and generation."""

from __future__ import annotations

import os
import re

from lioctl.errors import LioError

IQN_RE = re.compile(r"^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?"
                    r"(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:_-]+)?$")
# rtslib's own (looser) IQN test; we also enforce RFC 3720 character rules above.
TESTS = {
    "iqn": lambda w: bool(IQN_RE.match(w)) and len(w) <= 223,
    "naa": lambda w: bool(re.match(r"^naa\.[125c-f][0-9a-f]{15}$", w)
                          or re.match(r"^naa\.6[0-9a-f]{31}$", w)),
    "eui": lambda w: bool(re.match(r"^eui\.[0-9a-f]{16}$", w)),
    "ib": lambda w: bool(re.match(r"^ib\.[0-9a-f]{32}$", w)),
    # a configfs directory name: printable ASCII without spaces (a newline or NUL in it made
    # multi-line messages and unreadable listings), no '/', no leading '.'
    "free": lambda w: bool(re.fullmatch(r"[!-~]{1,223}", w)) and "/" not in w and not w.startswith("."),
}


def cleanse(wwn_type: str, wwn: str) -> str:
    """rtslib's _cleanse_wwn: lower-case; for naa/eui/ib drop a 0x prefix and every ':' and
    '-' (FC's 50:01:40:..., IB's colon-hex GIDs), and add the type prefix when missing."""
    wwn = wwn.strip()
    if wwn_type in ("iqn", "naa", "eui", "ib"):
        wwn = wwn.lower()
    if wwn_type in ("naa", "eui", "ib"):
        wwn = wwn.removeprefix("0x").replace("-", "").replace(":", "")
        if not wwn.startswith(("naa.", "eui.", "ib.")):
            wwn = f"{wwn_type}.{wwn}"
    return wwn


def normalize(wwn_types: tuple[str, ...], wwn: str, what: str = "WWN") -> tuple[str, str]:
    """Return (normalised wwn, its type) or raise a one-line error naming the accepted types."""
    for t in wwn_types:
        clean = cleanse(t, wwn)
        if TESTS[t](clean):
            return clean, t
    shown = (t if t != "free" else "a plain name (printable ASCII, no space or '/')" for t in wwn_types)
    raise LioError(f"{what} {wwn!r} is not valid as {' or '.join(shown)}"
                   + (" (e.g. iqn.2003-01.org.example:name)" if "iqn" in wwn_types else ""))


# `wwn=from:NAME`: an identity derived from a name the orchestrator owns, the same on every
# host and every creation, so a volume moved to another gateway shows initiators the same unit
# serial (VPD 0x80, and the NAA designator of VPD 0x83 the kernel builds from it) and the same
# target WWN. A UUID-5 of NAME in lioctl's own namespace (uuid5(NAMESPACE_URL, "urn:lioctl:identity")).
FROM = "from:"
IDENTITY_NAMESPACE = "f7a7d74e-6db1-5d72-9b6e-1afdbd8580dc"


def derive(wwn_type: str, name: str) -> str:
    import uuid     # here, as in generate
    if not name or any(c in name for c in "\n\0"):
        raise LioError(f"{FROM}NAME wants a name without newline or NUL, got {name!r}")
    u = uuid.uuid5(uuid.UUID(IDENTITY_NAMESPACE), name)
    h = u.hex
    if wwn_type == "iqn":
        return f"iqn.2003-01.org.linux-iscsi.lioctl:id.{h[:16]}"
    if wwn_type == "naa":
        return "naa.5001405" + h[:9]
    if wwn_type == "eui":
        return "eui.001405" + h[:10]
    if wwn_type == "unit_serial":
        return str(u)
    raise LioError(f"cannot derive a WWN of type {wwn_type}")


def unit_serial(wwn: str | None) -> str:
    """A storage object's unit serial: as given, derived from `from:NAME`, or a new random one."""
    if wwn and wwn.startswith(FROM):
        return derive("unit_serial", wwn[len(FROM):])
    return wwn or generate("unit_serial")


def generate(wwn_type: str) -> str:
    import uuid     # here, not at the top: uuid pulls in platform and socket on every start
    u = uuid.uuid4().hex
    if wwn_type == "iqn":
        host = iqn_label(os.uname().nodename) or "localhost"
        return f"iqn.2003-01.org.linux-iscsi.{host}.x8664:sn.{u[:12]}"
    if wwn_type == "naa":
        return "naa.5001405" + u[:9]
    if wwn_type == "eui":
        return "eui.001405" + u[:10]
    if wwn_type == "unit_serial":
        return str(uuid.uuid4())
    raise LioError(f"cannot generate a WWN of type {wwn_type}")


def iqn_label(text: str) -> str:
    """Make text usable inside an IQN: lowercase, [a-z0-9.-] only, no leading/trailing '-'/'.'."""
    s = re.sub(r"[^a-z0-9.-]+", "-", text.lower())
    s = re.sub(r"-{2,}", "-", s)
    s = re.sub(r"\.{2,}", ".", s)
    return s.strip("-.")


def iqn_suffix(text: str) -> str:
    """The part after ':' may also hold ':' and '_' but nothing else special."""
    s = re.sub(r"[^a-z0-9.:_-]+", "-", text.lower())
    return re.sub(r"-{2,}", "-", s).strip("-.:")
