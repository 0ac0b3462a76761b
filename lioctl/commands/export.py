"""`lioctl export`: the kernel's export-device script as one safe, all-or-nothing command.

Backstore (fileio for a file, with write-back cache; iblock for a block device), iSCSI target iqn.2003-01.org.linux-iscsi.<host>:<basename>,
TPG 1, LUN 0, portal 0.0.0.0:3260 unless -p, demo mode unless --acl, TPG enabled last.
"""

from __future__ import annotations

import os
import socket
import stat
import uuid

from lioctl import configfs, render, wwn as wwnmod
from lioctl.backstores import block, fileio, user
from lioctl.backstores.common import free_hba, object_path
from lioctl.errors import AlreadyExists, LioError, NotFound, UsageError
from lioctl.names import check_object_name
from lioctl.plan import Modprobe, Mount, Plan
from lioctl.tcmu.backends.file import FileBackend
from lioctl.tree import snapshot, targets as tg
from lioctl.tree.fabrics import spec_for

HELP = "export a file, block device or Ceph RBD image as an iSCSI target in one step"
EXAMPLES = """examples:
  lioctl export /srv/disk.img
  lioctl export /dev/sdb -p 192.0.2.10
  lioctl export rbd:rbd/vol1                       # a Ceph RBD image, through lioctl's handler
  lioctl export rbd:rbd/vol2 --create --lun-size 10G --id gw --keyring /etc/ceph/ceph.client.gw.keyring
  lioctl export rbd:rbd/vol1@monday                # a snapshot: read-only
"""


def configure(p):
    p.add_argument("device", metavar="DEVICE|FILE|rbd:POOL/IMAGE[@SNAP]",
                   help="block device, regular file, or Ceph RBD image to export")
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
    p.add_argument("--exist-ok", action="store_true", help="exporting an exported device is a no-op")
    p.add_argument("--user", action="store_true",
                   help="serve it through a TCMU user backstore and lioctl's bundled handler "
                        "(started when needed) instead of the kernel's fileio/iblock")
    g = p.add_argument_group("Ceph RBD images (rbd:POOL/IMAGE)")
    g.add_argument("--create", action="store_true", help="create the image (of --lun-size) when missing")
    g.add_argument("--grow", action="store_true", help="grow the image to --lun-size when it is smaller")
    g.add_argument("--conf", metavar="PATH", help="ceph.conf (default: $CEPH_CONF, /etc/ceph/CLUSTER.conf)")
    g.add_argument("--id", dest="ceph_id", metavar="NAME", help="cephx user without 'client.' (default: admin)")
    g.add_argument("--keyring", metavar="PATH", help="keyring file of that user (a path: never the key)")
    g.add_argument("--cluster", metavar="NAME", help="cluster name (default: ceph)")


def credentials(args) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(chap, mutual) from the options, files, environment or a prompt; resolved once per
    command (build runs again under the lock and must not ask twice)."""
    if getattr(args, "resolved_creds", None) is None:
        from lioctl.secrets import resolve_creds

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


def check_device(device: str) -> str:
    """Return 'block' or 'file'; one-line errors for everything else."""
    try:
        st = os.stat(device)
    except FileNotFoundError:
        raise NotFound(f"{device}: no such file or device") from None
    except OSError as e:
        raise LioError(f"{device}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LioError(f"{device} is a directory; give a block device or a regular file")
    if stat.S_ISCHR(st.st_mode):
        raise LioError(f"{device} is a character device; give a block device or a regular file")
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise LioError(f"{device} is not a block device or a regular file")
    if not os.access(device, os.R_OK):
        raise LioError(f"{device} is not readable")
    return "block" if stat.S_ISBLK(st.st_mode) else "file"


def find_export(snap, device: str):
    """(target, storage object) already exporting this device over iSCSI, if any."""
    real = os.path.realpath(device)
    for so in snap.storage_objects.values():
        if so.kind.backed_by(so, real):
            for lun in so.luns:
                if lun.tpg.target.fabric.name == "iscsi":
                    return lun.tpg.target, so
            return None, so
    return None, None


def rbd_spec(args):
    """The RbdSpec of an `rbd:` argument (None for a file or device)."""
    from lioctl import ceph as rbd_admin
    from lioctl.tcmu import rbdspec
    if not rbdspec.is_spec(args.device):
        if args.create or args.grow or args.conf or args.ceph_id or args.keyring or args.cluster:
            raise UsageError("--create, --grow, --conf, --id, --keyring and --cluster are for rbd:POOL/IMAGE")
        return None
    return rbd_admin.spec_from(args.device, {"conf": args.conf, "id": args.ceph_id, "keyring": args.keyring,
                                             "cluster": args.cluster})


def find_rbd_export(snap, spec):
    """(target, storage object) serving spec's image over iSCSI, if any."""
    from lioctl import ceph as rbd_admin
    for so in rbd_admin.served_by(snap, spec):
        for lun in so.luns:
            if lun.tpg.target.fabric.name == "iscsi":
                return lun.tpg.target, so
        return None, so
    return None, None


def build(args, snap) -> tuple[Plan, dict]:
    spec = rbd_spec(args)
    if spec is not None:        # an RBD image: a lioctl_rbd user backstore (lioctl/ceph.py)
        device = kind = args.device
        base = spec.image + (f"_{spec.snap}" if spec.snap else "")
        name = check_object_name(args.name or default_name(base), "backstore name")
        # RFC 3722: no '_' in an IQN (LIO takes it, open-iscsi's discovery refuses the target)
        iqn_base = base.replace("_", "-")
    else:
        device = iqn_base = os.path.abspath(args.device)
        if not os.path.exists(device) and args.lun_size:
            kind = "file"  # created sparse with --lun-size, like fileio create
        else:
            kind = check_device(device)
        name = check_object_name(args.name or default_name(device), "backstore name")
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

    backstore = user.KIND if args.user or spec else block.KIND if kind == "block" else fileio.KIND
    # Deterministic serial and LUN link name: the --dry-run script makes exactly this tree.
    serial = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lioctl:{iqn}:{backstore.name}/{name}"))
    hba = free_hba(backstore)
    plan = Plan()
    plan.add(Mount(configfs.CONFIGFS_MOUNT))
    plan.add(Modprobe("target_core_mod"))
    if spec is not None:
        sub = user.plan_user_rbd(snap, name, args.lun_size, args.device,
                                 {"conf": spec.conf, "id": spec.id, "keyring": spec.keyring, "cluster": spec.cluster},
                                 create=args.create, grow=args.grow, wwn=serial, write_back=not args.readonly,
                                 hba=hba)
    elif backstore is user.KIND:
        size = args.lun_size or FileBackend.medium_size(device)
        if not size:
            raise LioError(f"file {device} is empty; give --lun-size to use it")
        sub = user.plan_user(snap, name, size, device, "lioctl_file", wwn=serial,
                             write_back=not args.readonly, hba=hba)
    elif backstore is fileio.KIND:
        # fileio has no read-only mode: --readonly write-protects the mapped LUN / demo mode
        sub = fileio.plan_fileio(snap, name, device, args.lun_size, write_back=not args.readonly,
                                 wwn=serial, hba=hba)
    else:
        sub = block.plan_block(snap, name, device, True if args.readonly else None, wwn=serial, hba=hba)
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
    spec = rbd_spec(args)
    if spec is not None:
        target, so = find_rbd_export(snap, spec)
    elif not os.path.exists(args.device):
        return False
    else:
        target, so = find_export(snap, os.path.abspath(args.device))
    if so is None:
        return False
    if target is not None and args.exist_ok:
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
    from lioctl.lock import write_lock
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
