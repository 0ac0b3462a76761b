"""The executor's configfs guard (#18 item 6): every op declares the configfs paths it changes
(Op.configfs_paths) and the executor refuses a plan with one outside configfs.ROOT before
anything runs, whatever the op's class does in apply. The guard once wrapped the apply of four
op classes, so a subclass with its own apply (RemoveStorageObject) went unchecked."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from lioctl.errors import LioError
from lioctl.plan import CreateFile, Op, Plan, Rmdir, executor


@dataclass(frozen=True)
class RemoveWithItsOwnApply(Rmdir):
    """As RemoveStorageObject: a subclass whose apply does the removal itself."""

    def apply(self):
        os.rmdir(self.path)
        return None


@dataclass(frozen=True)
class NewOp(Op):
    """An op class written later, that says nothing about its path."""

    def apply(self):
        os.mkdir(self.path)
        return None


@pytest.mark.parametrize("cls", [RemoveWithItsOwnApply, NewOp])
def test_an_op_with_its_own_apply_is_refused_outside_configfs(tmp_path, cls):
    victim = tmp_path / "victim"
    if cls is RemoveWithItsOwnApply:
        victim.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    backing = tmp_path / "backing.img"
    plan = Plan([CreateFile(str(backing), 4096), cls(str(victim))])
    with pytest.raises(LioError, match="is not under /sys/kernel/config/target"):
        executor.execute(plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # not even the file was made


def test_ops_that_change_no_configfs_path_say_so(tmp_path):
    """A backing file, a module name, a device key: no configfs path to check."""
    from lioctl.plan import Modprobe, Mount, ServeUser
    for op in (CreateFile(str(tmp_path / "f"), 1), Modprobe("tcm_loop"), Mount("/sys/kernel/config"),
               ServeUser("user_1/d", serve=print)):
        assert op.configfs_paths() == ()
    assert Rmdir("/sys/kernel/config/target/core/x").configfs_paths() == ("/sys/kernel/config/target/core/x",)


@dataclass(frozen=True)
class UndoneOutside(Op):
    """An op under configfs whose inverse would act outside it."""

    in_configfs = False

    def apply(self):
        return NewOp(self.path)


def test_rollback_refuses_an_inverse_outside_configfs(tmp_path, monkeypatch):
    monkeypatch.setenv(executor.FAULT_ENV, "2")
    outside = str(tmp_path / "made-by-rollback")
    with pytest.raises(executor.PlanFailed) as e:
        executor.execute(Plan([UndoneOutside(outside), CreateFile(str(tmp_path / "f"), 1)]))
    assert e.value.leftovers == [outside]
    assert not os.path.exists(outside)
