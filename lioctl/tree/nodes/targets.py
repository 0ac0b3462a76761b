"""Fabrics, targets and TPGs."""

from __future__ import annotations

import os

from lioctl import configfs, wwn as wwnmod
from lioctl.errors import AlreadyExists, KernelUnavailable, LioError, NotFound
from lioctl.plan import Plan
from lioctl.tree import targets as tg
from lioctl.tree.snapshot import TPG, Fabric, Target
from lioctl.tree.nodes.base import Node, Result, writes
from lioctl.tree.nodes.tpg import AclsNode, LunsNode, PortalsNode



class FabricNode(Node):
    kind = "fabric"

    def __init__(self, ctx, parent, name, fabric: Fabric):
        super().__init__(ctx, parent, name)
        self.fabric = fabric

    def children(self):
        return [TargetNode(self.ctx, self, self.fabric.spec.display_wwn(t.wwn), t)
                for t in self.fabric.targets.values()]

    def summary(self):
        n = len(self.fabric.targets)
        extra = ""
        if self.fabric.has("discovery_auth") and os.path.isdir(self.fabric.path + "/discovery_auth"):
            on = configfs.read(self.fabric.path + "/discovery_auth/enforce_discovery_auth") == "1"
            extra = ", discovery auth on" if on else ""
        if self.fabric.spec.wwns_from and not configfs.module_loaded(self.fabric.spec.module or ""):
            if self.fabric.spec.hardware_wwns():
                extra += f", ports found but module {self.fabric.spec.module} not loaded"
        return f"Targets: {n}{extra}", None

    def groups(self):
        if self.fabric.has("discovery_auth") and os.path.isdir(self.fabric.path + "/discovery_auth"):
            return {"discovery_auth": self.fabric.path + "/discovery_auth"}
        return {}

    def info_data(self):
        d = {"path": self.path, "fabric": self.name, "module": self.fabric.spec.module,
             "features": sorted(self.fabric.spec.features), "wwn_types": list(self.fabric.spec.wwn_types),
             "known": self.fabric.spec.known, "targets": len(self.fabric.targets)}
        if self.fabric.spec.wwns_from:
            d["hardware_wwns"] = self.fabric.spec.hardware_wwns()
        return d

    def exist_ok_create(self, wwn: str | None = None):
        """--exist-ok: the target named (or derived: from:NAME) is already there; a target has
        nothing else create sets."""
        if not wwn:
            return None
        spec = self.fabric.spec
        t = self.fabric.targets.get(spec.cfs_wwn(tg.normalize_target_wwn(spec, wwn)))
        return ("target", t, []) if t else None

    @writes
    def ui_create(self, wwn: str | None = None):
        """Create a target; the WWN is generated when omitted (iSCSI: iqn/naa/eui).
        Example: /iscsi create iqn.2003-01.org.example:t1
        Example: /loopback create"""
        spec = self.fabric.spec
        if spec.wwns_from and spec.module and not configfs.module_loaded(spec.module) \
                and spec.hardware_wwns():
            raise KernelUnavailable(f"{self.name}: ports exist but target-mode module {spec.module} is not "
                           f"loaded (modprobe {spec.module})")
        plan, w = tg.plan_target(self.ctx.snap, self.name, wwn,
                                 default_portal=bool(self.ctx.pref("auto_add_default_portal", True)),
                                 enable=bool(self.ctx.pref("auto_enable_tpgt", True)))
        msg = f"Created target {w}."
        if "tpgts" in spec.features:
            msg += " Created TPG 1."
        if spec.default_portal and self.ctx.pref("auto_add_default_portal", True):
            msg += f" Default portal {spec.default_portal}."
        return Result(plan=plan, message=msg, data={"wwn": w})

    @writes
    def ui_delete(self, wwn: str):
        """Delete target WWN with its TPGs, LUNs, ACLs and portals.
        Example: /iscsi delete iqn.2003-01.org.example:t1"""
        t = self.child(wwn)
        if t is None:
            raise NotFound(f"target {wwn} does not exist in /{self.name}", obj=f"/{self.name}/{wwn}")
        return Result(plan=tg.plan_delete_target(t.target), message=f"Deleted Target {t.name}.")


class TargetNode(Node):
    kind = "target"

    def __init__(self, ctx, parent, name, target: Target):
        super().__init__(ctx, parent, name)
        self.target = target

    @property
    def spec(self):
        return self.target.fabric.spec

    def children(self):
        if "tpgts" in self.spec.features:
            return [TPGNode(self.ctx, self, f"tpg{t.tag}", t) for t in self.target.tpgs.values()]
        tpg = self.target.tpgs.get(1) or next(iter(self.target.tpgs.values()), None)
        return tpg_children(self, tpg) if tpg else []

    def summary(self):
        if "tpgts" in self.spec.features:
            return f"TPGs: {len(self.target.tpgs)}", None
        tpg = next(iter(self.target.tpgs.values()), None)
        if tpg and tpg.nexus:
            return f"nexus {tpg.nexus}", True
        return "", None

    def info_data(self):
        return {"path": self.path, "wwn": self.name, "fabric": self.target.fabric.name,
                "tpgs": sorted(self.target.tpgs)}

    def groups(self):
        """The TPG's groups on fabrics without TPG tags, and the target's own attrib/ and
        param/ (cmd_completion_affinity: where the kernel completes its commands). A TPG
        group that is empty (loopback's param/) gives its name to the target's; one that is
        not keeps it, and the target's is target-NAME."""
        g = {}
        if "tpgts" not in self.spec.features and self.target.tpgs:
            g = tpg_groups(next(iter(self.target.tpgs.values())))
        for name, sub in (("attribute", "attrib"), ("parameter", "param")):
            d = f"{self.target.path}/{sub}"
            if not os.path.isdir(d) or not os.listdir(d):
                continue
            if name in g and os.listdir(g[name]):
                name = "target-" + name
            g[name] = d
        return g

    def __getattr__(self, item):
        # fabrics without TPG tags expose the TPG's own commands on the target
        if item.startswith("ui_") and "tpgts" not in self.spec.features and self.target.tpgs:
            tpgn = TPGNode(self.ctx, self.parent, self.name, next(iter(self.target.tpgs.values())))
            return getattr(tpgn, item)
        raise AttributeError(item)

    def exist_ok_create(self, tag: str | None = None):
        t = self.target.tpgs.get(int(tag)) if tag is not None and str(tag).isdigit() else None
        return ("tpg", t, []) if t else None

    @writes
    def ui_create(self, tag: str | None = None):
        """Create TPG TAG (the next free one when omitted).
        Example: /iscsi/iqn.2003-01.org.example:t1 create 2"""
        if "tpgts" not in self.spec.features:
            raise LioError(f"{self.target.fabric.name} targets have a single TPG")
        t = int(tag) if tag is not None and str(tag).isdigit() else None
        if tag is not None and t is None or t is not None and not 1 <= t <= 65535:
            raise LioError(f"TPG tag {tag!r} is not in 1-65535")
        if t is None:
            t = next(i for i in range(1, 65536) if i not in self.target.tpgs)
        if t in self.target.tpgs:
            raise AlreadyExists(f"TPG {t} already exists on {self.path}", obj=f"{self.path}/tpg{t}")
        plan = tg.plan_tpg_at(self.spec, self.target.path, t, default_portal=False,   # TPG 1's only
                              enable=bool(self.ctx.pref("auto_enable_tpgt", True)))
        return Result(plan=plan, message=f"Created TPG {t}.")

    @writes
    def ui_delete(self, tag: str):
        """Delete TPG TAG with everything in it.
        Example: /iscsi/iqn.2003-01.org.example:t1 delete tpg2"""
        t = int(tag.removeprefix("tpg")) if tag.removeprefix("tpg").isdigit() else None
        if t not in self.target.tpgs:
            raise NotFound(f"TPG {tag} does not exist on {self.path}", obj=f"{self.path}/tpg{tag}")
        return Result(plan=tg.plan_delete_tpg(self.target.tpgs[t]), message=f"Deleted TPG {t}.")


def tpg_groups(tpg: TPG) -> dict[str, str]:
    g = {}
    for name, sub in (("attribute", "attrib"), ("parameter", "param"), ("auth", "auth")):
        if os.path.isdir(f"{tpg.path}/{sub}"):
            g[name] = f"{tpg.path}/{sub}"
    return g


def tpg_children(parent: Node, tpg: TPG) -> list[Node]:
    fab = tpg.target.fabric
    out: list[Node] = []
    if fab.has("acls"):
        out.append(AclsNode(parent.ctx, parent, "acls", tpg))
    out.append(LunsNode(parent.ctx, parent, "luns", tpg))
    if fab.has("nps"):
        out.append(PortalsNode(parent.ctx, parent, "portals", tpg))
    return out


class TPGNode(Node):
    kind = "tpg"

    def __init__(self, ctx, parent, name, tpg: TPG):
        super().__init__(ctx, parent, name)
        self.tpg = tpg

    def children(self):
        return tpg_children(self, self.tpg)

    def summary(self):
        t = self.tpg
        bits = []
        for attr, on, off in t.target.fabric.spec.tpg_summary:
            bits.append(on if configfs.read(f"{t.path}/attrib/{attr}") == "1" else off)
        if t.nexus:
            bits.append(f"nexus {t.nexus}")
        return ", ".join(bits), t.enabled

    def groups(self):
        return tpg_groups(self.tpg)

    def info_data(self):
        d = self.tpg.to_json(self.ctx.show_secrets)
        d["path"] = self.path
        return d

    @writes
    def ui_enable(self):
        """Enable this TPG.
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 enable"""
        return self._switch("1", "enabled")

    @writes
    def ui_disable(self):
        """Disable this TPG (logged-in sessions are dropped).
        Example: /iscsi/iqn.2003-01.org.example:t1/tpg1 disable"""
        return self._switch("0", "disabled")

    def _switch(self, value: str, done: str) -> Result:
        if not os.path.exists(self.tpg.path + "/enable"):
            raise LioError(f"{self.path}: this fabric has no TPG enable switch")
        plan = Plan()
        plan.write(self.tpg.path + "/enable", value)
        return Result(plan=plan, message=f"{self.path} {done}.")

    @writes
    def ui_set_nexus(self, wwn: str | None = None):
        """Set the loopback/vhost nexus initiator WWN (generated when omitted).
        Example: /vhost/naa.5001405000000abc/tpg1 set_nexus
        Example: /loopback/naa.5001405000000abd set_nexus naa.5001405000000abe"""
        if not self.tpg.target.fabric.has("nexus"):
            raise LioError(f"{self.path}: this fabric has no nexus")
        value = wwnmod.normalize(("naa", "free"), wwn)[0] if wwn else wwnmod.generate("naa")
        plan = Plan()
        plan.write(self.tpg.path + "/nexus", value, undoable=False)
        return Result(plan=plan, message=f"{self.path}: nexus {value}")
