"""The user kind's media (lioctl/backstores/media/): a new one plugs in with its module and one
line in media.MEDIA (plus its subtype's Backend and BACKENDS line on the handler's side), and
is then part of `/backstores/user create` (grammar, plan, help), `lioctl export` (options,
parsing, plan) and completion, none of which names a medium. A toy medium, registered here
only, proves it; the file and RBD media are checked where they differ from it."""

from __future__ import annotations

import argparse
import inspect
from types import SimpleNamespace

import pytest

from lioctl.backstores import KINDS, media
from lioctl.backstores.media.base import Medium, Option, Prepared, user_backstores
from lioctl.completion import scripts
from lioctl.commands import export
from lioctl.errors import LioError, UsageError
from lioctl.plan import ServeUser, Write
from lioctl.tcmu import config as tcmu_config
from lioctl.tcmu.backends import BACKENDS
from lioctl.tcmu.backends.base import Backend
from lioctl.tree.nodes import Context, Root, resolve
from lioctl.tree.snapshot import Snapshot


class ToyBackend(Backend):
    """The handler side of lioctl_toy: its config rule."""

    @classmethod
    def check_config(cls, config, size, others):
        if not config.startswith(("bear", "ball")):
            raise LioError(f"lioctl_toy has no toy {config!r}")


class Toy(Medium):
    """`toy:NAME`, with a flavor= of its own; its size is its own unless given."""
    name = "toy"
    prefix = "toy:"
    subtype = "lioctl_toy"
    form = "toy:NAME"
    what = "toy"
    nouns = ("toy",)
    sized = True
    options = (Option("flavor", "what it tastes of", "FLAVOR", "--flavor", True),)
    create_examples = ("/backstores/user create t1 toy:bear flavor=honey",)

    def prepare(self, snap, arg, size, options, subtype=None):
        config = arg[len(self.prefix):] + (f";flavor={options['flavor']}" if options.get("flavor") else "")
        return Prepared(self.subtype, config, size or 4 << 20)

    def export_names(self, arg, size):
        return arg, arg[len(self.prefix):], arg[len(self.prefix):]

    def exports(self, snap, arg, options, loose=False):
        return [so for so, config in user_backstores(snap, self.subtype)
                if config.split(";")[0] == arg[len(self.prefix):]]

    def complete(self, word, options):
        return [n for n in ("toy:bear", "toy:ball") if n.startswith(word)]


@pytest.fixture
def toy(monkeypatch):
    """lioctl_toy registered as a new medium is: one BACKENDS line, one MEDIA line."""
    monkeypatch.setitem(BACKENDS, "lioctl_toy", ToyBackend)
    monkeypatch.setattr(tcmu_config, "SUBTYPES", tuple(BACKENDS))
    monkeypatch.setattr(media, "MEDIA", [Toy()] + media.MEDIA)


def control_writes(plan) -> list[str]:
    return [op.value for op in plan if isinstance(op, Write) and op.path.endswith("/control")]


def test_create_takes_the_new_medium_its_size_and_its_parameter(toy):
    node = resolve(Root(Context(Snapshot())), "/backstores/user")
    fn = node.help_target("create")
    assert "flavor" in inspect.signature(fn).parameters and "[flavor=…]" in fn.usage
    assert "Example: /backstores/user create t1 toy:bear flavor=honey" in fn.__doc__
    result = node.ui_create("t1", "toy:bear", flavor="honey")        # SIZE left out: the medium's
    writes = control_writes(result.plan)
    assert "dev_config=lioctl_toy/bear;flavor=honey" in writes and f"dev_size={4 << 20}" in writes
    assert any(isinstance(op, ServeUser) for op in result.plan)
    assert "dev_size=1048576" in control_writes(node.ui_create("t2", "1M", "toy:ball").plan)
    with pytest.raises(LioError, match="no toy 'doll'"):               # its handler's rule
        node.ui_create("t3", "toy:doll")
    with pytest.raises(LioError, match=r"flavor= is for toy:NAME backstores"):
        node.ui_create("t4", "1M", "/srv/t4.img", flavor="honey")
    with pytest.raises(UsageError, match=r"left out for toy:NAME and rbd:POOL/IMAGE\[@SNAP\]"):
        node.ui_create("t5", "/srv/t5.img")                           # a path has no size of its own


def parse(*argv):
    p = argparse.ArgumentParser()
    export.configure(p)
    return p.parse_args(list(argv) + ["--iqn", "iqn.2003-01.org.example:toy"])


def test_export_parses_the_new_medium_and_its_option(toy, tmp_path):
    plan, info = export.build(parse("toy:bear", "--flavor", "honey"), Snapshot())
    assert info["backstore"] == "/backstores/user/bear" and info["device"] == "toy:bear"
    assert "dev_config=lioctl_toy/bear;flavor=honey" in control_writes(plan)
    (tmp_path / "d.img").write_bytes(b"\0" * 4096)
    with pytest.raises(UsageError, match="--flavor is for toy:NAME"):
        export.build(parse(str(tmp_path / "d.img"), "--flavor", "honey"), Snapshot())
    with pytest.raises(UsageError, match=r"--keyring and --cluster are for rbd:POOL/IMAGE"):
        export.build(parse("toy:bear", "--id", "gw"), Snapshot())


def test_completion_offers_the_new_mediums_prefix_and_its_names(toy):
    assert "toy:" in scripts.candidates("lioctl /backstores/user create t1 to")
    assert scripts.candidates("lioctl /backstores/user create t1 toy:b") == ["toy:bear", "toy:ball"]
    assert scripts.candidates("lioctl /backstores/user create t1 1M toy:ba") == ["toy:ball"]
    assert scripts.candidates("lioctl export toy:") == ["toy:bear", "toy:ball"]
    assert "toy:" not in scripts.candidates("lioctl /backstores/user:lioctl_file create t1 1M to")
    assert "--flavor" in scripts.candidates("lioctl export --fl")


def test_the_path_medium_takes_whatever_no_other_claims():
    assert media.of("rbd:rbd/x").name == "rbd" and media.of("/srv/x.img").name == "file"
    assert media.of("rbd:rbd/x", "rbd").name == "file"        # tcmu-runner's rbd: a config as typed
    assert media.by_form()[0].name == "file"                  # first in usage lines
    assert media.for_subtype("lioctl_rbd").name == "rbd" and media.for_subtype("lioctl_file") is None


def test_unexport_names_a_served_image_by_its_spec_and_nothing_else():
    def so(kind, config):
        return SimpleNamespace(kind=KINDS[kind], user_config=config)
    assert media.spec_of(so("user", "lioctl_rbd/rbd/vol@s1;conf=/etc/ceph/c.conf;id=gw")) == "rbd:rbd/vol@s1"
    assert media.spec_of(so("user", "lioctl_file//srv/u.img")) is None
    assert media.spec_of(so("fileio", "lioctl_rbd/rbd/vol")) is None
