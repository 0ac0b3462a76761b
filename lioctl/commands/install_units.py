"""`lioctl install-units`: the systemd units, written where systemd looks, for this install.

A pip, pipx or venv install puts the shipped units under its own prefix, where systemd never
looks, and their `/usr/bin/env lioctl` finds no lioctl outside PATH. The units written here
run this interpreter (`python -m lioctl`), name the distribution's saved configuration, and
order the restore after the mounts and devices that configuration's backstores use."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from lioctl import render
from lioctl.backstores import KINDS
from lioctl.errors import LioError
from lioctl.saveconfig import store

HELP = "write lioctl's systemd units for this installation (interpreter, saved file, devices)"
EPILOG = """examples:
  lioctl install-units              to /etc/systemd/system, then systemctl daemon-reload
  lioctl install-units --dry-run    show the units, write nothing
  systemctl enable --now lioctl-restore.service lioctl-tcmu.service

Run it again after adding backstores on new mounts or devices, or after moving lioctl."""
UNITS = ("lioctl-restore.service", "lioctl-tcmu.service")
DEFAULT_DIR = "/etc/systemd/system"
SHIPPED_EXEC = "/usr/bin/env lioctl"


def configure(p):
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"where to write the units (default {DEFAULT_DIR})")
    p.add_argument("--file", default=store.DEFAULT,
                   help=f"the saved configuration the restore unit uses (default {store.DEFAULT})")


def _template(name: str) -> str:
    """The shipped unit: beside the source (checkout, editable install), under this install's
    prefix (pip/pipx data files), or where a distribution package put it."""
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(here, "..", "..", "data", "systemd"),
              os.path.join(sys.prefix, "lib", "systemd", "system"),
              "/usr/lib/systemd/system", "/lib/systemd/system"):
        path = os.path.join(d, name)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if SHIPPED_EXEC in text:
            return text
    raise LioError(f"the shipped unit {name} is not installed with lioctl")


def unit_name_of_path(path: str) -> str:
    """systemd-escape --path: /dev/disk/by-id/x-y -> dev-disk-by\\x2did-x\\x2dy."""
    path = os.path.normpath(path).strip("/")
    out = []
    for i, ch in enumerate(path):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_") or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out) or "-"


def dependencies(savefile: str) -> list[str]:
    """Unit lines for what the saved backstores need: mounts of their files, their devices."""
    try:
        with open(savefile) as f:
            config = json.load(f)
        objects = list(config.get("storage_objects", []))
    except (OSError, ValueError, AttributeError):
        return []
    files, devices = set(), set()
    for so in objects:
        kind = KINDS.get(so.get("plugin")) if isinstance(so, dict) and isinstance(so.get("plugin"), str) else None
        for dev in kind.saved_paths(so) if kind else ():
            if dev.startswith("/"):
                (devices if dev.startswith("/dev/") else files).add(dev)
    # one per line, quoted: a space separates paths in this setting
    lines = [f'RequiresMountsFor="{d}"' for d in sorted({os.path.dirname(f) for f in files})]
    for d in sorted(devices):
        unit = unit_name_of_path(d) + ".device"
        lines += [f"Wants={unit}", f"After={unit}"]
    return lines


def render_units(savefile: str, python: str = sys.executable) -> dict[str, str]:
    exec_prefix = f"{python} -m lioctl"
    out = {}
    for name in UNITS:
        text = _template(name).replace(SHIPPED_EXEC, exec_prefix)
        if name == "lioctl-restore.service":
            lines = []
            for line in text.splitlines():
                if line.startswith("ConditionPathExists="):
                    if not any(x.startswith("ConditionPathExists=") for x in lines):
                        lines.append(f"ConditionPathExists={savefile}")
                    continue
                if line.startswith("ExecStart=") and "restore --boot" in line:
                    line = f"{line} {savefile}"
                lines.append(line)
                if line.startswith("After=lioctl-tcmu.service") or line.startswith("After=systemd-modules-load"):
                    lines += dependencies(savefile)
            text = "\n".join(lines) + "\n"
        out[name] = text
    return out


def _write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    units = render_units(args.file)
    paths = {name: os.path.join(args.dir, name) for name in units}
    if args.dry_run:
        if args.json:
            render.print_json({"files": {paths[n]: t for n, t in units.items()}}, "units")
        else:
            sys.stdout.write("".join(f"# {paths[n]}\n{t}\n" for n, t in units.items()))
        return 0
    try:
        os.makedirs(args.dir, exist_ok=True)
        for name, text in units.items():
            _write(paths[name], text)
    except OSError as e:
        raise LioError(f"cannot write the units to {args.dir}: {e.strerror}") from None
    # only for the directory systemd reads, and only where systemd runs
    reload = args.dir == DEFAULT_DIR and os.path.isdir("/run/systemd/system")
    if reload:
        r = subprocess.run(["systemctl", "daemon-reload"], capture_output=True, text=True)
        if r.returncode != 0:
            raise LioError(f"wrote the units, but systemctl daemon-reload failed: "
                           f"{(r.stderr.strip().splitlines() or ['no reason given'])[-1]}")
    if args.json:
        from lioctl import results  # start-up: only for --json
        render.print_json(results.write_result(
            "install-units", changed=True, created=[{"type": "file", "path": p} for p in paths.values()],
            data={"files": list(paths.values()), "savefile": args.file, "daemon_reload": reload}), "write")
    else:
        for p in paths.values():
            print(f"Wrote {p}")
        print(f"The restore unit uses {args.file}"
              + ("; systemd reloaded" if reload else "")
              + "\nEnable with: systemctl enable lioctl-restore.service lioctl-tcmu.service")
    return 0
