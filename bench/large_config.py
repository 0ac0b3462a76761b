"""Build the large benchmark configuration straight through configfs, in one process
(forks cost tens of ms under QEMU's TCG): 256 fileio backstores, 32 iSCSI targets x 8 LUNs,
16 ACLs per TPG mapping every LUN (4,096 mapped LUNs)."""

from __future__ import annotations

import os
import uuid

ROOT = "/sys/kernel/config/target"
N_SO, N_T, LUNS, ACLS = 256, 32, 8, 16


def w(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def target_iqn(t: int) -> str:
    return f"iqn.2003-01.org.example.bench:t{t:02d}"


def initiator_iqn(t: int, a: int) -> str:
    return f"iqn.1994-05.com.example.bench:t{t:02d}-c{a:02d}"


def build(imgdir: str = "/tmp/bench-img") -> None:
    os.makedirs(imgdir, exist_ok=True)
    os.makedirs(f"{ROOT}/iscsi", exist_ok=True)
    sos = []
    for i in range(N_SO):
        img = f"{imgdir}/d{i:03d}.img"
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        so = f"{ROOT}/core/fileio_{i}/d{i:03d}"
        os.makedirs(so)
        w(so + "/control", f"fd_dev_name={img},fd_dev_size={1 << 20}")
        w(so + "/udev_path", img)
        w(so + "/enable", "1")
        w(so + "/wwn/vpd_unit_serial", str(uuid.uuid4()))
        sos.append(so)
    for t in range(N_T):
        tpg = f"{ROOT}/iscsi/{target_iqn(t)}/tpgt_1"
        os.makedirs(tpg)
        os.mkdir(tpg + "/np/0.0.0.0:3260") if t == 0 else None
        for lun in range(LUNS):
            os.mkdir(f"{tpg}/lun/lun_{lun}")
            os.symlink(sos[t * LUNS + lun], f"{tpg}/lun/lun_{lun}/{uuid.uuid4().hex[:10]}")
        for a in range(ACLS):
            acl = f"{tpg}/acls/{initiator_iqn(t, a)}"
            os.mkdir(acl)
            for lun in range(LUNS):
                os.mkdir(f"{acl}/lun_{lun}")
                os.symlink(f"{tpg}/lun/lun_{lun}", f"{acl}/lun_{lun}/{uuid.uuid4().hex[:10]}")
        w(tpg + "/enable", "1")


if __name__ == "__main__":
    build()
