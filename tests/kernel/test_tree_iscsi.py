"""iSCSI through the tree commands with a real open-iscsi initiator: mutual CHAP per ACL,
demo mode, and `sessions` naming both kinds of initiator."""

from __future__ import annotations

import json

import cfs
import initiator

IQN = "iqn.2003-01.org.example:tree-chap"
TPG = f"/iscsi/{IQN}/tpg1"
ME = initiator.INITIATOR_IQN
PW = "p@ss%w'rd-12"
MUTUAL_PW = "m%u'tual@pw-34"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def test_mutual_chap_login_through_an_acl_and_sessions(lioctl):
    ok(lioctl("/backstores/ramdisk", "create", "r1", "4M"))
    ok(lioctl("/iscsi", "create", IQN))
    ok(lioctl(f"{TPG}/portals", "delete", "0.0.0.0", "3260"))
    ok(lioctl(f"{TPG}/portals", "create", "127.0.0.1", "3260"))
    ok(lioctl(f"{TPG}/acls", "create", ME))
    ok(lioctl(f"{TPG}/luns", "create", "/backstores/ramdisk/r1"))
    ok(lioctl(f"{TPG}/acls/{ME}", "set", "auth", "userid=alice", f"password={PW}",
              "userid_mutual=tgt", f"password_mutual={MUTUAL_PW}"))
    ok(lioctl(TPG, "set", "attribute", "authentication=1", "generate_node_acls=0"))
    auth = cfs.ROOT / "iscsi" / IQN / "tpgt_1" / "acls" / ME / "auth"
    assert (auth / "password").read_text().rstrip("\n") == PW
    assert (auth / "password_mutual").read_text().rstrip("\n") == MUTUAL_PW
    assert json.loads(ok(lioctl("sessions", "--json")).stdout)["sessions"] == []
    initiator.start()
    initiator.discover()
    try:
        initiator.set_chap(IQN, "alice", "wrong-secret-1")
        assert initiator.login(IQN, check=False).returncode != 0, "wrong CHAP secret accepted"
        initiator.set_chap(IQN, "alice", PW, ("tgt", MUTUAL_PW))
        initiator.login(IQN)
        initiator.disk_for(IQN)
        sessions = json.loads(ok(lioctl("sessions", "--json")).stdout)["sessions"]
        assert len(sessions) == 1, sessions
        s = sessions[0]
        assert (s["fabric"], s["target"], s["tpg"], s["initiator"], s["acl"], s["state"]) == \
            ("iscsi", IQN, 1, ME, "explicit", "logged_in")
        assert s["addresses"] == ["127.0.0.1"] and isinstance(s["sid"], int)
        text = ok(lioctl("sessions")).stdout
        assert f"{ME} -> {IQN} tpg1" in text and "from 127.0.0.1" in text
        detail = json.loads(ok(lioctl("/", "sessions", "detail", str(s["sid"]), "--json")).stdout)["sessions"]
        assert [d["initiator"] for d in detail] == [ME] and "LIO Session ID" in detail[0]["info"]
        # the session's ACL cannot silently vanish: the in-use LUN's backstore names its user
        r = lioctl("/backstores/ramdisk", "delete", "r1")
        assert r.returncode == 6 and f"used by LUN 0 of {IQN} tpg1" in r.stderr
    finally:
        initiator.logout(IQN)
    ok(lioctl("/iscsi", "delete", IQN))
    ok(lioctl("/backstores/ramdisk", "delete", "r1"))


def test_demo_mode_session_listed_as_generated(lioctl):
    iqn = "iqn.2003-01.org.example:tree-demo"
    tpg = f"/iscsi/{iqn}/tpg1"
    ok(lioctl("/backstores/ramdisk", "create", "r2", "4M"))
    ok(lioctl("/iscsi", "create", iqn))
    ok(lioctl(f"{tpg}/luns", "create", "/backstores/ramdisk/r2"))
    ok(lioctl(tpg, "set", "attribute", "authentication=0", "generate_node_acls=1",
              "cache_dynamic_acls=1", "demo_mode_write_protect=0"))
    initiator.start()
    initiator.discover()
    try:
        initiator.login(iqn)
        initiator.disk_for(iqn)
        sessions = json.loads(ok(lioctl("sessions", "--json")).stdout)["sessions"]
        assert [(s["target"], s["initiator"], s["acl"]) for s in sessions] == [(iqn, ME, "generated")]
    finally:
        initiator.logout(iqn)
    ok(lioctl("/iscsi", "delete", iqn))
    ok(lioctl("/backstores/ramdisk", "delete", "r2"))
