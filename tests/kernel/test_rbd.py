"""Ceph RBD behind lioctl's TCMU handler (lioctl_rbd), end to end in the guest: LIO +
target_core_user + the handler + librbd + a real one-node cluster on 127.0.0.1
(tests/kernel/ceph.sh), through tcm_loop LUNs and sg3-utils/fio as the initiator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

import test_tcmu
from initiator import sh, wait_for
from test_tcmu import fio, loopback_lun, ok, status

no_handler_left = test_tcmu.no_handler_left     # autouse: every test ends with no handler running

MiB = 1 << 20


@pytest.fixture
def image(ceph, request):
    """A fresh image of 64 MiB for one test, removed after it."""
    name = request.node.name.replace("test_", "")[:40].strip("_")
    ceph.rbd("create", "--size", "64", f"rbd/{name}")
    yield name
    ceph.rbd("snap", "purge", f"rbd/{name}", check=False)
    ceph.rbd("rm", f"rbd/{name}", check=False)


def rbd_backstore(lioctl, ceph, name, image, size="64M", extra=""):
    cfg = f"rbd/{image};{ceph.options()}{extra}"
    ok(lioctl("/backstores/user", "create", name, size, cfg, "subtype=lioctl_rbd"))
    return f"/backstores/user/{name}"


def sg_node(dev: str) -> str:
    """/dev/sgN of a disk: SCSI commands that bypass the block layer's own checks (a read-only
    disk refuses to open for writing; a failed read shows only EIO)."""
    (name,) = os.listdir(f"/sys/block/{os.path.basename(dev)}/device/scsi_generic")
    return f"/dev/{name}"


def teardown(lioctl, wwn, name):
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", name))


def sg(*args, check=True):
    p = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, f"{args}: {p.stdout} {p.stderr}"
    return p


def pread(dev, offset, n):
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, n)
        os.preadv(fd, [buf], offset)
        return bytes(buf)
    finally:
        os.close(fd)


def pwrite(dev, offset, data):
    import mmap
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, len(data))
        buf[:] = data
        assert os.pwritev(fd, [buf], offset) == len(data)
    finally:
        os.close(fd)


def test_data_written_through_the_lun_is_read_back_and_is_in_ceph(lioctl, ceph, image, tmp_path):
    bs = rbd_backstore(lioctl, ceph, "r1", image)
    wwn, dev = loopback_lun(lioctl, bs)
    data = os.urandom(4 * MiB)
    pwrite(dev, 3 * MiB, data)
    sh("blockdev", "--flushbufs", dev)
    assert pread(dev, 3 * MiB, len(data)) == data
    # udev's probe of the new disk may still have a command in flight after ours
    st = wait_for(lambda: next((d for d in status(lioctl)["devices"]
                                if d["name"] == "r1" and d["backend_in_flight"] == 0), None), "r1 idle")
    assert st["subtype"] == "lioctl_rbd" and st["image"] == f"rbd/{image}" and st["cluster_reachable"] is True
    assert st["asynchronous"] > 0 and st["threaded"] == 0
    assert "key" not in json.dumps(st).replace("keyring", "")          # a keyring path, never a key
    teardown(lioctl, wwn, "r1")
    ceph.rbd("export", f"rbd/{image}", tmp_path / "x")               # read back once more from Ceph
    with open(tmp_path / "x", "rb") as f:
        f.seek(3 * MiB)
        assert f.read(len(data)) == data


def test_fio_verify_through_an_rbd_lun(lioctl, ceph, image):
    bs = rbd_backstore(lioctl, ceph, "r2", image)
    wwn, dev = loopback_lun(lioctl, bs)
    job = fio(dev, "--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=8M", "--verify=crc32c",
              "--verify_fatal=1", "--do_verify=1")
    assert job["write"]["io_bytes"] == 8 * MiB
    st = [d for d in status(lioctl)["devices"] if d["name"] == "r2"][0]
    assert st["max_batch"] > 1 and st["backend_errors"] == 0     # commands were in flight together
    teardown(lioctl, wwn, "r2")


def test_fua_sync_cache_unmap_and_write_same(lioctl, ceph, image):
    bs = rbd_backstore(lioctl, ceph, "r3", image)
    wwn, dev = loopback_lun(lioctl, bs)
    pwrite(dev, 0, b"\xAA" * MiB)
    sg("sg_dd", "if=/dev/zero", f"of={dev}", "bs=512", "count=8", "seek=4096", "oflag=fua")
    sg("sg_sync", dev)
    sg("sg_unmap", "--lba=3", "--num=5", dev)                 # 2.5 KiB: not a whole 64 KiB unit
    sg("sg_write_same", "--16", "--unmap", "--lba=64", "--num=64", dev)
    pat = tmp_block = b"\x5A" * 512
    with open(f"/tmp/ws-{os.getpid()}", "wb") as f:
        f.write(tmp_block)
    sg("sg_write_same", "--16", f"--in=/tmp/ws-{os.getpid()}", "--lba=256", "--num=16", dev)
    os.unlink(f"/tmp/ws-{os.getpid()}")
    sh("blockdev", "--flushbufs", dev)
    got = pread(dev, 0, 256 * 512 + 16 * 512)
    assert got[:1536] == b"\xAA" * 1536 and got[1536:4096] == bytes(2560) and got[4096:8192] == b"\xAA" * 4096
    assert got[64 * 512:128 * 512] == bytes(64 * 512)
    assert got[256 * 512:] == pat * 16
    vpd = sg("sg_vpd", "--page=lbpv", dev).stdout
    assert "Unmap command supported (LBPU): 1" in vpd
    teardown(lioctl, wwn, "r3")


def test_compare_and_write_success_and_miscompare_with_offset(lioctl, ceph, image, tmp_path):
    bs = rbd_backstore(lioctl, ceph, "r4", image)
    wwn, dev = loopback_lun(lioctl, bs)
    pwrite(dev, 100 * 512, b"A" * 512)
    (tmp_path / "ok").write_bytes(b"A" * 512 + b"B" * 512)
    sg("sg_compare_and_write", f"--in={tmp_path / 'ok'}", "--lba=100", dev)
    assert pread(dev, 100 * 512, 512) == b"B" * 512
    (tmp_path / "bad").write_bytes(b"B" * 200 + b"X" + b"B" * 311 + b"C" * 512)
    p = sg("sg_compare_and_write", "-v", f"--in={tmp_path / 'bad'}", "--lba=100", dev, check=False)
    assert p.returncode == 14, p.stderr                      # SG_LIB_CAT_MISCOMPARE
    assert "Miscompare" in p.stderr and "200" in p.stderr
    assert pread(dev, 100 * 512, 512) == b"B" * 512          # nothing written
    limits = sg("sg_vpd", "--page=bl", dev).stdout
    assert "Maximum compare and write length: 1 blocks" in limits
    teardown(lioctl, wwn, "r4")


def test_a_snapshot_is_served_read_only(lioctl, ceph, image):
    ceph.rbd("bench", "--io-type", "write", "--io-size", "4096", "--io-total", "65536", f"rbd/{image}")
    ceph.rbd("snap", "create", f"rbd/{image}@s1")
    bs = rbd_backstore(lioctl, ceph, "r5", f"{image}@s1")
    wwn, dev = loopback_lun(lioctl, bs)
    assert open(f"/sys/block/{os.path.basename(dev)}/ro").read().strip() == "1"    # MODE SENSE's WP
    p = sg("sg_dd", "if=/dev/zero", f"of={sg_node(dev)}", "bs=512", "count=1", "-v", check=False)
    assert p.returncode != 0 and "data protect" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
    assert len(pread(dev, 0, 4096)) == 4096
    teardown(lioctl, wwn, "r5")


def test_a_resize_outside_reaches_the_initiator(lioctl, ceph, image):
    bs = rbd_backstore(lioctl, ceph, "r6", image)
    wwn, dev = loopback_lun(lioctl, bs)
    name = os.path.basename(dev)
    assert int(open(f"/sys/block/{name}/size").read()) * 512 == 64 * MiB
    ceph.rbd("resize", "--size", "96", f"rbd/{image}")
    so = f"/sys/kernel/config/target/core/{[d for d in status(lioctl)['devices'] if d['name'] == 'r6'][0]['hba']}/r6"
    wait_for(lambda: "96" if "100663296" in open(f"{so}/info").read() or
             [d for d in status(lioctl)["devices"] if d["name"] == "r6"][0]["size"] == 96 * MiB else None,
             "the handler to see the new size")
    p = sg("sg_turs", "-v", dev, check=False)
    assert "capacity data has changed" in (p.stdout + p.stderr).lower()
    with open(f"/sys/block/{name}/device/rescan", "w") as f:
        f.write("1")
    wait_for(lambda: int(open(f"/sys/block/{name}/size").read()) * 512 == 96 * MiB, "the new capacity")
    teardown(lioctl, wwn, "r6")


def test_a_stopped_osd_fails_rbd_commands_in_bounded_time_and_never_stalls_a_ram_lun(lioctl, ceph, image):
    bs = rbd_backstore(lioctl, ceph, "r7", image, extra=";timeout=5")
    wwn, dev = loopback_lun(lioctl, bs)
    ok(lioctl("/backstores/user", "create", "ram7", "16M", "scratch", "subtype=lioctl_ram"))
    wwn2, ram = loopback_lun(lioctl, "/backstores/user/ram7")
    osd = ceph.pid("osd.0")
    os.kill(osd, signal.SIGSTOP)
    try:
        t = time.monotonic()
        stuck = subprocess.Popen(["sg_dd", f"if={sg_node(dev)}", "of=/dev/null", "bs=512", "count=8", "skip=2048",
                                  "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(20):                       # the RAM LUN answers meanwhile
            data = os.urandom(4096)
            pwrite(ram, i * 4096, data)
            assert pread(ram, i * 4096, 4096) == data
        ram_done = time.monotonic() - t
        out, err = stuck.communicate(timeout=60)
        failed_after = time.monotonic() - t
        assert stuck.returncode != 0 and "not ready" in (out + err).lower(), out + err
        assert ram_done < failed_after < 30, (ram_done, failed_after)
        st = [d for d in status(lioctl)["devices"] if d["name"] == "r7"][0]
        assert st["cluster_reachable"] is False and st["timeouts"] >= 1
    finally:
        os.kill(osd, signal.SIGCONT)
    data = os.urandom(8192)                     # I/O resumes when the OSD is back
    pwrite(dev, 8 * MiB, data)
    assert pread(dev, 8 * MiB, 8192) == data
    assert [d for d in status(lioctl)["devices"] if d["name"] == "r7"][0]["cluster_reachable"] is True
    teardown(lioctl, wwn2, "ram7")
    teardown(lioctl, wwn, "r7")


def test_create_rbd_form_takes_the_images_size_and_export_over_iscsi(lioctl, ceph, image):
    import initiator as ini
    env = {"CEPH_CONF": str(ceph.conf)}
    p = lioctl("/backstores/user", "create", "r8", "32M", f"rbd:rbd/{image}", env=env)
    assert p.returncode == 5 and "33554432" in p.stderr and "67108864" in p.stderr     # nothing made
    ok(lioctl("/backstores/user", "create", "r8", f"rbd:rbd/{image}", env=env))
    assert [d for d in status(lioctl)["devices"] if d["name"] == "r8"][0]["size"] == 64 * MiB
    p = lioctl("/backstores/user", "create", "r8b", f"rbd:rbd/{image}", env=env)
    assert p.returncode == 6 and "already served by /backstores/user/r8" in p.stderr
    ok(lioctl("/backstores/user", "delete", "r8"))
    r = ok(lioctl("export", f"rbd:rbd/{image}", "--json", env=env))
    info = json.loads(r.stdout)
    p = lioctl("export", f"rbd:rbd/{image}", env=env)
    assert p.returncode == 5 and f"already exported by target {info['target']}" in p.stderr
    ini.start()
    ini.discover()
    ini.login(info["target"])
    try:
        dev = ini.disk_for(info["target"])
        data = os.urandom(2 * MiB)
        pwrite(dev, MiB, data)
        assert pread(dev, MiB, len(data)) == data
    finally:
        ini.logout(info["target"])
    ok(lioctl("unexport", f"rbd:rbd/{image}"))
    import cfs
    assert cfs.snapshot() == []
    got = subprocess.run(["rbd", "-c", str(ceph.conf), "export", f"rbd/{image}", "-"], capture_output=True).stdout
    assert got[MiB:3 * MiB] == data


def test_create_makes_a_missing_image_and_an_unreachable_cluster_makes_nothing(lioctl, ceph, tmp_path):
    env = {"CEPH_CONF": str(ceph.conf)}
    ok(lioctl("/backstores/user", "create", "r9", "16M", "rbd:rbd/made_here", "--create", env=env))
    assert "16 MiB" in ceph.rbd("info", "rbd/made_here").stdout
    ok(lioctl("/backstores/user", "delete", "r9"))
    ceph.rbd("rm", "rbd/made_here")
    (tmp_path / "dead.conf").write_text("[global]\nmon_host = 127.0.0.1:9\n")
    t = time.monotonic()
    p = lioctl("/backstores/user", "create", "r9", "rbd:rbd/x", f"conf={tmp_path}/dead.conf", "timeout=3")
    assert p.returncode == 1 and "timed out" in p.stderr and p.stderr.count("\n") == 1
    assert time.monotonic() - t < 30
    import cfs
    assert cfs.snapshot() == []


def test_save_restore_diff_carry_an_rbd_backstore_and_restart_the_handler(lioctl, ceph, image, tmp_path):
    bs = rbd_backstore(lioctl, ceph, "r10", image)
    wwn, dev = loopback_lun(lioctl, bs)
    data = os.urandom(MiB)
    pwrite(dev, 0, data)
    saved = tmp_path / "saved.json"
    ok(lioctl("save", saved))
    text = saved.read_text()
    (so,) = [s for s in json.loads(text)["storage_objects"] if s["plugin"] == "user"]
    assert so["config"] == f"lioctl_rbd/rbd/{image};{ceph.options()}"
    assert "key =" not in text and "AQ" not in text            # a keyring path, never a key
    ok(lioctl("clear", "--yes"))
    wait_for(lambda: test_tcmu.handler_pid() is None, "the handler to leave with its last device")
    ok(lioctl("restore", saved))
    assert [d["name"] for d in status(lioctl)["devices"]] == ["r10"]
    assert lioctl("diff", saved).returncode == 0
    dev = test_tcmu.disk_by_serial(so["wwn"])
    assert pread(dev, 0, MiB) == data
    ok(lioctl("clear", "--yes"))


def test_tcmu_runners_rbd_handler_serves_its_image_alongside(lioctl, ceph, image):
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        sh("dbus-daemon", "--system", "--fork")
    ceph.rbd("create", "--size", "16", f"rbd/{image}_runner")
    runner = subprocess.Popen(["tcmu-runner", "-l", f"/tmp/runner-log-{os.getpid()}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: "org.kernel.TCMUService1" in sh(
            "dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames", check=False).stdout, "tcmu-runner on D-Bus", timeout=60)
        ok(lioctl("/backstores/user", "create", "theirs", "16M", f"rbd/{image}_runner;conf={ceph.conf}",
                  "subtype=rbd"))
        rbd_backstore(lioctl, ceph, "ours", image)
        w1, d_theirs = loopback_lun(lioctl, "/backstores/user/theirs")
        w2, d_ours = loopback_lun(lioctl, "/backstores/user/ours")
        assert [d["name"] for d in status(lioctl)["devices"]] == ["ours"]
        fio(d_theirs, "--rw=randrw", "--bs=4k", "--size=2M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
        fio(d_ours, "--rw=randrw", "--bs=4k", "--size=2M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
        teardown(lioctl, w1, "theirs")
        teardown(lioctl, w2, "ours")
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
        ceph.rbd("rm", f"rbd/{image}_runner", check=False)


def test_missing_python3_rbd_is_a_one_line_error_and_nothing_is_made(lioctl, ceph, image, monkeypatch):
    import sys

    import cfs
    from lioctl.backstores.media import rbd as rbd_admin
    monkeypatch.setattr(rbd_admin, "_modules", None)
    monkeypatch.setattr(rbd_admin, "DIST_PACKAGES", ("/nonexistent",))
    monkeypatch.setitem(sys.modules, "rados", None)
    monkeypatch.setitem(sys.modules, "rbd", None)
    p = lioctl("/backstores/user", "create", "r11", f"rbd:rbd/{image}", env={"CEPH_CONF": str(ceph.conf)})
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert "python3-rbd python3-rados" in p.stderr and "Traceback" not in p.stderr
    assert cfs.snapshot() == []
    ok(lioctl("/backstores/user", "create", "ram11", "8M", "x", "subtype=lioctl_ram"))   # RAM still works
    ok(lioctl("/backstores/user", "delete", "ram11"))


def sense_of(dev, lba=0):
    """sg_dd's account of one 512-byte read through the disk's sg node (no retries)."""
    p = sg("sg_dd", f"if={sg_node(dev)}", "of=/dev/null", "bs=512", "count=1", f"skip={lba}", "-v", check=False)
    return p.returncode, (p.stdout + p.stderr).lower()


def test_an_image_deleted_while_exported_is_medium_not_present_and_nothing_else_stops(lioctl, ceph, image):
    """The admin's way to delete an image in use: blocklist its client (the handler's), then
    `rbd rm`. The handler reopens its images on a new connection: the deleted one answers
    MEDIUM NOT PRESENT and says why in the status, the other image on that connection goes on
    (its commands meanwhile are 'becoming ready', which the initiator retries), a RAM LUN too."""
    ceph.rbd("create", "--size", "16", f"rbd/{image}_b")
    rbd_backstore(lioctl, ceph, "r12", image)
    rbd_backstore(lioctl, ceph, "r12b", f"{image}_b", size="16M")
    ok(lioctl("/backstores/user", "create", "ram12", "8M", "scratch", "subtype=lioctl_ram"))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/r12")
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/user/r12b"))
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/user/ram12"))
    import initiator as ini
    other, ram = ini.loopback_disk(wwn, 1), ini.loopback_disk(wwn, 2)
    before = os.urandom(65536)
    pwrite(other, 0, before)
    pwrite(dev, 0, before)
    pid = test_tcmu.handler_pid()
    (client,) = ceph.watchers(f"rbd/{image}")
    ceph.ceph("osd", "blocklist", "add", client)
    ceph.rbd("rm", f"rbd/{image}")
    t = time.monotonic()
    wait_for(lambda: "medium not present" in sense_of(dev)[1], "MEDIUM NOT PRESENT from the deleted image's LUN")
    assert time.monotonic() - t < 30
    st = [d for d in status(lioctl)["devices"] if d["name"] == "r12"][0]
    assert "no longer exists" in st["error"] and f"rbd/{image}" in st["error"], st
    text = lioctl("tcmu", "status").stdout
    assert "no longer exists" in text
    data = os.urandom(8192)
    pwrite(other, 8192, data)                  # the other image: reopened, retried, written
    assert pread(other, 0, 16384) == before[:8192] + data
    pwrite(ram, 0, data)
    assert pread(ram, 0, 8192) == data
    assert test_tcmu.handler_pid() == pid
    assert [d for d in status(lioctl)["devices"] if d["name"] == "r12b"][0]["error"] is None
    ok(lioctl("/loopback", "delete", wwn))
    for name in ("r12", "r12b", "ram12"):
        ok(lioctl("/backstores/user", "delete", name))
    ceph.rbd("rm", f"rbd/{image}_b")


def test_kill9_under_fio_on_an_rbd_lun_then_restart_resumes_and_verifies(lioctl, ceph, image):
    """The restarted handler takes the exclusive lock its dead predecessor held (else its
    writes would wait 30 s, the kernel's command timeout, for the dead client's watch to end)."""
    bs = rbd_backstore(lioctl, ceph, "r13", image)
    wwn, dev = loopback_lun(lioctl, bs)
    job = subprocess.Popen(["fio", "--name=t", f"--filename={dev}", "--direct=1", "--ioengine=libaio",
                            "--verify_state_save=0", "--rw=randwrite", "--bs=4k", "--size=4M", "--iodepth=16",
                            "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: status(lioctl)["devices"][0]["writes"] > 100, "fio to be writing", timeout=120)
        old = test_tcmu.handler_pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: test_tcmu.handler_pid() is None, "the killed handler's lock to go")
        assert job.poll() is None          # fio waits, it has not failed
        t = time.monotonic()
        ok(lioctl("tcmu", "start"))        # reopens the image, takes its lock, resets the ring
        assert test_tcmu.handler_pid() not in (None, old)
        out, err = job.communicate(timeout=600)
        resumed = time.monotonic() - t
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-2000:]
    res = json.loads(out[out.index("{"):])["jobs"][0]
    assert res["error"] == 0 and res["write"]["io_bytes"] == 4 * MiB
    assert status(lioctl)["devices"][0]["backend_errors"] == 0, resumed
    teardown(lioctl, wwn, "r13")


def test_an_osd_restart_fails_commands_in_bounded_time_then_io_resumes(lioctl, ceph_bluestore):
    """bluestore (memstore loses its data when the OSD restarts): the OSD stopped, a read fails
    NOT READY within the image's timeout; the OSD back, I/O resumes with the data intact."""
    c = ceph_bluestore
    c.rbd("create", "--size", "32", "rbd/osd_restart")
    cfg = f"rbd/osd_restart;{c.options()};timeout=5"
    ok(lioctl("/backstores/user", "create", "r14", "32M", cfg, "subtype=lioctl_rbd"))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/r14")
    data = os.urandom(MiB)
    pwrite(dev, 0, data)
    c.osd_stop()
    try:
        t = time.monotonic()
        rc, text = sense_of(dev, 2048)
        failed_after = time.monotonic() - t
        assert rc != 0 and "not ready" in text, text
        assert failed_after < 30, failed_after
        st = [d for d in status(lioctl)["devices"] if d["name"] == "r14"][0]
        assert st["cluster_reachable"] is False and st["timeouts"] >= 1
    finally:
        c.osd_start()
    # the PGs peer again within a few seconds; reads meanwhile may still time out
    wait_for(lambda: sense_of(dev, 2048)[0] == 0, "reads to succeed again", timeout=120, interval=1)
    assert pread(dev, 0, MiB) == data
    more = os.urandom(65536)
    pwrite(dev, 2 * MiB, more)
    assert pread(dev, 2 * MiB, 65536) == more
    assert [d for d in status(lioctl)["devices"] if d["name"] == "r14"][0]["cluster_reachable"] is True
    teardown(lioctl, wwn, "r14")
    c.rbd("rm", "rbd/osd_restart")


def test_a_wrong_keyring_or_cephx_user_at_create_is_one_line_and_makes_nothing(lioctl, ceph, image, tmp_path):
    import cfs
    key = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True, text=True).stdout.strip()
    bad = tmp_path / "bad.keyring"
    bad.write_text(f"[client.admin]\n\tkey = {key}\n")
    env = {"CEPH_CONF": str(ceph.conf)}
    for extra in ([f"keyring={bad}"], ["id=nobody"]):
        t = time.monotonic()
        p = lioctl("/backstores/user", "create", "r15", f"rbd:rbd/{image}", *extra, env=env)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert "permission denied" in p.stderr and "cephx user and keyring" in p.stderr, p.stderr
        assert key not in p.stderr and "Traceback" not in p.stderr
        assert time.monotonic() - t < 30
        assert cfs.snapshot() == []
