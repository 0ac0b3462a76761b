"""The rest of the object kinds through `lioctl PATH COMMAND`: TPGs with TPG-level CHAP, ALUA
groups, ACL tags, mapped LUN removal, LUNs made from a file path, discovery auth, info shapes."""

from __future__ import annotations

import json

import cfs

IQN = "iqn.2003-01.org.example:objs"
INIT = "iqn.1994-05.com.example:objs-c1"
T = cfs.ROOT / "iscsi" / IQN


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def js(r):
    return json.loads(ok(r).stdout)


def test_second_tpg_with_tpg_chap_alua_tags_and_mapped_luns(lioctl, tmp_path):
    ok(lioctl("/iscsi", "create", IQN))
    ok(lioctl(f"/iscsi/{IQN}", "create", "2"))
    assert (T / "tpgt_2").is_dir() and (T / "tpgt_2/enable").read_text().strip() == "1"
    assert not list((T / "tpgt_2/np").iterdir()), "second TPG must not take port 3260 again"
    r = lioctl(f"/iscsi/{IQN}", "create", "2")
    assert r.returncode == 5 and "TPG 2 already exists" in r.stderr
    tpg2 = f"/iscsi/{IQN}/tpg2"
    pw = "tpg%p'w@d"
    ok(lioctl(tpg2, "set", "auth", "userid=tpguser", f"password={pw}"))
    assert (T / "tpgt_2/auth/password").read_text().rstrip("\n") == pw
    # a LUN made straight from a file path creates its fileio backstore
    img = tmp_path / "objs disk.img"
    img.write_bytes(b"\0" * (1 << 20))
    made = js(lioctl(f"{tpg2}/luns", "create", img, "--json"))
    assert made["schema"] == 1 and made["lun"] == 0
    assert {c["type"] for c in made["created"]} >= {"storage_object", "lun"}, made["created"]
    so = js(lioctl("/backstores/fileio/objs_disk.img", "info", "--json"))
    assert so["dev"] == str(img)
    ok(lioctl("/backstores/fileio/objs_disk.img/alua", "create", "ao", "7"))
    so_dir = next(cfs.ROOT.glob("core/fileio_*/objs_disk.img"))
    assert (so_dir / "alua/ao/tg_pt_gp_id").read_text().strip() == "7"
    ok(lioctl(f"{tpg2}/luns/lun0", "set_alua", "ao"))
    assert js(lioctl(f"{tpg2}/luns/lun0", "info", "--json"))["alua_tg_pt_gp"] == "ao"
    r = lioctl("/backstores/fileio/objs_disk.img/alua", "create", "ao", "8")
    assert r.returncode == 5 and "already exists" in r.stderr
    ok(lioctl(f"{tpg2}/acls", "create", INIT, "tag=web"))
    acl = js(lioctl(f"{tpg2}/acls/{INIT}", "info", "--json"))
    assert acl["tag"] == "web"
    assert acl["mapped_luns"] == [{"index": 0, "tpg_lun": 0, "write_protect": False}]
    ok(lioctl(f"{tpg2}/acls/{INIT}", "delete", "0"))
    assert not list((T / "tpgt_2/acls" / INIT).glob("lun_*"))
    ok(lioctl(f"{tpg2}/acls/{INIT}", "create", "3", "lun0", "write_protect=yes"))
    assert (T / "tpgt_2/acls" / INIT / "lun_3/write_protect").read_text().strip() == "1"
    ls = js(lioctl(f"/iscsi/{IQN}", "ls", "--json"))
    assert [c["name"] for c in ls["children"]] == ["tpg1", "tpg2"]
    st = js(lioctl(tpg2, "status", "--json"))
    assert st["ok"] is True and st["path"] == tpg2
    ok(lioctl(f"/iscsi/{IQN}", "delete", "tpg2"))
    assert not (T / "tpgt_2").exists() and (T / "tpgt_1").is_dir()
    ok(lioctl("/backstores/fileio/objs_disk.img/alua", "delete", "ao"))
    ok(lioctl("/iscsi", "delete", IQN))
    ok(lioctl("/backstores/fileio", "delete", "objs_disk.img"))
    assert img.exists(), "deleting a backstore must never remove an admin's file"


def test_discovery_auth_set_get_and_reset(lioctl):
    ok(lioctl("/iscsi", "create", IQN))
    pw = "d%i's@c"
    ok(lioctl("/iscsi", "set", "discovery_auth", "enforce_discovery_auth=true", "userid=disc",
              f"password={pw}"))
    da = cfs.ROOT / "iscsi/discovery_auth"
    assert (da / "password").read_text().rstrip("\n") == pw
    got = js(lioctl("/iscsi", "get", "discovery_auth", "--json"))["discovery_auth"]
    assert got["enforce_discovery_auth"] == "1" and got["password"] == "********"
    assert js(lioctl("/iscsi", "info", "--json"))["known"] is True
    # an empty value unsets a CHAP name or secret (the kernel's NULL, as targetcli writes it)
    ok(lioctl("/iscsi", "set", "discovery_auth", "enforce_discovery_auth=0", "userid=", "password="))
    assert (da / "userid").read_text().strip() == (da / "password").read_text().strip() == "NULL"
    got = js(lioctl("/iscsi", "get", "discovery_auth", "--json"))["discovery_auth"]
    assert got["enforce_discovery_auth"] == "0"
    ok(lioctl("/iscsi", "delete", IQN))


def test_help_lists_commands_and_usage(lioctl):
    h = js(lioctl("/backstores/fileio", "help", "--json"))
    assert {"create", "delete", "ls", "get", "set", "info"} <= set(h["commands"])
    u = js(lioctl("/backstores/ramdisk", "help", "delete", "--json"))
    assert u["usage"] == "delete NAME [save=…]"   # targetcli's save= (drop it from the saved file)
    v = js(lioctl("version", "--json"))
    assert v["kernel_target"] != "not loaded"
