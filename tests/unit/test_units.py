"""systemd units (issue #17 items 3 and 7): valid, hardened, written for this installation;
the TCMU handler's readiness notice and journald log format."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl.commands import install_units
from lioctl.tcmu import daemon

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "systemd"
needs_systemd = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")


def _lioctl(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lioctl", *args], capture_output=True, text=True, **kw)


def _verify(directory: Path) -> None:
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *install_units.UNITS],
                       cwd=directory, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def _exposure(unit: Path) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


@needs_systemd
def test_shipped_units_verify():
    _verify(SHIPPED)


@needs_systemd
def test_tcmu_unit_is_hardened():
    """It was 9.6 UNSAFE; it needs root, configfs, /dev/uio*, the backing files and netlink."""
    assert _exposure(SHIPPED / "lioctl-tcmu.service") <= 3.0
    assert _exposure(SHIPPED / "lioctl-restore.service") <= 7.0


def _unit(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_restore_unit_conflicts_with_both_distribution_restorers_and_reads_both_files():
    u = _unit((SHIPPED / "lioctl-restore.service").read_text())
    assert set(" ".join(u["Conflicts"]).split()) >= {"target.service", "rtslib-fb-targetctl.service"}
    assert sorted(u["ConditionPathExists"]) == ["|/etc/rtslib-fb-target/saveconfig.json",
                                                "|/etc/target/saveconfig.json"]
    assert u["ExecStart"] == ["/usr/bin/env lioctl restore --boot"] and u["SuccessExitStatus"] == ["3"]
    assert "network-online.target" in " ".join(u["After"]) and u["Wants"] == ["network-online.target"]
    assert u["ExecStop"] == ["/usr/bin/env lioctl clear --yes"] and u["TimeoutStopSec"] == ["5min"]
    t = _unit((SHIPPED / "lioctl-tcmu.service").read_text())
    assert t["Type"] == ["notify"]


@needs_systemd
def test_install_units_writes_units_for_this_interpreter_and_saved_file(tmp_path):
    saved = tmp_path / "saveconfig.json"
    saved.write_text(json.dumps({"storage_objects": [
        {"plugin": "fileio", "name": "f", "dev": "/srv/lun store/disk.img", "size": 4096},
        {"plugin": "block", "name": "b", "dev": "/dev/disk/by-id/wwn-0x5000-part1"},
        {"plugin": "pscsi", "name": "p", "dev": "/dev/sdc"},
        {"plugin": "user", "name": "u", "config": "lioctl_file//var/lib/luns/u.img", "size": 4096},
        {"plugin": "ramdisk", "name": "r", "size": 4096}], "targets": []}))
    out = tmp_path / "units"
    r = _lioctl("install-units", "--dir", str(out), "--file", str(saved), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["daemon_reload"] is False
    restore = _unit((out / "lioctl-restore.service").read_text())
    assert restore["ExecStart"] == [f"{sys.executable} -m lioctl restore --boot {saved}"]
    assert restore["ExecStop"] == [f"{sys.executable} -m lioctl clear --yes"]
    assert restore["ConditionPathExists"] == [str(saved)]
    assert restore["RequiresMountsFor"] == ['"/srv/lun store"', '"/var/lib/luns"']
    devices = ["dev-disk-by\\x2did-wwn\\x2d0x5000\\x2dpart1.device", "dev-sdc.device"]
    assert all(d in restore["Wants"] and d in " ".join(restore["After"]) for d in devices)
    tcmu = _unit((out / "lioctl-tcmu.service").read_text())
    assert tcmu["ExecStart"] == [f"{sys.executable} -m lioctl tcmu run"]
    assert oct((out / "lioctl-tcmu.service").stat().st_mode & 0o777) == "0o644"
    _verify(out)
    for name, unit in (("block", devices[0]), ("pscsi", devices[1])):
        dev = next(s["dev"] for s in json.loads(saved.read_text())["storage_objects"] if s["plugin"] == name)
        esc = subprocess.run(["systemd-escape", "--path", "--suffix=device", dev],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert esc == unit


def test_install_units_dry_run_writes_nothing(tmp_path):
    r = _lioctl("install-units", "--dry-run", "--dir", str(tmp_path / "u"))
    assert r.returncode == 0, r.stderr
    assert f"# {tmp_path}/u/lioctl-restore.service" in r.stdout and "[Service]" in r.stdout
    assert not (tmp_path / "u").exists()


def test_install_units_unwritable_dir_is_one_line(tmp_path):
    (tmp_path / "f").write_text("")
    r = _lioctl("install-units", "--dir", str(tmp_path / "f" / "sub"))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "cannot write the units" in r.stderr


def test_sd_notify_sends_a_datagram_to_notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        daemon.sd_notify("READY=1")
        s.settimeout(5)
        assert s.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    daemon.sd_notify("READY=1")     # not under systemd: nothing, no error


def test_log_format_leaves_time_and_pid_to_journald(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert "%(asctime)s" in daemon.log_format()
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    fmt = daemon.log_format()
    assert "asctime" not in fmt and "process" not in fmt
    rec = logging.LogRecord("lioctl.tcmu", logging.INFO, __file__, 1, "serving %s", ("user/u1",), None)
    assert logging.Formatter(fmt).format(rec) == "INFO serving user/u1"
