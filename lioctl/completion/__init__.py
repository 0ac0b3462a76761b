"""Tab completion: candidates.py (what may come next on a tree command line, shared by
everything that completes) and scripts.py (the bash/zsh/fish scripts' side: `lioctl
__complete`); the interactive shell's prompt_toolkit adapter is lioctl/shell/completer.py."""
