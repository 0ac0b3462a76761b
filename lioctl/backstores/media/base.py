"""The medium interface: what a user backstore serves, as the admin names it on the command
line (a path, `rbd:POOL/IMAGE`...), and everything the command side does with it before the
user kind plans the backstore: parse it, size it, make or grow it first, find what already
serves it (export, unexport), complete it, and its own create parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

from lioctl.units import parse_bool


@dataclass(frozen=True)
class Option:
    """A parameter of the medium's own: `KEY=VALUE` (or `--KEY`, a flag) of
    `/backstores/user create`, and the `lioctl export` option of the same meaning."""
    name: str
    help: str
    metavar: str | None = None      # None: a flag (--create)
    export: str | None = None       # export's option ("--id"); None: create only
    locates: bool = False           # says where the medium is (completion passes it on)


@dataclass
class Prepared:
    """A medium ready for the user kind's plan: its subtype and config (dev_config is
    'SUBTYPE/CONFIG'), the LUN's size, and what must run before the backstore is made."""
    subtype: str | None
    config: str
    size: int | str
    before: list = field(default_factory=list)


class Medium:
    name = ""                   # its export options' dest prefix, and how errors name it
    subtype: str | None = None  # the lioctl subtype serving it; None: subtype= picks one
    prefix = ""                 # its spec's own form starts with this; "" only for the path
    form = ""                   # how the admin writes one ("rbd:POOL/IMAGE[@SNAP]")
    what = ""                   # a candidate's description in completion
    nouns: tuple[str, ...] = ()  # what it is, for export's help ("Ceph RBD image")
    options: tuple[Option, ...] = ()
    sized = False               # SIZE may be left out of create: the medium has one
    create_help = ""            # sentences for `/backstores/user create`'s help
    create_examples: tuple[str, ...] = ()
    export_title = ""           # export's option group
    export_examples: tuple[str, ...] = ()      # `lioctl export ...` lines (with a comment)
    unexport_examples: tuple[str, ...] = ()

    def takes(self, arg) -> bool:
        return bool(self.prefix) and isinstance(arg, str) and arg.startswith(self.prefix)

    def prepare(self, snap, arg: str, size, options: dict, subtype: str | None = None) -> Prepared:
        """The subtype, config, size and first steps for a user backstore on `arg`; size None
        when left out; options: this medium's Option values (flags as bool or 'true')."""
        raise NotImplementedError(self.name)

    def export_names(self, arg: str, size) -> tuple[str, str, str]:
        """(the device as export reports it, the backstore name's base, the IQN's base)."""
        raise NotImplementedError(self.name)

    def export_kind(self, device: str, size, user: bool):
        """The kernel Kind that exports it (user: the admin asked for a handler, or there is no
        such kind); None: a user backstore on this medium."""
        return None

    def plan_kernel(self, snap, kind, name, device, size, readonly, wwn, hba):
        """The plan of export's backstore when export_kind gave a kernel Kind."""
        raise NotImplementedError(self.name)

    def exports(self, snap, arg: str, options: dict, loose: bool = False) -> list:
        """The storage objects serving it; loose: wherever its options say it lives."""
        raise NotImplementedError(self.name)

    def spec_of(self, so) -> str | None:
        """The spec that names what `so` serves, for unexport's completion (None: not ours)."""
        return None

    def complete(self, word: str, options: dict) -> list[str]:
        """Specs starting with `word` (which starts with the prefix)."""
        return []

    def check_change(self, so, size: int, where: str) -> None:
        """Refuses a changemedium of `so` (served by this medium) to `size`."""


def user_backstores(snap, subtype: str) -> list[tuple[object, str]]:
    """The user backstores of one subtype, each with its config (after 'SUBTYPE/')."""
    out = []
    for so in snap.storage_objects.values():
        if so.kind.user_space and (so.user_config or "").startswith(subtype + "/"):
            out.append((so, so.user_config[len(subtype) + 1:]))
    return out


def flag(value, name: str) -> bool:
    """A flag as create gives it ('true', from `--create`) or export does (a bool)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    return parse_bool(value, name)
