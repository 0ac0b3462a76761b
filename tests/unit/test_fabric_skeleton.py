"""`lioctl fabric-skeleton`: input checks, the API pick, rendering, and a real compile of every
protocol's module against the headers of the kernel the test guest boots."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lioctl.commands import fabric_skeleton as fs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "kernel"))
import fabric_modules  # noqa: E402

KVER = fabric_modules.guest_kernel_release()
HEADERS = Path(f"/lib/modules/{KVER}/build")
needs_headers = pytest.mark.skipif(not HEADERS.is_dir(),
                                   reason=f"no headers for {KVER} (tests/setup.sh installs them)")
LIOCTL = str(Path(sys.executable).with_name("lioctl"))


def lioctl(*args, cwd=None):
    return subprocess.run([LIOCTL, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, NO_COLOR="1"))


def one_line_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@needs_headers
def test_every_protocol_renders_and_compiles_without_warnings():
    built = fabric_modules.build_all(KVER)
    assert sorted(built) == sorted(fabric_modules.PROTOCOLS)
    for proto, ko in built.items():
        info = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True, text=True)
        assert info.stdout.split()[0] == KVER, (proto, info.stdout)
        src = (ko.parent / f"{ko.stem}_configfs.c").read_text()
        assert f"SCSI_PROTOCOL_{proto.upper()}" in (ko.parent / f"{ko.stem}.h").read_text()
        assert "core_tpg_register(wwn, &tpg->se_tpg" in src


@needs_headers
def test_generated_directory(tmp_path):
    r = lioctl("--json", "fabric-skeleton", "tcm_fsk_demo", "--proto", "fcp", "-k", KVER,
               "-o", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["proto"] == "FCP" and facts["api"] == "6.1" and facts["written"] is True
    d = tmp_path / "d"
    assert sorted(os.listdir(d)) == sorted(facts["files"]) == sorted(
        ["Kbuild", "Kconfig", "Makefile", "README", "tcm_fsk_demo.h", "tcm_fsk_demo_configfs.c",
         "tcm_fsk_demo_fabric.c", "tcm_fsk_demo_wwn.c"])
    text = {p.name: p.read_text() for p in d.iterdir()}
    assert not [n for n, t in text.items() if re.search(r"@[A-Z_0-9]+@", t)]
    assert f"KVER ?= {KVER}" in text["Makefile"]
    assert "M=$(CURDIR) CONFIG_TCM_FSK_DEMO=m modules" in text["Makefile"]
    assert "obj-$(CONFIG_TCM_FSK_DEMO)\t+= tcm_fsk_demo.o" in text["Kbuild"]
    assert "config TCM_FSK_DEMO" in text["Kconfig"]
    # the README explains every callback the ops table sets
    ops = re.search(r"_ops = \{(.*?)\n\};", text["tcm_fsk_demo_configfs.c"], re.S).group(1)
    members = re.findall(r"\.(\w+)\s*=", ops)
    assert len(members) > 20
    skip = {"module", "fabric_name", "node_acl_size", "tfc_wwn_attrs"}
    for m in set(members) - skip:
        short = m.removeprefix("fabric_")
        assert short in text["README"] or m in text["README"], m
    # the header scan agrees with the members the templates set
    header = fs.fabric_header(str(HEADERS))
    assert set(members) <= set(fs.fabric_ops_members(Path(header).read_text()))


@needs_headers
@pytest.mark.parametrize("name, words", [
    ("1abc", ["not a C identifier"]),
    ("tcm-x", ["not a C identifier"]),
    ("a" * 32, ["longer than 31"]),
    ("iscsi", ["existing configfs fabric"]),
    ("core", ["existing configfs fabric"]),
    ("tcm_loop", ["collides with the module", "tcm_loop.ko"]),
    ("xen_scsiback", ["collides with the module", "xen-scsiback.ko"]),
])
def test_bad_names_refused(tmp_path, name, words):
    r = lioctl("fabric-skeleton", name, "--proto", "iSCSI", "-k", KVER, "-o", tmp_path / "d")
    one_line_error(r, 2, repr(name), *words)
    assert not (tmp_path / "d").exists()


def test_unknown_protocol_and_missing_headers(tmp_path):
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "FICON", "-o", tmp_path / "d")
    one_line_error(r, 2, "unknown protocol 'FICON'", "iSCSI, FCP, SAS, SRP, SBP")
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "SAS", "-k", "0.0.0-none", "-o", tmp_path / "d")
    one_line_error(r, 1, "Linux 0.0.0-none", "install the package linux-headers-0.0.0-none")
    r = lioctl("fabric-skeleton", "tcm_x", "-o", tmp_path / "d")
    assert r.returncode == 2 and "--proto" in r.stderr
    assert not (tmp_path / "d").exists()


@needs_headers
def test_existing_directory_needs_force_and_dry_run_writes_nothing(tmp_path):
    d = tmp_path / "tcm_x"
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "SBP", "-k", KVER, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "would write ./tcm_x" in r.stdout and not d.exists()
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "SBP", "-k", KVER, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (d / "tcm_x_wwn.c").write_text("edited")
    (d / "notes.txt").write_text("mine")
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "SBP", "-k", KVER, cwd=tmp_path)
    one_line_error(r, 5, "already exists", "--force")
    assert (d / "tcm_x_wwn.c").read_text() == "edited"
    r = lioctl("fabric-skeleton", "tcm_x", "--proto", "SBP", "-k", KVER, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "EUI-64" in (d / "tcm_x_wwn.c").read_text() and (d / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.rglob(".fabric-skeleton-*")]


def test_api_pick_reads_the_struct(tmp_path):
    members = fs.known_apis()["6.1"]["members"]
    body = "".join(f"\tvoid (*{m})(void);\n" for m in members)
    header = tmp_path / "target_core_fabric.h"
    header.write_text(f"/* x */\nstruct target_core_fabric_ops {{\n{body}}};\n")
    assert fs.pick_api(str(header), "6.1.0-test") == "6.1"
    # a later kernel that dropped a callback and added another is refused, naming both
    changed = body.replace("\tvoid (*sess_get_index)(void);\n", "") + "\tint direct_submit_supp;\n"
    header.write_text(f"struct target_core_fabric_ops {{\n{changed}}};\n")
    with pytest.raises(fs.LioError, match=r"Linux 6\.9-test: target_core_fabric_ops lacks "
                                          r"sess_get_index; adds direct_submit_supp"):
        fs.pick_api(str(header), "6.9-test")


def test_struct_member_parser_handles_comments_arrays_and_pointers():
    text = """struct target_core_fabric_ops {
	struct module *module;
	/* a comment; with a semicolon */
	const char *fabric_name;
	char name[32];
	u32 (*sess_get_initiator_sid)(struct se_session *,
				      unsigned char *, u32);
	struct configfs_attribute **tfc_wwn_attrs;
	bool write_pending_must_be_called;
};"""
    assert fs.fabric_ops_members(text) == ["module", "fabric_name", "name",
                                           "sess_get_initiator_sid", "tfc_wwn_attrs",
                                           "write_pending_must_be_called"]


def test_render_refuses_unknown_placeholders():
    with pytest.raises(fs.LioError, match="unknown placeholder @NOPE@"):
        fs.render("a @NAME@ b @NOPE@", {"NAME": "x"}, "t.in")


def test_fuzz_names_are_refused_in_one_line_or_render_cleanly(capsys):
    """Seeded and bounded: any text is either refused naming it, or a C identifier whose
    rendered sources hold no placeholder and no other symbol prefix."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    from lioctl.errors import UsageError
    seen = {"refused": 0, "rendered": 0}
    ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,34}", fullmatch=True)

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(ident, st.text(max_size=40)), st.sampled_from(sorted(fs.PROTOCOLS)))
    def check(name, proto):
        try:
            fs.check_name(name, KVER)
        except UsageError as e:
            seen["refused"] += 1
            assert "\n" not in str(e) and repr(name) in str(e)
            return
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,30}", name)
        files = fs.render_files(name, fs.PROTOCOLS[proto], KVER, "6.1")
        seen["rendered"] += 1
        for fname, text in files.items():
            assert not re.search(r"@[A-Z_0-9]+@", text), fname
            if fname.endswith(".c"):
                defs = re.findall(r"^(?:static )?[a-z].*?\b(\w+)\(", text, re.M)
                assert all(d.startswith(name + "_") for d in defs if not d.startswith(
                    ("module_", "MODULE_", "CONFIGFS_ATTR"))), (fname, defs)

    check()
    with capsys.disabled():
        print(f"\nfabric-skeleton name fuzz: {seen['refused']} refused, {seen['rendered']} rendered")
    assert seen["refused"] and seen["rendered"]
