"""Capture a live configfs target tree for the host tests (tests/unit/data/live_configfs.json).

Run in the guest: bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh &&
$LIOCTL_VENV/bin/python tests/kernel/capture_configfs.py tests/unit/data/live_configfs.json'

It builds a configuration with every backstore kind, an iSCSI target (two TPGs, LUNs, mapped
LUNs, ACLs with CHAP, portals, discovery auth, an ALUA group) and a loopback target, records
every directory, readable file (value and mode) and link under /sys/kernel/config/target, then
removes it all. The host tests read the copy through lioctl's own snapshot reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cfs  # noqa: E402
from conftest import run_lioctl  # noqa: E402
from initiator import loop_disk  # noqa: E402

ROOT = "/sys/kernel/config/target"
WORK = "/tmp/lioctl-capture"
T1 = "iqn.2003-01.org.example:live1"
I1 = "iqn.1994-05.com.example:host1"
I2 = "iqn.1994-05.com.example:host2"
LB = "naa.5001405000000abc"


def ok(r):
    if r.returncode != 0:
        raise SystemExit(f"lioctl {r.args}: {r.stderr}")
    return r


def scsi_debug_disk() -> str:
    for _ in range(100):
        disk = cfs.scsi_debug_disk()
        if disk:
            return disk
        time.sleep(0.1)
    raise SystemExit("no scsi_debug disk")


def capture() -> dict:
    dirs, files, links = [], {}, {}
    for top, dnames, fnames in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        for d in list(dnames):
            p = os.path.join(top, d)
            if os.path.islink(p):
                dnames.remove(d)
                fnames.append(d)
            else:
                dirs.append(os.path.normpath(os.path.join(rel, d)))
        for f in fnames:
            p = os.path.join(top, f)
            r = os.path.normpath(os.path.join(rel, f))
            if os.path.islink(p):
                target = os.path.normpath(os.path.join(top, os.readlink(p)))
                links[r] = os.path.relpath(target, ROOT)
                continue
            mode = os.stat(p).st_mode & 0o777
            try:
                with open(p, "rb") as fh:
                    value = fh.read(4096).decode("utf-8", "replace")
            except OSError:
                value = None     # write-only (control) or refusing reads
            files[r] = [oct(mode), value]
    return {"dirs": sorted(dirs), "files": dict(sorted(files.items())), "links": dict(sorted(links.items()))}


def main(out: str) -> None:
    os.makedirs(WORK, exist_ok=True)
    with loop_disk(f"{WORK}/blk.img", 16 << 20) as loop:
        capture_with(loop, out)


def capture_with(loop: str, out: str) -> None:
    """Every kind made (the block backstore on `loop`), captured into `out`, removed."""
    subprocess.run(["modprobe", "scsi_debug", "dev_size_mb=8"], check=True)
    disk = scsi_debug_disk()
    lines = [
        f"/backstores/fileio create f1 {WORK}/f1.img 8M",
        f"/backstores/fileio create f2 {WORK}/f2.img 4M write_back=false",
        f"/backstores/block create b1 {loop}",
        "/backstores/ramdisk create r1 4M",
        "/backstores/ramdisk create r2 2M nullio=true",
        f"/backstores/pscsi create p1 {disk}",
        f"/backstores/user create u1 4M {WORK}/u1.img",
        "/backstores/user create u2 2M ram1 subtype=lioctl_ram",
        "/backstores/ramdisk/r1/alua create ag1 7",
        f"/iscsi create {T1}",
        f"/iscsi/{T1} create 2",
        f"/iscsi/{T1}/tpg1/luns create /backstores/fileio/f1",
        f"/iscsi/{T1}/tpg1/luns create /backstores/block/b1",
        f"/iscsi/{T1}/tpg1/luns create /backstores/ramdisk/r1",
        f"/iscsi/{T1}/tpg1/luns create /backstores/user/u1",
        f"/iscsi/{T1}/tpg1/portals create 127.0.0.1 3261",
        f"/iscsi/{T1}/tpg1/portals create ::1 3260",
        f"/iscsi/{T1}/tpg1/acls create {I1}",
        f"/iscsi/{T1}/tpg1/acls create {I2} add_mapped_luns=false",
        f"/iscsi/{T1}/tpg1/acls/{I2} create 5 lun2 write_protect=true",
        f"/iscsi/{T1}/tpg1/acls/{I2} set_tag group1",
        f"/iscsi/{T1}/tpg1/acls/{I1} set auth userid=u1 password=p1secret12 userid_mutual=m1 password_mutual=m1secret12",
        f"/iscsi/{T1}/tpg1 set attribute authentication=1 generate_node_acls=0",
        f"/iscsi/{T1}/tpg1 set auth userid=tpguser password=tpgsecret12",
        f"/iscsi/{T1}/tpg1/luns/lun2 set_alua ag1",
        f"/iscsi/{T1}/tpg2/luns create /backstores/ramdisk/r2",
        f"/iscsi/{T1}/tpg2/luns create /backstores/pscsi/p1",
        f"/iscsi/{T1}/tpg2/luns create /backstores/user/u2",
        "/iscsi set discovery_auth enforce_discovery_auth=1 userid=disc password=discsecret1",
        f"/loopback create {LB}",
        f"/loopback/{LB}/luns create /backstores/fileio/f2",
    ]
    try:
        ok(run_lioctl(input="\n".join(lines) + "\n"))
        data = capture()
        data["made_by"] = lines
        with open(out, "w") as f:
            json.dump(data, f, indent=0, sort_keys=False)
            f.write("\n")
        print(f"captured {len(data['dirs'])} dirs, {len(data['files'])} files, "
              f"{len(data['links'])} links into {out}")
    finally:
        run_lioctl("clear", "--yes")
        run_lioctl("tcmu", "stop")
        if cfs.snapshot():
            cfs.clear()
        for _ in range(50):
            if subprocess.run(["rmmod", "scsi_debug"]).returncode == 0:
                break
            time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1])
