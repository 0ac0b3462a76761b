"""`lioctl --help` and `lioctl help [VERB | FORM | PATH [COMMAND]]`, for argv and the shell."""

from __future__ import annotations

from lioctl.dispatch import run_tokens
from lioctl.errors import UsageError
from lioctl.shell import targetcli_forms
from lioctl.verbs import TARGETCLI_FORMS, VERBS, print_help, run_verb, verb_parser


def _json_help(word: str | None) -> int:
    """--json help of lioctl itself, a verb or a targetcli form: its text in a help document."""
    import io

    from lioctl import render
    if word is None:
        buf = io.StringIO()
        print_help(buf)
        text = buf.getvalue()
    elif word in VERBS:
        text = verb_parser(word)[1].format_help()
    else:
        text = targetcli_forms.help_text(word)
    render.print_json({"command": word, "help": text}, "help")
    return 0


def run_help(words: list[str], opts) -> int:
    """`lioctl help [VERB | saveconfig... | [PATH] [COMMAND]]`."""
    if getattr(opts, "json", False) and (len(words) < 2 and (not words or words[0] in VERBS
                                                             or words[0] in TARGETCLI_FORMS)):
        return _json_help(words[0] if words else None)
    if not words:
        print_help()
        return 0
    if len(words) == 1 and words[0] in VERBS:
        return run_verb(words[0], ["--help"], opts)
    if len(words) == 1 and words[0] in TARGETCLI_FORMS:
        print(targetcli_forms.help_text(words[0]), end="")
        return 0
    if len(words) > 2 or len(words) == 2 and not words[0].startswith(("/", ".")):
        raise UsageError("help takes VERB, or PATH [COMMAND], or a command of / "
                         "(e.g. lioctl help export, lioctl help /backstores/fileio create)")
    if words[0].startswith(("/", ".")):
        return run_tokens([words[0], "help", *words[1:]], opts)
    return run_tokens(["/", "help", words[0]], opts)
