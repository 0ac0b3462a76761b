"""The executor's concurrent runs, over a scratch directory (the ops are plain file-system
calls; what configfs does with them is the kernel tests' business): every op of a run is
done, a failure anywhere in a run rolls back the whole plan, and only adjacent flagged ops of
one kind run together."""

from __future__ import annotations

import os
import signal

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


# --- every exit from a run finishes or rolls back; every leftover is named (issue #16, item 10)

from dataclasses import dataclass, field  # noqa: E402

from lioctl.plan import ops as ops_mod  # noqa: E402


@dataclass(frozen=True)
class _Raise(ops_mod.Op):
    """An op that fails with any exception, as a NUL in a name or a Ctrl-C would."""

    exc: BaseException = field(default=None, compare=False)

    def apply(self):
        raise self.exc


@dataclass(frozen=True)
class _Made(ops_mod.Op):
    """Records itself in a list; its inverse removes it again, or fails with `undo_fails`."""

    log: list = field(default=None, compare=False)
    undo_fails: BaseException | None = field(default=None, compare=False)
    fails: BaseException | None = field(default=None, compare=False)

    def apply(self):
        if self.fails:
            raise self.fails
        self.log.append(self.path)
        return _Unmade(self.path, log=self.log, fails=self.undo_fails)


@dataclass(frozen=True)
class _Unmade(ops_mod.Op):
    log: list = field(default=None, compare=False)
    fails: BaseException | None = field(default=None, compare=False)

    def apply(self):
        if self.fails:
            raise self.fails
        self.log.remove(self.path)


def test_a_value_error_rolls_back_and_names_the_object(tmp_path):
    plan = Plan()
    plan.mkdir(str(tmp_path / "a"))
    plan.mkdir(str(tmp_path / "b"))
    plan.mkdir(str(tmp_path / "c\0d"))        # the kernel never sees it: os.mkdir raises ValueError
    with pytest.raises(executor.PlanFailed) as e:
        executor.execute(plan)
    assert "cannot create" in str(e.value) and "null" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_rolls_back_then_lets_the_interrupt_through():
    log = []
    plan = Plan()
    for name in ("/x", "/y"):
        plan.add(_Made(name, log=log))
    plan.add(_Raise("/z", exc=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        executor.execute(plan)
    assert log == []


@pytest.mark.parametrize("exc, raised", [(KeyboardInterrupt(), KeyboardInterrupt),
                                         (RuntimeError("bug"), executor.PlanFailed)])
def test_any_exception_in_a_concurrent_run_undoes_what_ran_in_it(exc, raised):
    log = []
    plan = Plan()
    plan.add(_Made("/before", log=log))
    for i in range(8):
        plan.add(_Made(f"/m{i}", log=log, concurrent=True, fails=exc if i == 3 else None))
    with pytest.raises(raised):
        executor.execute(plan)
    assert log == []


def test_a_failure_while_rolling_back_names_every_leftover_and_undoes_the_rest(capsys):
    log = []
    plan = Plan()
    plan.add(_Made("/a", log=log))
    plan.add(_Made("/b", log=log, undo_fails=ValueError("odd")))
    plan.add(_Made("/c", log=log, undo_fails=OSError(16, "busy")))
    plan.add(_Made("/d", log=log))
    plan.add(_Raise("/e", exc=OSError(5, "I/O error")))
    with pytest.raises(executor.PlanFailed) as e:
        executor.execute(plan)
    assert log == ["/b", "/c"]                      # /a and /d undone despite the two failures
    assert e.value.leftovers == ["/c", "/b"]
    assert "rollback could not undo: /c, /b" in str(e.value)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("lioctl: rollback:")] == \
        ["lioctl: rollback: cannot change /c: it is in use", "lioctl: rollback: cannot change /b: odd"]


def test_a_value_not_set_back_is_named_without_its_secret(tmp_path, capsys):
    f = tmp_path / "password"
    f.write_text("old-secret")
    plan = Plan()
    plan.write(str(f), "new-secret", secret=True)
    plan.add(_Raise("/e", exc=OSError(5, "I/O error")))
    os.chmod(tmp_path, 0o755)
    real_write = ops_mod.configfs.write

    def refuse_second(path, value, calls=[]):
        calls.append(value)
        if len(calls) > 1:
            raise OSError(22, "Invalid argument")
        real_write(path, value)
    ops_mod.configfs.write = refuse_second
    try:
        with pytest.raises(executor.PlanFailed) as e:
            executor.execute(plan)
    finally:
        ops_mod.configfs.write = real_write
    err = capsys.readouterr().err
    assert e.value.leftovers == [str(f)] and str(f) in err
    assert "secret" not in err.replace("********", "") and "secret" not in str(e.value)


def test_captured_settings_are_written_back_in_order_and_only_where_they_differ(tmp_path):
    group = tmp_path / "tpgt_1"
    (group / "attrib").mkdir(parents=True)
    (group / "statistics").mkdir()
    files = {"enable": "1", "attrib/authentication": "1", "attrib/alua_access_type": "Implicit and Explicit",
             "attrib/alua_access_state": "2", "statistics/reads": "7", "info": "read-only"}
    for name, value in files.items():
        (group / name).write_text(value + "\n")
    os.chmod(group / "info", 0o444)
    values = ops_mod.capture(str(group))
    got = {os.path.relpath(p, group): v for p, v in values}
    assert got == {"enable": "1", "attrib/authentication": "1", "attrib/alua_access_type": "3",
                   "attrib/alua_access_state": "2"}
    written = []
    real_write = ops_mod.configfs.write
    ops_mod.configfs.write = lambda p, v: written.append((os.path.relpath(p, group), v))
    try:
        (group / "attrib" / "authentication").write_text("0\n")   # a fresh object's default
        (group / "enable").write_text("0\n")
        (group / "attrib" / "alua_access_type").write_text("None\n")
        (group / "attrib" / "alua_access_state").write_text("0\n")
        assert ops_mod.restore(values) == []
    finally:
        ops_mod.configfs.write = real_write
    # equal values left alone; implicit ALUA before the state; enable last
    assert written == [("attrib/alua_access_type", "3"), ("attrib/alua_access_state", "2"),
                       ("attrib/authentication", "1"), ("enable", "1")]


@dataclass(frozen=True)
class _InterruptedUndo(ops_mod.Op):
    """An inverse during which the user presses Ctrl-C again."""

    def apply(self):
        os.kill(os.getpid(), signal.SIGINT)
        return None


@dataclass(frozen=True)
class _MadeThenCtrlC(ops_mod.Op):
    def apply(self):
        return _InterruptedUndo(self.path)


def test_a_second_ctrl_c_does_not_abandon_the_rollback(capsys):
    log = []
    plan = Plan()
    plan.add(_Made("/a", log=log))
    plan.add(_MadeThenCtrlC("/b"))
    plan.add(_Raise("/c", exc=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        executor.execute(plan)
    assert log == []                    # /a undone after the second Ctrl-C
    assert "finishing the rollback first" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
