"""targetcli's paths and verbs over the snapshot: one Node class per kind of object, in a module
per part of the tree (base: the machinery; backstores; targets: fabrics, targets and TPGs;
tpg: LUNs, portals, ACLs and mapped LUNs). Root is here: the top of the tree."""

from __future__ import annotations

from lioctl import __version__, configfs
from lioctl.errors import UsageError
from lioctl.tree import sessions
from lioctl.tree.fabrics import KNOWN, loaded_fabrics
from lioctl.tree.snapshot import Fabric
from lioctl.tree.nodes.backstores import (AluaNode, BackstoreKind, Backstores, StorageObjectNode,
                                          TgPtGpNode, UserHandlerKind)
from lioctl.tree.nodes.base import (Context, Node, Result, first_sentence, resolve, split_doc,
                                    to_json_tree, usage, writes)
from lioctl.tree.nodes.targets import FabricNode, TargetNode, TPGNode
from lioctl.tree.nodes.tpg import (AclNode, AclsNode, LunNode, LunsNode, MappedLunNode, PortalNode,
                                   PortalsNode)

__all__ = ["AclNode", "AclsNode", "AluaNode", "BackstoreKind", "Backstores", "Context", "FabricNode",
           "LunNode", "LunsNode", "MappedLunNode", "Node", "PortalNode", "PortalsNode", "Result",
           "Root", "StorageObjectNode", "TPGNode", "TargetNode", "TgPtGpNode", "UserHandlerKind",
           "first_sentence", "resolve", "split_doc", "to_json_tree", "usage", "writes"]


class Root(Node):
    kind = "root"

    def __init__(self, ctx: Context):
        super().__init__(ctx, None, "")

    def children(self):
        out = [Backstores(self.ctx, self, "backstores")]
        names = set(loaded_fabrics())
        for n, spec in KNOWN.items():
            if spec.listed or spec.wwns_from and spec.hardware_wwns():
                names.add(n)
        for n in sorted(names):
            fab = self.ctx.snap.fabrics.get(n) or Fabric(n, f"{configfs.ROOT}/{n}")
            out.append(FabricNode(self.ctx, self, n, fab))
        return out

    def summary(self):
        return ("configfs not mounted" if not self.ctx.snap.mounted else ""), None

    def ui_version(self):
        """Show lioctl's and the kernel target's versions.
        Example: version"""
        kv = configfs.read(configfs.ROOT + "/version", "not loaded")
        return Result(data={"lioctl": __version__, "kernel_target": kv},
                      text=f"lioctl {__version__}\nkernel: {kv}")

    def ui_sessions(self, action: str = "list", sid: str | None = None):
        """List logged-in initiator sessions (ACL and demo-mode): sessions [list|detail] [SID].
        Example: sessions
        Example: sessions detail"""
        if action not in ("list", "detail"):
            raise UsageError(f"sessions: {action!r} is not list or detail")
        found = sessions.collect(self.ctx.snap, action == "detail", sid)
        return Result(data=found, text=sessions.text(found, action == "detail"))
