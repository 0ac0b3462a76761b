"""targetcli's `saveconfig`, `restoreconfig` and `clearconfig`, as every targetcli user types
them, mapped onto lioctl's save, restore and clear verbs: one implementation of each, reached
from the shell, batch files and the command line, at any path."""

from __future__ import annotations

import copy

from lioctl.errors import UsageError
from lioctl.grammar import KEY_RE
from lioctl.units import parse_bool
from lioctl.verbs import run_verb, verb_parser

FORMS = {
    "saveconfig": ("save", "saveconfig [savefile]",
                   "Save the whole running configuration (lioctl save).",
                   ["saveconfig", "saveconfig /root/lio-backup.json"]),
    "restoreconfig": ("restore",
                      "restoreconfig [savefile] [clear_existing=false] [target=IQN] "
                      "[storage_object=NAME]",
                      "Apply a saved configuration, changing only what differs (lioctl restore); "
                      "clear_existing=true starts from empty.",
                      ["restoreconfig", "restoreconfig /root/lio-backup.json clear_existing=true"]),
    "clearconfig": ("clear", "clearconfig confirm=true",
                    "Remove every target and backstore (lioctl clear); confirm=true is required.",
                    ["clearconfig confirm=true"]),
}


def form_of(tokens: list[str]) -> list[str] | None:
    """The form's tokens when the line is one (`saveconfig ...` or `PATH saveconfig ...`: the
    path does not matter, as each form acts on the whole configuration), else None."""
    if tokens and tokens[0] in FORMS:
        return tokens
    if len(tokens) > 1 and tokens[0].startswith(("/", ".")) and tokens[1] in FORMS:
        return tokens[1:]
    return None


def help_text(form: str) -> str:
    _, use, doc, examples = FORMS[form]
    return f"{use}\n  {doc}\n  Examples:\n" + "".join(f"    {e}\n" for e in examples)


def _split(form: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    positional, keys = [], {}
    for a in args:
        m = KEY_RE.match(a)
        if m:
            if m.group(1) in keys:
                raise UsageError(f"{form}: parameter {m.group(1)!r} given twice")
            keys[m.group(1)] = m.group(2)
        elif keys:
            raise UsageError(f"{form}: positional argument {a!r} after KEY=VALUE ones")
        else:
            positional.append(a)
    return positional, keys


def _savefile(form: str, positional: list[str], keys: dict[str, str]) -> list[str]:
    if len(positional) > 1 or positional and "savefile" in keys:
        raise UsageError(f"{form}: one savefile at most; usage: {FORMS[form][1]}")
    file = keys.pop("savefile", None) or (positional[0] if positional else None)
    return [file] if file else []


def to_verb(tokens: list[str]) -> tuple[str, list[str], dict]:
    """(verb, its argv, global options to set) for one targetcli form."""
    form, args = tokens[0], tokens[1:]
    verb = FORMS[form][0]
    positional, keys = _split(form, args)
    if form == "saveconfig":
        argv = _savefile(form, positional, keys)
        if keys:
            raise UsageError(f"saveconfig: unknown parameter {next(iter(keys))!r}; "
                             f"usage: {FORMS[form][1]}")
        return verb, argv, {}
    if form == "clearconfig":
        if positional or set(keys) - {"confirm"}:
            raise UsageError(f"clearconfig: usage: {FORMS[form][1]}")
        if not parse_bool(keys.get("confirm", "false"), "confirm"):
            raise UsageError("clearconfig removes every target and backstore; "
                             "as a precaution, confirm=true needs to be set")
        return verb, [], {"yes": True}
    argv = _savefile(form, positional, keys)
    if parse_bool(keys.pop("clear_existing", "false"), "clear_existing"):
        argv.append("--clear")
    if keys:
        # target=, storage_object= (scoped restore): as restore's --option if it has one,
        # otherwise the KEY=VALUE token itself, so restore names what it does not take
        parser = verb_parser(verb)[1]
        options = parser._option_string_actions  # noqa: SLF001 - argparse has no public lookup
        passed = []
        for k, v in keys.items():
            opt = "--" + k.replace("_", "-")
            passed += [opt, v] if opt in options else [f"{k}={v}"]
        if not argv and parser.get_default("file"):
            argv.append(parser.get_default("file"))  # so the tokens are not taken for the file
        argv += passed
    return verb, argv, {}


def run(tokens: list[str], opts) -> int:
    tokens = form_of(tokens) or tokens
    if "--help" in tokens[1:] or "-h" in tokens[1:]:
        print(help_text(tokens[0]), end="")
        return 0
    verb, argv, overrides = to_verb(tokens)
    o = copy.copy(opts)  # the verb's arguments land in this namespace, not the session's
    for k, v in overrides.items():
        setattr(o, k, v)
    return run_verb(verb, argv, o)
