"""Where the kernel runs a TCMU device's completion work: the cmd_completion_affinity of the
targets that export it (Linux 5.14 on; a target-wide param/, README "Where the target
completes a command").

The handler asks because the answer changes how it should serve. With -2 the completion runs
on the CPU that rang the doorbell, queued behind whatever the ringing thread does next:
- a ring thread that copies 1 MiB writes inline holds that work back, and 1 MiB writes swing
  between 171 and 406 MiB/s from round to round; handed to the copy threads they hold 368-383
  (guest, xfs and tmpfs);
- a thread that yields the CPU after ringing lets it run at once: 1 MiB writes 1-12% faster in
  every round (guest, xfs, ext4 and tmpfs).
With the default (-1) the completion runs on the submitting CPU: the hand-off gains nothing and
costs 1.2 ms of handler CPU per write, so large writes stay inline and nobody yields.

A device learns which targets export it from its ALUA groups' `members` (the kernel's own
back-reference, "fabric/wwn/tpgt_N/lun_M" per LUN), so nothing walks every target."""

from __future__ import annotations

import glob
import os

from lioctl import configfs

DOORBELL_CPU = -2     # SE_COMPL_AFFINITY_CURR_CPU: on the CPU that completed the command


def exporters(members: str) -> set[str]:
    """The WWNs of the targets named in an ALUA group's `members` text."""
    wwns = set()
    for line in members.splitlines():
        parts = line.strip().rsplit("/", 2)
        if len(parts) != 3 or not parts[1].startswith("tpgt_"):
            continue
        fabric, _, wwn = parts[0].partition("/")
        if fabric and wwn and "/" not in wwn:
            wwns.add(wwn)
    return wwns


def target_affinities(wwn: str, root: str = configfs.ROOT) -> list[int]:
    """cmd_completion_affinity of the target(s) named wwn, on any fabric."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(root), "*", glob.escape(wwn), "param",
                                       "cmd_completion_affinity")):
        try:
            found.append(int(configfs.read(path, "") or ""))
        except ValueError:
            pass
    return found


def affinities(dev_cfs: str, root: str = configfs.ROOT, known: dict[str, list[int]] | None = None) -> list[int]:
    """cmd_completion_affinity of every target with a LUN of the device at dev_cfs (a core/
    directory), one per target; empty when none exports it or the kernel has no such param.
    The members line names the fabric by its kernel name ("iSCSI"), not by its configfs
    directory ("iscsi"), so the WWN is looked up under every fabric. `known`: targets already
    read in this pass (WWN -> theirs), filled in, so that many devices behind one target cost
    one lookup of it."""
    wwns: set[str] = set()
    for members in glob.glob(os.path.join(glob.escape(dev_cfs), "alua", "*", "members")):
        wwns |= exporters(configfs.read(members, "") or "")
    known = {} if known is None else known
    found = []
    for wwn in sorted(wwns):
        if wwn not in known:
            known[wwn] = target_affinities(wwn, root)
        found += known[wwn]
    return found


def on_doorbell_cpu(dev_cfs: str, root: str = configfs.ROOT, known: dict[str, list[int]] | None = None) -> bool:
    """Whether a target exporting the device completes its commands where the doorbell rang."""
    return DOORBELL_CPU in affinities(dev_cfs, root, known)
