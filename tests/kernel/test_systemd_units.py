"""lioctl's systemd units (issue #17 item 7) run by a real systemd: PID 1 of its own PID,
mount and cgroup namespaces in the guest, on the guest's kernel, configfs and devices. The
units are the ones `lioctl install-units` writes, sandbox options and all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

import cfs
import initiator as ini
from conftest import LIOCTL
from initiator import wait_for

SYSTEMD = "/lib/systemd/systemd"
CGROUP = "/sys/fs/cgroup/lioctl-systemd"
MiB = 1 << 20
LOOP = "naa.5001405000000e17"
IQN = "iqn.2003-01.org.example:systemd"
# What this systemd must not do to the guest it shares a kernel and file systems with: clean
# /tmp (the tests' files are there), run a second udevd, set sysctls, remount, add users.
MASKED = ("systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service",
          "systemd-tmpfiles-clean.timer", "systemd-udevd.service", "systemd-udevd-control.socket",
          "systemd-udevd-kernel.socket", "systemd-udev-trigger.service", "systemd-sysctl.service",
          "systemd-sysusers.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
          "systemd-remount-fs.service", "systemd-journal-flush.service", "systemd-random-seed.service",
          "systemd-update-utmp.service", "systemd-machine-id-commit.service", "systemd-firstboot.service",
          "kmod-static-nodes.service", "dev-hugepages.mount", "dev-mqueue.mount", "sys-kernel-debug.mount",
          "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount", "systemd-pcrphase-sysinit.service",
          "systemd-pcrphase.service", "systemd-repart.service", "dbus.socket", "systemd-initctl.socket",
          "systemd-ask-password-console.path")
INNER = """set -e
umount /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system
for u in {masked}; do ln -s /dev/null /etc/systemd/system/$u; done
printf '[Unit]\\nDescription=lioctl test boot\\nWants=systemd-journald.service\\n' \\
    > /etc/systemd/system/lioctl-test.target
mount -t tmpfs -o mode=0755 tmpfs /run
exec env -i container=lioctl-test PATH=/usr/sbin:/usr/bin:/sbin:/bin {systemd} --unit=lioctl-test.target
"""


class Systemd:
    def __init__(self, pid: int):
        self.pid = pid          # PID 1 of the namespace, as the guest sees it

    def run(self, *cmd, check=True, timeout=300) -> subprocess.CompletedProcess:
        p = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", *map(str, cmd)],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p

    def ctl(self, *args, **kw):
        return self.run("systemctl", "--no-pager", *args, **kw)

    def show(self, unit: str) -> dict:
        out = self.ctl("show", unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _rm_cgroup(path: str) -> None:
    for d, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.fixture(scope="module")
def systemd(tmp_path_factory):
    if not os.path.exists(SYSTEMD) or not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.fail("needs Debian's systemd and a cgroup2 hierarchy in the guest (tests/setup.sh)")
    inner = tmp_path_factory.mktemp("systemd") / "inner.sh"
    inner.write_text(INNER.format(masked=" ".join(MASKED), systemd=SYSTEMD))
    os.makedirs(CGROUP, exist_ok=True)
    log = open(inner.with_name("console.log"), "w")
    # its own cgroup subtree (the wrapper moves itself in before unshare): systemd takes the
    # namespace's root cgroup as its own and kills within it only
    proc = subprocess.Popen(["sh", "-c", f'echo $$ > {CGROUP}/cgroup.procs && exec unshare --mount --pid '
                             f'--fork --cgroup --mount-proc --propagation private sh {inner}'],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pid = None
    try:
        pid = wait_for(lambda: next((c for c in _children(proc.pid) if _comm(c) == "systemd"), None),
                       "systemd to start", timeout=60)
        sd = Systemd(pid)
        t0 = time.monotonic()
        state = wait_for(lambda: (s := sd.ctl("is-system-running", check=False, timeout=30).stdout.strip())
                         in ("running", "degraded") and s, "systemd to finish starting up", timeout=400)
        print(f"systemd up ({state}) in {time.monotonic() - t0:.1f} s")
        yield sd
    finally:
        if pid and proc.poll() is None:
            subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "systemctl", "poweroff", "--no-block"],
                           capture_output=True, timeout=60)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for c in _children(proc.pid):
                os.kill(c, 9)     # PID 1 of the namespace: the kernel kills the rest with it
            proc.wait(timeout=60)
        log.close()
        _rm_cgroup(CGROUP)


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    return r


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _differences(got, want, path="") -> list[str]:
    """Where two saved configurations differ, as JSON paths with both values (lists of
    objects matched by their name, as restore matches them; generated link aliases are not
    configuration, as in test_saveconfig.py)."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for k in sorted((set(got) | set(want)) - {"alias"}, key=str)
                for d in _differences(got.get(k), want.get(k), f"{path}.{k}")]
    if isinstance(got, list) and isinstance(want, list) and all(isinstance(x, dict) for x in got + want):
        def key(x):
            return next((str(x[k]) for k in ("wwn", "name", "node_wwn", "tag", "index", "ip_address")
                         if k in x), json.dumps(x, sort_keys=True))
        g, w = {key(x): x for x in got}, {key(x): x for x in want}
        return [d for k in sorted(set(g) | set(w)) for d in _differences(g.get(k), w.get(k), f"{path}[{k}]")]
    return [] if got == want else [f"{path}: {got!r} (restored) != {want!r} (saved)"]


DENIED = re.compile(r"Permission denied|Operation not permitted|Read-only file system|EPERM|EACCES|"
                    r"[Dd]enied|Bad system call|SIGSYS", re.M)


@pytest.fixture
def loop_device(tmp_path):
    with ini.loop_disk(tmp_path / "blk.img", 8 * MiB) as dev:
        yield dev


def test_units_restore_serve_and_stop_under_systemd(lioctl, tmp_path, systemd, loop_device):
    """`systemctl start` of both units as at boot: the handler is up (READY=1) before the
    restore starts; the restore, in its sandbox, brings back every kind of backstore (a user
    one behind tcm_loop), an iSCSI portal, LUNs and an ACL; the handler serves I/O from inside
    its sandbox; both stop cleanly; neither logs a denial."""
    img = tmp_path / "u1.img"
    lines = [f"/backstores/user create u1 16M {img}",
             "/backstores/ramdisk create r1 4M",
             f"/backstores/fileio create f1 {tmp_path / 'f1.img'} 8M",
             f"/backstores/block create b1 {loop_device}",
             f"/loopback create {LOOP}",
             f"/loopback/{LOOP}/luns create /backstores/user/u1",
             f"/loopback/{LOOP}/luns create /backstores/ramdisk/r1",
             f"/iscsi create {IQN}",           # and its default portal 0.0.0.0:3260: NET_BIND_SERVICE
             f"/iscsi/{IQN}/tpg1/portals create 127.0.0.1 3276",
             f"/iscsi/{IQN}/tpg1/luns create /backstores/fileio/f1",
             f"/iscsi/{IQN}/tpg1/luns create /backstores/block/b1",
             f"/iscsi/{IQN}/tpg1/acls create {ini.INITIATOR_IQN}"]
    r = lioctl(input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "saveconfig.json"
    ok(lioctl("save", saved))
    want = json.loads(saved.read_text())
    ok(lioctl("clear", "--yes"))
    ok(lioctl("tcmu", "stop"))           # the handler create started: the unit's must be the only one
    try:
        # the admin's steps: units for this install, enabled; at boot both start in one transaction
        r = systemd.run(*LIOCTL, "install-units", "--file", saved)
        assert "systemd reloaded" in r.stdout, r.stdout
        unit = systemd.run("cat", "/etc/systemd/system/lioctl-restore.service").stdout
        assert f'RequiresMountsFor="{tmp_path}"' in unit and f"ConditionPathExists={saved}" in unit
        systemd.ctl("enable", "lioctl-tcmu.service", "lioctl-restore.service")
        t0 = time.monotonic()
        systemd.ctl("start", "lioctl-restore.service", "lioctl-tcmu.service", timeout=400)
        print(f"both units started in {time.monotonic() - t0:.1f} s")
        tcmu, rest = systemd.show("lioctl-tcmu.service"), systemd.show("lioctl-restore.service")
        assert (tcmu["ActiveState"], tcmu["SubState"], tcmu["Type"]) == ("active", "running", "notify"), tcmu
        assert (rest["ActiveState"], rest["Result"], rest["ExecMainStatus"]) == ("active", "success", "0"), rest
        # ordering: the handler said READY=1 before the restore's process ran
        assert int(tcmu["ActiveEnterTimestampMonotonic"]) <= int(rest["ExecMainStartTimestampMonotonic"])

        got = json.loads(ok(lioctl("save", "-")).stdout)
        assert _differences(got, want) == []

        # the handler is the unit's main process, sandboxed as the unit says
        st = json.loads(systemd.run(*LIOCTL, "tcmu", "status", "--json").stdout)
        assert st["pid"] == int(tcmu["MainPID"]) and [d["name"] for d in st["devices"]] == ["u1"], st
        procs = [int(p) for p in open(f"{CGROUP}/system.slice/lioctl-tcmu.service/cgroup.procs").read().split()]
        (handler,) = [p for p in procs if "tcmu" in open(f"/proc/{p}/cmdline").read()]
        s = _status(handler)
        assert int(s["CapBnd"], 16) == (1 << 1) | (1 << 2) | (1 << 12), s["CapBnd"]  # DAC_OVERRIDE, DAC_READ_SEARCH, NET_ADMIN
        assert s["NoNewPrivs"].strip() == "1" and s["Seccomp"].strip() == "2", s
        ns = {n: os.readlink(f"/proc/{handler}/ns/{n}") for n in ("mnt", "net")}
        assert ns["mnt"] != os.readlink("/proc/self/ns/mnt")        # ProtectSystem= etc.: its own view
        assert ns["net"] == os.readlink("/proc/self/ns/net")        # netlink: the host's network

        # I/O through tcm_loop, served by the unit's handler
        dev = ini.loopback_disk(LOOP, 0)
        data = os.urandom(MiB)
        import mmap
        buf = mmap.mmap(-1, MiB)
        buf.write(data)
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
        try:
            assert os.pwritev(fd, [buf], 3 * MiB) == MiB
            os.fsync(fd)
            back = mmap.mmap(-1, MiB)
            assert os.preadv(fd, [back], 3 * MiB) == MiB
            assert back[:] == data
        finally:
            os.close(fd)
        with open(img, "rb") as f:
            f.seek(3 * MiB)
            assert f.read(MiB) == data
        st = json.loads(systemd.run(*LIOCTL, "tcmu", "status", "--json").stdout)
        assert st["devices"][0]["writes"] > 0 and st["failed"] == [], st

        # stop: the restore unit clears what it restored, then the handler lets go
        systemd.ctl("stop", "lioctl-restore.service", timeout=300)
        assert cfs.snapshot() == []
        systemd.ctl("stop", "lioctl-tcmu.service", timeout=300)
        for u in ("lioctl-restore.service", "lioctl-tcmu.service"):
            sh = systemd.show(u)
            assert (sh["ActiveState"], sh["Result"]) == ("inactive", "success"), (u, sh)
        assert not os.path.exists(f"/proc/{handler}")

        journal = systemd.run("journalctl", "--no-pager", "-o", "cat", "-u", "lioctl-tcmu.service",
                              "-u", "lioctl-restore.service").stdout
        print(journal)
        assert "Restored " in journal and not DENIED.search(journal), journal
    finally:
        systemd.ctl("stop", "lioctl-restore.service", "lioctl-tcmu.service", check=False, timeout=300)
        systemd.ctl("disable", "lioctl-tcmu.service", "lioctl-restore.service", check=False)
        lioctl("clear", "--yes")


def test_handler_unit_serves_an_rbd_image_from_its_sandbox(lioctl, tmp_path, systemd, ceph):
    """An RBD user backstore restored at boot: the handler's unit reaches the cluster's
    monitors and OSDs over TCP from inside its sandbox (address families, system calls, file
    access to ceph.conf and the keyring), serves I/O, and the data is in Ceph."""
    from test_rbd import rbd_backstore
    ceph.rbd("create", "--size", "16", "rbd/systemd")
    saved = tmp_path / "saveconfig.json"
    try:
        bs = rbd_backstore(lioctl, ceph, "rb1", "systemd", size="16M")
        ok(lioctl("/loopback", "create", LOOP))
        ok(lioctl(f"/loopback/{LOOP}/luns", "create", bs))
        ok(lioctl("save", saved))
        ok(lioctl("clear", "--yes"))
        ok(lioctl("tcmu", "stop"))
        systemd.run(*LIOCTL, "install-units", "--file", saved)
        systemd.ctl("start", "lioctl-restore.service", "lioctl-tcmu.service", timeout=400)
        rest = systemd.show("lioctl-restore.service")
        journal = systemd.run("journalctl", "--no-pager", "-o", "cat", "-u", "lioctl-tcmu.service",
                              "-u", "lioctl-restore.service").stdout
        assert (rest["ActiveState"], rest["Result"], rest["ExecMainStatus"]) == ("active", "success", "0"), journal
        st = json.loads(systemd.run(*LIOCTL, "tcmu", "status", "--json").stdout)
        (d,) = st["devices"]
        assert (d["name"], d["subtype"], d["cluster_reachable"]) == ("rb1", "lioctl_rbd", True), st

        import mmap
        data = os.urandom(MiB)
        buf = mmap.mmap(-1, MiB)
        buf.write(data)
        fd = os.open(ini.loopback_disk(LOOP, 0), os.O_RDWR | os.O_DIRECT)
        try:
            assert os.pwritev(fd, [buf], 5 * MiB) == MiB
            os.fsync(fd)
        finally:
            os.close(fd)
        systemd.ctl("stop", "lioctl-restore.service", timeout=300)
        systemd.ctl("stop", "lioctl-tcmu.service", timeout=300)
        ceph.rbd("export", "rbd/systemd", tmp_path / "x")
        with open(tmp_path / "x", "rb") as f:
            f.seek(5 * MiB)
            assert f.read(MiB) == data
        journal = systemd.run("journalctl", "--no-pager", "-o", "cat", "-u", "lioctl-tcmu.service",
                              "-u", "lioctl-restore.service").stdout
        assert not DENIED.search(journal), journal
    finally:
        systemd.ctl("stop", "lioctl-restore.service", "lioctl-tcmu.service", check=False, timeout=300)
        lioctl("clear", "--yes")
        lioctl("tcmu", "stop")
        ceph.rbd("rm", "rbd/systemd", check=False)
