"""The programs that drive LIO, replayed through lioctl (issue #19), from their published code:
OpenStack Cinder's cinder-rtstool (create / add-initiator / delete-initiator / get-targets /
delete, with CHAP), Proxmox's PVE/Storage/LunCmd/LIO.pm (backstore create, attribute set, LUN
create with the index read from the output, saveconfig, the index read back from the saved
file), democratic-csi's zfs-generic targetcli share strategy (a script piped to the tool;
the node's iSCSI login and logout as publish and unpublish).

Each replay runs 20 volumes at once, one process per volume (forked from this one: the
commands run lioctl's main() as the console script does, without paying a Python start-up
each under emulation), then the same again: the second pass must change nothing it should not.
iSCSI sessions are opened during the passes. Afterwards: the configuration is exactly what was
asked, nothing is half-made, no session was dropped, and each command exited as documented."""

from __future__ import annotations

import contextlib
import json
import os
import re
import traceback

import pytest

import cfs
import initiator

N = 20
BYSTANDER = "iqn.2003-01.org.example:bystander"


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """N block devices (loop devices on sparse files): the volumes' LVM or zvol devices."""
    d = tmp_path_factory.mktemp("volumes")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(initiator.loop_disk(d / f"vol{v}.img", 4 << 20)) for v in range(N)]


def in_parallel(lioctl, jobs, meanwhile=None):
    """Run each job(run) in a process of its own, all at once; run(*argv, input=) runs one lioctl
    command there and records (argv, exit status, stdout, stderr). meanwhile() runs here while
    they do (iSCSI logins). Returns each job's record."""
    procs = []
    for job in jobs:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, write the record, leave without pytest's teardown
            os.close(r)
            record: list = []

            def run(*argv, input=None):
                p = lioctl(*argv, input=input)
                record.append([[str(a) for a in argv], p.returncode, p.stdout, p.stderr])
                return p
            try:
                job(run)
            except BaseException:  # noqa: BLE001 - reported by the parent
                record.append(["crash", -1, "", traceback.format_exc()])
            with os.fdopen(w, "w") as f:
                json.dump(record, f)
            os._exit(0)
        os.close(w)
        procs.append((pid, r))
    if meanwhile:
        meanwhile()
    out = []
    for pid, r in procs:
        with os.fdopen(r) as f:
            out.append(json.load(f))
        os.waitpid(pid, 0)
    return out


def exits(records, expected=0):
    """Every command of these records exited with `expected`."""
    bad = [(argv, rc, err.strip()) for rec in records for argv, rc, out, err in rec if rc != expected]
    assert not bad, bad[:5]


def sid_of(target):
    """The open-iscsi session id of TARGET (the same id before and after: not dropped)."""
    for line in initiator.sh("iscsiadm", "-m", "session").stdout.splitlines():
        if line.split()[3] == target:
            return line.split()[1]
    return None


def read_4k(target):
    with open(initiator.disk_for(target), "rb", buffering=0) as d:
        assert len(d.read(4096)) == 4096


@pytest.fixture
def bystander(lioctl, tmp_path):
    """A volume nobody touches during the replay, with a session on it."""
    r = lioctl("export", tmp_path / "bystander.img", "--lun-size", "4M", "--iqn", BYSTANDER)
    assert r.returncode == 0, r.stderr
    initiator.start()
    initiator.discover()
    initiator.login(BYSTANDER)
    read_4k(BYSTANDER)
    sid = sid_of(BYSTANDER)
    try:
        yield sid
        assert sid_of(BYSTANDER) == sid, "the session on the untouched volume was dropped"
        read_4k(BYSTANDER)
    finally:
        for line in initiator.sh("iscsiadm", "-m", "session", check=False).stdout.splitlines():
            initiator.logout(line.split()[3])
        lioctl("clear", "--yes")


# --- Cinder: cinder/cmd/rtstool.py, cinder/volume/targets/lio.py ------------------------------

HOST_A = initiator.INITIATOR_IQN          # the compute node that keeps the volume attached
HOST_B = "iqn.1994-05.com.example:compute-b"


def cinder_iqn(v):
    return f"iqn.2010-10.org.openstack:volume-{v:02d}"


def cinder_create_doc(v, dev):
    """rtstool create: BlockStorageObject(name=IQN, dev), Target, TPG with authentication=1,
    LUN, an ACL per initiator with CHAP and mapped LUN 0, enable, portal 0.0.0.0:3260."""
    iqn = cinder_iqn(v)
    return {"storage_objects": [{"plugin": "block", "name": iqn, "dev": dev}],
            "targets": [{"fabric": "iscsi", "wwn": iqn, "tpgs": [{
                "tag": 1, "enable": True, "attributes": {"authentication": 1},
                "luns": [{"index": 0, "storage_object": f"/backstores/block/{iqn}"}],
                "portals": [{"ip_address": "0.0.0.0", "port": 3260}],
                "node_acls": [{"node_wwn": HOST_A, "chap_userid": f"user{v}", "chap_password": f"pass-{v}-secret",
                               "mapped_luns": [{"index": 0, "tpg_lun": 0}]}]}]}]}


def cinder_volume(v, dev):
    iqn = cinder_iqn(v)
    tpg = f"/iscsi/{iqn}/tpg1"

    def job(run):
        # create (the secret goes in the document on stdin, never in argv)
        run("--json", "apply", "-", input=json.dumps(cinder_create_doc(v, dev)))
        # add-initiator: ACL with CHAP and mapped LUN 0 (auto_add_mapped_luns maps it)
        run(f"{tpg}/acls", "create", HOST_B)
        run(f"{tpg}/acls/{HOST_B}", "set", "auth", "userid=userb", "password=-", input=f"passb-{v}\n")
        # get-targets: Cinder matches the IQN in the list of targets
        run("--json", "ls", "/iscsi", "1")
        # delete-initiator
        run(f"{tpg}/acls", "delete", HOST_B)
        if v % 2:  # delete: the target, then the storage object named after it
            run("/iscsi", "delete", iqn)
            run("/backstores/block", "delete", iqn)
    return job


def test_cinder_rtstool_sequence(lioctl, disks, bystander):
    jobs = [cinder_volume(v, disks[v]) for v in range(N)]
    first = in_parallel(lioctl, jobs)
    exits(first)
    # the compute node logs in to volume 0 with its CHAP secret, and stays during pass two; it
    # logs in to volume 2 while pass two runs
    initiator.discover()
    for v in (0, 2):
        initiator.set_chap(cinder_iqn(v), f"user{v}", f"pass-{v}-secret")
    initiator.login(cinder_iqn(0))
    read_4k(cinder_iqn(0))
    sid0 = sid_of(cinder_iqn(0))
    second = in_parallel(lioctl, jobs, meanwhile=lambda: initiator.login(cinder_iqn(2)))
    exits(second)
    sid2 = sid_of(cinder_iqn(2))
    for v, rec in enumerate(second):
        created = json.loads(rec[0][2])
        # pass two: a kept volume is already right (no change at all); a deleted one is re-made
        assert (created["operations"] == 0) == (v % 2 == 0), (v, created)
        listed = [c["name"] for c in json.loads(rec[3][2])["children"]]
        assert cinder_iqn(v) in listed
    assert sid_of(cinder_iqn(0)) == sid0, "volume 0's session was dropped by pass two"
    for v in (0, 2):
        read_4k(cinder_iqn(v))
    assert sid_of(cinder_iqn(2)) == sid2
    # the configuration: exactly the kept volumes, each whole
    cfg = json.loads(lioctl("save", "-").stdout)
    kept = {cinder_iqn(v) for v in range(0, N, 2)}
    assert {t["wwn"] for t in cfg["targets"]} == kept | {BYSTANDER}
    assert {s["name"] for s in cfg["storage_objects"] if s["plugin"] == "block"} == kept
    for t in cfg["targets"]:
        if t["wwn"] == BYSTANDER:
            continue
        v = int(t["wwn"][-2:])
        (tpg,) = t["tpgs"]
        assert tpg["attributes"]["authentication"] == 1 and tpg["enable"]
        assert tpg["luns"] == [{"index": 0, "storage_object": f"/backstores/block/{t['wwn']}",
                                "alias": tpg["luns"][0]["alias"], "alua_tg_pt_gp_name": "default_tg_pt_gp"}]
        (acl,) = tpg["node_acls"]
        assert acl["node_wwn"] == HOST_A and acl["chap_userid"] == f"user{v}"
        assert [m["tpg_lun"] for m in acl["mapped_luns"]] == [0]
        assert (cfs.ROOT / "iscsi" / t["wwn"] / "tpgt_1/acls" / HOST_A / "auth/password").read_text().strip() \
            == f"pass-{v}-secret"
    # rtstool delete of a volume already gone: --missing-ok makes it a no-op (exit 0), as
    # rtstool's own loop is; without it, the documented not-found status, nothing changed
    before = cfs.snapshot()
    r = lioctl("--missing-ok", "/iscsi", "delete", cinder_iqn(1))
    assert r.returncode == 0, r.stderr
    r = lioctl("/iscsi", "delete", cinder_iqn(1))
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
    assert cfs.snapshot() == before


# --- Proxmox: src/PVE/Storage/LunCmd/LIO.pm ---------------------------------------------------

PVE = "iqn.2003-01.org.example:pve-storage"


def pve_volume(v, dev, saved, again=False):
    """create_lu, and delete_lu for odd volumes; like LIO.pm, a step that fails ends it (die).
    The first time the LUN index is read from the text, as LIO.pm does ("Created LUN 3.");
    again, with --exist-ok, from --json (the index of the LUN already there)."""
    name = f"pve-vm-100-disk-{v}"
    luns = f"/iscsi/{PVE}/tpg1/luns/"
    flags = ("--json", "--exist-ok") if again else ()

    def job(run):
        for argv in ((*flags, "/backstores/block", "create", f"name={name}", f"dev={dev}"),
                     (f"/backstores/block/{name}", "set", "attribute", "emulate_tpu=1"),
                     (*flags, luns, "create", f"/backstores/block/{name}")):
            p = run(*argv)
            if p.returncode:
                return
        idx = json.loads(p.stdout)["lun"] if again else re.search(r"LUN (\d+)", p.stdout).group(1)
        run("save", saved)
        if v % 2:  # delete_lu: the LUN by its index, then the backstore
            run(luns, "delete", f"lun{idx}")
            run("/backstores/block", "delete", name)
            run("save", saved)
    return job


def test_proxmox_lio_sequence(lioctl, disks, bystander, tmp_path):
    saved = tmp_path / "saveconfig.json"
    for line in (f"/iscsi create {PVE}",  # made by the administrator, as Proxmox expects
                 f"/iscsi/{PVE}/tpg1 set attribute generate_node_acls=1 demo_mode_write_protect=0 "
                 "cache_dynamic_acls=1 authentication=0"):
        assert lioctl(*line.split()).returncode == 0
    initiator.discover()
    jobs = [pve_volume(v, disks[v], saved) for v in range(N)]
    first = in_parallel(lioctl, jobs, meanwhile=lambda: initiator.login(PVE))  # LUNs come and go
    exits(first)
    sid = sid_of(PVE)
    created = {v: int(re.search(r"LUN (\d+)", rec[2][2]).group(1)) for v, rec in enumerate(first)}
    # an index freed by a deleted volume may be taken again; the kept volumes' are their own
    assert len({created[v] for v in range(0, N, 2)}) == N // 2, created
    # pass two, the same sequence with --exist-ok: a kept volume is there as asked (no change,
    # the same LUN index); a deleted one is made and deleted again
    second = in_parallel(lioctl, [pve_volume(v, disks[v], saved, again=True) for v in range(N)])
    exits(second)
    for v in range(0, N, 2):
        made = json.loads(second[v][0][2]), json.loads(second[v][2][2])
        assert [d["changed"] for d in made] == [False, False] and made[1]["lun"] == created[v], made
    # without --exist-ok LIO.pm's create of a volume that is there: exit 5, nothing changed
    before = cfs.snapshot()
    r = lioctl("/backstores/block", "create", "name=pve-vm-100-disk-0", f"dev={disks[0]}")
    assert r.returncode == 5 and cfs.snapshot() == before, (r.returncode, r.stderr)
    assert sid_of(PVE) == sid, "the session on the shared target was dropped"
    # the read back: the saved file lists each kept volume at the index the output named
    cfg = json.loads(saved.read_text())
    (t,) = [t for t in cfg["targets"] if t["wwn"] == PVE]
    listed = {lun["storage_object"]: lun["index"] for lun in t["tpgs"][0]["luns"]}
    assert listed == {f"/backstores/block/pve-vm-100-disk-{v}": created[v] for v in range(0, N, 2)}
    so = {s["name"]: s for s in cfg["storage_objects"] if s["plugin"] == "block"}
    assert set(so) == {f"pve-vm-100-disk-{v}" for v in range(0, N, 2)}
    assert all(s["attributes"]["emulate_tpu"] == 1 for s in so.values())
    assert json.loads(lioctl("save", "-").stdout) == cfg, "the last save is the running configuration"


# --- democratic-csi: src/driver/controller-zfs-generic (iscsi, shareStrategyTargetCli) ---------

CSI_BASE = "iqn.2003-01.org.example.csi"


def csi_create_script(v, dev):
    """CreateVolume's script, as the driver pipes it into targetcli (its example's tpg
    attributes: demo mode, no CHAP)."""
    asset = f"pvc-{v:02d}"
    return f"""
# create target
cd /iscsi
create {CSI_BASE}:{asset}

# setup tpg
cd /iscsi/{CSI_BASE}:{asset}/tpg1
set attribute authentication=0 demo_mode_write_protect=0 generate_node_acls=1 cache_dynamic_acls=1

# create extent
cd /backstores/block
create {asset} {dev}

# add extent to target/tpg
cd /iscsi/{CSI_BASE}:{asset}/tpg1/luns
create /backstores/block/{asset}
"""


def csi_delete_script(v):
    asset = f"pvc-{v:02d}"
    return f"""
# delete target
cd /iscsi
delete {CSI_BASE}:{asset}

# delete extent
cd /backstores/block
delete {asset}
"""


def test_csi_targetcli_sequence(lioctl, disks, bystander):
    def volume(v, again):
        def job(run):
            # the driver's retry of CreateVolume runs the same script: --exist-ok makes it safe
            run(*(["--exist-ok"] if again else []), input=csi_create_script(v, disks[v]))
            if again and v % 2:
                run(input=csi_delete_script(v))
        return job
    exits(in_parallel(lioctl, [volume(v, again=False) for v in range(N)]))
    initiator.discover()
    published = [f"{CSI_BASE}:pvc-{v:02d}" for v in (0, 2, 4)]
    saved_targets = lambda: {t["wwn"]: t for t in json.loads(lioctl("save", "-").stdout)["targets"]}  # noqa: E731
    before = saved_targets()

    def publish():  # NodeStageVolume: the node logs in, while the controller works
        for t in published:
            initiator.login(t)
    # pass two: CreateVolume again for every volume, then DeleteVolume for the odd ones
    second = in_parallel(lioctl, [volume(v, again=True) for v in range(N)], meanwhile=publish)
    exits(second)
    sids = {t: sid_of(t) for t in published}
    after = saved_targets()
    assert {t: after[t] for t in published} == {t: before[t] for t in published}
    # without --exist-ok the script stops at its first create, the target being there, with the
    # documented already-exists status, and changes nothing
    snap = cfs.snapshot()
    r = lioctl(input=csi_create_script(6, disks[6]))
    assert r.returncode == 5 and "line 4:" in r.stderr and cfs.snapshot() == snap, (r.returncode, r.stderr)
    for t in published:
        read_4k(t)
    initiator.logout(published[0])   # unpublish (NodeUnstageVolume)
    assert {t: sid_of(t) for t in published[1:]} == {t: sids[t] for t in published[1:]}
    cfg = json.loads(lioctl("save", "-").stdout)
    kept = {f"{CSI_BASE}:pvc-{v:02d}" for v in range(0, N, 2)}
    assert {t["wwn"] for t in cfg["targets"]} == kept | {BYSTANDER}
    assert {s["name"] for s in cfg["storage_objects"] if s["plugin"] == "block"} == \
        {t.split(":")[1] for t in kept}
    for t in cfg["targets"]:
        if t["wwn"] != BYSTANDER:
            (tpg,) = t["tpgs"]
            assert tpg["attributes"]["generate_node_acls"] == 1 and tpg["enable"]
            assert [lun["storage_object"] for lun in tpg["luns"]] == [f"/backstores/block/{t['wwn'].split(':')[1]}"]
