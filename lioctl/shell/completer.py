"""The prompt_toolkit adapter: the shell's Tab asks the candidate engine
(lioctl/completion/candidates.py) and gets prompt_toolkit Completions back."""

from __future__ import annotations

from prompt_toolkit.completion import Completer, Completion

from lioctl.completion.candidates import Candidates, tolerant_split


class ShellCompleter(Completer):
    def __init__(self, session):
        self.candidates = Candidates(session)

    def get_completions(self, document, complete_event):
        words, word = tolerant_split(document.text_before_cursor)
        seen = set()
        for cand, meta in self.candidates.candidates(words, word):
            if cand not in seen:
                seen.add(cand)
                yield Completion(cand, start_position=-len(word), display_meta=meta)
