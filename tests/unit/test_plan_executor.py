"""The executor's concurrent runs, over a scratch directory (the ops are plain file-system
calls; what configfs does with them is the kernel tests' business): every op of a run is
done, a failure anywhere in a run rolls back the whole plan, and only adjacent flagged ops of
one kind run together."""

from __future__ import annotations

import os

import pytest

from lioctl.plan import executor
from lioctl.plan.ops import Mkdir, Plan, Rmdir, Symlink, Unlink


@pytest.fixture(autouse=True)
def ops_work_in_scratch_dirs(monkeypatch):
    """The ops refuse paths outside configfs (#16; tested in test_saveconfig_crafted.py):
    here they run over a scratch directory."""
    from lioctl import configfs
    monkeypatch.setattr(configfs, "confine", lambda *paths: None)


def _tree(tmp_path, n):
    for i in range(n):
        (tmp_path / f"d{i}").mkdir()
        os.symlink(str(tmp_path), tmp_path / f"d{i}" / "link")


def _state(tmp_path):
    return sorted((p.relative_to(tmp_path).as_posix(), p.is_symlink()) for p in tmp_path.rglob("*"))


def _removal_plan(tmp_path, n):
    plan = Plan()
    for i in range(n):
        plan.unlink(str(tmp_path / f"d{i}" / "link"), concurrent=True)
    for i in range(n):
        plan.rmdir(str(tmp_path / f"d{i}"), concurrent=True)
    return plan


def test_concurrent_runs_do_every_op(tmp_path):
    _tree(tmp_path, 40)
    assert executor.execute(_removal_plan(tmp_path, 40)) == 80
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault_at", [1, 17, 40, 41, 63, 80])
def test_a_fault_inside_a_run_rolls_everything_back(tmp_path, monkeypatch, fault_at):
    _tree(tmp_path, 40)
    before = _state(tmp_path)
    monkeypatch.setenv(executor.FAULT_ENV, str(fault_at))
    with pytest.raises(executor.PlanFailed) as e:
        executor.execute(_removal_plan(tmp_path, 40))
    assert "fault injected" in str(e.value)
    assert _state(tmp_path) == before


def test_a_real_failure_in_a_run_names_the_op_and_rolls_back(tmp_path):
    _tree(tmp_path, 10)
    (tmp_path / "d3" / "stays").mkdir()         # d3 is not empty: its rmdir fails
    before = _state(tmp_path)
    with pytest.raises(executor.PlanFailed) as e:
        executor.execute(_removal_plan(tmp_path, 10))
    assert str(tmp_path / "d3") in str(e.value) and "not empty" in str(e.value)
    assert _state(tmp_path) == before


def test_runs_are_adjacent_flagged_ops_of_one_kind():
    ops = [Unlink("/a", concurrent=True), Unlink("/b", concurrent=True), Rmdir("/c", concurrent=True),
           Rmdir("/d", concurrent=True), Rmdir("/e"), Rmdir("/f", concurrent=True), Mkdir("/g"),
           Symlink("/h", "/t", concurrent=True)]
    runs, i = [], 0
    while i < len(ops):
        end = executor._run_end(ops, i)
        runs.append([op.path for op in ops[i:end]])
        i = end
    assert runs == [["/a", "/b"], ["/c", "/d"], ["/e"], ["/f"], ["/g"], ["/h"]]
