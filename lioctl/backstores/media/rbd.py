"""The RBD medium: `rbd:POOL/IMAGE[@SNAP]`, served by lioctl's lioctl_rbd subtype (the handler
itself speaks to librbd: lioctl/tcmu/backends/rbd.py). Everything the lioctl command does with
an image before the user kind plans its backstore lives here: the spec and its options, the
image's size, create and grow (plan ops), what already serves it (export, unexport) and the
pools and images completion offers. Through Debian's python3-rados / python3-rbd, every call
bounded by a timeout (an unreachable monitor is a one-line error, never a hang).

The modules are not on PyPI. A venv made without --system-site-packages (lioctl's default
install: `pip install` into a venv on Debian's python3) does not see them, so they are loaded
from the distribution's directory for this interpreter's own ABI (rados.cpython-311-x86_64-
linux-gnu.so for Debian's 3.11), those two modules only: nothing else of the system's
site-packages can shadow the venv's packages."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field

from lioctl.backstores.media.base import Medium, Option, Prepared, flag, user_backstores
from lioctl.errors import Conflict, InUse, LioError, NotFound
from lioctl.plan.ops import Op
from lioctl.tcmu import rbdspec
from lioctl.tcmu.rbdspec import RbdSpec
from lioctl.units import parse_size

PACKAGES = "python3-rbd python3-rados"
DIST_PACKAGES = ("/usr/lib/python3/dist-packages",)
CONNECT_TIMEOUT = 10        # seconds, for create/export; completion uses 2
_modules = None


def modules():
    """(rados, rbd), or a one-line LioError naming the packages."""
    global _modules
    if _modules is not None:
        return _modules
    try:        # Debian's, optional: loaded only when an RBD image is asked about
        import rados
        import rbd
    except ImportError:
        rados = rbd = None
        for d in DIST_PACKAGES:
            try:
                rados = _load(d, "rados")
                rbd = _load(d, "rbd")
                break
            except ImportError:
                continue
        if rbd is None:
            abi = importlib.machinery.EXTENSION_SUFFIXES[0]
            raise LioError(f"RBD backstores need Debian's {PACKAGES} for this Python "
                           f"({sys.executable}, modules *{abi}): apt install {PACKAGES}") from None
    _modules = (rados, rbd)
    return _modules


def _load(directory: str, name: str):
    if name in sys.modules:
        return sys.modules[name]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, name + suffix)
        if os.path.exists(path):
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod     # rbd's module init imports rados by name
            try:
                spec.loader.exec_module(mod)
            except Exception:
                del sys.modules[name]
                raise ImportError(f"cannot load {path}")
            return mod
    raise ImportError(name)


def _what(spec: RbdSpec) -> str:
    return f"Ceph cluster {spec.cluster or 'ceph'} ({spec.conf_path()}, client.{spec.id or 'admin'})"


class Session:
    """A connection for one command; every call below is bounded by `timeout`."""

    def __init__(self, spec: RbdSpec, timeout: int | None = None):
        rados, self.rbd = modules()
        timeout = timeout or spec.timeout or CONNECT_TIMEOUT
        self.spec = spec
        if not os.path.exists(spec.conf_path()):
            raise LioError(f"no Ceph configuration at {spec.conf_path()} (set conf=, or CEPH_CONF)")
        if spec.keyring and not os.path.exists(spec.keyring):
            raise LioError(f"no keyring at {spec.keyring}")
        t = str(timeout)
        conf = {"client_mount_timeout": t, "rados_mon_op_timeout": t, "rados_osd_op_timeout": t,
                "log_file": "", "admin_socket": "", "log_to_stderr": "false", "err_to_stderr": "false"}
        if spec.keyring:
            conf["keyring"] = spec.keyring
        try:
            self.cluster = rados.Rados(conffile=spec.conf_path(), rados_id=spec.id or "admin",
                                       clustername=spec.cluster or "ceph", conf=conf)
            self.cluster.connect()
        except Exception as e:      # rados.Error and its kin: one line, never the key
            raise LioError(f"cannot connect to {_what(spec)}: {_why(e)}") from None
        self.rados = rados

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cluster.shutdown()

    def ioctx(self, pool: str):
        try:
            return self.cluster.open_ioctx(pool)
        except self.rados.ObjectNotFound:
            raise NotFound(f"Ceph pool {pool!r} does not exist") from None
        except Exception as e:
            raise LioError(f"Ceph pool {pool}: {_why(e)}") from None

    def image_size(self, pool: str, image: str, snap: str | None = None) -> int | None:
        """The image's (or snapshot's) size in bytes; None when there is no such image."""
        with self.ioctx(pool) as io:
            try:
                with self.rbd.Image(io, image, snapshot=snap, read_only=True) as img:
                    return img.size()
            except self.rbd.ImageNotFound:
                if snap:
                    try:
                        with self.rbd.Image(io, image, read_only=True):
                            pass
                    except self.rbd.ImageNotFound:
                        return None
                    raise NotFound(f"RBD image {pool}/{image} has no snapshot {snap!r}") from None
                return None
            except Exception as e:
                raise LioError(f"RBD image {pool}/{image}: {_why(e)}") from None

    def create(self, pool: str, image: str, size: int) -> None:
        with self.ioctx(pool) as io:
            try:
                self.rbd.RBD().create(io, image, size)
            except Exception as e:
                raise LioError(f"cannot create RBD image {pool}/{image}: {_why(e)}") from None

    def remove(self, pool: str, image: str) -> None:
        with self.ioctx(pool) as io:
            self.rbd.RBD().remove(io, image)

    def resize(self, pool: str, image: str, size: int) -> None:
        with self.ioctx(pool) as io:
            try:
                with self.rbd.Image(io, image) as img:
                    img.resize(size)
            except Exception as e:
                raise LioError(f"cannot resize RBD image {pool}/{image}: {_why(e)}") from None

    def pools(self) -> list[str]:
        return sorted(self.cluster.list_pools())

    def images(self, pool: str) -> list[str]:
        with self.ioctx(pool) as io:
            return sorted(self.rbd.RBD().list(io))


def _why(e: Exception) -> str:
    errno_ = getattr(e, "errno", None)
    text = str(e).strip() or type(e).__name__
    if errno_ == 110 or "timed out" in text.lower():
        return "timed out (are the monitors reachable?)"
    if errno_ in (1, 13) or "permission" in text.lower():
        return f"permission denied (check the cephx user and keyring): {text}"
    return text


def resolve(spec: RbdSpec, size: int | None, create: bool = False, grow: bool = False) -> tuple[int, list[Op]]:
    """The LUN's size and what must be done to the image first (create, grow) for
    `create NAME [SIZE] rbd:POOL/IMAGE`: size omitted = the image's; a different size is an
    error naming both, unless grow (bigger only) or the image is to be created."""
    with Session(spec) as s:
        have = s.image_size(spec.pool, spec.image, spec.snap)
    if have is None:
        if spec.snap:
            raise NotFound(f"RBD image {spec.pool}/{spec.image} does not exist")
        if not create:
            raise NotFound(f"RBD image {spec.pool}/{spec.image} does not exist (--create SIZE makes it)")
        if not size:
            raise LioError(f"--create needs a size for the new RBD image {spec.pool}/{spec.image}")
        return size, [CreateImage(spec.name, spec=spec, size=size)]
    if create and not grow and size and size != have:
        raise Conflict(f"RBD image {spec.name} already exists with {have} bytes, not {size}")
    if not size or size == have:
        return have, []
    if size > have and grow and not spec.snap:
        return size, [GrowImage(spec.name, spec=spec, size=size, before=have)]
    raise Conflict(f"size {size} differs from RBD image {spec.name}'s {have} bytes"
                   + (" (grow=true makes the image bigger)" if size > have and not spec.snap else ""))


@dataclass(frozen=True)
class ImageOp(Op):
    """A step on an RBD image (path: POOL/IMAGE), through a session of its own."""
    in_configfs = False
    spec: RbdSpec = field(default=None, kw_only=True)
    size: int = field(default=0, kw_only=True)
    verb = ""                   # the rbd tool's subcommand doing the same

    def apply(self):
        with Session(self.spec) as s:
            return self.run(s)

    def run(self, s: Session):
        raise NotImplementedError

    def sh(self):
        size = f"--size {self.size}B " if self.size else ""
        return f"rbd {_cli(self.spec)}{self.verb} {size}{self.spec.name}"


@dataclass(frozen=True)
class CreateImage(ImageOp):
    """A new RBD image, removed again on rollback (it holds nothing yet)."""
    verb = "create"

    def run(self, s):
        s.create(self.spec.pool, self.spec.image, self.size)
        return RemoveImage(self.path, spec=self.spec)

    def describe(self):
        return f"create RBD image {self.spec.name} ({self.size} bytes)"


@dataclass(frozen=True)
class RemoveImage(ImageOp):
    verb = "rm"

    def run(self, s):
        s.remove(self.spec.pool, self.spec.image)

    def describe(self):
        return f"remove RBD image {self.spec.name}"


@dataclass(frozen=True)
class GrowImage(ImageOp):
    """Grow an image before its LUN is made (not shrunk back on rollback: data stays safe)."""
    verb = "resize"
    before: int = field(default=0, kw_only=True)

    def run(self, s):
        s.resize(self.spec.pool, self.spec.image, self.size)

    def describe(self):
        return f"grow RBD image {self.spec.name} from {self.before} to {self.size} bytes"


def _cli(spec: RbdSpec) -> str:
    """The rbd tool's options for the same cluster (a keyring path, never a key)."""
    out = []
    if spec.conf:
        out.append(f"-c {spec.conf}")
    if spec.cluster:
        out.append(f"--cluster {spec.cluster}")
    if spec.id:
        out.append(f"--id {spec.id}")
    if spec.keyring:
        out.append(f"--keyring {spec.keyring}")
    return " ".join(out) + (" " if out else "")


def bounded(fn, timeout: float, default):
    """fn() in a thread, or default when it takes longer (completion: Tab never hangs)."""
    out = [default]

    def run():
        try:
            out[0] = fn()
        except Exception:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # librados, still connecting on that thread, crashes the interpreter's teardown
        # (SIGSEGV, unflushed output): leave at once when the command is done
        import atexit
        atexit.register(_leave_now)
    return out[0]


def _leave_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def complete_names(prefix: str, spec_options: dict | None = None, timeout: float = 2.0) -> list[str]:
    """'rbd:' completions: 'rbd:POOL/' from the cluster's pools, 'rbd:POOL/IMAGE' once a pool
    is typed; [] when the cluster does not answer within timeout."""
    body = prefix[len(rbdspec.PREFIX):]
    pool, slash, _ = body.partition("/")

    def ask():
        spec = spec_from(f"rbd:{pool or 'x'}/x", dict(spec_options or {}))
        with Session(spec, timeout=max(1, int(timeout))) as s:
            if slash:
                return [f"rbd:{pool}/{i}" for i in s.images(pool)]
            return [f"rbd:{p}/" for p in s.pools()]
    names = bounded(ask, timeout, [])
    return [n for n in names if n.startswith(prefix)]


def spec_from(arg: str, options: dict) -> RbdSpec:
    """`rbd:POOL/IMAGE[@SNAP]` and the admin's options; no conf= takes CEPH_CONF, as the Ceph
    tools do (written into the config: the handler does not see the admin's environment)."""
    options = {k: v for k, v in options.items() if k in rbdspec.OPTIONS and v not in (None, "")}
    if "conf" not in options and os.environ.get("CEPH_CONF"):
        options["conf"] = os.path.abspath(os.environ["CEPH_CONF"])
    for k in ("conf", "keyring"):
        if k in options:
            options[k] = os.path.abspath(options[k])
    if "timeout" in options:
        try:
            options["timeout"] = int(options["timeout"])
        except ValueError:
            raise LioError(f"RBD timeout must be a number of seconds, not {options['timeout']!r}") from None
    try:
        return rbdspec.parse_spec(arg, **options)
    except rbdspec.SpecError as e:
        raise LioError(str(e)) from None


def served(snap) -> list[tuple[object, RbdSpec]]:
    """The lioctl_rbd user backstores, each with the image it serves."""
    out = []
    for so, config in user_backstores(snap, rbdspec.SUBTYPE):
        try:
            out.append((so, rbdspec.parse_config(config)))
        except rbdspec.SpecError:
            continue
    return out


def served_by(snap, spec: RbdSpec, loose: bool = False) -> list:
    """The user backstores serving spec's image (or that snapshot of it); loose: whatever
    cluster they name (unexport rbd:POOL/IMAGE needs no --conf)."""
    return [so for so, other in served(snap) if other.snap == spec.snap and (
        (other.pool, other.image) == (spec.pool, spec.image) if loose else other.same_image(spec))]


class Rbd(Medium):
    name = "rbd"
    prefix = rbdspec.PREFIX
    subtype = rbdspec.SUBTYPE
    form = "rbd:POOL/IMAGE[@SNAP]"
    what = "RBD image"
    nouns = ("Ceph RBD image",)
    sized = True
    options = (
        Option("create", "create the image (of --lun-size) when missing", export="--create"),
        Option("grow", "grow the image to --lun-size when it is smaller", export="--grow"),
        Option("conf", "ceph.conf (default: $CEPH_CONF, /etc/ceph/CLUSTER.conf)", "PATH", "--conf", True),
        Option("id", "cephx user without 'client.' (default: admin)", "NAME", "--id", True),
        Option("keyring", "keyring file of that user (a path: never the key)", "PATH", "--keyring", True),
        Option("cluster", "cluster name (default: ceph)", "NAME", "--cluster", True),
        Option("timeout", "seconds each cluster call may take", "SECONDS"),
    )
    create_help = """CFGSTRING rbd:POOL/IMAGE[@SNAP] serves a Ceph RBD image (lioctl_rbd): SIZE omitted is
the image's; --create makes a missing image of SIZE; --grow makes the image SIZE when
bigger; @SNAP is read-only; conf=, id=, keyring= (a path: never a key), cluster= and
timeout= (seconds) say how to reach the cluster (default: CEPH_CONF or
/etc/ceph/ceph.conf, client.admin)."""
    create_examples = (
        "/backstores/user create vol1 rbd:rbd/vol1",
        "/backstores/user create vol2 10G rbd:rbd/vol2 --create id=gw keyring=/etc/ceph/ceph.client.gw.keyring",
        "/backstores/user create rbd1 10G rbd/pool/image subtype=rbd",     # tcmu-runner's handler
    )
    export_title = "Ceph RBD images (rbd:POOL/IMAGE)"
    export_examples = (
        "lioctl export rbd:rbd/vol1                       # a Ceph RBD image, through lioctl's handler",
        "lioctl export rbd:rbd/vol2 --create --lun-size 10G --id gw --keyring /etc/ceph/ceph.client.gw.keyring",
        "lioctl export rbd:rbd/vol1@monday                # a snapshot: read-only",
    )
    unexport_examples = ("lioctl unexport rbd:rbd/vol1         # the RBD image export made (the image itself stays)",)

    def prepare(self, snap, arg, size, options, subtype=None):
        create, grow = flag(options.get("create"), "create"), flag(options.get("grow"), "grow")
        spec = spec_from(arg, options)
        if spec.read_only and (create or grow):
            raise LioError(f"snapshot {spec.name} is read-only: it cannot be created or grown here")
        for so, other in served(snap):
            if other.same_image(spec):
                raise InUse(f"RBD image {spec.pool}/{spec.image} is already served by {so.tree_path}")
        lun_size, before = resolve(spec, parse_size(size) if size else None, create, grow)
        return Prepared(self.subtype, spec.config(), lun_size, before)

    def export_names(self, arg, size):
        spec = spec_from(arg, {})
        base = spec.image + (f"_{spec.snap}" if spec.snap else "")
        # RFC 3722: no '_' in an IQN (LIO takes it, open-iscsi's discovery refuses the target)
        return arg, base, base.replace("_", "-")

    def exports(self, snap, arg, options, loose=False):
        return served_by(snap, spec_from(arg, {} if loose else options), loose)

    def spec_of(self, so):
        config = so.user_config or ""
        if config.startswith(self.subtype + "/"):
            return self.prefix + config[len(self.subtype) + 1:].split(";")[0]
        return None

    def complete(self, word, options):
        return complete_names(word, {o.name: options.get(o.name) for o in self.options if o.locates})

    def check_change(self, so, size, where):
        if size < so.size:
            raise LioError(f"{where}: an RBD image is grown, never shrunk, under a LUN "
                           f"({size} < {so.size} bytes)")


MEDIUM = Rbd()
