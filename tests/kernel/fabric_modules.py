"""Fabric modules from `lioctl fabric-skeleton`, one per protocol, built once per template hash.

The host test builds them (the guest's TCG compiler is ~10x slower) into tests/.out, which the
guest reads; the kernel test reuses them, building only on a cache miss. The hash covers the
templates, the generator and the kernel release, so a template change rebuilds.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "tests" / ".out" / "fabric-skeleton"
PROTOCOLS = ("iSCSI", "FCP", "SAS", "SRP", "SBP")
# what make may print that is not a warning about our code
BENIGN = re.compile(r"Skipping BTF generation .* due to unavailability of vmlinux")


def guest_kernel_release() -> str:
    """The kernel the test guest boots: the newest /boot/vmlinuz-*-amd64 (as boot.sh picks it)."""
    if os.path.isdir("/sys/kernel/config/target"):
        return os.uname().release   # inside the guest
    kernels = sorted(glob.glob("/boot/vmlinuz-*-amd64"),
                     key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)])
    return kernels[-1].split("vmlinuz-", 1)[1] if kernels else os.uname().release


def module_name(proto: str) -> str:
    return f"lioctl_fsk_{proto.lower()}"


def template_hash(kver: str) -> str:
    h = hashlib.sha256(kver.encode())
    tdir = REPO / "lioctl" / "templates" / "fabric"
    for p in sorted(tdir.rglob("*")) + [REPO / "lioctl" / "commands" / "fabric_skeleton.py"]:
        if p.is_file():
            h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def build_all(kver: str) -> dict[str, Path]:
    """proto -> the built .ko; generating and compiling only what the cache lacks.

    Makes run in parallel (two CPUs here); any compiler or modpost warning fails the build."""
    base = CACHE / f"{kver}-{template_hash(kver)}"
    out, procs = {}, {}
    for proto in PROTOCOLS:
        name = module_name(proto)
        d = base / name
        ko = d / f"{name}.ko"
        out[proto] = ko
        if ko.exists():
            continue
        if d.exists():
            shutil.rmtree(d)
        base.mkdir(parents=True, exist_ok=True)
        gen = subprocess.run([str(Path(sys.executable).with_name("lioctl")), "fabric-skeleton",
                              name, "--proto", proto, "-k", kver, "-o", str(d)],
                             capture_output=True, text=True)
        if gen.returncode != 0:
            raise AssertionError(f"fabric-skeleton {proto} failed: {gen.stderr}")
        procs[proto] = subprocess.Popen(["make", "-C", str(d)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
    for proto, p in procs.items():
        log = p.communicate()[0]
        noise = [ln for ln in log.splitlines()
                 if re.search(r"warning|error", ln, re.I) and not BENIGN.search(ln)]
        if p.returncode != 0 or noise or not out[proto].exists():
            shutil.rmtree(out[proto].parent, ignore_errors=True)
            raise AssertionError(f"building the {proto} skeleton failed (rc {p.returncode}):\n"
                                 + "\n".join(noise or log.splitlines()[-30:]))
    # keep only this hash's builds
    for old in CACHE.glob(f"{kver}-*"):
        if old != base:
            shutil.rmtree(old, ignore_errors=True)
    return out
