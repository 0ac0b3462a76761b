"""CHAP secrets on the host: dry-runs mask them unless --show-secrets; export and `set auth`
read them from a file (refused when others may read it), the environment, stdin or a prompt;
the argv forms warn; the shell never saves a line with a secret to its history file."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from lioctl import secrets
from lioctl.commands import export
from lioctl.errors import LioError, UsageError
from lioctl.plan import Plan
from lioctl.plan.script import render
from lioctl.tree.snapshot import Snapshot
from test_export_plan import args_for

ACL = "iqn.1994-05.com.example:c1"
SECRET, MUTUAL = "s3cret-Pass'1", "mutual$ecret2"


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "disk.img"
    p.write_bytes(b"\0" * 4096)
    return p


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("LIOCTL_CHAP", raising=False)
    monkeypatch.delenv("LIOCTL_MUTUAL_CHAP", raising=False)
    monkeypatch.setattr(sys, "argv", ["lioctl"])


def secret_file(tmp_path, name, text, mode=0o600):
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return p


def chap_writes(plan):
    return {op.path.rsplit("/", 1)[1]: op.value for op in plan
            if type(op).__name__ == "Write" and "/auth/" in op.path}


def test_export_dry_run_masks_secrets_unless_show_secrets(img, capsys):
    args = args_for(img, "--acl", ACL, "--chap", f"alice:{SECRET}", "--mutual-chap", f"tgt:{MUTUAL}")
    args.show_secrets = False
    assert export.run(args) == 0
    masked = capsys.readouterr().out
    assert SECRET not in masked and MUTUAL not in masked
    assert "LIOCTL_SECRET_1" in masked and "LIOCTL_SECRET_2" in masked and "alice" in masked
    args = args_for(img, "--acl", ACL, "--chap", f"alice:{SECRET}", "--mutual-chap", f"tgt:{MUTUAL}")
    args.show_secrets = True
    assert export.run(args) == 0
    shown = capsys.readouterr().out
    assert SECRET.replace("'", "'\"'\"'") in shown and MUTUAL in shown


def test_masked_script_still_writes_the_secret_from_the_environment(tmp_path):
    target = tmp_path / "password"
    target.write_text("old")
    plan = Plan()
    plan.write(str(target), SECRET, secret=True)
    plan.write(str(tmp_path / "userid"), "alice")
    text = render(plan)
    assert SECRET not in text and "alice" in text
    r = subprocess.run(["sh", "-c", text], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True)
    assert r.returncode != 0 and "LIOCTL_SECRET_1" in r.stderr and target.read_text() == "old"
    subprocess.run(["sh", "-c", text], env={"PATH": os.environ["PATH"], "LIOCTL_SECRET_1": SECRET}, check=True)
    assert target.read_text() == SECRET


def test_tree_set_auth_dry_run_masks_the_secret(tmp_path, monkeypatch, capsys):
    """`lioctl PATH set auth password=... --dry-run` through dispatch, on a plain directory
    standing in for the auth group (planning needs only its file names)."""
    from lioctl import cli, dispatch
    from lioctl.tree import nodes
    auth = tmp_path / "auth"
    auth.mkdir()
    for n in ("userid", "password", "userid_mutual", "password_mutual"):
        (auth / n).write_text("")

    class AuthNode(nodes.Node):
        def groups(self):
            return {"auth": str(auth)}

    monkeypatch.setattr(dispatch, "make_context", lambda opts: nodes.Context(
        Snapshot(), {}, show_secrets=bool(opts.show_secrets)))
    monkeypatch.setattr(dispatch, "_node", lambda ctx, path, cwd: AuthNode(ctx, None, "acl"))
    pw = secret_file(tmp_path, "pw", MUTUAL + "\n")
    argv = ["/acl", "set", "auth", "userid=alice", f"password={SECRET}", f"password_mutual_file={pw}", "--dry-run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and MUTUAL not in out and "alice" in out
    assert f"{auth}/password_mutual" in out  # the file's secret is written to password_mutual
    assert cli.main(argv + ["--show-secrets"]) == 0
    out = capsys.readouterr().out
    assert SECRET.replace("'", "'\"'\"'") in out and MUTUAL in out


def test_export_reads_credentials_from_files(img, tmp_path):
    chap = secret_file(tmp_path, "chap", f"alice:{SECRET}\n")
    mutual = secret_file(tmp_path, "mutual", f"tgt:{MUTUAL}\r\nignored second line\n")
    plan, info = export.build(args_for(img, "--acl", ACL, "--chap-file", chap, "--mutual-chap-file", mutual),
                              Snapshot())
    assert chap_writes(plan) == {"userid": "alice", "password": SECRET,
                                 "userid_mutual": "tgt", "password_mutual": MUTUAL}
    assert info["chap"] and info["mutual_chap"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_secret_file_readable_by_others_is_refused(img, tmp_path, mode):
    chap = secret_file(tmp_path, "chap", f"alice:{SECRET}\n", mode)
    with pytest.raises(LioError, match=f"mode {mode:04o}.*chmod 600"):
        export.build(args_for(img, "--acl", ACL, "--chap-file", chap), Snapshot())


@pytest.mark.parametrize("text,match", [("\n", "empty"), ("nocolon\n", "USER:SECRET"), (":pw\n", "USER:SECRET")])
def test_bad_secret_file_content(img, tmp_path, text, match):
    chap = secret_file(tmp_path, "chap", text)
    with pytest.raises(LioError, match=match):
        export.build(args_for(img, "--acl", ACL, "--chap-file", chap), Snapshot())


def test_export_reads_credentials_from_the_environment(img, monkeypatch):
    monkeypatch.setenv("LIOCTL_CHAP", f"alice:{SECRET}")
    monkeypatch.setenv("LIOCTL_MUTUAL_CHAP", f"tgt:{MUTUAL}")
    plan, _ = export.build(args_for(img, "--acl", ACL), Snapshot())
    assert chap_writes(plan)["password"] == SECRET and chap_writes(plan)["password_mutual"] == MUTUAL


def test_chap_and_chap_file_together_is_a_usage_error(img, tmp_path):
    chap = secret_file(tmp_path, "chap", f"alice:{SECRET}\n")
    with pytest.raises(UsageError, match="not both"):
        export.build(args_for(img, "--acl", ACL, "--chap", "a:b", "--chap-file", chap), Snapshot())


def test_chap_user_alone_prompts_once_on_a_terminal(img, monkeypatch):
    asked = []
    monkeypatch.setattr(sys, "stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or SECRET)
    args = args_for(img, "--acl", ACL, "--chap", "alice")
    export.build(args, Snapshot())
    plan, _ = export.build(args, Snapshot())  # run() builds again under the lock: no second question
    assert len(asked) == 1 and "alice" in asked[0]
    assert chap_writes(plan)["password"] == SECRET


def test_chap_user_alone_off_a_terminal_says_how_else(img, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(UsageError, match="--chap-file"):
        export.build(args_for(img, "--acl", ACL, "--chap", "alice"), Snapshot())


def test_argv_secret_warns_once_and_still_works(img, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lioctl", "export", str(img), "--acl", ACL, "--chap", f"alice:{SECRET}"])
    args = args_for(img, "--acl", ACL, "--chap", f"alice:{SECRET}")
    export.build(args, Snapshot())
    plan, _ = export.build(args, Snapshot())
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "visible to every local user" in err and SECRET not in err
    assert chap_writes(plan)["password"] == SECRET


def test_set_auth_values_from_stdin_file_and_prompt(tmp_path, monkeypatch, capsys):
    f = secret_file(tmp_path, "pw", MUTUAL + "\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET + "\n"))
    assert secrets.resolve_auth_values(["userid=alice", "password=-", f"password_mutual_file={f}"]) == \
        ["userid=alice", f"password={SECRET}", f"password_mutual={MUTUAL}"]
    with pytest.raises(UsageError, match="batch"):
        secrets.resolve_auth_values(["password=-"], stdin_is_batch=True)
    os.chmod(f, 0o644)
    with pytest.raises(LioError, match="group or others"):
        secrets.resolve_auth_values([f"password_file={f}"])
    monkeypatch.setattr(sys, "stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    monkeypatch.setattr("getpass.getpass", lambda prompt: SECRET)
    assert secrets.resolve_auth_values(["password_mutual=-"]) == [f"password_mutual={SECRET}"]
    monkeypatch.setattr(sys, "argv", ["lioctl", "/x", "set", "auth", f"password={SECRET}"])
    assert secrets.resolve_auth_values([f"password={SECRET}"]) == [f"password={SECRET}"]
    err = capsys.readouterr().err
    assert "visible to every local user" in err and SECRET not in err


@pytest.mark.parametrize("line,has", [
    (f"set auth userid=alice password={SECRET}", True),
    (f"/iscsi set discovery_auth \"password_mutual={SECRET}\"", True),
    (f"/iscsi set discovery_auth 'password_mutual={SECRET}'", True),  # unbalanced quote
    (f"export /x --acl {ACL} --chap alice:{SECRET}", True),
    (f"export /x --chap=alice:{SECRET}", True),
    ("set auth userid=alice password=-", False),
    ("set auth password_file=/root/pw", False),
    ("export /x --chap alice --chap-file /root/c", False),
    ("ls /iscsi", False),
])
def test_history_skips_lines_with_a_secret(tmp_path, line, has):
    assert secrets.line_has_secret(line) is has
    hist = secrets.secret_safe_history(str(tmp_path / "history"))
    hist.append_string(line)
    hist.append_string("ls")
    saved = (tmp_path / "history").read_text()
    assert (line in saved) is not has and "ls" in saved
    assert SECRET not in saved
