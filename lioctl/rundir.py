"""lioctl's private runtime directory (/run/lioctl): root-only and never a link, so that no
local user can pre-create, lock or redirect what root keeps there (the write lock, the TCMU
handler's lock, status socket and log). Standard library only: the TCMU handler uses it too."""

from __future__ import annotations

import os
import stat

RUN_DIR = os.environ.get("LIOCTL_RUN_DIR", "/run/lioctl")


class UnsafeRunDir(OSError):
    """The directory exists but someone else could write into it or it is not a directory."""


def private_dir(path: str = RUN_DIR) -> str:
    """Make `path` (mode 0700) if missing and return it; refuse a link, a non-directory, or a
    directory that another user owns or can write (a planted one)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeRunDir(f"{path} is not a directory (a link or a file planted there?); remove it")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UnsafeRunDir(f"{path} is owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o}; "
                           "it must be yours and writable by nobody else")
    return path


def open_private(name: str, flags: int = os.O_RDWR | os.O_CREAT, mode: int = 0o600,
                 directory: str = RUN_DIR) -> int:
    """Open `name` inside the private directory, refusing a symlink in its place."""
    return os.open(os.path.join(private_dir(directory), name),
                   flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
