"""The RBD backend: spec/config parsing (pure), and the backend against a real one-node
cluster (tests/kernel/ceph.sh, memstore, ~1 s to start on the host) over the simulated ring.
The cluster tests are skipped where Debian's ceph-mon/ceph-osd are not installed."""

from __future__ import annotations

import os
import select
import struct
import subprocess
from pathlib import Path

import pytest

from lioctl.tcmu import rbdspec
from lioctl.tcmu.rbdspec import SpecError, parse_config, parse_spec
from ceph_cluster import needs_ceph

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arg,name,snap", [
    ("rbd:rbd/vol1", "rbd/vol1", None),
    ("rbd:pool-2/img.v2@snap_1", "pool-2/img.v2@snap_1", "snap_1"),
])
def test_spec_parses_pool_image_and_snapshot(arg, name, snap):
    s = parse_spec(arg)
    assert s.name == name and s.snap == snap and s.read_only == (snap is not None)


@pytest.mark.parametrize("arg", ["rbd:", "rbd:pool", "rbd:/img", "rbd:pool/", "rbd:p/i@", "rbd:p/i;x",
                                 "rbd:p/a/b", "rbd:p/i,j", "rbd:p/i:j", "pool/img", "rbd:p/i@s@t"])
def test_bad_specs_are_refused(arg):
    with pytest.raises(SpecError):
        parse_spec(arg)


def test_config_string_round_trip_and_no_secret_field():
    s = parse_spec("rbd:rbd/vol@s1", conf="/etc/ceph/c2.conf", id="gw", keyring="/etc/ceph/gw.keyring",
                   cluster="c2", timeout=7)
    c = s.config()
    assert c == "rbd/vol@s1;conf=/etc/ceph/c2.conf;id=gw;keyring=/etc/ceph/gw.keyring;cluster=c2;timeout=7"
    assert parse_config(c) == s
    assert parse_config("rbd/vol") == parse_spec("rbd:rbd/vol")
    assert parse_config("rbd/vol").conf_path() == "/etc/ceph/ceph.conf"
    assert parse_config("rbd/vol;cluster=east").conf_path() == "/etc/ceph/east.conf"
    for bad in ("rbd/vol;key=AQBx", "rbd/vol;id=a;id=b", "rbd/vol;keyring=rel/path", "rbd/vol;timeout=x",
                "rbd/vol;conf=/a;b", "rbd/vol;timeout=0"):
        with pytest.raises(SpecError):
            parse_config(bad)


def test_an_rbd_backstore_gives_the_kernel_more_time_than_its_own_cluster_timeout():
    """cmd_time_out = the config's timeout + the margin: the handler's NOT READY (after
    `timeout=`) comes before the kernel's LUN COMMUNICATION FAILURE, and the kernel's timer is
    left for a hung handler."""
    from lioctl.tcmu.backends.rbd import CMD_TIME_OUT_MARGIN, RbdBackend
    assert RbdBackend.kernel_attributes("rbd/img") == {"cmd_time_out": str(rbdspec.DEFAULT_TIMEOUT
                                                                            + CMD_TIME_OUT_MARGIN)}
    assert RbdBackend.kernel_attributes("rbd/img;timeout=5") == {"cmd_time_out": str(5 + CMD_TIME_OUT_MARGIN)}
    assert rbdspec.DEFAULT_TIMEOUT + CMD_TIME_OUT_MARGIN > 30       # the kernel's default


def test_file_and_ram_backends_never_import_ceph():
    code = ("import sys; from lioctl.tcmu.backends import open_backend; "
            "b = open_backend('lioctl_ram', 'x', 1 << 20); "
            "assert 'lioctl.tcmu.librbd' not in sys.modules and 'rbd' not in sys.modules; print('ok')")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "ok", out.stderr


def rbd(cluster, *args):
    return subprocess.run(["rbd", "-c", str(cluster / "ceph.conf"), *args], check=True, capture_output=True,
                          timeout=60)


def rw(opcode, lba, blocks, flags=0):
    return struct.pack(">BBIBHB", opcode, flags, lba, 0, blocks, 0)


@pytest.fixture
def rdev(cluster, request):
    from lioctl.tcmu.aio import CompletionQueue
    from lioctl.tcmu.backends.rbd import RbdBackend
    from tcmu_sim import sim_device
    name = request.node.name[:40].replace("[", "_").replace("]", "")
    rbd(cluster, "create", "--size", "16", f"rbd/{name}")
    spec = rbdspec.RbdSpec("rbd", name, conf=str(cluster / "ceph.conf"), keyring=str(cluster / "keyring"),
                           timeout=5)
    b = RbdBackend(spec)
    r, w = os.pipe()
    q = CompletionQueue()
    k, dev = sim_device(b, w, queue=q, write_cache=True)
    yield k, dev, b, q, name
    b.close()
    q.close()
    os.close(r)
    os.close(w)
    rbd(cluster, "rm", f"rbd/{name}")


def serve(k, dev, q, ids):
    """The daemon's loop, for these commands: drain, then run completions until all are answered."""
    dev.drain()
    got = k.reap()
    while not set(ids) <= set(got):
        fds = [q.fd, dev.backend.completion_fd()]
        assert select.select(fds, [], [], 10)[0], f"no completion for {set(ids) - set(got)}"
        dev.backend.reap()
        q.run()
        got.update(k.reap())
    return got


@needs_ceph
def test_rbd_write_read_compare_and_image_holds_the_data(rdev, cluster, tmp_path):
    k, dev, b, q, name = rdev
    data = os.urandom(64 * 1024)
    ids = [k.queue(rw(0x2A, 128 * i, 128, flags=0x08 if i == 3 else 0), data_out=data[i * 16384:(i + 1) * 16384]
                   [:16384] * 4) for i in range(4)]
    got = serve(k, dev, q, ids)
    assert all(got[i]["status"] == 0 for i in ids)
    r = k.queue(rw(0x28, 0, 512), data_in=256 * 1024)
    got = serve(k, dev, q, [r])
    expect = b"".join(data[i * 16384:(i + 1) * 16384] * 4 for i in range(4))
    assert got[r]["data"] == expect
    rbd(cluster, "export", f"rbd/{name}", str(tmp_path / "img"))
    assert (tmp_path / "img").read_bytes()[:len(expect)] == expect      # it is in Ceph


@needs_ceph
def test_rbd_unmap_zeroes_partial_units_and_write_same_and_caw(rdev):
    k, dev, b, q, name = rdev
    w = k.queue(rw(0x2A, 0, 256), data_out=b"\xAA" * 131072)
    serve(k, dev, q, [w])
    params = struct.pack(">HH4x", 6 + 16, 16) + struct.pack(">QI4x", 3, 5)    # 2.5 KiB: not a 64 KiB unit
    u = k.queue(bytes([0x42, 0, 0, 0, 0, 0, 0]) + struct.pack(">H", len(params)) + b"\0", data_out=params)
    ws = k.queue(struct.pack(">BBQIBB", 0x93, 0, 16, 8, 0, 0), data_out=b"\x5A" * 512)   # WRITE SAME(16)
    got = serve(k, dev, q, [u, ws])
    assert got[u]["status"] == 0 and got[ws]["status"] == 0
    r = k.queue(rw(0x28, 0, 32), data_in=16384)
    data = serve(k, dev, q, [r])[r]["data"]
    assert data[:1536] == b"\xAA" * 1536 and data[1536:4096] == bytes(2560) and data[4096:8192] == b"\xAA" * 4096
    assert data[8192:12288] == b"\x5A" * 4096
    caw = k.queue(struct.pack(">BBQ3xB2x", 0x89, 0, 16, 1), data_out=b"\x5A" * 512 + b"C" * 512)
    bad = k.queue(struct.pack(">BBQ3xB2x", 0x89, 0, 17, 1), data_out=b"\x5A" * 77 + b"?" + b"\x5A" * 434 + bytes(512))
    got = serve(k, dev, q, [caw, bad])
    assert got[caw]["status"] == 0
    assert got[bad]["sense"][2] == 0x0E and struct.unpack(">I", got[bad]["sense"][3:7])[0] == 77
    r = k.queue(rw(0x28, 16, 2), data_in=1024)
    assert serve(k, dev, q, [r])[r]["data"] == b"C" * 512 + b"\x5A" * 512


@needs_ceph
def test_rbd_resize_outside_reaches_the_lun_as_a_unit_attention(rdev, cluster):
    k, dev, b, q, name = rdev
    rbd(cluster, "resize", "--size", "32", f"rbd/{name}")
    assert select.select([q.fd], [], [], 10)[0], "the image watch did not fire"
    q.run()
    assert dev.unit.num_blocks * 512 == 32 << 20
    r = k.queue(rw(0x28, 0, 8), data_in=4096)
    got = k.reap() if dev.drain() else {}
    got.update(k.reap())
    assert got[r]["sense"][2] == 0x06 and got[r]["sense"][12:14] == b"\x2a\x09"


@needs_ceph
def test_rbd_growing_the_lun_from_lioctl_grows_the_image(rdev, cluster):
    """What `changemedium` with a bigger size sends: a RECONFIG dev_size event."""
    k, dev, b, q, name = rdev
    dev.reconfigure(dev_size=48 << 20)
    assert b.current_size() == 48 << 20 and dev.unit.num_blocks * 512 == 48 << 20
    assert b"48 MiB" in rbd(cluster, "info", f"rbd/{name}").stdout
    r = k.queue(rw(0x28, 0, 8), data_in=4096)
    dev.drain()
    assert k.reap()[r]["sense"][12:14] == b"\x2a\x09"      # CAPACITY DATA HAS CHANGED


def _rbd_dev(cluster, name, spec_timeout=5):
    from lioctl.tcmu.aio import CompletionQueue
    from lioctl.tcmu.backends.rbd import RbdBackend
    from tcmu_sim import sim_device
    spec = rbdspec.RbdSpec("rbd", name, conf=str(cluster / "ceph.conf"), keyring=str(cluster / "keyring"),
                           timeout=spec_timeout)
    q = CompletionQueue()
    w = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)        # the doorbell
    k, dev = sim_device(RbdBackend(spec), w, queue=q, write_cache=True)
    return k, dev, q, w


@needs_ceph
def test_rbd_a_blocklisted_client_reopens_and_a_deleted_image_is_medium_not_present(cluster):
    """`ceph osd blocklist add` + `rbd rm`: both images of the connection are refused; the one
    still there is reopened on a new connection and served again, the deleted one answers
    MEDIUM NOT PRESENT; meanwhile commands are 'becoming ready' (04/01, the initiator retries)."""
    for n in ("bl_gone", "bl_kept"):
        rbd(cluster, "create", "--size", "8", f"rbd/{n}")
    (kg, gone, qg, wg), (kk, kept, qk, wk) = _rbd_dev(cluster, "bl_gone"), _rbd_dev(cluster, "bl_kept")
    assert gone.backend.cluster is kept.backend.cluster
    try:
        for k, dev, q in ((kg, gone, qg), (kk, kept, qk)):
            w = k.queue(rw(0x2A, 0, 8), data_out=b"A" * 4096)
            assert serve(k, dev, q, [w])[w]["status"] == 0
        client = gone.backend.cluster.address
        subprocess.run(["ceph", "-c", str(cluster / "ceph.conf"), "osd", "blocklist", "add", client], check=True,
                       capture_output=True, timeout=60)
        rbd(cluster, "rm", "rbd/bl_gone")

        def until(k, dev, q, sense):
            for _ in range(100):
                w = k.queue(rw(0x2A, 8, 8), data_out=b"B" * 4096)
                got = serve(k, dev, q, [w])[w]
                if (got["status"], got["sense"][2:3] + got["sense"][12:14] if got["status"] else b"") == sense:
                    return
                assert got["status"] == 2 and got["sense"][2] == 2 and got["sense"][12:14] == b"\x04\x01", got
                select.select([], [], [], 0.1)
            raise AssertionError(f"never {sense}")
        until(kk, kept, qk, (0, b""))                             # reopened: written
        until(kg, gone, qg, (2, b"\x02\x3a\x00"))                 # deleted: MEDIUM NOT PRESENT
        assert "no longer exists" in gone.backend.error and kept.backend.error is None
        assert kept.backend.cluster is not gone.backend.cluster and not kept.backend.cluster.blocklisted
        r = kk.queue(rw(0x28, 0, 16), data_in=8192)
        assert serve(kk, kept, qk, [r])[r]["data"] == b"A" * 4096 + b"B" * 4096
    finally:
        for dev, q, w in ((gone, qg, wg), (kept, qk, wk)):
            dev.backend.close()
            q.close()
            os.close(w)
        rbd(cluster, "rm", "rbd/bl_kept")


@needs_ceph
def test_rbd_a_restarted_handler_takes_the_lock_of_its_dead_predecessor(cluster, tmp_path, monkeypatch):
    """Without it the first write waits ~30 s for the dead client's watch to time out."""
    import time

    from lioctl.tcmu.backends import rbd as rbd_backend
    from lioctl.tcmu.backends.base import Backend
    rbd(cluster, "create", "--size", "8", "rbd/dead_lock")
    os.chmod(tmp_path, 0o700)
    code = ("import os, sys, select; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]); "
            "from test_tcmu_rbd import _rbd_dev, rw, serve; from lioctl.tcmu.backends.base import Backend; "
            "from pathlib import Path; Backend.state_dir = sys.argv[3]; "
            "k, dev, q, w = _rbd_dev(Path(sys.argv[4]), 'dead_lock'); "
            "c = k.queue(rw(0x2A, 0, 8), data_out=b'D' * 4096); assert serve(k, dev, q, [c])[c]['status'] == 0; "
            "os.kill(os.getpid(), 9)")
    p = subprocess.run([os.sys.executable, "-c", code, str(REPO), str(REPO / "tests/unit"), str(tmp_path),
                        str(cluster)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr
    assert (tmp_path / rbd_backend.CLIENTS).read_text().count("\n") == 1
    monkeypatch.setattr(Backend, "state_dir", str(tmp_path))
    monkeypatch.setattr(rbd_backend, "_dead", None)
    k, dev, q, w = _rbd_dev(cluster, "dead_lock")
    try:
        t = time.monotonic()
        c = k.queue(rw(0x2A, 0, 8), data_out=b"E" * 4096)
        assert serve(k, dev, q, [c])[c]["status"] == 0
        assert time.monotonic() - t < 10
        assert (tmp_path / rbd_backend.CLIENTS).read_text() == dev.backend.cluster.address + "\n"
    finally:
        dev.backend.close()
        q.close()
        os.close(w)
        rbd(cluster, "rm", "rbd/dead_lock")
