"""The one grammar (quoting, KEY=VALUE binding) and batch-mode line reporting."""

from __future__ import annotations

import io

import pytest

from lioctl.batch import run_batch
from lioctl.verbs import Options, split_globals
from lioctl.errors import UsageError
from lioctl.grammar import bind, split


def f(name, file_or_dev, size=None, write_back="true"):
    return name, file_or_dev, size, write_back


def g(group, **values):
    return group, values


@pytest.mark.parametrize("line,tokens", [
    ("create d1 '/srv/my disk.img' 10G", ["create", "d1", "/srv/my disk.img", "10G"]),
    ("""set auth password='p@ss%w'"'"'rd'""", ["set", "auth", "password=p@ss%w'rd"]),
    ('set auth "password=a b#c"', ["set", "auth", "password=a b#c"]),
    ("ls # a comment", ["ls"]),
])
def test_split_keeps_quoting_exactly(line, tokens):
    assert split(line) == tokens


def test_unterminated_quote_is_an_error_not_a_truncation():
    with pytest.raises(UsageError, match="No closing quotation"):
        split("set auth password='abc")


def test_bind_positional_and_keywords():
    b = bind(f, ["d1", "/x", "write_back=false", "size=1G"], "create")
    assert f(*b.args, **b.kwargs) == ("d1", "/x", "1G", "false")


def test_bind_value_with_equals_sign_is_kept_whole():
    b = bind(g, ["auth", "password=a=b=c"], "set")
    assert g(*b.args, **b.kwargs) == ("auth", {"password": "a=b=c"})


@pytest.mark.parametrize("tokens,text", [
    (["d1"], "missing a required argument"),
    (["d1", "/x", "colour=red"], "unknown parameter 'colour'"),
    (["d1", "/x", "1G", "true", "extra"], "too many positional"),
    (["d1", "/x", "size=1", "size=2"], "given twice"),
])
def test_bind_errors_name_the_token(tokens, text):
    with pytest.raises(UsageError, match=text):
        bind(f, tokens, "create")


def test_global_flags_anywhere_until_double_dash():
    opts, rest = split_globals(["/iscsi", "ls", "--json", "--", "--debug"])
    assert opts.json and not opts.debug and rest == ["/iscsi", "ls", "--debug"]


def test_batch_reports_the_failing_line_and_stops(capsys):
    script = io.StringIO("# comment\n/ version\n\n/nope ls\n/ version\n")
    rc = run_batch(Options(), script)
    out, err = capsys.readouterr()
    assert rc == 4  # the failed line's status: not found
    assert err.strip() == "lioctl: line 4: no such path: /nope ('nope' not found under /)"
    assert out.count("lioctl ") == 1  # the line after the failure did not run


def test_batch_keep_going_runs_every_line(capsys):
    opts = Options()
    opts.keep_going = True
    rc = run_batch(opts, io.StringIO("/nope\n/ version\n'unterminated\n/ version\n"))
    out, err = capsys.readouterr()
    assert rc != 0 and out.count("lioctl ") == 2
    assert "line 1:" in err and "line 3:" in err
