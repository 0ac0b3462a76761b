"""The distribution's saved configuration (issue #17 item 3), found as its rtslib-fb finds it,
and `save` refusing to lose a configuration (item 2) on this host, which has no LIO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl.saveconfig import store

DEBIAN_RTSLIB = Path("/usr/lib/python3/dist-packages/rtslib_fb/root.py")


def _tree(root: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(root)


def test_debian_rtslib_names_its_own_directory(tmp_path):
    root = _tree(tmp_path, {
        "usr/lib/python3/dist-packages/rtslib_fb/root.py":
            'import os\n\ndefault_save_file = "/etc/rtslib-fb-target/saveconfig.json"\n',
        "etc/os-release": 'ID=debian\n'})
    assert store.default_path(root) == "/etc/rtslib-fb-target/saveconfig.json"


def test_rhel_rtslib_in_site_packages_keeps_etc_target(tmp_path):
    root = _tree(tmp_path, {
        "usr/lib/python3.9/site-packages/rtslib_fb/root.py":
            "default_save_file = '/etc/target/saveconfig.json'\n",
        "etc/os-release": 'ID="rhel"\nID_LIKE="fedora"\n'})
    assert store.default_path(root) == "/etc/target/saveconfig.json"


def test_the_installed_rtslib_wins_over_the_os_name(tmp_path):
    # an Ubuntu host with an upstream rtslib-fb installed by pip into /usr/local
    root = _tree(tmp_path, {
        "usr/local/lib/python3.12/dist-packages/rtslib_fb/root.py":
            'default_save_file = "/etc/target/saveconfig.json"\n',
        "etc/os-release": "ID=ubuntu\nID_LIKE=debian\n"})
    assert store.default_path(root) == "/etc/target/saveconfig.json"


@pytest.mark.parametrize("os_release,expected", [
    ("ID=ubuntu\nID_LIKE=debian\n", store.DEBIAN_FILE),
    ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", store.DEBIAN_FILE),
    ("ID=fedora\n", store.UPSTREAM_FILE),
    (None, store.UPSTREAM_FILE),
])
def test_without_rtslib_the_os_decides(tmp_path, os_release, expected):
    files = {"etc/os-release": os_release} if os_release else {"etc/hostname": "x\n"}
    assert store.default_path(_tree(tmp_path, files)) == expected


@pytest.mark.skipif(not DEBIAN_RTSLIB.exists(), reason="Debian's python3-rtslib-fb not installed")
def test_this_host_agrees_with_debian_rtslib_itself():
    """The oracle: Debian's rtslib-fb, imported by the system Python, says where it saves."""
    out = subprocess.run(["/usr/bin/python3", "-c",
                          "import rtslib_fb.root as r; print(r.default_save_file)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert store.DEFAULT == out == "/etc/rtslib-fb-target/saveconfig.json"


def _lioctl(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lioctl", *args], capture_output=True, text=True, **kw)


def test_save_and_restore_help_name_the_distribution_file():
    for verb in ("save", "restore"):
        out = _lioctl(verb, "--help", env=dict(os.environ, COLUMNS="300")).stdout
        assert f"default {store.DEFAULT}" in out, out


@pytest.mark.skipif(os.path.isdir("/sys/kernel/config/target"),
                    reason="this host has LIO: the kernel test covers the refusal there")
def test_save_refuses_when_the_kernel_configuration_cannot_be_read(tmp_path):
    """This host runs without target_core_mod: save must not replace a configuration with {}."""
    saved = tmp_path / "saveconfig.json"
    text = json.dumps({"storage_objects": [{"name": "d", "plugin": "ramdisk", "size": 4096}],
                       "targets": [], "fabric_modules": []})
    saved.write_text(text)
    for args in ((str(saved),), (str(saved), "--force"), ("-",)):
        r = _lioctl("save", *args)
        assert r.returncode == 7, r  # no kernel target
        assert r.stdout == "" and len(r.stderr.splitlines()) == 1, r
        assert "cannot read the running configuration" in r.stderr
        assert saved.read_text() == text
    assert not (tmp_path / "backup").exists()
