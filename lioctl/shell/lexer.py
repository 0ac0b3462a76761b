"""Syntax highlighting of the command line: path, command, KEY=VALUE, quoted strings."""

from __future__ import annotations

import re

from prompt_toolkit.lexers import Lexer

TOKEN = re.compile(r"""('[^']*'?|"[^"]*"?|\S+)""")


class CommandLexer(Lexer):
    def lex_document(self, document):
        lines = document.lines

        def get_line(i):
            out = []
            pos = 0
            words = 0
            line = lines[i]
            for m in TOKEN.finditer(line):
                out.append(("", line[pos:m.start()]))
                tok = m.group(0)
                if tok.startswith(("'", '"')):
                    style = "class:string"
                elif "=" in tok and not tok.startswith("/"):
                    k, _, v = tok.partition("=")
                    out += [("class:key", k), ("", "="), ("class:value", v)]
                    pos = m.end()
                    words += 1
                    continue
                elif words == 0 and tok.startswith(("/", ".")):
                    style = "class:path"
                elif words == 0 or words == 1 and out and any(s == "class:path" for s, _ in out):
                    style = "class:command"
                else:
                    style = ""
                out.append((style, tok))
                pos = m.end()
                words += 1
            out.append(("", line[pos:]))
            return out
        return get_line
