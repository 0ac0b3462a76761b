"""`lioctl fabric-skeleton NAME --proto PROTO`: write the source of a new LIO fabric module.

The successor of the kernel's old tcm_mod_builder.py: an out-of-tree module directory
(Kbuild, Makefile, Kconfig, C sources, README) rendered from the templates under
lioctl/templates/fabric for the fabric API of the kernel it is built for. The API is
read from that kernel's own include/target/target_core_fabric.h, so a kernel whose
struct target_core_fabric_ops differs is refused instead of producing a module that
does not build or, worse, registers callbacks in the wrong slots.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources

from lioctl.errors import AlreadyExists, LioError, UsageError
from lioctl import results
from lioctl.render import print_json as render_json
from lioctl.tree.fabrics import KNOWN

HELP = """write the source of a new LIO fabric module for a kernel (Kbuild, Makefile, Kconfig,
C sources, README), ready to build with make and load with insmod; lioctl then manages
the new fabric like any other. --force overwrites the generated files of an existing
DIR, --dry-run writes nothing, --json prints what was written."""
EXAMPLE = """examples:
  lioctl fabric-skeleton tcm_demo --proto iSCSI -o /tmp/tcm_demo
  make -C /tmp/tcm_demo && insmod /tmp/tcm_demo/tcm_demo.ko
  lioctl /tcm_demo create iqn.2003-01.org.example:demo

exit status: 0 written, 1 failed (existing DIR, missing headers, unknown kernel API),
2 bad usage (NAME, PROTO)"""


@dataclass(frozen=True)
class Protocol:
    name: str            # as the user and the README spell it
    proto_id: str        # enum scsi_protocol in <scsi/scsi_proto.h>
    wwn_format: str      # one line for the C file's header comment
    example: str         # a valid target port name
    example2: str        # a valid initiator port name


PROTOCOLS = {p.name.lower(): p for p in (
    Protocol("iSCSI", "SCSI_PROTOCOL_ISCSI", "iqn.YYYY-MM.domain[:id], eui.<16 hex>, naa.<16 or 32 hex>",
             "iqn.2003-01.org.example:target", "iqn.1994-05.com.example:client"),
    Protocol("FCP", "SCSI_PROTOCOL_FCP", "8-byte WWPNs, hex pairs joined by ':'",
             "20:00:00:11:22:33:44:55", "21:00:00:24:ff:00:00:01"),
    Protocol("SAS", "SCSI_PROTOCOL_SAS", "NAA IEEE Registered names, naa.5 and 15 hex digits",
             "naa.5001405000000001", "naa.5001405000000002"),
    Protocol("SRP", "SCSI_PROTOCOL_SRP", "0x and 32 hex digits, as ib_srpt spells them",
             "0x00000000000000000002c90300a1b2c3", "0xfe800000000000000002c90300a1b2c4"),
    Protocol("SBP", "SCSI_PROTOCOL_SBP", "EUI-64 as 16 hex digits",
             "0011223344556677", "0011223344556688"),
)}

# configfs refuses fabric names of 32 bytes or more (TARGET_FABRIC_NAME_SIZE)
MAX_NAME = 31
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# directories under /sys/kernel/config/target that are not fabrics
RESERVED = {"core", "version", "dbroot"}
# the rendered files: output name -> template (NAME is the module name)
BUILD_FILES = {"Kbuild": "Kbuild.in", "Makefile": "Makefile.in", "Kconfig": "Kconfig.in",
               "README": "README.in"}
SOURCE_FILES = {"NAME.h": "fabric.h.in", "NAME_configfs.c": "configfs.c.in",
                "NAME_fabric.c": "fabric.c.in", "NAME_wwn.c": "wwn.c.in"}


def configure(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXAMPLE
    p.add_argument("name", help="module and configfs fabric name: a C identifier of at most "
                                f"{MAX_NAME} characters, not the name of an existing module")
    p.add_argument("--proto", required=True, metavar="PROTO",
                   help="SCSI transport the port names and TransportIDs follow: "
                        + ", ".join(p.name for p in PROTOCOLS.values()))
    p.add_argument("-o", "--output", metavar="DIR",
                   help="directory to write (default ./NAME); an existing one only with --force")
    p.add_argument("-k", "--kernel-release", metavar="KVER",
                   help="kernel to generate for, whose headers are in /lib/modules/KVER/build "
                        "(default: the running kernel, uname -r)")


def template_root():
    return resources.files("lioctl").joinpath("templates", "fabric")


def template_text(rel: str) -> str:
    return template_root().joinpath(*rel.split("/")).read_text()


def known_apis() -> dict[str, dict]:
    data = json.loads(template_text("apis.json"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def check_name(name: str, kver: str) -> None:
    """A C identifier (it prefixes every symbol) naming no module or fabric that exists."""
    if not IDENTIFIER.match(name):
        raise UsageError(f"fabric-skeleton: {name!r} is not a C identifier "
                         "(letters, digits and _, not starting with a digit)")
    if len(name) > MAX_NAME:
        raise UsageError(f"fabric-skeleton: {name!r} is longer than {MAX_NAME} characters "
                         "(configfs's limit for fabric names)")
    if name in RESERVED or name in KNOWN:
        raise UsageError(f"fabric-skeleton: {name!r} is the name of an existing configfs "
                         "fabric directory in target/")
    clash = existing_module(name, kver)
    if clash:
        raise UsageError(f"fabric-skeleton: {name!r} collides with the module {clash}")


def _module_key(name: str) -> str:
    return name.replace("-", "_")


def existing_module(name: str, kver: str) -> str | None:
    """Where a module of that name already is: loaded, in the kernel image, or on disk."""
    key = _module_key(name)
    try:
        with open("/proc/modules") as f:
            if any(_module_key(line.split(" ", 1)[0]) == key for line in f):
                return f"{name} loaded in the running kernel"
    except OSError:
        pass
    for index, what in (("modules.builtin", "built into"), ("modules.dep", "shipped with")):
        try:
            with open(f"/lib/modules/{kver}/{index}") as f:
                for line in f:
                    path = line.split(":", 1)[0].strip()
                    mod = os.path.basename(path).split(".ko", 1)[0]
                    if _module_key(mod) == key:
                        return f"{path} {what} Linux {kver}"
        except OSError:
            continue
    return None


def headers_dir(kver: str) -> str:
    build = f"/lib/modules/{kver}/build"
    if not os.path.isdir(build):
        raise LioError(f"fabric-skeleton: the headers of Linux {kver} are missing ({build}); "
                       f"install the package linux-headers-{kver}")
    return build


def fabric_header(build: str) -> str:
    """target_core_fabric.h of that kernel (Debian splits it into the -common package)."""
    for base in (build, os.path.join(os.path.dirname(build), "source"),
                 os.path.join(build, "source")):
        path = os.path.join(base, "include", "target", "target_core_fabric.h")
        if os.path.exists(path):
            return path
    raise LioError(f"fabric-skeleton: {build} has no include/target/target_core_fabric.h; "
                   "the kernel headers are incomplete or the kernel lacks LIO")


def kernel_version(build: str, kver: str) -> str:
    """MAJOR.MINOR.SUB from the headers' version.h (Debian's 6.1.0-56 is 6.1.192)."""
    try:
        with open(os.path.join(build, "include", "generated", "uapi", "linux", "version.h")) as f:
            text = f.read()
        parts = [re.search(rf"#define LINUX_VERSION_{k} (\d+)", text).group(1)
                 for k in ("MAJOR", "PATCHLEVEL", "SUBLEVEL")]
        return ".".join(parts)
    except (OSError, AttributeError):
        m = re.match(r"\d+\.\d+(\.\d+)?", kver)
        return m.group(0) if m else kver


def fabric_ops_members(header_text: str) -> list[str]:
    """The member names of struct target_core_fabric_ops, in order."""
    m = re.search(r"struct target_core_fabric_ops \{(.*?)\n\};", header_text, re.S)
    if not m:
        return []
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", m.group(1), flags=re.S)
    out = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        fn = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl)
        field = fn or re.search(r"(\w+)\s*(?:\[[^]]*\]\s*)*(?::\s*\d+\s*)?\Z", decl)
        if field:
            out.append(field.group(1))
    return out


def pick_api(header_path: str, kver: str) -> str:
    with open(header_path) as f:
        members = fabric_ops_members(f.read())
    apis = known_apis()
    for api, spec in apis.items():
        if spec["members"] == members:
            return api
    nearest, spec = next(iter(apis.items()))
    missing = [m for m in spec["members"] if m not in members]
    extra = [m for m in members if m not in spec["members"]]
    diff = "; ".join(bit for bit in (
        "lacks " + ", ".join(missing) if missing else "",
        "adds " + ", ".join(extra) if extra else "") if bit) or "orders its members differently"
    raise LioError(f"fabric-skeleton: Linux {kver}: target_core_fabric_ops {diff} compared with "
                   f"the API the templates know ({', '.join(apis)}); no template set fits it")


def render(text: str, values: dict[str, str], where: str) -> str:
    """@KEY@ substitution; a placeholder without a value is a template bug, said so."""
    def sub(m):
        if m.group(1) not in values:
            raise LioError(f"fabric-skeleton: template {where}: unknown placeholder @{m.group(1)}@")
        return values[m.group(1)]
    return re.sub(r"@([A-Z_0-9]+)@", sub, text)


def render_files(name: str, proto: Protocol, kver: str, api: str) -> dict[str, str]:
    """Every file of the module directory, by file name."""
    values = {
        "NAME": name, "UPPER": name.upper(), "PROTO": proto.name, "PROTO_ID": proto.proto_id,
        "KVER": kver, "API": api, "API_KNOWN": ", ".join(known_apis()),
        "WWN_FORMAT": proto.wwn_format, "WWN_EXAMPLE": proto.example,
        "WWN_EXAMPLE2": proto.example2,
    }
    values["WWN_PARSER"] = render(template_text(f"v{api}/wwn-{proto.name.lower()}.c.in"),
                                  values, f"v{api}/wwn-{proto.name.lower()}.c.in").rstrip("\n")
    out = {}
    for fname, tmpl in BUILD_FILES.items():
        out[fname] = render(template_text(tmpl), values, tmpl)
    for fname, tmpl in SOURCE_FILES.items():
        out[fname.replace("NAME", name)] = render(template_text(f"v{api}/{tmpl}"), values,
                                                  f"v{api}/{tmpl}")
    return out


def write_tree(files: dict[str, str], outdir: str, force: bool) -> None:
    """All files or none: a fresh directory appears complete (renamed into place); --force
    over an existing one replaces each file atomically and leaves build products alone."""
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise LioError(f"fabric-skeleton: {outdir} exists and is not a directory")
    if os.path.isdir(outdir):
        if not force:
            raise AlreadyExists(f"fabric-skeleton: {outdir} already exists; use --force to "
                           "overwrite its generated files")
        for fname, text in files.items():
            _write_atomic(os.path.join(outdir, fname), text)
        return
    parent = os.path.dirname(os.path.abspath(outdir))
    if not os.path.isdir(parent):
        raise LioError(f"fabric-skeleton: {parent} does not exist")
    tmp = tempfile.mkdtemp(prefix=".fabric-skeleton-", dir=parent)
    try:
        for fname, text in files.items():
            with open(os.path.join(tmp, fname), "w") as f:
                f.write(text)
        os.chmod(tmp, 0o755)
        os.rename(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".fabric-skeleton-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def generate(name: str, proto_name: str, kver: str | None = None) -> tuple[dict[str, str], dict]:
    """Check everything, render everything; writes nothing. Returns (files, facts)."""
    proto = PROTOCOLS.get(proto_name.lower())
    if proto is None:
        raise UsageError(f"fabric-skeleton: unknown protocol {proto_name!r} "
                         f"(one of {', '.join(p.name for p in PROTOCOLS.values())})")
    kver = kver or os.uname().release
    if not kver or "/" in kver or kver.startswith("."):
        raise UsageError(f"fabric-skeleton: {kver!r} is not a kernel release")
    check_name(name, kver)
    build = headers_dir(kver)
    api = pick_api(fabric_header(build), kver)
    files = render_files(name, proto, kver, api)
    facts = {"name": name, "proto": proto.name, "proto_id": proto.proto_id,
             "kernel_release": kver, "kernel_version": kernel_version(build, kver), "api": api,
             "headers": build, "files": sorted(files)}
    return files, facts


def run(args) -> int:
    files, facts = generate(args.name, args.proto, args.kernel_release)
    outdir = args.output or os.path.join(".", args.name)
    facts["directory"] = os.path.abspath(outdir)
    if not args.dry_run:
        write_tree(files, outdir, args.force)
    if args.json:
        made = [] if args.dry_run else [{"type": "file", "path": os.path.join(facts["directory"], f)}
                                        for f in sorted(files)]
        render_json(results.write_result("fabric-skeleton", changed=not args.dry_run, created=made,
                                         data=dict(facts, written=not args.dry_run)), "write")
        return 0
    verb = "would write" if args.dry_run else "wrote"
    print(f"{verb} {outdir}: {', '.join(sorted(files))}")
    print(f"{facts['name']}: {facts['proto']} fabric for Linux {facts['kernel_release']} "
          f"({facts['kernel_version']}, fabric API {facts['api']})")
    if not args.dry_run:
        print(f"next: make -C {outdir} && insmod {os.path.join(outdir, args.name + '.ko')}",
              file=sys.stdout)
    return 0
