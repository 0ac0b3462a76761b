"""The media of the user kind: what a user backstore serves, as the admin names it (see
base.Medium). `/backstores/user create`, `lioctl export` and `unexport`, completion and
changemedium ask this registry and never name a medium.

Adding a medium (a qcow file, an NBD export...): its module here with a Medium subclass (its
spec form, options, prepare, export names, exports, completion) and one line in MEDIA; the
lioctl subtype serving it is a Backend in lioctl/tcmu/backends/ with its own line there.
"""

from __future__ import annotations

from lioctl.backstores.media import file, rbd
from lioctl.backstores.media.base import Medium, Option

MEDIA: list[Medium] = [
    rbd.MEDIUM,
    file.MEDIUM,        # a path, or a config as typed: whatever no medium above claims (last)
]


def of(arg, subtype: str | None = None) -> Medium:
    """The medium `arg` names (for that subtype, when one is given)."""
    return next(m for m in MEDIA if m.takes(arg) and (subtype is None or m.subtype in (None, subtype)))


def for_subtype(subtype: str) -> Medium | None:
    return next((m for m in MEDIA if m.subtype == subtype), None)


def options() -> list[Option]:
    """Every medium's own parameters, in registry order."""
    return [o for m in MEDIA for o in m.options]


def stray(medium: Medium, given: dict) -> tuple[Medium, Option] | None:
    """Another medium's parameter given for this one's spec (an error that names its form)."""
    mine = {o.name for o in medium.options}
    for m in MEDIA:
        for o in m.options:
            if o.name not in mine and given.get(o.name) not in (None, False):
                return m, o
    return None


def listed(names: list[str], last: str = "and") -> str:
    return ", ".join(names[:-1]) + f" {last} " + names[-1] if len(names) > 1 else "".join(names)


def by_form() -> list[Medium]:
    """Paths first, then the media with a form of their own (help and usage lines)."""
    return sorted(MEDIA, key=lambda m: bool(m.prefix))


def complete(word: str, given: dict, subtype: str | None = None) -> tuple[list[tuple[str, str]], bool]:
    """Candidates for a spec being typed: a medium's own once its prefix is typed (final: no
    other candidate applies), else the prefixes `word` begins."""
    mine = [m for m in MEDIA if m.prefix and subtype in (None, m.subtype)]
    for m in mine:
        if m.takes(word):
            return [(n, m.what) for n in m.complete(word, given)], True
    return [(m.prefix, m.what) for m in mine if word and m.prefix.startswith(word)], False


def spec_of(so) -> str | None:
    """The spec naming what a user backstore serves, when a medium has a form for it."""
    return next((s for m in MEDIA if (s := m.spec_of(so))), None) if so.kind.user_space else None
