"""Every change to configfs is a Plan: a list of operations run by one executor.

The same plan prints as a POSIX sh script (--dry-run), is undone in reverse on failure,
and is what restore-by-difference produces.
"""

from lioctl.plan.ops import Mkdir, Op, Plan, Rmdir, Symlink, Unlink, Write, Modprobe, Mount

__all__ = ["Mkdir", "Op", "Plan", "Rmdir", "Symlink", "Unlink", "Write", "Modprobe", "Mount"]
