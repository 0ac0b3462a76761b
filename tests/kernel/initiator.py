"""A real open-iscsi initiator in the guest, logging in over 127.0.0.1."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import subprocess
import time

INITIATOR_IQN = "iqn.2005-03.org.open-iscsi:lioctl-test"
PORTAL = "127.0.0.1:3260"
_iscsid: subprocess.Popen | None = None


def sh(*cmd, check=True, timeout=60) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def start(iqn: str = INITIATOR_IQN) -> None:
    """Start iscsid once with our initiator name (the guest's /etc is a throwaway overlay)."""
    global _iscsid
    os.makedirs("/etc/iscsi", exist_ok=True)
    with open("/etc/iscsi/initiatorname.iscsi", "w") as f:
        f.write(f"InitiatorName={iqn}\n")
    if _iscsid is None or _iscsid.poll() is not None:
        os.makedirs("/run/lock/iscsi", exist_ok=True)
        _iscsid = subprocess.Popen(["iscsid", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)  # its shutdown signals its own group
        wait_for(lambda: sh("iscsiadm", "-m", "session", check=False).returncode in (0, 21),
                 "iscsid to answer")


def wait_for(cond, what: str, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def opens(dev: str) -> bool:
    """Whether a disk's node opens. sysfs and /dev show a new disk before it can be opened:
    6.1's device_add_disk() adds the device (its sysfs directory and devtmpfs node) and only
    later, after registering its queue, makes the block device findable (bdev_add); an open
    in between fails with ENXIO (seen in the guest: 1 new tcm_loop disk in 40, for up to
    23 ms, with the kernel's own ramdisk backstore and nothing in dmesg)."""
    try:
        os.close(os.open(dev, os.O_RDONLY | os.O_CLOEXEC))
        return True
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT, errno.ENODEV):
            return False
        raise


def discover(portal: str = PORTAL) -> str:
    return sh("iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", portal).stdout


def set_chap(target: str, user: str, secret: str, mutual: tuple[str, str] | None = None,
             portal: str = PORTAL) -> None:
    base = ["iscsiadm", "-m", "node", "-T", target, "-p", portal, "-o", "update", "-n"]
    sh(*base, "node.session.auth.authmethod", "-v", "CHAP")
    sh(*base, "node.session.auth.username", "-v", user)
    sh(*base, "node.session.auth.password", "-v", secret)
    if mutual:
        sh(*base, "node.session.auth.username_in", "-v", mutual[0])
        sh(*base, "node.session.auth.password_in", "-v", mutual[1])


def login(target: str, portal: str = PORTAL, check=True) -> subprocess.CompletedProcess:
    return sh("iscsiadm", "-m", "node", "-T", target, "-p", portal, "--login", check=check)


def logout(target: str, portal: str = PORTAL) -> None:
    sh("iscsiadm", "-m", "node", "-T", target, "-p", portal, "--logout", check=False)
    sh("iscsiadm", "-m", "node", "-T", target, "-p", portal, "-o", "delete", check=False)


def disk_for(target: str, timeout: float = 30.0) -> str:
    """The /dev/sdX of LUN 0 of a logged-in target (found through sysfs, polled)."""
    def find():
        for sess in glob.glob("/sys/class/iscsi_session/session*"):
            try:
                name = open(f"{sess}/targetname").read().strip()
            except OSError:
                continue
            if name != target:
                continue
            devs = glob.glob(f"{sess}/device/target*/*:0:0:0/block/*")
            if devs:
                dev = "/dev/" + os.path.basename(devs[0])
                if opens(dev):
                    return dev
        return None
    return wait_for(find, f"a disk from {target}", timeout)


UNIT_ATTENTION = 6   # sg3_utils' exit status for a command that met a unit attention


def sg(*cmd, tries: int = 3) -> subprocess.CompletedProcess:
    """An sg3_utils command, sent again after a unit attention as an initiator does: the
    target reports each UA (REPORTED LUNS DATA HAS CHANGED when a LUN was added beside this
    one, say) once per I_T nexus, on the first command after it, and then clears it."""
    for _ in range(tries):
        p = sh(*cmd, check=False)
        if p.returncode != UNIT_ATTENTION:
            break
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def loopback_disk(wwn: str, lun: int, timeout: float = 60.0) -> str:
    """The /dev/sdX of a tcm_loop LUN, found by its SCSI address: tcm_loop's TPG `address`
    names the host and target (H:0:T), the LUN index is the SCSI LUN. No VPD page or model
    string is needed (those a probe that met a unit attention may lack). A device not there
    after a few seconds is asked for again by a scan of that one address. Found means its
    node opens (`opens`)."""
    addr = glob.glob(f"/sys/kernel/config/target/loopback/{wwn}/tpgt_*/address")
    assert addr, f"no tcm_loop TPG for {wwn}"
    host, _, target = open(addr[0]).read().strip().split(":")
    hctl = f"{host}:0:{target}:{lun}"
    start = time.monotonic()
    scanned = False

    def find():
        nonlocal scanned
        blocks = glob.glob(f"/sys/class/scsi_device/{hctl}/device/block/*")
        if blocks and opens(f"/dev/{os.path.basename(blocks[0])}"):
            return f"/dev/{os.path.basename(blocks[0])}"
        if not scanned and time.monotonic() - start > 5:
            scanned = True
            with open(f"/sys/class/scsi_host/host{host}/scan", "w") as f:
                f.write(f"0 {target} {lun}")
        return None
    return wait_for(find, f"the disk of {wwn} LUN {lun} ({hctl})", timeout)


@contextlib.contextmanager
def loop_disk(path, size: int, read_only: bool = False):
    """A loop device over a new sparse file of `size` bytes at `path`; detached afterwards,
    whatever the test did."""
    with open(path, "wb") as f:
        f.truncate(size)
    dev = sh("losetup", "-f", "--show", *(["-r"] if read_only else []), str(path)).stdout.strip()
    try:
        yield dev
    finally:
        sh("losetup", "-d", dev, check=False)
