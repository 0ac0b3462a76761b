"""`lioctl export`: the kernel's export-device script as one safe, all-or-nothing command.

Backstore (fileio for a file, with write-back cache; iblock for a block device), iSCSI target iqn.2003-01.org.linux-iscsi.<host>:<basename>,
TPG 1, LUN 0, portal 0.0.0.0:3260 unless -p, demo mode unless --acl, TPG enabled last.
"""

from __future__ import annotations

import os
import socket
import uuid

from lioctl import configfs, render, wwn as wwnmod
from lioctl.backstores import media, user
from lioctl.backstores.common import free_hba, object_path
from lioctl.errors import AlreadyExists, Conflict, LioError, UsageError
from lioctl.names import check_object_name
from lioctl.plan import Modprobe, Mount, Plan
from lioctl.secrets import resolve_creds
from lioctl.tree import snapshot, targets as tg
from lioctl.tree.fabrics import spec_for
from lioctl.units import parse_size

HELP = f"export a {media.listed([n for m in media.by_form() for n in m.nouns], 'or')} as an iSCSI target in one step"
EXAMPLES = "\n  ".join(["examples:", "lioctl export /srv/disk.img", "lioctl export /dev/sdb -p 192.0.2.10",
                         *(e for m in media.MEDIA for e in m.export_examples)]) + "\n"


def configure(p):
    p.add_argument("device", metavar="|".join(m.form for m in media.by_form()),
                   help=f"{media.listed([n for m in media.by_form() for n in m.nouns], 'or')} to export")
    p.add_argument("-p", "--portal", action="append", default=[], metavar="PORTAL",
                   help="IP[:PORT] or [IPv6][:PORT] to listen on (repeatable; default 0.0.0.0:3260)")
    p.add_argument("--iqn", help="target IQN (default iqn.2003-01.org.linux-iscsi.HOST:BASENAME)")
    p.add_argument("--name", help="backstore name (default: the file's basename)")
    p.add_argument("--lun-size", metavar="SIZE", help="size of the LUN for a file (e.g. 10G); "
                   "a missing file is created sparse with this size")
    p.add_argument("--readonly", action="store_true", help="export read-only")
    p.add_argument("--acl", action="append", default=[], metavar="INITIATOR_IQN",
                   help="allow only this initiator (repeatable); turns demo mode off")
    p.add_argument("--chap", metavar="USER[:SECRET]",
                   help="CHAP credentials the initiators must give; USER alone asks for the secret "
                        "on the terminal (USER:SECRET works but shows it to every user through ps)")
    p.add_argument("--chap-file", metavar="FILE",
                   help="read USER:SECRET from the first line of FILE (mode 0600; - for stdin); "
                        "LIOCTL_CHAP=USER:SECRET in the environment does the same")
    p.add_argument("--mutual-chap", metavar="USER[:SECRET]", help="credentials the target gives back")
    p.add_argument("--mutual-chap-file", metavar="FILE",
                   help="as --chap-file, for --mutual-chap (or LIOCTL_MUTUAL_CHAP=USER:SECRET)")
    p.add_argument("--exist-ok", action="store_true", help="exporting a device already exported the same way is a no-op (exit 0); "
                   "exported otherwise (another target, size, portal, ACL, CHAP, read-only) is a conflict (exit 5) naming what differs")
    p.add_argument("--user", action="store_true",
                   help="serve it through a TCMU user backstore and lioctl's bundled handler "
                        "(started when needed) instead of the kernel's fileio/iblock")
    for m in media.MEDIA:     # each medium's own options (--create, --conf... for rbd:)
        if any(o.export for o in m.options):
            g = p.add_argument_group(m.export_title)
            for o in m.options:
                if o.export:
                    kind = {"action": "store_true"} if o.metavar is None else {"metavar": o.metavar}
                    g.add_argument(o.export, dest=f"{m.name}_{o.name}", help=o.help, **kind)


def medium_options(args) -> tuple[media.Medium, dict]:
    """The medium args.device names, and its options; another medium's option is an error."""
    medium = media.of(args.device)
    given = {o.name: getattr(args, f"{m.name}_{o.name}") for m in media.MEDIA for o in m.options if o.export}
    other = media.stray(medium, given)
    if other:
        flags = [o.export for o in other[0].options if o.export]
        raise UsageError(f"{media.listed(flags)} {'are' if len(flags) > 1 else 'is'} for {other[0].form}")
    return medium, {o.name: given[o.name] for o in medium.options if o.export}


def credentials(args) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(chap, mutual) from the options, files, environment or a prompt; resolved once per
    command (build runs again under the lock and must not ask twice)."""
    if getattr(args, "resolved_creds", None) is None:

        def need_acl():
            if not args.acl:
                raise UsageError("--chap and --mutual-chap need at least one --acl INITIATOR_IQN")
        chap = resolve_creds(args.chap, getattr(args, "chap_file", None), "LIOCTL_CHAP", "--chap", need_acl)
        mutual = resolve_creds(args.mutual_chap, getattr(args, "mutual_chap_file", None),
                               "LIOCTL_MUTUAL_CHAP", "--mutual-chap", need_acl)
        args.resolved_creds = (chap, mutual)
    return args.resolved_creds


def default_iqn(device: str) -> str:
    host = wwnmod.iqn_label(socket.gethostname().split(".")[0]) or "localhost"
    base = wwnmod.iqn_suffix(os.path.basename(device)) or "disk"
    return f"iqn.2003-01.org.linux-iscsi.{host}:{base}"


def default_name(device: str) -> str:
    base = os.path.basename(device.rstrip("/"))
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in base) or "disk"


def find_export(snap, medium, device: str, options: dict):
    """(iSCSI LUN, storage object) already exporting what device names, if any."""
    for so in medium.exports(snap, device, options):
        for lun in so.luns:
            if lun.tpg.target.fabric.name == "iscsi":
                return lun, so
        return None, so
    return None, None


def differences(args, lun, so) -> list[str]:
    """What the existing export does otherwise than these options ask (--exist-ok accepts only an
    export that matches): target, backstore, size, kind, portals, ACLs, CHAP, read-only. Secrets
    are compared, never shown."""
    tpg, out = lun.tpg, []
    if args.iqn and wwnmod.normalize(("iqn",), args.iqn, "target IQN")[0] != tpg.target.wwn:
        out.append(f"its target is {tpg.target.wwn}, not {args.iqn}")
    if args.name and args.name != so.name:
        out.append(f"its backstore is {so.tree_path}, not {args.name}")
    if args.lun_size and parse_size(args.lun_size, "--lun-size") != so.size:
        out.append(f"its size is {so.size} bytes, not {args.lun_size}")
    if args.user != (so.plugin == "user"):
        out.append(f"it is served by a {so.plugin} backstore" + (", not a user one" if args.user else ""))
    want = {tg.parse_portal(p)[2] for p in args.portal or [spec_for("iscsi").default_portal]}
    if set(tpg.portals) != want:
        out.append(f"its portals are {', '.join(sorted(tpg.portals)) or 'none'}, not {', '.join(sorted(want))}")
    acls = {wwnmod.normalize(("iqn", "naa", "eui"), a, "initiator IQN")[0] for a in args.acl}
    demo = configfs.read(tpg.path + "/attrib/generate_node_acls") == "1"
    if acls and (demo or set(tpg.acls) != acls):
        out.append("it is open to every initiator (demo mode)" if demo else
                   f"its ACLs are {', '.join(sorted(tpg.acls)) or 'none'}, not {', '.join(sorted(acls))}")
    elif not acls and not demo:
        out.append(f"it allows only {', '.join(sorted(tpg.acls)) or 'no initiator'} (ACLs), not every initiator")
    if acls and not out:
        chap, mutual = credentials(args)
        want_auth = {"userid": chap[0] if chap else "", "password": chap[1] if chap else "",
                     "userid_mutual": mutual[0] if mutual else "",
                     "password_mutual": mutual[1] if mutual else ""}
        for a in tpg.acls.values():
            have = configfs.read_group(a.path + "/auth")
            if any((have.get(k) or "") != v for k, v in want_auth.items()):
                out.append(f"the CHAP credentials of ACL {a.wwn} differ")
    if demo:
        readonly = configfs.read(tpg.path + "/attrib/demo_mode_write_protect") == "1"
    else:
        mapped = [m for a in tpg.acls.values() for m in a.mapped_luns.values() if m.tpg_lun == lun.index]
        readonly = bool(mapped) and all(m.write_protect for m in mapped)
    if readonly != bool(args.readonly):
        out.append("it is read-only" if readonly else "it is writable")
    return out


def build(args, snap) -> tuple[Plan, dict]:
    medium, options = medium_options(args)
    device, base, iqn_base = medium.export_names(args.device, args.lun_size)
    kind = medium.export_kind(device, args.lun_size, args.user)      # None: a user backstore
    name = check_object_name(args.name or default_name(base), "backstore name")
    iqn, _ = wwnmod.normalize(("iqn",), args.iqn or default_iqn(iqn_base), "target IQN")
    portals = args.portal or [spec_for("iscsi").default_portal]
    parsed = []
    for text in portals:
        ip, port, pname = tg.parse_portal(text)
        if pname in [p[2] for p in parsed]:
            raise LioError(f"portal {pname} is given twice")
        tg.check_portal_address(ip)
        parsed.append((ip, port, pname))
    chap, mutual = credentials(args)
    if (chap or mutual) and not args.acl:
        raise UsageError("--chap and --mutual-chap need at least one --acl INITIATOR_IQN")
    if mutual and not chap:
        raise UsageError("--mutual-chap needs --chap too")
    acls = []
    for a in args.acl:
        w, _ = wwnmod.normalize(("iqn", "naa", "eui"), a, "initiator IQN")
        if w in acls:
            raise LioError(f"--acl {w} is given twice")
        acls.append(w)
    if "iscsi" in snap.fabrics and iqn in snap.fabrics["iscsi"].targets:
        raise AlreadyExists(f"target {iqn} already exists; choose another with --iqn")

    backstore = kind or user.KIND
    # Deterministic serial and LUN link name: the --dry-run script makes exactly this tree.
    serial = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lioctl:{iqn}:{backstore.name}/{name}"))
    hba = free_hba(backstore)
    plan = Plan()
    plan.add(Mount(configfs.CONFIGFS_MOUNT))
    plan.add(Modprobe("target_core_mod"))
    if kind is None:
        sub = user.plan_medium(snap, name, medium, device, args.lun_size, options, wwn=serial,
                               write_back=not args.readonly, hba=hba)
    else:
        sub = medium.plan_kernel(snap, kind, name, device, args.lun_size, args.readonly, serial, hba)
    plan.extend(sub)

    target, _ = tg.plan_target(snap, "iscsi", iqn, default_portal=False, enable=False)
    plan.extend(target)
    tpg = f"{tg.fabric_path('iscsi')}/{iqn}/tpgt_1"
    lun = tg.tpg_lun_path(tpg, 0)
    plan.extend(tg.plan_luns_at(tpg, [(0, object_path(hba, name), name)]))
    for _, _, pname in parsed:
        plan.extend(tg.plan_portal_at(tpg, pname))
    if acls:
        plan.write(f"{tpg}/attrib/generate_node_acls", "0")
        plan.write(f"{tpg}/attrib/authentication", "1" if chap else "0")
        for a in acls:
            sub, apath = tg.plan_acl_at(tpg, a)
            plan.extend(sub)
            plan.extend(tg.plan_mapped_lun_at(apath, 0, lun, bool(args.readonly), alias=name))
            if chap:
                plan.extend(tg.plan_chap(f"{apath}/auth", chap[0], chap[1],
                                         mutual[0] if mutual else None, mutual[1] if mutual else None))
    else:
        plan.write(f"{tpg}/attrib/authentication", "0")
        plan.write(f"{tpg}/attrib/generate_node_acls", "1")
        plan.write(f"{tpg}/attrib/demo_mode_write_protect", "1" if args.readonly else "0")
    plan.write(f"{tpg}/enable", "1")
    info = {"target": iqn, "tpg": 1, "lun": 0, "backstore": f"/backstores/{backstore.name}/{name}",
            "device": device, "portals": [p[2] for p in parsed], "acls": acls,
            "chap": bool(chap), "mutual_chap": bool(mutual), "readonly": bool(args.readonly)}
    return plan, info


def already_exported(args, snap) -> bool:
    """Refuse a second export of the same device, naming the first; --exist-ok makes it a no-op."""
    medium, options = medium_options(args)
    lun, so = find_export(snap, medium, medium.export_names(args.device, args.lun_size)[0], options)
    if so is None:
        return False
    target = lun.tpg.target if lun is not None else None
    if target is not None and args.exist_ok:
        differ = differences(args, lun, so)
        if differ:
            raise Conflict(f"{args.device} is exported by target {target.wwn} but differs: "
                           + "; ".join(differ), obj=target.wwn)
        info = {"target": target.wwn, "backstore": so.tree_path, "existing": True}
        if args.json:
            from lioctl import results  # start-up: only for --json
            render.print_json(results.write_result(
                "export", changed=False, data=info, message=f"{args.device} is already exported",
                unchanged=[results.describe("target", target), results.describe("storage_object", so)]), "write")
        else:
            print(f"{args.device} is already exported as {target.wwn}")
        return True
    where = f"target {target.wwn}" if target else f"backstore {so.tree_path}"
    raise AlreadyExists(f"{args.device} is already exported by {where}"
                   + ("" if target is None else " (use --exist-ok to accept)"))


def run(args) -> int:
    from lioctl.lock import write_lock  # start-up: completion and --help build this verb's parser only
    from lioctl.plan import executor
    if args.dry_run:
        snap = snapshot.read()
        plan, info = build(args, snap)
        from lioctl import results  # start-up: as executor
        results.print_dry_run(plan, f"export {args.device}", args)
        return 0
    if already_exported(args, snapshot.read()):
        return 0
    build(args, snapshot.read())  # every input check before any module loads or lock is taken
    configfs.ensure_ready(("iscsi_target_mod",))
    with write_lock():
        snap = snapshot.read()
        if already_exported(args, snap):
            return 0
        plan, info = build(args, snap)
        from lioctl import results  # start-up: as executor
        from lioctl.commands import save as save_cmd
        tracker = results.Tracker(plan, snap) if args.json else None
        executor.execute(plan)
        info.update(save_cmd.after_write(args))
    if tracker is not None:
        render.print_json(tracker.result("export", data=info), "write")
    else:
        print(f"Target {info['target']}, portal {', '.join(info['portals'])} has been created")
    return 0
