"""targetcli's saveconfig / restoreconfig / clearconfig mapped onto save / restore / clear
(#17 item 4): the mapping is pure; the kernel test drives it for real in the shell."""

from __future__ import annotations

import pytest

from lioctl import prefs
from lioctl.errors import LioError, UsageError
from lioctl.shell.targetcli_forms import form_of, help_text, to_verb
from lioctl.verbs import verb_parser


def test_saveconfig_maps_to_save():
    assert to_verb(["saveconfig"]) == ("save", [], {})
    assert to_verb(["saveconfig", "/tmp/x.json"]) == ("save", ["/tmp/x.json"], {})
    assert to_verb(["saveconfig", "savefile=/tmp/x.json"]) == ("save", ["/tmp/x.json"], {})


def test_restoreconfig_maps_to_restore():
    assert to_verb(["restoreconfig"]) == ("restore", [], {})
    assert to_verb(["restoreconfig", "/tmp/x.json"]) == ("restore", ["/tmp/x.json"], {})
    assert to_verb(["restoreconfig", "/tmp/x.json", "clear_existing=true"]) == \
        ("restore", ["/tmp/x.json", "--clear"], {})
    assert to_verb(["restoreconfig", "clear_existing=false"]) == ("restore", [], {})


def test_restoreconfig_scoping_reaches_restore_either_way():
    """target=/storage_object= go to restore as its --target option when it has one, else as
    the token itself (never taken for the file: the default file is put first)."""
    verb, argv, _ = to_verb(["restoreconfig", "target=iqn.2003-01.org.example:t1"])
    has_option = "--target" in verb_parser("restore")[1]._option_string_actions
    tail = ["--target", "iqn.2003-01.org.example:t1"] if has_option else ["target=iqn.2003-01.org.example:t1"]
    assert verb == "restore" and argv[1:] == tail
    assert argv[0] == verb_parser("restore")[1].get_default("file")
    _, argv, _ = to_verb(["restoreconfig", "/tmp/x.json", "storage_object=disk1"])
    assert argv[0] == "/tmp/x.json" and len(argv) in (2, 3)


def test_clearconfig_needs_confirm_as_in_targetcli():
    assert to_verb(["clearconfig", "confirm=true"]) == ("clear", [], {"yes": True})
    with pytest.raises(UsageError, match="confirm=true"):
        to_verb(["clearconfig"])
    with pytest.raises(UsageError, match="confirm=true"):
        to_verb(["clearconfig", "confirm=false"])
    with pytest.raises(LioError, match="not a boolean"):
        to_verb(["clearconfig", "confirm=maybe"])


@pytest.mark.parametrize("tokens", [["saveconfig", "a", "b"], ["saveconfig", "bogus=1"],
                                    ["restoreconfig", "a", "savefile=b"], ["clearconfig", "x"],
                                    ["saveconfig", "savefile=a", "savefile=b"]])
def test_malformed_forms_are_usage_errors(tokens):
    with pytest.raises(UsageError) as e:
        to_verb(tokens)
    assert "\n" not in str(e.value)


def test_forms_at_any_path():
    assert form_of(["/iscsi", "saveconfig", "f"]) == ["saveconfig", "f"]
    assert form_of(["saveconfig"]) == ["saveconfig"]
    assert form_of(["/iscsi", "create"]) is None
    assert form_of(["ls"]) is None


def test_each_form_has_help_with_an_example():
    for form in ("saveconfig", "restoreconfig", "clearconfig"):
        assert f"Examples:\n    {form}" in help_text(form)


def test_auto_save_on_exit_is_a_preference_on_by_default():
    assert prefs.DEFAULTS["auto_save_on_exit"] is True


def test_forms_reach_the_command_line_and_batch_files():
    import os
    import subprocess
    import sys
    env = dict(os.environ, NO_COLOR="1")
    r = subprocess.run([sys.executable, "-m", "lioctl", "clearconfig"], capture_output=True,
                       text=True, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "confirm=true" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "lioctl"], input="/iscsi clearconfig\n",
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "line 1:" in r.stderr and "confirm=true" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "lioctl", "saveconfig", "--help"],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "saveconfig [savefile]" in r.stdout, r.stderr


def test_forms_complete_on_the_command_line(tmp_path):
    import os
    import subprocess
    import sys

    def complete(line):
        return subprocess.run([sys.executable, "-m", "lioctl", "__complete", "bash", line],
                              capture_output=True, text=True, check=True, cwd=tmp_path,
                              env=dict(os.environ, HOME=str(tmp_path))).stdout.split()
    assert complete("lioctl savec") == ["saveconfig"]
    assert complete("lioctl clearconfig ") == ["confirm="]
    assert complete("lioctl /iscsi clearconfig confirm=t") == ["confirm=true"]
    assert "clear_existing=" in complete("lioctl restoreconfig ")
    assert "__files__" in complete("lioctl restoreconfig /tm")


def test_set_global_on_the_command_line_and_in_batches_is_kept(tmp_path):
    """targetcli's `set global auto_save_on_exit=false` works outside the shell too, and the
    value is kept in ~/.lioctl/prefs.json for the next shell."""
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, HOME=str(tmp_path), NO_COLOR="1")

    def lioctl(*args, input=None):
        return subprocess.run([sys.executable, "-m", "lioctl", *args], capture_output=True,
                              text=True, env=env, input=input)
    r = lioctl("set", "global", "auto_save_on_exit=false")
    assert r.returncode == 0 and "auto_save_on_exit" in r.stdout, r.stderr
    stored = json.loads((tmp_path / ".lioctl/prefs.json").read_text())
    assert stored["auto_save_on_exit"] is False
    r = lioctl("/iscsi", "get", "global", "auto_save_on_exit", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["prefs"] == {"auto_save_on_exit": False}, r.stderr
    r = lioctl(input="set global auto_save_on_exit=true\n")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / ".lioctl/prefs.json").read_text())["auto_save_on_exit"] is True
    r = lioctl("set", "global", "auto_save_on_exit=perhaps")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not a boolean" in r.stderr
    complete = lioctl("__complete", "bash", "lioctl set global auto_save_on_exit=f").stdout.split()
    assert complete == ["auto_save_on_exit=false"]
