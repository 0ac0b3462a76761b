"""Issue 19's proof: the sequences Cinder (cinder-rtstool: create with CHAP, add-initiator,
get-targets, delete-initiator, delete), Proxmox (LIO plugin: backstore create, attribute set,
LUN create, the LUN index read back) and a CSI driver (create-volume, publish, unpublish,
delete-volume) send to their target, replayed through lioctl: 20 volumes each, one process per
volume, four at a time, the whole run twice (the second must change nothing), with iSCSI
sessions open on a volume nobody touches and on a Cinder volume during the second run. The
final configuration is exactly what was asked, every exit status is 0, every document valid,
and neither session is dropped."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import jsonschema

import cfs
import initiator as ini
from conftest import run_lioctl

N = 20
COMPUTE = [f"iqn.1994-05.com.example:compute-{k}" for k in range(3)]
PVE = "iqn.2003-01.org.example:pve"
CSI = "iqn.2003-01.org.example:csi"
NODE = "iqn.1994-05.com.example:k8s-node-1"


def cinder_iqn(i: int) -> str:
    return f"iqn.2010-10.org.openstack:volume-{i}"


def cinder(i: int, chap_file: str) -> str:
    t = f"/iscsi/{cinder_iqn(i)}/tpg1"
    lines = [f"/backstores/ramdisk create cinder-{i} 1M wwn=from:cinder-{i}",
             f"/iscsi create {cinder_iqn(i)}",
             f"{t}/luns create /backstores/ramdisk/cinder-{i}",
             f"{t}/acls create {ini.INITIATOR_IQN if i == 1 else COMPUTE[i % 3]}",
             f"{t}/acls/{ini.INITIATOR_IQN if i == 1 else COMPUTE[i % 3]} set auth userid=cinder-{i} "
             f"password_file={chap_file}",
             f"{t}/acls create {COMPUTE[(i + 1) % 3]}",          # add-initiator for a migration
             "/iscsi ls"]                                        # get-targets
    if i % 2:
        lines.append(f"{t}/acls delete {COMPUTE[(i + 1) % 3]}")  # delete-initiator
    if i % 5 == 0:                                               # delete
        lines += [f"/iscsi delete {cinder_iqn(i)}", f"/backstores/ramdisk delete cinder-{i}"]
    return "\n".join(lines) + "\n"


def proxmox(i: int) -> str:
    return (f"/backstores/ramdisk create pve-{i} 1M\n"
            f"/backstores/ramdisk/pve-{i} set attribute is_nonrot=1\n"   # emulate_tpu on a zvol
            f"/iscsi/{PVE}/tpg1/luns create /backstores/ramdisk/pve-{i}\n")


def csi(i: int) -> str:
    t = f"/iscsi/{CSI}/tpg1"
    lines = [f"/backstores/ramdisk create pvc-{i} 1M wwn=from:pvc-{i}",      # CreateVolume
             f"{t}/luns create /backstores/ramdisk/pvc-{i}"]                 # ControllerPublish
    if i % 4 == 0:          # ControllerUnpublish and DeleteVolume: --force takes its LUN first
        lines.append(f"/backstores/ramdisk delete pvc-{i}")
    return "\n".join(lines) + "\n"


def documents(text: str) -> list[dict]:
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(text, i)
        out.append(doc)
    return out


def pure_create(i: int) -> bool:
    """Volume i's sequences only make things: run again, they change nothing."""
    return i % 2 == 0 and i % 5 != 0 and i % 4 != 0


def replay(scripts: list[str]) -> list[list[dict]]:
    """Each volume's sequences in its own lioctl process (a batch), four processes at a time."""
    def one(script):
        p = run_lioctl("--json", "--exist-ok", "--missing-ok", "--force", "--wait", "300", input=script,
                       subprocess_=True)
        assert p.returncode == 0, (script, p.stdout[-3000:], p.stderr)
        return documents(p.stdout)
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, scripts))


def config_tree() -> dict[str, str]:
    """configfs without a logged-in ACL's `info`: it shows the session's StatSN, which moves."""
    return {k: v for k, v in cfs.tree().items() if not (k.endswith("/info") and "/acls/" in k)}


def sid_of(lioctl, target: str) -> int:
    (s,) = [s for s in json.loads(lioctl("sessions", "--json").stdout)["sessions"] if s["target"] == target]
    return s["sid"]


def test_cinder_proxmox_and_csi_replayed_in_parallel_twice(lioctl, tmp_path):
    try:
        _replay_and_check(lioctl, tmp_path)
    finally:
        lioctl("clear", "--yes")


def _replay_and_check(lioctl, tmp_path):
    schema = json.loads(resources.files("lioctl").joinpath("schema/lioctl.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    chap = tmp_path / "chap"
    chap.write_text("cinder-secret-1\n")
    os.chmod(chap, 0o600)
    img = tmp_path / "bystander.img"
    img.write_bytes(bytes(1 << 20))
    bystander = "iqn.2003-01.org.example:bystander"
    assert lioctl("export", img, "--iqn", bystander).returncode == 0
    for t in (PVE, CSI):
        assert lioctl("/iscsi", "create", t).returncode == 0
    assert lioctl(f"/iscsi/{CSI}/tpg1/acls", "create", NODE).returncode == 0
    scripts = [cinder(i, chap) + proxmox(i) + csi(i) for i in range(N)]
    ini.start()
    try:
        ini.discover()
        ini.login(bystander)
        ini.disk_for(bystander)
        by_sid = sid_of(lioctl, bystander)

        first = replay(scripts)
        ini.discover()
        ini.set_chap(cinder_iqn(1), "cinder-1", "cinder-secret-1")
        ini.login(cinder_iqn(1))
        ini.disk_for(cinder_iqn(1))
        c1_sid = sid_of(lioctl, cinder_iqn(1))
        before_second = config_tree()
        second = replay(scripts)

        assert config_tree() == before_second
        assert sid_of(lioctl, bystander) == by_sid and sid_of(lioctl, cinder_iqn(1)) == c1_sid
    finally:
        for t in (bystander, cinder_iqn(1)):
            ini.logout(t)
    for run in (first, second):
        for docs in run:
            for d in docs:
                errors = [e.message for e in validator.iter_errors(d)]
                assert not errors, (d, errors)
    writes = [d for i, docs in enumerate(second) if pure_create(i) for d in docs if d["output"] == "write"]
    assert len(writes) > 30 and not [d for d in writes if d["changed"]], [d for d in writes if d["changed"]][:3]
    # Proxmox reads the LUN index back: each volume its own, the same in both runs
    pve = {}
    for docs_1, docs_2 in zip(first, second):
        (l1,) = [d for d in docs_1 if d.get("command", "").startswith(f"/iscsi/{PVE}/")]
        (l2,) = [d for d in docs_2 if d.get("command", "").startswith(f"/iscsi/{PVE}/")]
        assert l1["lun"] == l2["lun"] and l2["changed"] is False
        (lun,) = [o for o in l1["created"] if o["type"] == "lun"]
        pve[lun["storage_object"]] = l1["lun"]
    assert len(pve) == len(set(pve.values())) == N

    # exactly what was asked
    snap = json.loads(lioctl("ls", "--json").stdout)
    assert snap["output"] == "ls"
    from lioctl.tree import snapshot
    s = snapshot.read()
    want_sos = ({("ramdisk", f"cinder-{i}") for i in range(N) if i % 5} | {("ramdisk", f"pve-{i}") for i in range(N)}
                | {("ramdisk", f"pvc-{i}") for i in range(N) if i % 4} | {("fileio", "bystander.img")})
    assert set(s.storage_objects) == want_sos
    iscsi = s.fabrics["iscsi"].targets
    assert set(iscsi) == {cinder_iqn(i) for i in range(N) if i % 5} | {PVE, CSI, bystander}
    for i in range(N):
        if i % 5 == 0:
            continue
        tpg = iscsi[cinder_iqn(i)].tpgs[1]
        first_acl = ini.INITIATOR_IQN if i == 1 else COMPUTE[i % 3]
        assert set(tpg.acls) == ({first_acl} if i % 2 else {first_acl, COMPUTE[(i + 1) % 3]})
        assert [lun.storage_object.name for lun in tpg.luns.values()] == [f"cinder-{i}"]
        assert (cfs.ROOT / "iscsi" / cinder_iqn(i) / "tpgt_1/acls" / first_acl / "auth/userid").read_text().strip() \
            == f"cinder-{i}"
    assert sorted(lun.storage_object.name for lun in iscsi[PVE].tpgs[1].luns.values()) == sorted(f"pve-{i}" for i in range(N))
    assert {so.name: so.attr("attrib", "is_nonrot") for so in s.storage_objects.values()
            if so.name.startswith("pve-")} == {f"pve-{i}": "1" for i in range(N)}
    csi_luns = sorted(lun.storage_object.name for lun in iscsi[CSI].tpgs[1].luns.values())
    assert csi_luns == sorted(f"pvc-{i}" for i in range(N) if i % 4)
    assert len(iscsi[CSI].tpgs[1].acls[NODE].mapped_luns) == len(csi_luns)
