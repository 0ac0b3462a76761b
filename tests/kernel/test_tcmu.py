"""lioctl's bundled TCMU handler against the real target_core_user: tcm_loop and iSCSI
initiators, sg3-utils, fio with verification, UNMAP, kill -9 under load, and tcmu-runner
serving its own device at the same time."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import signal
import subprocess
import time

import pytest

import cfs
import initiator as ini
from initiator import sg, sh, wait_for

MiB = 1 << 20
CORE = "/sys/kernel/config/target/core"


def ok(p):
    assert p.returncode == 0, f"{p.args}: {p.stderr}"
    return p


def handler_pid() -> int | None:
    from lioctl.tcmu import daemon
    pid = daemon.running_pid()
    return pid if pid and pid > 0 else None


@pytest.fixture(autouse=True)
def no_handler_left(lioctl):
    yield
    if glob.glob(f"{CORE}/user_*/*/enable"):     # the test failed midway: just clean up
        lioctl("tcmu", "stop")
        return
    # every test ends with its user backstores deleted: an --idle-exit handler must go by itself
    try:
        wait_for(lambda: handler_pid() is None, "the idle handler to exit", timeout=20)
    finally:
        if handler_pid():
            lioctl("tcmu", "stop")


def status(lioctl) -> dict:
    p = lioctl("tcmu", "status", "--json")
    return json.loads(p.stdout)


def disk_by_serial(serial: str) -> str:
    """tcmu-runner names every LUN 'TCMU device': the unit serial tells them apart. The kernel
    reads the VPD pages once, at probe: a probe that met a unit attention (another LUN added
    at the same moment) leaves a disk without vpd_pg80 until it is rescanned, so a disk
    seen without it for a second is rescanned (once) rather than waited on forever."""
    first_seen: dict[str, float] = {}

    def find():
        for d in os.listdir("/sys/block"):
            dev = f"/sys/block/{d}/device"
            if not os.path.exists(dev):
                continue
            try:
                if serial.encode() in open(f"{dev}/vpd_pg80", "rb").read() and ini.opens(f"/dev/{d}"):
                    return f"/dev/{d}"
            except FileNotFoundError:
                seen = first_seen.setdefault(d, time.monotonic())
                if seen and time.monotonic() - seen > 1.0:
                    first_seen[d] = 0.0
                    try:
                        with open(f"{dev}/rescan", "w") as f:
                            f.write("1")
                    except OSError:
                        pass
            except OSError:
                continue
    return wait_for(find, f"a disk with unit serial {serial}")


def loopback_lun(lioctl, backstore: str) -> tuple[str, str]:
    wwn = json.loads(ok(lioctl("/loopback", "create", "--json")).stdout)["wwn"]
    ok(lioctl(f"/loopback/{wwn}/luns", "create", backstore))
    return wwn, ini.loopback_disk(wwn, 0)


def fio(dev: str, *args, timeout=900) -> dict:
    p = subprocess.run(["fio", "--name=t", f"--filename={dev}", "--direct=1", "--ioengine=libaio", "--verify_state_save=0",
                        "--output-format=json", *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = json.loads(p.stdout[p.stdout.index("{"):])
    job = out["jobs"][0]
    assert job["error"] == 0, job
    return job


def test_user_backstore_behind_loopback(lioctl, tmp_path):
    img = tmp_path / "u1.img"
    ok(lioctl("/backstores/user", "create", "u1", "64M", img, "hw_max_sectors=256"))
    assert img.stat().st_size == 64 * MiB and img.stat().st_blocks == 0      # made sparse
    st = status(lioctl)
    (dev_st,) = st["devices"]
    assert (dev_st["name"], dev_st["subtype"], dev_st["config"]) == ("u1", "lioctl_file", str(img))
    so = glob.glob(f"{CORE}/user_*/u1")[0]
    serial = open(f"{so}/wwn/vpd_unit_serial").read().split(":")[1].strip()
    # the kernel's own fileio backstore with the same serial is the oracle for VPD 0x83
    ok(lioctl("/backstores/fileio", "create", "ref", tmp_path / "ref.img", "1M", f"wwn={serial}"))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/u1")
    ok(lioctl(f"/loopback/{wwn}/luns", "create", "/backstores/fileio/ref"))
    ref = ini.loopback_disk(wwn, 1)

    inq = sg("sg_inq", dev).stdout
    assert "LIO-ORG" in inq and re.search(r"Product identification:\s+u1\b", inq)
    assert serial in sg("sg_vpd", "-p", "0x80", dev).stdout
    naa = re.findall(r"0x6001405[0-9a-f]+", sg("sg_vpd", "-p", "0x83", dev).stdout)
    assert naa and naa[0] == re.findall(r"0x6001405[0-9a-f]+", sg("sg_vpd", "-p", "0x83", ref).stdout)[0]
    assert re.search(r"Maximum transfer length: 256 blocks", sg("sg_vpd", "-p", "0xb0", dev).stdout)
    cap = sg("sg_readcap", "-l", dev).stdout
    assert "Last LBA=131071" in cap and "Logical block length=512" in cap and "lbpme=1" in cap
    modes = sg("sg_modes", "-p", "8", dev).stdout
    assert re.search(r"^ 00\s+08 12 04", modes, re.M), modes          # WCE=1 (write_back default)

    fio(dev, "--rw=randrw", "--bs=4k", "--size=16M", "--iodepth=16", "--verify=crc32c", "--do_verify=1")
    fio(dev, "--rw=write", "--bs=256k", "--size=32M", "--iodepth=4", "--verify=crc32c", "--do_verify=1")
    # what the initiator wrote is in the backing file
    with open(dev, "rb", buffering=0) as d, open(img, "rb") as f:
        assert d.read(4 * MiB) == f.read(4 * MiB)

    # UNMAP: zeros read back and the file gets its holes
    blocks_before = img.stat().st_blocks
    sg("sg_unmap", "--lba=0", f"--num={16 * MiB // 512}", dev)
    sh("blockdev", "--flushbufs", dev)
    with open(dev, "rb", buffering=0) as d:
        assert d.read(16 * MiB) == bytes(16 * MiB)
    assert img.stat().st_blocks < blocks_before
    assert status(lioctl)["devices"][0]["writes"] > 0

    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", "u1"))
    ok(lioctl("/backstores/fileio", "delete", "ref"))


def test_a_block_device_is_served_from_io_threads_a_tmpfs_file_inline(lioctl, tmp_path):
    """One handler serves every device, so a backend that may wait for its medium must not
    stall the event loop: on a block device every read runs on an I/O thread unless the page
    cache holds its data (then it is answered inline without waiting: RWF_NOWAIT), the flush
    on a thread, while a file on tmpfs (memory) is answered inline; write-back writes stay
    inline; 1 MiB reads of either go to the native path's copy threads."""
    with ini.loop_disk(tmp_path / "disk.img", 16 * MiB) as loopdev:
        ok(lioctl("/backstores/user", "create", "ondisk", "16M", loopdev))
        ok(lioctl("/backstores/user", "create", "inmem", "16M", tmp_path / "mem.img"))
        luns = [loopback_lun(lioctl, f"/backstores/user/{n}") for n in ("ondisk", "inmem")]
        sh("udevadm", "settle", check=False)
        before = {d["name"]: d for d in status(lioctl)["devices"]}
        for _, dev in luns:
            fio(dev, "--rw=randrw", "--bs=4k", "--size=8M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
            # 1 MiB reads (over the native path's inline limit): its copy threads, from the page cache
            fio(dev, "--rw=write", "--bs=1M", "--size=8M", "--iodepth=4", "--verify=crc32c", "--do_verify=1")
            # again, over pages the page cache now holds: copied into the mapping, not pwritev2
            fio(dev, "--rw=write", "--bs=1M", "--size=8M", "--iodepth=4", "--verify=md5", "--do_verify=1")
        sg("sg_sync", luns[0][1])                                   # SYNCHRONIZE CACHE
        st = {d["name"]: {k: v - before[d["name"]][k] for k, v in d.items() if isinstance(v, int)}
              for d in status(lioctl)["devices"]}
        assert st["ondisk"]["reads"] > 0 and st["ondisk"]["writes"] > 0
        # inline reads come from the page cache: Python's (cached) or the native path's, which
        # also answers the write-back writes (native counts both)
        assert st["ondisk"]["threaded"] + st["ondisk"]["cached"] + st["ondisk"]["native"] \
            >= st["ondisk"]["reads"] + 1, st["ondisk"]
        assert st["ondisk"]["native"] > 0, st["ondisk"]            # fio's verify reads what it wrote
        assert st["inmem"]["native"] > 0, st["inmem"]
        # (some of the block device's may miss the page cache: its wait threads read those)
        assert st["ondisk"]["copied"] > 0 and st["inmem"]["copied"] > 0, st
        # the copies of resident pages come from the mapping of the file or device
        assert st["ondisk"]["mapped"] > 0 and st["inmem"]["mapped"] > 0, st
        # and fio's 1 MiB write-back writes went into it (resident: written before)
        assert st["ondisk"]["mapped_writes"] > 0 and st["inmem"]["mapped_writes"] > 0, st
        # each device's ring thread waited for the kernel, and handed the loop SYNCHRONIZE
        # CACHE (and udev's probes)
        assert all(d["ring_thread"] for d in status(lioctl)["devices"]), status(lioctl)
        assert st["ondisk"]["handovers"] >= 1, st["ondisk"]
        # on memory only commands of 128 KiB or more go to threads: none of fio's 4 KiB ones,
        # but udev re-probes a disk closed after writing, with readahead, at any time
        assert st["inmem"]["reads"] > 0 and st["inmem"]["threaded"] * 100 < st["inmem"]["reads"], st["inmem"]
        for wwn, _ in luns:
            ok(lioctl("/loopback", "delete", wwn))
        ok(lioctl("/backstores/user", "delete", "ondisk"))
        ok(lioctl("/backstores/user", "delete", "inmem"))


def test_large_writes_follow_the_targets_completion_affinity(lioctl, tmp_path):
    """Where the kernel completes a device's commands decides who copies its large write-back
    writes: the ring thread inline by default, the copy threads once a target exporting the
    device completes on the doorbell's CPU (cmd_completion_affinity -2), and inline again
    when that is undone. The handler finds out by itself (within a few seconds), and what
    the initiator wrote is in the file either way."""
    img = tmp_path / "aff.img"
    ok(lioctl("/backstores/user", "create", "aff", "16M", img))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/aff")
    param = cfs.ROOT / "loopback" / wwn / "param" / "cmd_completion_affinity"
    try:
        if not param.exists():
            pytest.skip("this kernel has no cmd_completion_affinity (5.14 on)")

        def mine() -> dict:
            return next(d for d in status(lioctl)["devices"] if d["name"] == "aff")

        def write_and_compare(seed: int) -> None:
            data = bytes((seed + i) % 251 for i in range(MiB)) * 4
            with open(dev, "r+b", buffering=0) as d:     # fresh data: the file holds the last pass's
                d.write(data)
                os.fsync(d.fileno())
            with open(img, "rb") as f:
                assert f.read(4 * MiB) == data

        assert mine()["large_writes"] == "inline"
        write_and_compare(0)                 # the pages resident, and inline
        before = mine()
        write_and_compare(1)
        assert mine()["copied_writes"] == before["copied_writes"], mine()

        ok(lioctl(f"/loopback/{wwn}", "set", "parameter", "cmd_completion_affinity=-2"))
        wait_for(lambda: mine()["large_writes"] == "copy threads", "the handler to follow -2", timeout=20)
        before = mine()
        fio(dev, "--rw=write", "--bs=1M", "--size=8M", "--iodepth=4", "--verify=crc32c", "--do_verify=1")
        write_and_compare(2)
        after = mine()
        assert after["copied_writes"] > before["copied_writes"], (before, after)

        ok(lioctl(f"/loopback/{wwn}", "set", "parameter", "cmd_completion_affinity=-1"))
        wait_for(lambda: mine()["large_writes"] == "inline", "the handler to follow -1", timeout=20)
        before = mine()
        write_and_compare(3)
        assert mine()["copied_writes"] == before["copied_writes"], mine()
    finally:
        ok(lioctl("/loopback", "delete", wwn))
        ok(lioctl("/backstores/user", "delete", "aff"))


def test_o_direct_goes_through_io_uring_and_lands_on_the_disk(lioctl, tmp_path):
    """`direct;`: every READ and WRITE waits for the medium with O_DIRECT. The native path
    submits them to io_uring (this kernel allows it) and its reaper answers them; fio's
    verify reads back what it wrote, O_SYNC (FUA) writes and SYNCHRONIZE CACHE included, and the disk
    itself (read beside the handler) holds the same bytes as the LUN."""
    with ini.loop_disk(tmp_path / "direct.img", 16 * MiB) as loopdev:
        ok(lioctl("/backstores/user", "create", "odirect", "16M", f"direct;{loopdev}"))
        wwn, dev = loopback_lun(lioctl, "/backstores/user/odirect")
        sh("udevadm", "settle", check=False)
        before = status(lioctl)["devices"][0]
        fio(dev, "--rw=randrw", "--bs=4k", "--size=8M", "--iodepth=16", "--verify=crc32c", "--do_verify=1")
        fio(dev, "--rw=write", "--bs=256k", "--size=8M", "--offset=8M", "--iodepth=4", "--sync=1",
            "--verify=crc32c", "--do_verify=1")
        sg("sg_sync", dev)
        after = status(lioctl)["devices"][0]
        assert after["uring"], after
        # fio's 4k I/Os and its verify reads: every one waited on io_uring (threaded)
        assert after["threaded"] - before["threaded"] >= 2048 + 32, (before, after)
        assert sh("cmp", dev, loopdev, check=False).returncode == 0
        ok(lioctl("/loopback", "delete", wwn))
        ok(lioctl("/backstores/user", "delete", "odirect"))


@contextlib.contextmanager
def delayed_disk(tmp_path, name: str, size: int, delay_ms: int):
    """A block device whose every I/O is delay_ms late (dm-delay over a loop device); its path."""
    with ini.loop_disk(tmp_path / f"{name}.raw", size) as loopdev:
        sh("modprobe", "dm-delay")
        sh("dmsetup", "create", name, "--table", f"0 {size // 512} delay {loopdev} 0 {delay_ms}")
        try:
            yield f"/dev/mapper/{name}"
        finally:
            subprocess.run(["dmsetup", "remove", "--retry", name], capture_output=True)


def test_a_slow_disk_never_stalls_another_device(lioctl, tmp_path):
    """A disk with latency (dm-delay: every I/O 1 s late) and a file in memory, one handler: the
    slow disk's reads miss the page cache and go to I/O threads (the inline try, RWF_NOWAIT,
    must not wait for the disk), so the event loop keeps answering the other device at its own
    pace: none of its reads takes anywhere near the slow disk's second."""
    with delayed_disk(tmp_path, "lioctl_test_slow", 16 * MiB, 1000) as slow_disk:
        ok(lioctl("/backstores/user", "create", "slow", "16M", slow_disk))
        ok(lioctl("/backstores/user", "create", "fast", "16M", tmp_path / "fast.img"))
        (w_slow, d_slow), (w_fast, d_fast) = (loopback_lun(lioctl, f"/backstores/user/{n}") for n in ("slow", "fast"))
        slow = subprocess.Popen(["fio", "--name=s", f"--filename={d_slow}", "--direct=1", "--ioengine=libaio",
                                 "--rw=randread", "--bs=4k", "--iodepth=4", "--time_based", "--runtime=8"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: {d["name"]: d for d in status(lioctl)["devices"]}["slow"]["io_threads"] >= 2,
                     "reads of the slow disk waiting on I/O threads")
            job = fio(d_fast, "--rw=randread", "--bs=4k", "--iodepth=1", "--time_based", "--runtime=3")
            st = {d["name"]: d for d in status(lioctl)["devices"]}
        finally:
            slow.wait(timeout=120)
        assert st["slow"]["io_threads"] >= 2 and st["slow"]["threaded"] >= 2, st["slow"]
        assert job["read"]["total_ios"] > 0
        worst_ms = job["read"]["clat_ns"]["max"] / 1e6
        assert worst_ms < 1000, f"a read of the in-memory device waited {worst_ms:.0f} ms behind the slow disk"
        for wwn in (w_slow, w_fast):
            ok(lioctl("/loopback", "delete", wwn))
        ok(lioctl("/backstores/user", "delete", "slow"))
        ok(lioctl("/backstores/user", "delete", "fast"))


def test_export_user_over_iscsi(lioctl, tmp_path):
    img = tmp_path / "iu.img"
    r = ok(lioctl("export", "--user", img, "--lun-size", "32M", "--json"))
    info = json.loads(r.stdout)
    assert info["backstore"] == "/backstores/user/iu.img"
    ini.start()
    ini.discover()
    ini.login(info["target"])
    try:
        dev = ini.disk_for(info["target"])
        data = os.urandom(8 * MiB)
        with open(dev, "r+b", buffering=0) as d:
            d.write(data)
            os.fsync(d.fileno())
        sh("blockdev", "--flushbufs", dev)
        with open(dev, "rb", buffering=0) as d:
            assert d.read(len(data)) == data
        with open(img, "rb") as f:
            assert f.read(len(data)) == data
    finally:
        ini.logout(info["target"])
    ok(lioctl("unexport", img))
    assert cfs.snapshot() == []


@pytest.fixture(params=["file", "direct-delay"])
def kill9_medium(request, tmp_path):
    """What test_kill9 kills the handler over: a file (its answers from the page cache, on the
    ring thread), or `direct;` on a disk behind dm-delay (20 ms per I/O): every command in
    flight at the kill is an O_DIRECT I/O on io_uring, whose buffers are the ring's data area."""
    if request.param == "file":
        yield str(tmp_path / "k9.img")
        return
    with delayed_disk(tmp_path, "lioctl_test_k9", 32 * MiB, 20) as disk:
        yield f"direct;{disk}"


def test_kill9_under_fio_then_restart_loses_nothing(lioctl, kill9_medium):
    ok(lioctl("/backstores/user", "create", "k9", "32M", kill9_medium))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/k9")
    job = subprocess.Popen(["fio", "--name=t", f"--filename={dev}", "--direct=1", "--ioengine=libaio", "--verify_state_save=0",
                            "--rw=randwrite", "--bs=4k", "--size=16M", "--iodepth=16", "--verify=crc32c",
                            "--do_verify=1", "--output-format=json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: status(lioctl)["devices"][0]["writes"] > 300, "fio to be writing", timeout=120)
        if kill9_medium.startswith("direct;"):     # killed with writes on io_uring
            wait_for(lambda: (st := status(lioctl)["devices"][0])["uring"] and st["in_flight"] >= 4,
                     "O_DIRECT writes in flight on io_uring")
        old = handler_pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: handler_pid() is None, "the killed handler's lock to go")
        assert job.poll() is None          # fio is stuck waiting, not failed
        ok(lioctl("tcmu", "start"))        # blocks the device, resets the ring, serves again
        assert handler_pid() not in (None, old)
        out, err = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-2000:]
    res = json.loads(out[out.index("{"):])["jobs"][0]
    assert res["error"] == 0 and res["write"]["io_bytes"] == 16 * MiB
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", "k9"))


def test_sigterm_drains_and_a_stopped_handler_is_reported(lioctl, tmp_path):
    ok(lioctl("/backstores/user", "create", "st", "8M", "scratch", "subtype=lioctl_ram"))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/st")
    ok(lioctl("tcmu", "stop"))
    assert handler_pid() is None
    p = lioctl("tcmu", "status", "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["unserved"] == [
        os.path.relpath(glob.glob(f"{CORE}/user_*/st")[0], CORE)]
    ok(lioctl("tcmu", "start"))
    data = os.urandom(MiB)
    with open(dev, "r+b", buffering=0) as d:
        d.write(data)
        d.seek(0)
        assert d.read(MiB) == data
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", "st"))


def test_bad_input_creates_nothing(lioctl, tmp_path):
    cases = [
        (["/backstores/user", "create", "b1", "8M", tmp_path / "x.img", "subtype=nosuch"], "unknown user backstore subtype"),
        (["/backstores/user", "create", "b2", "8M", f"{tmp_path}/a:b.img"], "must not contain ':'"),
        (["/backstores/user", "create", "b3", "8M", "/" + "x" * 260], "at most 255"),
        (["/backstores/user", "create", "b4", "8M", "/nonexistent/dir/x.img"], "not a directory"),
        (["/backstores/user", "create", "b5", "8M", "relative.img"], "absolute"),
        (["/backstores/user", "create", "b6", "8M", f"bogus;{tmp_path}/y.img"], "unknown lioctl_file option"),
    ]
    for args, msg in cases:
        p = lioctl(*args)
        assert p.returncode in (1, 2) and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
        assert cfs.snapshot() == []
    # larger than the block device behind it
    with ini.loop_disk(tmp_path / "loop.img", 4 * MiB) as loopdev:
        p = lioctl("/backstores/user", "create", "b7", "8M", loopdev)
        assert p.returncode == 1 and "larger than block device" in p.stderr
    # two backstores on one file
    ok(lioctl("/backstores/user", "create", "one", "8M", tmp_path / "same.img"))
    p = lioctl("/backstores/user", "create", "two", "8M", tmp_path / "same.img")
    assert p.returncode == 6 and "already uses" in p.stderr
    ok(lioctl("/backstores/user", "delete", "one"))
    assert cfs.snapshot() == []


def test_tcmu_runner_serves_its_qcow_device_alongside(lioctl, tmp_path):
    os.makedirs("/run/dbus", exist_ok=True)
    if not os.path.exists("/run/dbus/system_bus_socket"):
        sh("dbus-daemon", "--system", "--fork")
    raw = tmp_path / "runner.img"
    with open(raw, "wb") as f:
        f.truncate(16 * MiB)
    logdir = tmp_path / "runner-log"
    logdir.mkdir()
    runner = subprocess.Popen(["tcmu-runner", "-l", str(logdir)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: "org.kernel.TCMUService1" in sh(
            "dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames", check=False).stdout, "tcmu-runner on D-Bus", timeout=60)
        ok(lioctl("/backstores/user", "create", "theirs", "16M", str(raw), "subtype=qcow"))
        ok(lioctl("/backstores/user", "create", "ours", "16M", tmp_path / "ours.img"))
        w1, d_theirs = loopback_lun(lioctl, "/backstores/user/theirs")
        w2, d_ours = loopback_lun(lioctl, "/backstores/user/ours")
        served = [d["name"] for d in status(lioctl)["devices"]]
        assert served == ["ours"]                      # lioctl never claims tcmu-runner's device
        fio(d_theirs, "--rw=randrw", "--bs=4k", "--size=4M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
        fio(d_ours, "--rw=randrw", "--bs=4k", "--size=4M", "--iodepth=8", "--verify=crc32c", "--do_verify=1")
        ok(lioctl("/loopback", "delete", w1))
        ok(lioctl("/loopback", "delete", w2))
        ok(lioctl("/backstores/user", "delete", "theirs"))
        ok(lioctl("/backstores/user", "delete", "ours"))
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)


def test_save_clear_restore_brings_the_handler_back(lioctl, tmp_path):
    img = tmp_path / "sr.img"
    ok(lioctl("/backstores/user", "create", "sr", "16M", img))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/sr")
    data = os.urandom(MiB)
    with open(dev, "r+b", buffering=0) as d:
        d.write(data)
        os.fsync(d.fileno())                  # out of the initiator's page cache before clear
    saved = tmp_path / "saved.json"
    ok(lioctl("save", saved))
    cfg = json.loads(saved.read_text())
    (so,) = [s for s in cfg["storage_objects"] if s["plugin"] == "user"]
    assert so["config"] == f"lioctl_file/{img}" and so["size"] == 16 * MiB
    ok(lioctl("clear", "--yes"))
    wait_for(lambda: handler_pid() is None, "the handler to leave with its last device")
    ok(lioctl("restore", saved))
    assert [d["name"] for d in status(lioctl)["devices"]] == ["sr"]
    assert lioctl("diff", saved).returncode == 0
    ok(lioctl("tcmu", "stop"))
    r = ok(lioctl("restore", saved))          # nothing to change, but the device needs serving
    assert "already matches" in r.stdout and [d["name"] for d in status(lioctl)["devices"]] == ["sr"]
    dev = disk_by_serial(so["wwn"])
    with open(dev, "rb", buffering=0) as d:
        assert d.read(MiB) == data
    ok(lioctl("clear", "--yes"))


def test_reconfig_events_and_idle_cpu(lioctl, tmp_path):
    """Writes to a served device's attributes reach the handler as netlink RECONFIG events
    (with no listener the kernel refuses them); an idle handler burns no CPU."""
    ok(lioctl("/backstores/user", "create", "rc", "8M", tmp_path / "rc.img"))
    wwn, dev = loopback_lun(lioctl, "/backstores/user/rc")
    so = glob.glob(f"{CORE}/user_*/rc")[0]
    assert re.search(r"^ 00\s+08 12 04", sg("sg_modes", "-p", "8", dev).stdout, re.M)
    with open(f"{so}/attrib/emulate_write_cache", "w") as f:
        f.write("0")
    assert re.search(r"^ 00\s+08 12 00", sg("sg_modes", "-p", "8", dev).stdout, re.M)
    with open(f"{so}/attrib/dev_size", "w") as f:
        f.write(str(16 * MiB))
    assert "Last LBA=32767" in sg("sg_readcap", dev).stdout
    assert (tmp_path / "rc.img").stat().st_size == 16 * MiB     # the file grew with the device
    assert status(lioctl)["devices"][0]["size"] == 16 * MiB

    pid = handler_pid()

    def ticks():
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])

    def quiet_second():
        before = ticks()
        time.sleep(1)       # a measurement window, not a wait for a condition
        return ticks() == before
    # the work just done may still be accounted for a moment under emulation; a handler that
    # polls never gets a quiet second, one that sleeps in epoll gets them all after that
    wait_for(quiet_second, "a second without handler CPU", timeout=30)
    assert sum(quiet_second() for _ in range(3)) >= 2
    ok(lioctl("/loopback", "delete", wwn))
    ok(lioctl("/backstores/user", "delete", "rc"))
