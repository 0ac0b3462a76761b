"""Plans: the --dry-run sh script does what the executor does, and rollback undoes exactly."""

from __future__ import annotations

import os
import subprocess

import pytest

from lioctl.plan import CreateFile, Plan, executor, script
from lioctl.plan.executor import PlanFailed


@pytest.fixture(autouse=True)
def ops_work_in_scratch_dirs(monkeypatch):
    """The ops refuse paths outside configfs (#16; tested in test_saveconfig_crafted.py):
    here they run over a scratch directory."""
    from lioctl import configfs
    monkeypatch.setattr(configfs, "confine", lambda *paths: None)


def _link(p, top) -> str:
    t = os.readlink(p)
    return "->" + (os.path.relpath(t, top) if os.path.isabs(t) else t)


def listing(top) -> dict[str, str]:
    """Every dir, link and file under top, with link targets and file contents."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        out[rel] = "dir"
        for n in list(dirnames):
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                out[os.path.join(rel, n)] = _link(p, top)
                dirnames.remove(n)
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.join(rel, n)] = _link(p, top) if os.path.islink(p) else open(p).read()
    return out


@pytest.fixture(autouse=True)
def configfs_like_writes(monkeypatch):
    """A configfs store replaces the whole value; on a plain file that takes O_TRUNC."""
    from lioctl import configfs

    def write(path, value):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    monkeypatch.setattr(configfs, "write", write)


AWKWARD = "p@ss%w'rd \"x\" $HOME `id` \\n;|&"


def sample_plan(top) -> Plan:
    plan = Plan()
    d = f"{top}/with space/lun_0"
    plan.mkdir(f"{top}/with space")
    plan.mkdir(d)
    plan.symlink(f"{d}/link 'one'", f"{top}/target dir")
    plan.write(f"{top}/attr", AWKWARD, secret=True)
    plan.write(f"{top}/control", "fd_dev_name=/srv/a b.img,fd_dev_size=4096")
    plan.add(CreateFile(f"{top}/disk $1.img", 1 << 20, sparse=True))
    return plan


def seed(top):
    os.makedirs(f"{top}/target dir")
    for n in ("attr", "control"):
        with open(f"{top}/{n}", "w") as f:
            f.write("old")


def test_sh_script_and_executor_make_the_same_tree(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a)
    seed(b)
    executor.execute(sample_plan(str(a)))
    text = script.render(sample_plan(str(b)))
    assert text.startswith("#!/bin/sh\n") and "set -e" in text
    assert AWKWARD not in text  # the secret comes from the environment variable the header names
    subprocess.run(["sh", "-c", text], check=True, env=dict(os.environ, LIOCTL_SECRET_1=AWKWARD))
    assert listing(a) == listing(b)
    assert open(a / "attr").read() == AWKWARD, "value not stored byte for byte"
    assert os.path.getsize(a / "disk $1.img") == 1 << 20


def test_sh_script_quotes_every_value_so_the_shell_expands_nothing(tmp_path):
    plan = Plan()
    plan.write(str(tmp_path / "v"), AWKWARD)
    subprocess.run(["sh", "-c", script.render(plan)], check=True, env={"HOME": "/nowhere"})
    assert (tmp_path / "v").read_text() == AWKWARD


def test_describe_hides_secrets_but_not_other_values():
    plan = Plan()
    plan.write("/x/password", "hunter2", secret=True)
    plan.write("/x/userid", "alice")
    assert "hunter2" not in plan.ops[0].describe() and "********" in plan.ops[0].describe()
    assert "alice" in plan.ops[1].describe()


@pytest.mark.parametrize("fault_at", range(1, 7))
def test_fault_at_any_step_rolls_back_to_exactly_before(tmp_path, monkeypatch, fault_at):
    seed(tmp_path)
    before = listing(tmp_path)
    monkeypatch.setenv(executor.FAULT_ENV, str(fault_at))
    with pytest.raises(PlanFailed, match="fault injected") as ei:
        executor.execute(sample_plan(str(tmp_path)))
    assert listing(tmp_path) == before
    assert ei.value.leftovers == []
    if fault_at == 4:  # the secret's write failed: the message must not show it
        assert AWKWARD not in str(ei.value) and "********" in str(ei.value)


def test_failure_names_the_step_and_reason(tmp_path):
    plan = Plan()
    plan.mkdir(str(tmp_path / "a"))
    plan.mkdir(str(tmp_path / "a"))  # EEXIST
    with pytest.raises(PlanFailed) as ei:
        executor.execute(plan)
    assert str(ei.value).endswith("a: it already exists") and "cannot create" in str(ei.value)
    assert not (tmp_path / "a").exists()


def test_rmdir_and_unlink_are_undone_with_the_same_link_target(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink("../somewhere", tmp_path / "d" / "l")
    (tmp_path / "e").mkdir()
    before = listing(tmp_path)
    plan = Plan()
    plan.unlink(str(tmp_path / "d" / "l"))
    plan.rmdir(str(tmp_path / "d"))
    plan.rmdir(str(tmp_path / "missing"))
    with pytest.raises(PlanFailed, match="does not exist"):
        executor.execute(plan)
    assert listing(tmp_path) == before


def test_one_shot_writes_are_not_put_back(tmp_path, monkeypatch):
    """control/enable of a backstore cannot be un-written; the object's rmdir undoes them."""
    seed(tmp_path)
    plan = Plan()
    plan.write(str(tmp_path / "control"), "rd_pages=1", undoable=False)
    plan.mkdir(str(tmp_path / "x"))
    monkeypatch.setenv(executor.FAULT_ENV, "2")
    with pytest.raises(PlanFailed):
        executor.execute(plan)
    assert (tmp_path / "control").read_text() == "rd_pages=1"


def test_progress_is_reported_per_step(tmp_path):
    plan = Plan()
    for i in range(3):
        plan.mkdir(str(tmp_path / str(i)))
    seen = []
    assert executor.execute(plan, progress=lambda n, t: seen.append((n, t))) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
