"""User backstore configuration rules, checked before anything is created.

dev_config is written as '<subtype>/<config>'. lioctl's own subtypes have names of their
own so that tcmu-runner (qcow, rbd, glfs, fbo, zbc, file, file_optical, file_zbc) never
claims them and lioctl never touches its devices.

lioctl's subtypes, each with its own config rules, are listed in lioctl/tcmu/backends/.
"""

from __future__ import annotations

from lioctl.errors import InUse, LioError
from lioctl.tcmu.backends import BACKENDS, backend

DEFAULT_SUBTYPE = "lioctl_file"
SUBTYPES = tuple(BACKENDS)
TCMU_RUNNER_SUBTYPES = ("qcow", "rbd", "glfs", "fbo", "zbc", "file", "file_optical", "file_zbc")
MAX_CONFIG = 255
DEFAULT_HW_MAX_SECTORS = 2048     # 1 MiB commands with 512-byte blocks


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
        raise InUse(f"another user backstore already uses {full}")
    if subtype in BACKENDS:
        backend(subtype).check_config(config, size, existing)
