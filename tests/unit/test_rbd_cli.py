"""The lioctl command's side of RBD backstores, against a real one-node cluster on the host:
`create NAME [SIZE] rbd:POOL/IMAGE` sizes and their errors, --create/--grow plans, export's
plan, completion of pools and images (and its bound when the cluster does not answer), the
one-line error when python3-rbd is missing. --dry-run only: configfs is the guest's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ceph_cluster import needs_ceph

REPO = Path(__file__).resolve().parents[2]


def lioctl(*args, env=None):
    e = dict(os.environ, NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "lioctl", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=REPO, timeout=120)


@pytest.fixture
def img(cluster, request):
    name = request.node.name[:30].replace("[", "_").replace("]", "")
    subprocess.run(["rbd", "-c", cluster / "ceph.conf", "create", "--size", "64", f"rbd/{name}"], check=True)
    yield name
    subprocess.run(["rbd", "-c", cluster / "ceph.conf", "rm", f"rbd/{name}"], capture_output=True)


def env_of(cluster):
    return {"CEPH_CONF": str(cluster / "ceph.conf")}


@needs_ceph
def test_size_left_out_is_the_images_and_a_different_size_is_an_error_naming_both(cluster, img):
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", f"rbd:rbd/{img}", env=env_of(cluster))
    assert p.returncode == 0, p.stderr
    assert f"dev_config=lioctl_rbd/rbd/{img};conf={cluster}/ceph.conf'" in p.stdout   # CEPH_CONF kept
    assert "dev_size=67108864" in p.stdout and "lioctl tcmu start" in p.stdout
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "32M", f"rbd:rbd/{img}", env=env_of(cluster))
    assert p.returncode == 5 and p.stderr.count("\n") == 1  # conflict
    assert "33554432" in p.stderr and "67108864" in p.stderr
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "128M", f"rbd:rbd/{img}", "--grow",
               env=env_of(cluster))
    assert p.returncode == 0, p.stderr
    assert f"resize --size 134217728B rbd/{img}" in p.stdout and "dev_size=134217728" in p.stdout


@needs_ceph
def test_missing_image_pool_snapshot_and_create(cluster):
    e = env_of(cluster)
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "rbd:rbd/nope", env=e)
    assert p.returncode == 4 and "rbd/nope does not exist" in p.stderr and "--create" in p.stderr
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "rbd:rbd/nope", "--create", env=e)
    assert p.returncode == 1 and "needs a size" in p.stderr
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "1G", "rbd:rbd/nope", "--create", env=e)
    assert p.returncode == 0 and "create --size 1073741824B rbd/nope" in p.stdout
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "rbd:nopool/x", env=e)
    assert p.returncode == 4 and "pool 'nopool' does not exist" in p.stderr
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", "1G", "rbd:rbd/x@s", "--create", env=e)
    assert p.returncode == 1 and "read-only" in p.stderr


@needs_ceph
def test_wrong_cephx_user_missing_keyring_and_an_unreachable_cluster_are_one_line_in_bounded_time(cluster, img,
                                                                                                  tmp_path):
    e = env_of(cluster)
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", f"rbd:rbd/{img}", "id=nobody", env=e)
    assert p.returncode == 1 and "client.nobody" in p.stderr and "permission denied" in p.stderr
    assert p.stderr.count("\n") == 1
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", f"rbd:rbd/{img}", "keyring=/nonexistent", env=e)
    assert p.returncode == 1 and "no keyring at /nonexistent" in p.stderr
    (tmp_path / "dead.conf").write_text("[global]\nmon_host = 127.0.0.1:9\n")
    t = time.monotonic()
    p = lioctl("--dry-run", "/backstores/user", "create", "v1", f"rbd:rbd/{img}", f"conf={tmp_path}/dead.conf",
               "timeout=2")
    assert p.returncode == 1 and "timed out" in p.stderr and p.stderr.count("\n") == 1
    assert time.monotonic() - t < 15


@needs_ceph
def test_export_plans_the_rbd_backstore_and_refuses_rbd_options_for_files(cluster, img):
    p = lioctl("--dry-run", "export", f"rbd:rbd/{img}", "--conf", cluster / "ceph.conf")
    assert p.returncode == 0, p.stderr
    assert f"dev_config=lioctl_rbd/rbd/{img};conf={cluster}/ceph.conf'" in p.stdout
    assert "/tpgt_1/lun/lun_0" in p.stdout and "/enable" in p.stdout
    p = lioctl("--dry-run", "export", "/srv/x.img", "--conf", "/etc/ceph/ceph.conf")
    assert p.returncode == 2 and "for rbd:POOL/IMAGE" in p.stderr


@needs_ceph
def test_completion_offers_pools_and_images_and_never_hangs_on_a_dead_cluster(cluster, img, tmp_path):
    e = env_of(cluster)
    p = lioctl("__complete", "bash", "lioctl export rbd:", "rbd:", env=e)
    assert "rbd:rbd/" in p.stdout.split()
    p = lioctl("__complete", "bash", "lioctl /backstores/user create v1 rbd:rbd/", "rbd:rbd/", env=e)
    assert f"rbd:rbd/{img}" in p.stdout.split()
    (tmp_path / "dead.conf").write_text("[global]\nmon_host = 127.0.0.1:9\n")
    t = time.monotonic()
    p = lioctl("__complete", "bash", "lioctl export rbd:", "rbd:", env={"CEPH_CONF": str(tmp_path / "dead.conf")})
    assert p.returncode == 0 and p.stdout.strip() == ""
    assert time.monotonic() - t < 6


def test_missing_python3_rbd_is_one_line_naming_the_packages(monkeypatch):
    from lioctl.errors import LioError
    from lioctl.backstores.media import rbd as rbd_admin
    monkeypatch.setattr(rbd_admin, "_modules", None)
    monkeypatch.setattr(rbd_admin, "DIST_PACKAGES", ("/nonexistent",))
    monkeypatch.setitem(sys.modules, "rados", None)     # import rados -> ImportError
    monkeypatch.setitem(sys.modules, "rbd", None)
    with pytest.raises(LioError) as e:
        rbd_admin.modules()
    assert "python3-rbd python3-rados" in str(e.value) and "\n" not in str(e.value)


def test_missing_librbd_in_the_handler_names_the_packages(monkeypatch):
    import ctypes

    from lioctl.tcmu import librbd

    def no_lib(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")
    monkeypatch.setattr(librbd, "_lib", None)
    monkeypatch.setattr(ctypes, "CDLL", no_lib)
    with pytest.raises(librbd.Missing) as e:
        librbd._load()
    assert "python3-rbd python3-rados" in str(e.value)


def test_the_venv_finds_the_distributions_modules_without_system_site_packages():
    """lioctl's venv (tests/setup.sh) is made without --system-site-packages: rados and rbd
    come from /usr/lib/python3/dist-packages for this interpreter's ABI, nothing else does."""
    if not os.path.exists("/usr/lib/python3/dist-packages/rbd" + __import__("importlib.machinery").machinery
                          .EXTENSION_SUFFIXES[0]):
        pytest.skip("python3-rbd for this Python is not installed")
    code = ("import sys; from lioctl.backstores.media import rbd as rbd_admin; rados, rbd = rbd_admin.modules(); "
            "print(rbd.__file__); print(any('dist-packages' in p for p in sys.path))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    path, on_path = p.stdout.split()
    assert path.startswith("/usr/lib/python3/dist-packages/") and on_path == "False"


@needs_ceph
def test_completion_with_the_monitor_stopped_returns_within_its_bound(cluster):
    import signal
    mon = int((cluster / "run" / "mon.a.pid").read_text())
    os.kill(mon, signal.SIGSTOP)
    try:
        t = time.monotonic()
        p = lioctl("__complete", "bash", "lioctl export rbd:", "rbd:", env=env_of(cluster))
        took = time.monotonic() - t
    finally:
        os.kill(mon, signal.SIGCONT)
    assert p.returncode == 0 and p.stdout.strip() == "" and took < 6, (took, p.stderr)


def test_image_ops_are_not_configfs_paths():
    """The executor refuses an op outside configfs unless it says it is none (plan/ops.py)."""
    from lioctl.backstores.media.rbd import CreateImage, GrowImage, RemoveImage
    from lioctl.tcmu.rbdspec import RbdSpec
    spec = RbdSpec("rbd", "v")
    for op in (CreateImage("rbd/v", spec=spec, size=1), GrowImage("rbd/v", spec=spec, size=2, before=1),
               RemoveImage("rbd/v", spec=spec)):
        assert op.configfs_paths() == ()
