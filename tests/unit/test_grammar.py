"""Binding argv/shell tokens to node commands: nothing dropped, errors name the token."""

from __future__ import annotations

import pytest

from lioctl import cli
from lioctl.errors import LioError, UsageError
from lioctl.grammar import bind, split
from lioctl.units import human, parse_bool, parse_size
from lioctl.tree.nodes import Context, Node, Root, usage
from lioctl.tree.snapshot import Snapshot

PASSWORDS = ["p@ss%w'rd", "100%", "it's", "a@b", "=lead", "tab\there", "ünïcode", "x" * 255]


@pytest.mark.parametrize("pw", PASSWORDS)
def test_set_keeps_every_password_byte(pw):
    b = bind(Node.ui_set.__get__(object()), ["auth", f"password={pw}"], "set")
    assert b.args == ("auth",) and b.kwargs == {"password": pw}


@pytest.mark.parametrize("pw", PASSWORDS[:-1])
def test_shell_quoting_round_trips(pw):
    import shlex
    assert split(f"set auth password={shlex.quote(pw)}") == ["set", "auth", f"password={pw}"]


def test_empty_quoted_argument_is_kept():
    assert split("create x '' 1M") == ["create", "x", "", "1M"]


def create(name, size, nullio="false"):
    return name, size, nullio


def test_positional_after_keyword_is_an_error_naming_it():
    with pytest.raises(UsageError, match="positional argument '1M' after KEY=VALUE"):
        bind(create, ["r1", "nullio=true", "1M"], "create")


def test_unknown_keyword_lists_the_parameters():
    with pytest.raises(UsageError, match=r"unknown parameter 'colour' in 'colour=red' \(parameters: name, size, nullio\)"):
        bind(create, ["r1", "1M", "colour=red"], "create")


def test_keyword_may_fill_a_positional():
    b = bind(create, ["size=1M", "name=r1"], "create")
    assert create(*b.args, **b.kwargs) == ("r1", "1M", "false")


def test_tokens_that_only_look_like_keywords_stay_positional_for_paths():
    b = bind(create, ["/srv/a=b.img", "1M"], "create")
    assert b.args[0] == "/srv/a=b.img"


def test_usage_string_marks_optional_parameters():
    assert usage("create", create) == "create NAME SIZE [nullio=…]"


def test_dispatch_unknown_command_and_group_are_usage_errors():
    root = Root(Context(Snapshot(mounted=False)))
    with pytest.raises(UsageError, match="no command 'frobnicate'"):
        root.command("frobnicate")
    with pytest.raises(UsageError, match="no group 'attribute'"):
        root.ui_get("attribute")


def test_cli_exit_codes_and_one_line_errors(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["--bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lioctl: unknown command 'frobnicate' (see lioctl --help)",
                   "lioctl: unknown option '--bogus' (see lioctl --help)"]


@pytest.mark.parametrize("text,n", [("4096", 4096), ("1k", 1024), ("10G", 10 << 30), ("512M", 512 << 20),
                                    ("1.5T", 3 << 39), ("2GiB", 2 << 30), ("8 M", 8 << 20), (7, 7)])
def test_sizes(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["lots", "0", "-1", "1X", "", "1e3", "10GG"])
def test_bad_sizes(text):
    with pytest.raises(LioError):
        parse_size(text)


def test_human_sizes_and_booleans():
    assert [human(n) for n in (512, 1024, 1536, 10 << 30)] == ["512B", "1KiB", "1.5KiB", "10GiB"]
    assert parse_bool("Yes", "x") is True and parse_bool("off", "x") is False
    with pytest.raises(LioError, match="not a boolean"):
        parse_bool("'yes", "nullio")
