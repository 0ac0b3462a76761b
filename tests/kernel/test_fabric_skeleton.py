"""Modules from `lioctl fabric-skeleton`, one per protocol: load, manage with lioctl, unload.

Built on the host (tests/unit/test_fabric_skeleton.py fills the cache in tests/.out); here each is
insmod'ed into the real kernel and driven through lioctl's generic fabric path only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess

import pytest

import cfs
import fabric_modules

# target name, initiator name, a name the protocol's format refuses
NAMES = {
    "iSCSI": ("iqn.2003-01.org.example:fsk", "iqn.1994-05.com.example:client", "iqn.2003-1.bad"),
    "FCP": ("20:00:00:11:22:33:44:55", "21:00:00:24:ff:00:00:01", "20:00:00:11:22:33:44"),
    "SAS": ("naa.5001405000000abc", "naa.5001405000000def", "naa.6001405000000abc"),
    "SRP": ("0x00000000000000000002c90300a1b2c3", "0xfe800000000000000002c90300a1b2c4",
            "00000000000000000002c90300a1b2c3"),
    "SBP": ("0011223344556677", "00112233445566aa", "0011223344556677aa"),
}
# kernel taint bits a module from outside the tree may add: O (out-of-tree), E (unsigned)
TAINT_OUT_OF_TREE, TAINT_UNSIGNED = 1 << 12, 1 << 13
BAD_KERNEL_WORDS = ("WARNING", "BUG", "Oops", "Call Trace", "general protection", "refcount_t",
                    "kmemleak", "use-after-free")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def fabric_tree(name: str) -> dict[str, str]:
    """The fabric's configfs tree; link names are LUN aliases (random per creation), so only
    where each link points counts."""
    out = {}
    for k, v in cfs.tree(cfs.ROOT / name).items():
        if v.startswith("link->"):
            k = os.path.dirname(k) + "/<link>"
        out[k] = v
    return out


def canon(d: dict) -> dict:
    """Order-independent saveconfig; generated aliases are not configuration."""
    def walk(x):
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items() if k != "alias"}
        if isinstance(x, list):
            return sorted((walk(v) for v in x), key=lambda v: json.dumps(v, sort_keys=True))
        return x
    return walk(d)


def tainted() -> int:
    with open("/proc/sys/kernel/tainted") as f:
        return int(f.read())


class Kmsg:
    """Kernel log records written since creation (read from /dev/kmsg: no dmesg fork)."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def new(self) -> list[str]:
        out = []
        while True:
            try:
                rec = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.EPIPE:   # overwritten records: go on
                    continue
                raise
            out.append(rec.split(";", 1)[-1].splitlines()[0])


@pytest.fixture(scope="module")
def modules():
    return fabric_modules.build_all(os.uname().release)


@pytest.fixture
def loaded(request, modules):
    proto = request.param
    name = fabric_modules.module_name(proto)
    log = Kmsg()
    before = tainted()
    r = subprocess.run(["insmod", str(modules[proto])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    yield proto, name, log, before
    if os.path.isdir(cfs.ROOT / name):
        cfs.clear()
        os.rmdir(cfs.ROOT / name)
    subprocess.run(["rmmod", name], capture_output=True, text=True)


@pytest.mark.parametrize("loaded", list(NAMES), indirect=True)
def test_skeleton_module_managed_by_lioctl(loaded, lioctl, tmp_path):
    proto, name, log, taint_before = loaded
    wwn, initiator, bad = NAMES[proto]
    with open(f"/sys/module/{name}/taint") as f:
        module_taint = f.read().strip()
    new_taint = tainted() & ~taint_before
    print(f"{proto}: module taint {module_taint}, kernel taint added {new_taint:#x}")
    assert new_taint & ~(TAINT_OUT_OF_TREE | TAINT_UNSIGNED) == 0, f"taint {new_taint:#x}"
    assert set(module_taint) <= {"O", "E"}, module_taint

    # listed as soon as it is loaded, before its configfs directory exists
    assert not os.path.isdir(cfs.ROOT / name)
    assert f"o- {name} " in ok(lioctl("ls")).stdout
    from lioctl.completion.scripts import candidates
    assert f"/{name}/" in candidates(f"lioctl /{name[:8]}")

    # a name the protocol's format refuses: one line, nothing made
    r = lioctl(f"/{name}", "create", bad)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert bad in r.stderr
    assert not os.path.exists(cfs.ROOT / name / bad)

    img = tmp_path / "disk.img"
    ok(lioctl(input="\n".join([
        f"/backstores/fileio create fsk0 {img} 4M",
        f"/{name} create {wwn}",
        f"/{name}/{wwn}/tpg1/luns create /backstores/fileio/fsk0",
        f"/{name}/{wwn}/tpg1/acls create {initiator}",
    ]) + "\n"))
    tpg = cfs.ROOT / name / wwn / "tpgt_1"
    assert (tpg / "enable").read_text().strip() == "1"
    links = [p for p in (tpg / "lun" / "lun_0").iterdir() if p.is_symlink()]
    assert len(links) == 1 and os.path.realpath(links[0]).endswith("/fsk0"), links
    mapped = tpg / "acls" / initiator / "lun_0"
    assert mapped.is_dir() and any(p.is_symlink() for p in mapped.iterdir())

    # a second target, now that the fabric's TPGs show their groups (np among them)
    ok(lioctl(f"/{name}", "create", initiator))
    assert (cfs.ROOT / name / initiator / "tpgt_1").is_dir()
    ok(lioctl(f"/{name}", "delete", initiator))

    listing = json.loads(ok(lioctl("--json", "ls", f"/{name}")).stdout)
    assert wwn in json.dumps(listing) and initiator in json.dumps(listing)

    saved = tmp_path / "saved.json"
    ok(lioctl("save", saved))
    config = json.loads(saved.read_text())
    targets = [t for t in config["targets"] if t["fabric"] == name]
    assert [t["wwn"] for t in targets] == [wwn]
    tpg_saved = targets[0]["tpgs"][0]
    assert tpg_saved["enable"] is True and len(tpg_saved["luns"]) == 1
    assert [a["node_wwn"] for a in tpg_saved["node_acls"]] == [initiator]
    tree = fabric_tree(name)

    ok(lioctl("clear", "--yes"))
    assert cfs.snapshot() == []
    ok(lioctl("restore", saved))
    restored = fabric_tree(name)
    assert restored == tree, {k: (tree.get(k), restored.get(k))
                              for k in set(tree) ^ set(restored) | {k for k in tree if tree[k] != restored.get(k)}}
    assert canon(json.loads(ok(lioctl("save", "-")).stdout)) == canon(config)
    assert ok(lioctl("diff", saved)).stdout == ""

    ok(lioctl(f"/{name}", "delete", wwn))
    assert not os.path.exists(cfs.ROOT / name / wwn)
    ok(lioctl("/backstores/fileio", "delete", "fsk0"))
    os.rmdir(cfs.ROOT / name)
    r = subprocess.run(["rmmod", name], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"/sys/module/{name}")

    lines = log.new()
    bad_lines = [ln for ln in lines if any(w in ln for w in BAD_KERNEL_WORDS)]
    assert bad_lines == [], bad_lines
    # besides the taint notices of the first such module, what it logged is the refused name
    said = [ln for ln in lines if ln.startswith(f"{name}:") and not re.search(
        r"loading out-of-tree module taints kernel|module verification failed", ln)]
    assert said and all(bad in ln for ln in said), said
