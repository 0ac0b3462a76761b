"""Backstore kinds: one module per kind, and this registry of them.

Each kind (a common.Kind in lioctl/backstores/<kind>.py) owns what is specific to it: its HBA
prefix and kernel module, its create command (parameters, checks, help) and plan, how it reads
from configfs (size, device, `ls` line, --json), its saveconfig keys, their checks and the plan
that makes it again from them (restore, and the inverse of a removal), and what completes its
parameters. What all kinds share is in common.py. The tree, the saveconfig dump, loader and
restore planner and the completion ask this registry and never name a kind.

Adding a kind: its module, one line in KINDS below, and its tests (a host test of its plan
and saveconfig round trip, and a kernel test that makes, saves, restores and deletes it).
A new lioctl TCMU subtype (lioctl_rbd, say) is not a kind: it is a Backend in
lioctl/tcmu/backends/ (see that package), which the user kind reads, and, when the admin names
what it serves in a form of its own (rbd:POOL/IMAGE), a Medium in media/ (see that package).
"""

from __future__ import annotations

from lioctl.backstores import block, fileio, pscsi, ramdisk, user
from lioctl.backstores.common import Kind

KINDS: dict[str, Kind] = {k.name: k for k in (     # targetcli's order: by name
    block.KIND,
    fileio.KIND,
    pscsi.KIND,
    ramdisk.KIND,
    user.KIND,
)}
BY_HBA: dict[str, Kind] = {k.hba: k for k in KINDS.values()}
