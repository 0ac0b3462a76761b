"""User backstore configuration rules, checked before anything is created.

dev_config is written as '<subtype>/<config>'. lioctl's own subtypes have names of their
own so that tcmu-runner (qcow, rbd, glfs, fbo, zbc, file, file_optical, file_zbc) never
claims them and lioctl never touches its devices.

lioctl_file's config is `[OPTION;...]PATH` with an absolute PATH; the one option is `direct`
(O_DIRECT). lioctl_ram's config is any label.
"""

from __future__ import annotations

import os
import stat

from lioctl import blockdev
from lioctl.errors import LioError

DEFAULT_SUBTYPE = "lioctl_file"
SUBTYPES = ("lioctl_file", "lioctl_ram")
TCMU_RUNNER_SUBTYPES = ("qcow", "rbd", "glfs", "fbo", "zbc", "file", "file_optical", "file_zbc")
MAX_CONFIG = 255
DEFAULT_HW_MAX_SECTORS = 2048     # 1 MiB commands with 512-byte blocks
FILE_OPTIONS = ("direct",)


def split_options(config: str) -> tuple[set[str], str]:
    """('direct;/srv/d.img') -> ({'direct'}, '/srv/d.img'): options end at the path's first '/'."""
    slash = config.find("/")
    head, tail = (config, "") if slash < 0 else (config[:slash], config[slash:])
    if ";" not in head:
        return set(), config
    opts, _, rest = head.rpartition(";")
    return {o for o in opts.split(";") if o}, rest + tail


def parse_uio_name(name: str) -> tuple[str, str, str, str] | None:
    """'tcm-user/3/d1/lioctl_file//srv/x' -> ('user_3', 'd1', 'lioctl_file', '/srv/x')."""
    parts = name.strip().split("/", 4)
    if len(parts) < 4 or parts[0] != "tcm-user":
        return None
    hba, dev, subtype = parts[1], parts[2], parts[3]
    return f"user_{hba}", dev, subtype, parts[4] if len(parts) > 4 else ""


def key_of(uio_name: str) -> str | None:
    """'user_N/NAME' of a TCMU device of lioctl's subtypes; None for anyone else's."""
    p = parse_uio_name(uio_name)
    return f"{p[0]}/{p[1]}" if p and p[2] in SUBTYPES else None


def validate(subtype: str, config: str, size: int, existing: list[str]) -> None:
    """One-line errors for what the kernel or a handler would only refuse later (or never)."""
    if subtype not in SUBTYPES + TCMU_RUNNER_SUBTYPES:
        raise LioError(f"unknown user backstore subtype {subtype!r} "
                       f"(lioctl's: {', '.join(SUBTYPES)}; tcmu-runner's: {', '.join(TCMU_RUNNER_SUBTYPES)})")
    full = f"{subtype}/{config}"
    if ":" in config:
        raise LioError(f"user backstore config {config!r} must not contain ':'")
    if "\n" in config or "," in config:
        raise LioError(f"user backstore config {config!r} must not contain ',' or a newline")
    if len(full.encode()) > MAX_CONFIG:
        raise LioError(f"user backstore config is {len(full.encode())} bytes with its subtype; "
                       f"the kernel takes at most {MAX_CONFIG}")
    if full in existing:
        raise LioError(f"another user backstore already uses {full}")
    if subtype != "lioctl_file":
        return
    options, path = split_options(config)
    bad = options - set(FILE_OPTIONS)
    if bad:
        raise LioError(f"unknown lioctl_file option {sorted(bad)[0]!r} (known: {', '.join(FILE_OPTIONS)})")
    if not path.startswith("/"):
        raise LioError(f"lioctl_file wants an absolute file path, not {config!r}")
    for other in existing:
        if other.startswith("lioctl_file/") and \
                os.path.realpath(split_options(other[len("lioctl_file/"):])[1]) == os.path.realpath(path):
            raise LioError(f"another user backstore already uses {path}")
    if os.path.exists(path):
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise LioError(f"{path} is a directory")
        if not os.access(path, os.R_OK | os.W_OK):
            raise LioError(f"{path} is not readable and writable")
        if stat.S_ISBLK(st.st_mode):
            have = blockdev.size(path)
            if size > have:
                raise LioError(f"size {size} is larger than block device {path} ({have} bytes)")
    else:
        parent = os.path.dirname(path) or "/"
        if not os.path.isdir(parent):
            raise LioError(f"backing file {path} does not exist and {parent} is not a directory")
        if not os.access(parent, os.W_OK):
            raise LioError(f"cannot create backing file {path}: {parent} is not writable")
