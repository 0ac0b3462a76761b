"""A failure at any step of a removal puts everything back as it was, values included (issue #16,
item 9): for each step N of the plan of `delete`, `clear` and `unexport` of a fully configured
target, the N-th operation is made to fail (LIOCTL_FAULT_AT, in this process) and the whole
configfs tree, every readable value included, must equal the one before."""

from __future__ import annotations

import json
import os
import re

import pytest

import cfs
import initiator

MiB = 1 << 20
T = "iqn.2003-01.org.example:rollback"
I1 = "iqn.1994-05.com.example:rb-init1"
I2 = "iqn.1994-05.com.example:rb-init2"
I3 = "iqn.1994-05.com.example:rb-init3"
TPG = f"/iscsi/{T}/tpg1"


@pytest.fixture
def loopdev(tmp_path):
    with initiator.loop_disk(tmp_path / "loop.img", 16 * MiB) as dev:
        yield dev


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def build(lioctl, tmp_path, loopdev):
    """Every kind of setting a removal could lose, each changed from its default."""
    lines = [
        f"/backstores/fileio create f1 {tmp_path / 'f1.img'} 8M",
        f"/backstores/block create b1 {loopdev}",
        "/backstores/fileio/f1 set attribute is_nonrot=1 max_write_same_len=1024",
        "/backstores/block/b1 set attribute is_nonrot=1 emulate_3pc=0",
        f"/iscsi create {T}",
        f"{TPG}/portals delete 0.0.0.0 3260",
        f"{TPG}/portals create 127.0.0.1 3260",
        f"{TPG}/portals create 127.0.0.1 3261",
        f"{TPG}/luns create /backstores/fileio/f1",
        f"{TPG}/luns create /backstores/block/b1",
        f"{TPG}/acls create {I1}",
        f"{TPG}/acls create {I2}",
        f"{TPG}/acls/{I1} create 7 lun1 write_protect=true",
        f"{TPG}/acls/{I1} set attribute dataout_timeout=7 nopin_timeout=9",
        f"{TPG} set attribute authentication=1 generate_node_acls=0 default_cmdsn_depth=32",
        f"{TPG} set parameter MaxRecvDataSegmentLength=65536 HeaderDigest=CRC32C,None",
    ]
    ok(lioctl(input="\n".join(lines) + "\n"))
    # CHAP straight into configfs: the test's own doing, whatever the command line takes
    for acl, n in ((I1, 1), (I2, 2)):
        auth = cfs.ROOT / "iscsi" / T / "tpgt_1" / "acls" / acl / "auth"
        for name, value in (("userid", f"user{n}"), ("password", f"secret-pass{n}"),
                            ("userid_mutual", f"tgt{n}"), ("password_mutual", f"mutual-pass{n}")):
            (auth / name).write_text(value)
    (cfs.ROOT / "iscsi" / T / "tpgt_1" / "acls" / I2 / "cmdsn_depth").write_text("16")
    tpg = cfs.ROOT / "iscsi" / T / "tpgt_1"
    assert (tpg / "enable").read_text().strip() == "1"
    assert (tpg / "acls" / I1 / "lun_7" / "write_protect").read_text().strip() == "1"


def tree() -> dict[str, str]:
    """cfs.tree(), less the kernel's per-HBA device counter in a fileio or ramdisk object's info
    (a re-made object in a surviving HBA gets the next number; it is no setting of anyone's)."""
    return {k: re.sub(r"(TCM FILEIO ID|RamDisk ID): \d+", r"\1: N", v) if k.endswith("/info") else v
            for k, v in cfs.tree().items()}


def differences(before: dict, after: dict) -> list[str]:
    out = [f"gone: {k}" for k in before if k not in after]
    out += [f"new: {k}" for k in after if k not in before]
    out += [f"{k}: {before[k]!r} -> {after[k]!r}" for k in before if k in after and before[k] != after[k]]
    return out


def fault_every_step(lioctl, argv: list[str], n_ops: int, describe) -> None:
    before = tree()
    for step in range(1, n_ops + 1):
        r = lioctl(*argv, env={"LIOCTL_FAULT_AT": str(step)})
        assert r.returncode == 1, f"step {step}: exit {r.returncode}: {r.stderr}"
        assert "fault injected by LIOCTL_FAULT_AT" in r.stderr, r.stderr
        assert describe(step) in r.stderr, (describe(step), r.stderr)
        assert "lioctl: rollback:" not in r.stderr, f"step {step}: {r.stderr}"
        diff = differences(before, tree())
        assert not diff, f"after a fault at step {step} ({describe(step)}):\n" + "\n".join(diff[:20])
    print(f"{argv[0]}: {n_ops} faulted runs, each rolled back to the same tree")


def _plan_paths(plan):
    """What the error must name for each op; a new link's name is drawn afresh by each run."""
    root = str(cfs.ROOT) + "/"
    return [(os.path.dirname(op.path) if type(op).__name__ == "Symlink" else op.path).removeprefix(root)
            for op in plan]


def test_a_fault_at_any_step_of_delete_puts_the_target_back(lioctl, tmp_path, loopdev):
    from lioctl.tree import snapshot, targets as tg
    build(lioctl, tmp_path, loopdev)
    plan = tg.plan_delete_target(snapshot.read().fabrics["iscsi"].targets[T])
    paths = _plan_paths(plan)
    fault_every_step(lioctl, ["/iscsi", "delete", T], len(plan), lambda n: paths[n - 1])
    ok(lioctl("/iscsi", "delete", T))
    ok(lioctl("clear", "--yes"))


def test_a_fault_at_any_step_of_clear_puts_everything_back(lioctl, tmp_path, loopdev):
    from lioctl.saveconfig import restore_plan
    from lioctl.tree import snapshot
    build(lioctl, tmp_path, loopdev)
    plan = restore_plan.plan_clear(snapshot.read())
    paths = _plan_paths(plan)
    assert any(p.startswith("core/") for p in paths)
    fault_every_step(lioctl, ["clear", "--yes"], len(plan), lambda n: paths[n - 1])
    ok(lioctl("clear", "--yes"))


def test_a_fault_at_any_step_of_unexport_puts_the_export_back(lioctl, tmp_path):
    from lioctl.commands import unexport
    from lioctl.tree import snapshot
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(16 * MiB)
    ok(lioctl("export", img, "--iqn", T, "--acl", I1, "--acl", I2))
    tpg = cfs.ROOT / "iscsi" / T / "tpgt_1"
    for acl, n in ((I1, 1), (I2, 2)):
        for name, value in (("userid", f"user{n}"), ("password", f"secret-pass{n}"),
                            ("userid_mutual", f"tgt{n}"), ("password_mutual", f"mutual-pass{n}")):
            (tpg / "acls" / acl / "auth" / name).write_text(value)
    (tpg / "attrib" / "authentication").write_text("1")
    plan, _ = unexport.build(snapshot.read(), str(img))
    paths = _plan_paths(plan)
    fault_every_step(lioctl, ["unexport", img], len(plan), lambda n: paths[n - 1])
    ok(lioctl("unexport", img))


def test_a_fault_at_any_step_of_restore_prune_puts_everything_back(lioctl, tmp_path, loopdev):
    """The file lacks the block backstore (its LUN and mapped LUNs go too), ACL I2, the second
    portal and a write-protected mapped LUN, and has a new ACL: removals first, then creations."""
    from lioctl.saveconfig import restore_plan
    from lioctl.tree import snapshot
    build(lioctl, tmp_path, loopdev)
    saved = tmp_path / "saved.json"
    ok(lioctl("save", saved))
    d = json.loads(saved.read_text())
    d["storage_objects"] = [so for so in d["storage_objects"] if so["plugin"] != "block"]
    tpg = d["targets"][0]["tpgs"][0]
    block_lun = next(lun["index"] for lun in tpg["luns"] if lun["storage_object"].startswith("/backstores/block/"))
    tpg["luns"] = [lun for lun in tpg["luns"] if lun["index"] != block_lun]
    tpg["portals"] = [p for p in tpg["portals"] if p["port"] != 3261]
    tpg["node_acls"] = [a for a in tpg["node_acls"] if a["node_wwn"] != I2]
    for a in tpg["node_acls"]:
        a["mapped_luns"] = [m for m in a["mapped_luns"] if m["tpg_lun"] != block_lun and m["index"] != 7]
    tpg["node_acls"].append({"node_wwn": I3, "mapped_luns": [{"index": 0, "tpg_lun": 0, "write_protect": True}]})
    saved.write_text(json.dumps(d))
    plan = restore_plan.plan_restore(snapshot.read(), d, prune=True).plan
    paths = _plan_paths(plan)
    assert any(p.startswith("core/iblock") for p in paths) and any(I3 in p for p in paths)
    fault_every_step(lioctl, ["restore", "--prune", saved], len(plan), lambda n: paths[n - 1])
    ok(lioctl("restore", "--prune", saved))
    ok(lioctl("clear", "--yes"))


def test_ctrl_c_or_any_exception_midway_through_delete_rolls_back(lioctl, tmp_path, loopdev, monkeypatch):
    """Not only an OSError: Ctrl-C (exit 130) and a ValueError (a bug, a NUL in a name) at the
    removal of the second ACL, after the first is gone and the TPG disabled, undo everything."""
    from lioctl.plan import ops
    build(lioctl, tmp_path, loopdev)
    before = tree()
    real = ops.Rmdir.apply
    for exc, rc in ((KeyboardInterrupt, 130), (ValueError, 1)):
        def fails_at_the_second_acl(self, exc=exc):
            if self.path.endswith(f"/acls/{I2}"):
                raise exc("stopped here")
            return real(self)
        monkeypatch.setattr(ops.Rmdir, "apply", fails_at_the_second_acl)
        r = lioctl("/iscsi", "delete", T)
        monkeypatch.undo()
        assert r.returncode == rc, r.stderr
        assert "lioctl: rollback:" not in r.stderr, r.stderr
        assert rc == 130 or f"cannot remove iscsi/{T}/tpgt_1/acls/{I2}: stopped here" in r.stderr
        diff = differences(before, tree())
        assert not diff, f"after {exc.__name__}:\n" + "\n".join(diff[:20])
    ok(lioctl("clear", "--yes"))


def test_a_ramdisk_is_removed_last_and_one_re_made_empty_is_named(lioctl, tmp_path):
    """A ramdisk's data cannot come back: its removal is planned after the fileio's, and when a
    later step fails the rollback re-makes it with its settings but says its data is lost."""
    from lioctl.saveconfig import restore_plan
    from lioctl.tree import snapshot
    ok(lioctl(input=f"/backstores/ramdisk create r1 4M\n/backstores/fileio create f1 {tmp_path / 'f1.img'} 4M\n"
                    "/backstores/ramdisk/r1 set attribute is_nonrot=1\n"))
    before = tree()
    plan = restore_plan.plan_clear(snapshot.read())
    paths = _plan_paths(plan)
    assert [p.split("/")[1] for p in paths] == ["fileio_0", "fileio_0", "rd_mcp_0", "rd_mcp_0"], paths
    r = lioctl("clear", "--yes", env={"LIOCTL_FAULT_AT": str(len(plan))})
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("lioctl: rollback:")]
    assert lines == ["lioctl: rollback: core/rd_mcp_0/r1: re-created empty: "
                     "a ramdisk's data cannot be brought back"], r.stderr
    assert "rollback could not undo: core/rd_mcp_0/r1" in r.stderr
    assert not differences(before, tree())
    ok(lioctl("clear", "--yes"))
