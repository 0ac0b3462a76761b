"""user (TCMU): blocks served by a handler in user space, lioctl's own (the subtypes in
lioctl/tcmu/backends/) or tcmu-runner's. dev_config is '<subtype>/<config>'; targetcli shows
each handler's backstores under /backstores/user:HANDLER.

A new lioctl subtype needs nothing here: its rules (config check, backing file, medium size,
completion) are read from its Backend class in lioctl/tcmu/backends/."""

from __future__ import annotations

import errno
import glob
import inspect
import os

from lioctl.backstores import common
from lioctl.errors import LioError, NotFound, UsageError
from lioctl.plan import CreateFile, Plan, ServeUser, Write
from lioctl.saveconfig import rules
from lioctl.tcmu import config as tcmu_config
from lioctl.tcmu.backends import BACKENDS, backend
from lioctl.tcmu.backends.base import Backend
from lioctl.units import parse_bool, parse_size

# TCMU attributes that only take before enable, or that send a netlink RECONFIG after it
TCMU_BEFORE_ENABLE = ("max_data_area_mb", "data_pages_per_blk", "cmd_ring_size_mb", "emulate_write_cache",
                      "cmd_time_out", "qfull_time_out")
TCMU_CONTROL_ATTRS = ("dev_config", "dev_size", "nl_reply_supported")
# what `control=` may hand to a user backstore's control file (targetcli/rtslib pass it on as
# is; the kernel silently ignores keys it does not know, so lioctl names the ones it takes)
TCMU_CONTROL_KEYS = ("max_data_area_mb", "data_pages_per_blk", "cmd_ring_size_mb", "hw_block_size",
                     "hw_max_sectors")
TCMU_RUNNER_HANDLER_DIRS = ("/usr/lib*/tcmu-runner", "/usr/lib/*/tcmu-runner", "/usr/local/lib*/tcmu-runner")


def parse_control(control: str) -> list[tuple[str, str]]:
    """'max_data_area_mb=64,hw_block_size=4096' -> pairs, each key one the kernel takes."""
    pairs = []
    for item in control.split(","):
        key, eq, value = item.strip().partition("=")
        if key in ("dev_config", "dev_size"):
            raise LioError(f"control: {key} comes from the cfgstring and size arguments")
        if key == "nl_reply_supported":
            raise LioError("control: lioctl sets nl_reply_supported itself (-1: enable never "
                           "waits for a handler's reply)")
        if not eq or key not in TCMU_CONTROL_KEYS:
            raise LioError(f"control: {item.strip()!r} is not KEY=VALUE with KEY one of "
                           f"{', '.join(TCMU_CONTROL_KEYS)}")
        if not value.isdigit() or int(value) == 0:
            raise LioError(f"control: {key}={value!r} is not a positive number")
        if key in dict(pairs):
            raise LioError(f"control: {key} given twice")
        pairs.append((key, value))
    return pairs


def _serve(keys: list[str]) -> None:
    """lioctl's TCMU handler started if need be, serving these devices."""
    from lioctl.tcmu import launcher   # start-up: the handler's modules load only to serve
    launcher.ensure_serving(keys)


def subtype_of(so) -> str:
    return (so.user_config or "").split("/", 1)[0]


def _create_missing_file(plan: Plan, subtype: str, config: str, size: int, what: str,
                         create_missing: bool = True) -> None:
    """The backing file a subtype makes when missing (lioctl_file's), sparse, first in the plan."""
    cls = backend(subtype)
    path = cls.backing_file(config) if cls else None
    if path and not os.path.exists(path):
        if not create_missing:
            raise NotFound(f"backing file {path} of {what} does not exist")
        plan.ops.insert(0, CreateFile(path, size, True))


def plan_user(snap, name: str, size, config: str, subtype: str | None = None,
              wwn: str | None = None, hw_max_sectors: int | None = None,
              model_alias: bool = True, hba: str | None = None, validate: bool = True,
              write_back: bool | None = True, attributes: dict | None = None,
              create_missing: bool = True, control: str | None = None) -> Plan:
    """nl_reply_supported=-1 goes in before enable so enabling never waits for a netlink reply.
    `attributes` (from a saved file) that the kernel only takes before enable are written
    before it; the rest are the caller's. `control` (targetcli's control=) goes to the control
    file before enable."""
    common.check_new_name(snap, KIND.name, name)
    pairs = parse_control(control) if control else []
    if hw_max_sectors and "hw_max_sectors" in dict(pairs):
        raise LioError("hw_max_sectors given both as a parameter and in control=")
    size_bytes = parse_size(size)
    subtype = subtype or tcmu_config.DEFAULT_SUBTYPE
    if validate:
        existing = [so.user_config for so in snap.storage_objects.values() if so.kind is KIND]
        tcmu_config.validate(subtype, config, size_bytes, existing)
    plan, path = common.start(KIND, name, hba)
    _create_missing_file(plan, subtype, config, size_bytes, f"user backstore {name}", create_missing)
    plan.write(f"{path}/control", f"dev_config={subtype}/{config}", undoable=False)
    plan.write(f"{path}/control", f"dev_size={size_bytes}", undoable=False)
    if not hw_max_sectors and subtype in BACKENDS:
        # the kernel's default (128 sectors = 64 KiB) splits every large I/O into 64 KiB
        # commands, each a round trip through the ring; 1 MiB fits the data area many times
        hw_max_sectors = tcmu_config.DEFAULT_HW_MAX_SECTORS
    if "hw_max_sectors" in dict(pairs):
        hw_max_sectors = None
    if hw_max_sectors:
        plan.write(f"{path}/control", f"hw_max_sectors={int(hw_max_sectors)}", undoable=False)
    if pairs:
        plan.write(f"{path}/control", ",".join(f"{k}={v}" for k, v in pairs), undoable=False)
    plan.write(f"{path}/control", "nl_reply_supported=-1", undoable=False)
    attributes = dict(attributes or {})
    if write_back is not None and "emulate_write_cache" not in attributes:
        attributes["emulate_write_cache"] = "1" if write_back else "0"
    for k in TCMU_BEFORE_ENABLE:
        if k in attributes:
            plan.write(f"{path}/attrib/{k}", str(attributes[k]), undoable=False)
    # no emulate_model_alias for TCMU: the handler answers INQUIRY (with the name as model)
    common.enable(plan, path, wwn=wwn, model_alias=False)
    if subtype in BACKENDS:
        plan.add(ServeUser("/".join(path.split("/")[-2:]), serve=_serve))
    return plan


def plan_medium(snap, name: str, medium, arg: str, size, options: dict, subtype: str | None = None,
                **kw) -> Plan:
    """A user backstore on what `arg` names (lioctl/backstores/media/): the medium's own first
    steps (an image made, say), then the backstore; size None: the medium's."""
    prepared = medium.prepare(snap, arg, size, options, subtype)
    plan = plan_user(snap, name, prepared.size, prepared.config, prepared.subtype, **kw)
    plan.ops[0:0] = prepared.before
    return plan


class ReconfigWrite(Write):
    """A write to a served user backstore's dev_config or dev_size: the kernel hands it to the
    handler as a RECONFIG event, and refuses it (ESRCH) when no handler listens for them."""

    def apply(self):
        try:
            return super().apply()
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise
            raise LioError(f"{common.short(self.path)}: no TCMU handler is listening for the change "
                           "(start tcmu-runner, or lioctl's handler for its subtypes)") from None


def plan_change_medium(snap, so, handler: str, cfgstring: str, size) -> Plan:
    """targetcli's changemedium: a new config (medium) and size for a user backstore that stays
    exported. A missing backing file is made as at create."""
    from lioctl.backstores import media    # start-up: media load only to create, change or complete
    size = parse_size(size)
    medium = media.for_subtype(handler)
    if medium:
        medium.check_change(so, size, f"/backstores/user:{handler}/{so.name}")
    others = [o.user_config for o in snap.storage_objects.values() if o.kind is KIND and o is not so]
    tcmu_config.validate(handler, cfgstring, size, others)
    plan = Plan()
    new_cfg = f"{handler}/{cfgstring}"
    changes = []
    if new_cfg != so.user_config:
        changes.append(ReconfigWrite(f"{so.path}/attrib/dev_config", new_cfg))
    if size != so.size:
        changes.append(ReconfigWrite(f"{so.path}/attrib/dev_size", str(size)))
    if not changes:
        return plan
    _create_missing_file(plan, handler, cfgstring, size, f"user backstore {so.name}")
    if handler in BACKENDS:
        plan.add(ServeUser(f"{so.hba}/{so.name}", serve=_serve))   # the handler must be up to hear it
    for op in changes:
        plan.add(op)
    return plan


def handlers(snap) -> list[str]:
    """The user:HANDLER nodes targetcli would show (it asks tcmu-runner over D-Bus): lioctl's own
    subtypes, tcmu-runner's installed handlers, and any subtype a user backstore uses."""
    names = set(BACKENDS)
    for d in TCMU_RUNNER_HANDLER_DIRS:
        for so_file in glob.glob(f"{d}/handler_*.so"):
            names.add(os.path.basename(so_file)[len("handler_"):-len(".so")])
    for so in snap.storage_objects.values():
        if so.kind is KIND and so.user_config:
            names.add(subtype_of(so))
    return sorted(names)


def known_handler(name: str) -> bool:
    return name in tcmu_config.SUBTYPES + tcmu_config.TCMU_RUNNER_SUBTYPES


class User(common.Kind):
    name = "user"
    hba = "user"
    module = "target_core_user"
    identity = ("config", "size")
    user_space = True
    lossy = True
    planned_attributes = frozenset(TCMU_BEFORE_ENABLE + TCMU_CONTROL_ATTRS)

    def create(self, ctx, name, size=None, cfgstring=None, subtype=None, wwn=None, hw_max_sectors=None,
               write_back=None, control=None, **options):
        """Create user (TCMU) storage object NAME of SIZE. CFGSTRING is the handler's
        configuration; subtype picks the handler (lioctl_file by default: CFGSTRING is a file or
        block device, a missing file is created sparse; another of lioctl's, or a tcmu-runner
        handler); control= is targetcli's string for the kernel's control file.
        Example: /backstores/user create disk1 10G /srv/disk1.img
        Example: /backstores/user create u1 1G /srv/u1.img control=max_data_area_mb=64"""
        from lioctl.backstores import media    # start-up: media load only to create, change or complete
        if cfgstring is None and media.of(size).sized:    # a medium with a size of its own
            size, cfgstring = None, size
        medium = media.of(cfgstring, subtype)
        other = media.stray(medium, options)
        if other:
            raise LioError(f"{other[1].name}= is for {other[0].form} backstores")
        if cfgstring is None or (size is None and not medium.sized):
            raise UsageError("create needs NAME SIZE CFGSTRING (SIZE may be left out for "
                             + media.listed([m.form for m in media.MEDIA if m.sized]) + ")")
        plan = plan_medium(ctx.snap, name, medium, cfgstring, size, options, subtype, wwn=wwn,
                           hw_max_sectors=int(hw_max_sectors) if hw_max_sectors else None,
                           model_alias=common.model_alias(ctx),
                           write_back=True if write_back is None else parse_bool(write_back, "write_back"),
                           control=control)
        return plan, f"Created user storage object {name} " + (f"on {cfgstring}" if medium.prefix else f"size {size}")

    def creator(self, ctx):
        """create's signature, help and usage with each medium's parameters, form and examples
        (grammar, help and completion)."""
        from lioctl.backstores import media    # start-up: media load only to create, change or complete
        fn = super().creator(ctx)
        sig = inspect.signature(fn)
        fixed = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
        fn.__signature__ = sig.replace(parameters=fixed + [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None) for o in media.options()])
        text = [line for line in fn.__doc__.splitlines() if not line.strip().startswith("Example:")]
        examples = [line.strip() for line in fn.__doc__.splitlines() if line.strip().startswith("Example:")]
        fn.__doc__ = "\n".join(
            [line.strip() for line in text] + [f"lioctl's subtypes: {', '.join(BACKENDS)}."]
            + [m.create_help for m in media.MEDIA if m.create_help]
            + examples + [f"Example: {e}" for m in media.MEDIA for e in m.create_examples])
        fn.usage = " ".join(
            ["NAME [SIZE] CFGSTRING [subtype=…] [wwn=…] [hw_max_sectors=…] [write_back=…] [control=…]"]
            + [f"[--{o.name}]" if o.metavar is None else f"[{o.name}=…]" for o in media.options()])
        return fn

    def completion(self, param, handler=None):
        cls = backend(handler or "")
        if param != "cfgstring" or cls is None:
            return None
        own = cls.complete_config.__func__ is not Backend.complete_config.__func__
        return cls.complete_config if own else cls.config_completion

    def complete_spec(self, word, given, handler):
        from lioctl.backstores import media    # start-up: media load only to create, change or complete
        return media.complete(word, given, handler)

    def backed_by(self, so, real):
        # lioctl_file's config ends with its path
        return super().backed_by(so, real) or so.user_config.endswith("/" + real)

    def summary(self, so):
        return [so.user_config, common.size_text(so)]

    def json(self, so):
        return {"config": so.user_config}

    def dump(self, so, attributes):
        cfg = common.info_value(so, "Config")
        control = []
        mda = common.info_value(so, "MaxDataAreaMB")
        if mda and mda != "NULL":
            control.append(f"max_data_area_mb={mda}")
        # rtslib writes `control` before enable and every other attribute after it. A handler
        # that never answers netlink (lioctl's) needs enable not to wait for a reply: with a
        # tcmu-runner running (Debian's targetcli starts one over D-Bus) the kernel waits, and
        # tcmu-runner, which has no such handler, answers ENOENT and fails the enable.
        nl_reply = attributes.get("nl_reply_supported")
        if isinstance(nl_reply, int) and nl_reply <= 0:
            control.append(f"nl_reply_supported={nl_reply}")
        return {"wwn": so.wwn, "size": so.size, "config": None if cfg == "NULL" else cfg,
                "hw_max_sectors": int(common.info_value(so, "HwMaxSectors") or 0),
                "control": ",".join(control)}

    def check_saved(self, saved, path, earlier):
        """The rules `/backstores/user create` applies: the config string goes into the control
        file, where ',' and a newline start another option."""
        common.check_size(saved, path)
        cfg = rules.typed(saved.get("config"), str, path + ".config", "config")
        subtype, _, rest = cfg.partition("/")
        rules.rule(path + ".config", tcmu_config.validate, subtype, rest, saved["size"],
                   [e["config"] for e in earlier])
        hw = saved.get("hw_max_sectors")
        if hw is not None:
            rules.int_range(hw, 0, (1 << 32) - 1, path + ".hw_max_sectors", "hw_max_sectors")
        if saved.get("control") is not None:
            rules.text(saved["control"], path + ".control", "control")

    def saved_paths(self, saved):
        subtype, _, config = str(saved.get("config") or "").partition("/")
        cls = backend(subtype)
        path = cls.backing_file(config) if cls else None
        return [path] if path else []

    def plan_saved(self, saved, hba):
        subtype, _, rest = (saved.get("config") or "").partition("/")
        return plan_user(None, saved["name"], saved["size"], rest, subtype, wwn=saved.get("wwn") or None,
                         hw_max_sectors=saved.get("hw_max_sectors"), model_alias=False, hba=hba,
                         validate=False, write_back=None, attributes=saved.get("attributes"),
                         create_missing=False)


KIND = User()

