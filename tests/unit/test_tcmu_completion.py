"""Which targets export a TCMU device, from its ALUA groups' `members` text (the kernel's
core_alua_show_tg_pt_gp_members: "fabric/wwn/tpgt_N/lun_name" per LUN)."""

from lioctl.tcmu.completion import exporters


def test_every_target_named_once_whatever_its_fabric_spelling():
    text = ("loopback/naa.5001405abcdef012/tpgt_1/lun_0\n"
            "iSCSI/iqn.2003-01.org.linux-iscsi.host:sn.1234/tpgt_1/lun_3\n"
            "iSCSI/iqn.2003-01.org.linux-iscsi.host:sn.1234/tpgt_2/lun_0\n"
            "qla2xxx/21:00:00:24:ff:31:4c:48/tpgt_1/lun_7\n")
    assert exporters(text) == {"naa.5001405abcdef012", "iqn.2003-01.org.linux-iscsi.host:sn.1234",
                               "21:00:00:24:ff:31:4c:48"}


def test_no_members_and_odd_lines_name_nothing():
    assert exporters("") == set()
    assert exporters("\n\n") == set()
    # not the kernel's shape: ignored rather than guessed at
    assert exporters("loopback/naa.1/lun_0\nnaa.1/tpgt_1/lun_0\n/naa.1/tpgt_1/lun_0\nx/y/z/w/v\n") == set()


def test_fuzzed_members_text_names_only_wwns_that_are_in_it():
    """Seeded, bounded: whatever the text, exporters() returns without error and every WWN
    it names is a slash-free piece of one of the text's lines (it never globs a path out of
    thin air)."""
    import random
    rng = random.Random(20261206)
    alphabet = "ab/_:.-tpgt_lun0123\n\t *?[]\\"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        if rng.random() < 0.3:
            text += "\nfab/" + "".join(rng.choice("naa.5:x*?[") for _ in range(8)) + "/tpgt_1/lun_0"
        for wwn in exporters(text):
            assert wwn and "/" not in wwn
            assert any(f"/{wwn}/tpgt_" in line.strip() for line in text.splitlines())


def test_a_target_shared_by_devices_is_read_once_a_pass(monkeypatch):
    """The daemon's pass over every device hands one `known` dict along: two devices behind one
    target look the target up once; a new pass (a fresh dict) reads it again."""
    from lioctl import configfs
    from lioctl.tcmu import completion
    members = {"/core/user_1/a": "loopback/naa.5001405000000001/tpgt_1/lun_0\n",
               "/core/user_1/b": "loopback/naa.5001405000000001/tpgt_1/lun_1\n"
                                 "iSCSI/iqn.2003-01.x:t/tpgt_1/lun_0\n"}
    lookups = []
    monkeypatch.setattr(completion.glob, "glob", lambda pattern: [pattern.split("/alua/")[0] + "/m"]
                        if "/alua/" in pattern else [])
    monkeypatch.setattr(configfs, "read", lambda path, default=None: members[path[:-2]])

    def target(wwn, root=configfs.ROOT):
        lookups.append(wwn)
        return {"naa.5001405000000001": [-2], "iqn.2003-01.x:t": [-1]}[wwn]
    monkeypatch.setattr(completion, "target_affinities", target)
    known: dict[str, list[int]] = {}
    assert completion.on_doorbell_cpu("/core/user_1/a", known=known)
    assert sorted(completion.affinities("/core/user_1/b", known=known)) == [-2, -1]
    assert lookups == ["naa.5001405000000001", "iqn.2003-01.x:t"]
    completion.affinities("/core/user_1/b", known={})
    assert lookups[2:] == ["iqn.2003-01.x:t", "naa.5001405000000001"]
