"""The backstore-kind registry (lioctl/backstores/) and the user kind's subtype registry
(lioctl/tcmu/backends/): what the rest of lioctl reads from them, and that a new lioctl subtype
plugs in with nothing but its Backend class and its BACKENDS entry."""

from __future__ import annotations

import inspect

import pytest

from lioctl.backstores import BY_HBA, KINDS, common
from lioctl.errors import LioError
from lioctl.plan import ServeUser, Write
from lioctl.saveconfig import load
from lioctl.tcmu import config as tcmu_config
from lioctl.tcmu.backends import BACKENDS
from lioctl.tcmu.backends.base import Backend
from lioctl.tree.nodes import Context, Root, resolve
from lioctl.tree.snapshot import Snapshot


def test_each_kind_is_whole_and_distinct():
    assert sorted(KINDS) == ["block", "fileio", "pscsi", "ramdisk", "user"]
    assert len(BY_HBA) == len(KINDS)
    for name, kind in KINDS.items():
        assert kind.name == name and BY_HBA[kind.hba] is kind and kind.module.startswith("target_core_")
        assert set(kind.identity) <= load.KNOWN["so"], name   # the loader knows what restore compares
        doc = inspect.getdoc(kind.create)
        assert f"/backstores/{name} create" in doc, name        # its help has its own example
        assert list(inspect.signature(kind.creator(None)).parameters)[0] == "name", name
    assert [k for k in KINDS.values() if k.lossy] == [KINDS["ramdisk"], KINDS["user"]]


def test_restore_skips_what_a_kind_plans_itself():
    assert {"max_data_area_mb", "dev_config", "nl_reply_supported"} <= KINDS["user"].planned_attributes
    assert not KINDS["fileio"].planned_attributes


class ProbeBackend(Backend):
    """A subtype as a new module would define it (cf. lioctl_rbd)."""

    config_completion = "file"
    config_help = "pool/image"

    @classmethod
    def check_config(cls, config, size, others):
        if "/" not in config:
            raise LioError(f"lioctl_probe wants POOL/IMAGE, not {config!r}")

    @classmethod
    def medium_size(cls, config):
        return 1 << 20

    @classmethod
    def from_cfgstring(cls, cfgstring):
        return cfgstring[len("probe:"):] if cfgstring.startswith("probe:") else None


class ImagesBackend(ProbeBackend):
    """One that completes CFGSTRING itself."""

    @classmethod
    def complete_config(cls, word):
        return [(c, "image") for c in ("pool/a", "pool/b") if c.startswith(word)]


@pytest.fixture
def probe(monkeypatch):
    """lioctl_probe registered the way a new subtype is: one BACKENDS entry."""
    monkeypatch.setitem(BACKENDS, "lioctl_probe", ProbeBackend)
    monkeypatch.setattr(tcmu_config, "SUBTYPES", tuple(BACKENDS))
    return "lioctl_probe"


def test_a_new_lioctl_subtype_plugs_in_with_one_registry_entry(probe):
    root = Root(Context(Snapshot()))
    node = resolve(root, f"/backstores/user:{probe}")      # targetcli's view of it
    assert f"user:{probe}" in [c.name for c in resolve(root, "/backstores").children()]
    with pytest.raises(LioError, match="wants POOL/IMAGE"):          # its own config rule
        node.ui_create("p1", "1M", "noslash")
    plan = node.ui_create("p1", "1M", "pool/image").plan
    writes = [op.value for op in plan if isinstance(op, Write) and op.path.endswith("/control")]
    assert f"dev_config={probe}/pool/image" in writes
    assert "hw_max_sectors=2048" in writes                   # lioctl's subtypes' default
    assert any(isinstance(op, ServeUser) for op in plan)    # lioctl's handler serves it
    assert node.completion("cfgstring") == "file"
    plan = resolve(root, "/backstores/user").ui_create("p2", "1M", "probe:pool/other").plan
    assert f"dev_config={probe}/pool/other" in [op.value for op in plan if isinstance(op, Write)]
    assert tcmu_config.key_of(f"tcm-user/1/p1/{probe}/pool/image") == "user_1/p1"
    load.check({"storage_objects": [{"plugin": "user", "name": "p1", "size": 1 << 20,
                                      "config": f"{probe}/pool/image"}], "targets": []})
    with pytest.raises(LioError, match=r"storage_objects\[0\].config: lioctl_probe wants"):
        load.check({"storage_objects": [{"plugin": "user", "name": "p1", "size": 1 << 20,
                                         "config": f"{probe}/x"}], "targets": []})


def test_a_subtype_completes_its_config_itself_or_by_a_hint(probe, monkeypatch):
    from lioctl.completion.candidates import Candidates
    monkeypatch.setitem(BACKENDS, "lioctl_images", "test_backstore_kinds:ImagesBackend")  # lazily
    monkeypatch.setattr(tcmu_config, "SUBTYPES", tuple(BACKENDS))

    class Session:
        cwd, bookmarks = "/", {}

        def snap(self):
            return Snapshot()

        def root(self):
            return Root(Context(Snapshot()))
    cands = Candidates(Session())
    node = resolve(Root(Context(Snapshot())), "/backstores/user:lioctl_images")
    assert list(cands.value_for(node, "cfgstring", "pool/")) == [("pool/a", "image"), ("pool/b", "image")]
    assert BACKENDS["lioctl_images"] is ImagesBackend       # imported when first asked for
    node = resolve(Root(Context(Snapshot())), f"/backstores/user:{probe}")
    assert [m for _, m in cands.value_for(node, "cfgstring", "/")] and \
        all(m == "file" for _, m in cands.value_for(node, "cfgstring", "/"))


def test_a_tcmu_runner_subtype_is_neither_served_nor_checked_by_lioctl():
    plan = KINDS["user"].plan_saved({"name": "r1", "size": 1 << 20, "config": "rbd/pool/img"}, "user_3")
    assert not any(isinstance(op, ServeUser) for op in plan)
    assert common.object_path("user_3", "r1") in [op.path for op in plan]
