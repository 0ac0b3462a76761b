"""An admin switching from targetcli (issue #17): save never loses a configuration, boot
restore is best effort, and Debian's own targetcli restores what lioctl saved."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

import pytest

import cfs
import initiator
from conftest import LIOCTL

T1 = "iqn.2003-01.org.example:boot1"
T2 = "iqn.2003-01.org.example:boot2"
I1 = "iqn.1994-05.com.example:bootinit"
ABSENT = "192.0.2.99"   # TEST-NET-1: no interface of the guest has it (yet)
HELD = 3274             # a port another listener holds, as a leftover daemon would at boot


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    return r


def saved_config(tmp_path, block=None) -> dict:
    img = tmp_path / "f1.img"
    img.write_bytes(b"")
    os.truncate(img, 8 << 20)
    sos = [{"plugin": "ramdisk", "name": "r1", "size": 4 << 20, "attributes": {}},
           {"plugin": "fileio", "name": "f1", "dev": str(img), "size": 8 << 20,
            "write_back": False, "attributes": {}}]
    luns = [{"index": 0, "storage_object": "/backstores/ramdisk/r1"},
            {"index": 1, "storage_object": "/backstores/fileio/f1"}]
    if block:
        sos.append({"plugin": "block", "name": "b1", "dev": block, "readonly": False,
                    "write_back": False, "attributes": {}})
        luns.append({"index": 2, "storage_object": "/backstores/block/b1"})
    return {
        "fabric_modules": [],
        "storage_objects": sos,
        "targets": [
            {"wwn": T1, "fabric": "iscsi", "tpgs": [{
                "tag": 1, "enable": True, "attributes": {"authentication": 0},
                "luns": luns,
                "portals": [{"ip_address": "127.0.0.1", "port": 3271},
                            {"ip_address": ABSENT, "port": 3260},
                            {"ip_address": "127.0.0.1", "port": HELD}],
                "node_acls": [{"node_wwn": I1, "mapped_luns": [
                    {"index": n, "tpg_lun": n, "write_protect": n == 1} for n in range(len(luns))]}]}]},
            {"wwn": T2, "fabric": "iscsi", "tpgs": [{
                "tag": 1, "enable": True, "luns": [{"index": 0, "storage_object": "/backstores/ramdisk/r1"}],
                "portals": [{"ip_address": "127.0.0.1", "port": 3272}], "node_acls": []}]}]}


def _summary(cfg: dict) -> dict:
    """Objects and links, per target: what must be up after a boot restore."""
    out = {"storage_objects": sorted((s["plugin"], s["name"]) for s in cfg["storage_objects"])}
    for t in cfg["targets"]:
        for tpg in t["tpgs"]:
            out[(t["wwn"], tpg["tag"])] = (
                tpg["enable"],
                sorted((lun["index"], lun["storage_object"]) for lun in tpg["luns"]),
                sorted((p["ip_address"], p["port"]) for p in tpg["portals"]),
                sorted((a["node_wwn"], sorted((m["index"], m["tpg_lun"], m["write_protect"])
                                              for m in a["mapped_luns"])) for a in tpg["node_acls"]))
    return out


@pytest.fixture
def held_port():
    """Another listener on 127.0.0.1:HELD: the kernel cannot bind that portal."""
    s = socket.socket()
    s.bind(("127.0.0.1", HELD))
    s.listen()
    yield
    s.close()


def test_boot_restore_names_the_portal_it_cannot_make_and_restores_the_rest(lioctl, tmp_path, held_port):
    want = saved_config(tmp_path)
    f = tmp_path / "saveconfig.json"
    f.write_text(json.dumps(want))
    # interactive restore stays all-or-nothing
    r = lioctl("restore", f)
    assert r.returncode == 1 and f"127.0.0.1:{HELD}" in r.stderr, r
    assert cfs.snapshot() == []
    r = lioctl("restore", "--boot", f)
    assert r.returncode == 3, r
    assert r.stderr.splitlines() == [r.stderr.strip()], r.stderr           # one line
    assert r.stderr.startswith(f"lioctl: not restored: {T1} TPG 1 portal 127.0.0.1:{HELD}: ")
    assert r.stderr.split(": ")[-1].strip()          # and the kernel's reason
    assert "partly" in r.stdout and str(f) in r.stdout
    got = json.loads(ok(lioctl("save", "-")).stdout)
    want["targets"][0]["tpgs"][0]["portals"].pop()      # all of it but the one portal, and
    assert _summary(got) == _summary(want)              # the absent address is bound (IP_FREEBIND)
    # at the next boot: nothing else to do, still partial, the same one line
    r = lioctl("restore", "--boot", f, "--json")
    assert r.returncode == 3 and len(r.stderr.splitlines()) == 1, r
    out = json.loads(r.stdout)
    assert out["partial"] and len(out["failed"]) == 1 and out["skipped"] == [] and out["changes"] == []
    ok(lioctl("clear", "--yes"))


@pytest.fixture
def busy_loop(tmp_path):
    """A loop device someone else holds exclusively (as a mounted file system would)."""
    with initiator.loop_disk(tmp_path / "busy.img", 8 << 20) as loop:
        fd = os.open(loop, os.O_RDONLY | os.O_EXCL)
        try:
            yield loop
        finally:
            os.close(fd)


def test_boot_restore_skips_and_names_what_hangs_off_a_failed_object(lioctl, tmp_path, busy_loop):
    want = saved_config(tmp_path, block=busy_loop)
    want["targets"][0]["tpgs"][0]["portals"].pop()
    f = tmp_path / "saveconfig.json"
    f.write_text(json.dumps(want))
    r = lioctl("restore", "--boot", f)
    assert r.returncode == 3, r
    lines = r.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("lioctl: not restored: storage object block/b1: "), lines
    assert lines[1:] == [
        f"lioctl: skipped: {T1} TPG 1 LUN 2 (its storage object /backstores/block/b1 was not restored)",
        f"lioctl: skipped: {T1} TPG 1 ACL {I1} mapped LUN 2 (TPG LUN 2 was not restored)"]
    got = json.loads(ok(lioctl("save", "-")).stdout)
    want["storage_objects"].pop()
    tpg = want["targets"][0]["tpgs"][0]
    tpg["luns"].pop()
    tpg["node_acls"][0]["mapped_luns"].pop()
    assert _summary(got) == _summary(want)
    ok(lioctl("clear", "--yes"))


def test_boot_restore_names_a_missing_backing_file_and_device_and_restores_the_rest(lioctl, tmp_path):
    """Item 6: at boot a backing file on a disk that did not come up, or a device that is
    not there, costs that object and what needs it, nothing else; interactive restore refuses
    the whole file, naming the object, and changes nothing."""
    gone_dev = "/dev/lioctl-test-no-such-disk"
    want = saved_config(tmp_path, block=gone_dev)
    want["targets"][0]["tpgs"][0]["portals"].pop()       # no held port: two failures only
    gone_file = tmp_path / "gone" / "f1.img"
    want["storage_objects"][1]["dev"] = str(gone_file)
    f = tmp_path / "saveconfig.json"
    f.write_text(json.dumps(want))
    before = cfs.tree()
    r = lioctl("restore", f)
    assert r.returncode == 4, r  # not found
    (line,) = r.stderr.splitlines()
    assert line.endswith(f"storage_objects[1].dev: backing file {gone_file} of storage object "
                         "fileio/f1 does not exist"), line
    assert cfs.tree() == before
    r = lioctl("restore", "--boot", f)
    assert r.returncode == 3, r
    assert r.stderr.splitlines() == [
        f"lioctl: not restored: storage object fileio/f1: file {gone_file} does not exist",
        f"lioctl: not restored: storage object block/b1: block device {gone_dev} does not exist",
        f"lioctl: skipped: {T1} TPG 1 LUN 1 (its storage object /backstores/fileio/f1 was not restored)",
        f"lioctl: skipped: {T1} TPG 1 LUN 2 (its storage object /backstores/block/b1 was not restored)",
        f"lioctl: skipped: {T1} TPG 1 ACL {I1} mapped LUN 1 (TPG LUN 1 was not restored)",
        f"lioctl: skipped: {T1} TPG 1 ACL {I1} mapped LUN 2 (TPG LUN 2 was not restored)"], r.stderr
    assert "partly" in r.stdout and "2 object(s) not restored, 4 skipped" in r.stdout, r.stdout
    got = json.loads(ok(lioctl("save", "-")).stdout)
    del want["storage_objects"][1:]
    tpg = want["targets"][0]["tpgs"][0]
    del tpg["luns"][1:]
    del tpg["node_acls"][0]["mapped_luns"][1:]
    assert _summary(got) == _summary(want)
    ok(lioctl("clear", "--yes"))


def test_save_refuses_to_replace_a_configuration_with_an_empty_one(lioctl, tmp_path):
    f = tmp_path / "saveconfig.json"
    text = json.dumps(saved_config(tmp_path))
    f.write_text(text)
    r = lioctl("save", f)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "--force" in r.stderr, r
    assert f.read_text() == text and not (tmp_path / "backup").exists()
    ok(lioctl("save", tmp_path / "new.json"))         # nothing to lose: an empty file is fine
    r = ok(lioctl("save", "--force", f))
    assert f"saved to {f}" in r.stdout
    assert json.loads(f.read_text()) == {"fabric_modules": [], "storage_objects": [], "targets": []}


def test_save_refuses_when_configfs_is_not_mounted(lioctl, tmp_path):
    """A private mount namespace without configfs: what a boot job sees before it is mounted."""
    ok(lioctl("/backstores/ramdisk", "create", "keep", "1M"))
    f = tmp_path / "saveconfig.json"
    ok(lioctl("save", f))
    text = f.read_text()
    ok(lioctl("clear", "--yes"))
    for args in ([str(f)], [str(f), "--force"]):
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'umount /sys/kernel/config && exec "$@"', "sh",
                            *LIOCTL, "save", *args], capture_output=True, text=True)
        assert r.returncode == 7, r  # no kernel target
        assert len(r.stderr.splitlines()) == 1 and "cannot read the running configuration" in r.stderr, r
        assert f.read_text() == text


# --- Debian's targetcli restores what lioctl saved (issue #17 item 8)

def _poll(fn, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def devices(tmp_path):
    """A loop device (block) and a scsi_debug disk (pscsi), gone afterwards."""
    with initiator.loop_disk(tmp_path / "blk.img", 16 << 20) as loop:
        subprocess.run(["modprobe", "scsi_debug", "dev_size_mb=8"], check=True)
        try:
            yield loop, _poll(cfs.scsi_debug_disk, "the scsi_debug disk")
        finally:
            _poll(lambda: subprocess.run(["rmmod", "scsi_debug"]).returncode == 0, "rmmod scsi_debug")


def test_debian_targetcli_restores_every_backstore_kind_lioctl_saved(lioctl, tmp_path, dbus, devices):
    """Debian bookworm's targetcli (rtslib-fb 2.1.75) dropped the block backstore for the
    `exclusive` key, and its LUN and mapped LUN with it; it dropped user backstores of
    lioctl's handlers with ENOENT (see the test below). Every kind, both of lioctl's user
    subtypes, a LUN and a mapped LUN for each, compared object by object."""
    loop, sd = devices
    lines = [f"/backstores/fileio create f1 {tmp_path / 'f1.img'} 8M",
             f"/backstores/block create b1 {loop}",
             "/backstores/ramdisk create r1 4M",
             f"/backstores/pscsi create p1 {sd}",
             f"/backstores/user create u1 8M {tmp_path / 'u1.img'}",
             "/backstores/user create u2 4M scratch subtype=lioctl_ram",
             f"/iscsi create {T1}",
             f"/iscsi/{T1}/tpg1/portals create 127.0.0.1 3273",
             f"/iscsi/{T1}/tpg1/acls create {I1}"]
    sos = ("/backstores/fileio/f1", "/backstores/block/b1", "/backstores/ramdisk/r1",
           "/backstores/pscsi/p1", "/backstores/user/u1", "/backstores/user/u2")
    lines += [f"/iscsi/{T1}/tpg1/luns create {so}" for so in sos]
    try:
        r = lioctl(input="\n".join(lines) + "\n")
        assert r.returncode == 0, r.stderr
        ours = tmp_path / "ours.json"
        ok(lioctl("save", ours))
        saved = json.loads(ours.read_text())
        assert len(saved["targets"][0]["tpgs"][0]["node_acls"][0]["mapped_luns"]) == len(sos)
        assert {s["plugin"] for s in saved["storage_objects"]} == {"fileio", "block", "ramdisk", "pscsi", "user"}
        ok(lioctl("clear", "--yes"))
        r = subprocess.run(["targetcli", "restoreconfig", str(ours)], capture_output=True, text=True)
        assert r.returncode == 0 and "rror" not in r.stdout + r.stderr, r.stdout + r.stderr
        back = json.loads(ok(lioctl("save", "-")).stdout)
        mine = {(s["plugin"], s["name"]): s for s in saved["storage_objects"]}
        theirs = {(s["plugin"], s["name"]): s for s in back["storage_objects"]}
        assert sorted(theirs) == sorted(mine)
        for key, so in mine.items():
            assert theirs[key] == so, key
        (t_mine,), (t_theirs,) = saved["targets"], back["targets"]
        for key in ("wwn", "fabric", "attributes", "parameters"):
            assert t_theirs.get(key) == t_mine.get(key), key
        (g_mine,), (g_theirs,) = t_mine["tpgs"], t_theirs["tpgs"]
        for key in ("tag", "enable", "attributes", "parameters", "portals"):
            assert g_theirs[key] == g_mine[key], key
        strip = lambda luns: sorted((lun["index"], lun["storage_object"]) for lun in luns)  # noqa: E731
        assert strip(g_theirs["luns"]) == strip(g_mine["luns"])
        maps = lambda acl: sorted((m["index"], m["tpg_lun"], m["write_protect"]) for m in acl["mapped_luns"])  # noqa: E731
        (a_mine,), (a_theirs,) = g_mine["node_acls"], g_theirs["node_acls"]
        assert a_theirs["node_wwn"] == a_mine["node_wwn"] and maps(a_theirs) == maps(a_mine)
        assert a_theirs.get("attributes") == a_mine.get("attributes")
    finally:
        lioctl("clear", "--yes")
        lioctl("tcmu", "stop")


def test_debian_targetcli_fails_a_user_backstore_whose_enable_waits_for_tcmu_runner(lioctl, tmp_path, dbus):
    """Why lioctl's saved `control` carries nl_reply_supported=-1: targetcli asks tcmu-runner
    over D-Bus for its handlers (starting it) before it restores, rtslib enables the object
    before it writes the attributes, and with a tcmu-runner listening the kernel waits for
    its answer to the new device; tcmu-runner has no lioctl_file handler and answers ENOENT.
    The same object without the setting (what targetcli's own saveconfig writes) fails so."""
    try:
        ok(lioctl("/backstores/user", "create", "u1", "8M", tmp_path / "u1.img"))
        f = tmp_path / "ours.json"
        ok(lioctl("save", f))
        saved = json.loads(f.read_text())
        (so,) = saved["storage_objects"]
        assert "nl_reply_supported=-1" in so["control"].split(","), so["control"]
        ok(lioctl("clear", "--yes"))
        so["control"] = ",".join(c for c in so["control"].split(",") if not c.startswith("nl_reply"))
        stripped = tmp_path / "stripped.json"
        stripped.write_text(json.dumps(saved))
        r = subprocess.run(["targetcli", "restoreconfig", str(stripped)], capture_output=True, text=True)
        assert r.returncode != 0 and "Could not create StorageObject u1: [Errno 2]" in r.stdout + r.stderr, r
        assert subprocess.run(["pgrep", "-x", "tcmu-runner"], capture_output=True).returncode == 0
        assert cfs.snapshot() == []
        r = subprocess.run(["targetcli", "restoreconfig", str(f)], capture_output=True, text=True)
        assert r.returncode == 0 and "rror" not in r.stdout + r.stderr, r.stdout + r.stderr
        back = json.loads(ok(lioctl("save", "-")).stdout)
        assert back["storage_objects"] == json.loads(f.read_text())["storage_objects"]
    finally:
        lioctl("clear", "--yes")
        lioctl("tcmu", "stop")


@pytest.fixture
def distribution_file():
    """Debian's saved configuration, put back as it was afterwards (the guest's /etc is a
    throwaway overlay, but other tests of this run read it)."""
    path = "/etc/rtslib-fb-target/saveconfig.json"
    old = open(path, "rb").read() if os.path.exists(path) else None
    yield path
    if old is None:
        if os.path.exists(path):
            os.unlink(path)
    else:
        with open(path, "wb") as f:
            f.write(old)


def test_default_file_is_the_one_debians_targetcli_restores(lioctl, tmp_path, dbus, distribution_file):
    """Item 3: with no FILE, save and restore use the file Debian's rtslib-fb and targetcli
    use, and say so; targetcli's restoreconfig with no file reads what lioctl saved."""
    assert "LIOCTL_SAVECONFIG" not in os.environ
    try:
        ok(lioctl("/backstores/ramdisk", "create", "d1", "2M"))
        r = ok(lioctl("save", subprocess_=True))
        assert f"saved to {distribution_file}" in r.stdout, r.stdout
        ok(lioctl("clear", "--yes"))
        r = subprocess.run(["targetcli", "restoreconfig"], capture_output=True, text=True)
        assert r.returncode == 0 and f"restored from {distribution_file}" in r.stdout, r
        assert [s.name for s in cfs.ROOT.glob("core/rd_mcp_*/*") if s.is_dir()] == ["d1"]
        ok(lioctl("clear", "--yes"))
        r = ok(lioctl("restore", subprocess_=True))
        assert r.stdout.startswith(f"Restored {distribution_file}: "), r.stdout
        assert [s.name for s in cfs.ROOT.glob("core/rd_mcp_*/*") if s.is_dir()] == ["d1"]
    finally:
        lioctl("clear", "--yes")


def test_tcmu_handler_notifies_systemd_and_serves_with_only_the_units_capabilities(lioctl, tmp_path):
    """lioctl-tcmu.service: Type=notify and CapabilityBoundingSet=CAP_DAC_OVERRIDE
    CAP_DAC_READ_SEARCH CAP_NET_ADMIN. Run as the unit would (setpriv drops the rest of the
    bounding set at exec), the handler says READY=1 and serves a device made afterwards."""
    from lioctl.tcmu import daemon
    notify = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(notify))
        s.settimeout(60)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify), JOURNAL_STREAM="8:1")
        proc = subprocess.Popen(["setpriv", "--bounding-set=-all,+dac_override,+dac_read_search,+net_admin",
                                 *LIOCTL, "tcmu", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert s.recv(64) == b"READY=1"
            with open(f"/proc/{proc.pid}/status") as st:
                bnd = next(int(ln.split()[1], 16) for ln in st if ln.startswith("CapBnd:"))
            assert bnd == (1 << 1) | (1 << 2) | (1 << 12)      # DAC_OVERRIDE, DAC_READ_SEARCH, NET_ADMIN
            ok(lioctl("/backstores/user", "create", "cap1", "8M", tmp_path / "cap1.img"))
            st = daemon.query()
            assert st["pid"] == proc.pid and [d["name"] for d in st["devices"]] == ["cap1"], st
            assert st["failed"] == []
            ok(lioctl("/backstores/user", "delete", "cap1"))
        finally:
            lioctl("tcmu", "stop")
            err = proc.communicate(timeout=60)[1]
    assert err and not re.search(r"^\d{4}-\d\d-\d\d", err, re.M), err   # journald stamps time itself
