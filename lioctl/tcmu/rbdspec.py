"""An RBD image as the admin names it (`rbd:POOL/IMAGE[@SNAP]`) and as the lioctl_rbd
subtype's TCMU config string carries it:

    POOL/IMAGE[@SNAP][;conf=PATH][;id=NAME][;keyring=PATH][;cluster=NAME][;timeout=SECONDS]

No secret ever goes in it (the kernel shows dev_config to anyone who reads configfs, and
saved configurations keep it): only a keyring PATH, which the handler reads. A snapshot is
served read-only. Omitted options take the Ceph tools' defaults (ceph.conf: /etc/ceph/
CLUSTER.conf; id admin; the keyring ceph.conf names; cluster ceph)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

SUBTYPE = "lioctl_rbd"
PREFIX = "rbd:"
DEFAULT_TIMEOUT = 20        # seconds: below the kernel's cmd_time_out (30 s)
_NAME = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.+\-]*\Z")      # pool, image, snapshot
_ID = re.compile(r"[A-Za-z0-9_.-]+\Z")                          # cephx id, cluster name
OPTIONS = ("conf", "id", "keyring", "cluster", "timeout")


class SpecError(ValueError):
    pass


@dataclass
class RbdSpec:
    pool: str
    image: str
    snap: str | None = None
    conf: str | None = None
    id: str | None = None
    keyring: str | None = None
    cluster: str | None = None
    timeout: int | None = None

    @property
    def name(self) -> str:
        """POOL/IMAGE[@SNAP], as the rbd tool names it."""
        return f"{self.pool}/{self.image}" + (f"@{self.snap}" if self.snap else "")

    @property
    def read_only(self) -> bool:
        return self.snap is not None

    def conf_path(self) -> str:
        return self.conf or f"/etc/ceph/{self.cluster or 'ceph'}.conf"

    def config(self) -> str:
        """The TCMU config string (after 'lioctl_rbd/')."""
        parts = [self.name]
        for f in OPTIONS:
            v = getattr(self, f)
            if v is not None:
                parts.append(f"{f}={v}")
        return ";".join(parts)

    def same_image(self, other: "RbdSpec") -> bool:
        return (self.pool, self.image, self.cluster or "ceph", self.conf_path()) == \
               (other.pool, other.image, other.cluster or "ceph", other.conf_path())

    def check(self) -> "RbdSpec":
        for what, v in (("pool", self.pool), ("image", self.image)):
            if not _NAME.match(v or ""):
                raise SpecError(f"bad RBD {what} name {v!r}")
        if self.snap is not None and not _NAME.match(self.snap):
            raise SpecError(f"bad RBD snapshot name {self.snap!r}")
        for what in ("conf", "keyring"):
            v = getattr(self, what)
            if v is not None and (not v.startswith("/") or any(c in v for c in ";,:\n")):
                raise SpecError(f"RBD {what} must be an absolute path without ';', ',' or ':', not {v!r}")
        for what in ("id", "cluster"):
            v = getattr(self, what)
            if v is not None and not _ID.match(v):
                raise SpecError(f"bad RBD {what} {v!r}")
        if self.timeout is not None and not (isinstance(self.timeout, int) and 0 < self.timeout <= 3600):
            raise SpecError(f"RBD timeout must be 1-3600 seconds, not {self.timeout!r}")
        return self


def _split_name(name: str) -> tuple[str, str, str | None]:
    pool, slash, rest = name.partition("/")
    if not slash:
        raise SpecError(f"{name!r} is not POOL/IMAGE[@SNAP]")
    image, at, snap = rest.partition("@")
    return pool, image, (snap if at else None)


def is_spec(arg: str) -> bool:
    return isinstance(arg, str) and arg.startswith(PREFIX)


def parse_spec(arg: str, **options) -> RbdSpec:
    """'rbd:POOL/IMAGE[@SNAP]' (and the options given apart) -> RbdSpec."""
    if not is_spec(arg):
        raise SpecError(f"{arg!r} is not rbd:POOL/IMAGE[@SNAP]")
    pool, image, snap = _split_name(arg[len(PREFIX):])
    return RbdSpec(pool, image, snap, **{k: v for k, v in options.items() if v is not None}).check()


def parse_config(config: str) -> RbdSpec:
    """The TCMU config string -> RbdSpec (the inverse of RbdSpec.config())."""
    name, *opts = config.split(";")
    pool, image, snap = _split_name(name)
    spec = RbdSpec(pool, image, snap)
    known = {f.name for f in fields(RbdSpec)} & set(OPTIONS)
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq or k not in known:
            raise SpecError(f"unknown lioctl_rbd option {o!r} (known: {', '.join(OPTIONS)})")
        if getattr(spec, k) is not None:
            raise SpecError(f"lioctl_rbd option {k} given twice")
        if k == "timeout":
            if not (v.isascii() and v.isdigit()):      # '²' is a digit to str, not to int()
                raise SpecError(f"RBD timeout must be a number of seconds, not {v!r}")
            v = int(v)
        setattr(spec, k, v)
    return spec.check()
