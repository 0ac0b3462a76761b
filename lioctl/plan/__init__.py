"""Every change to configfs is a Plan: a list of operations run by one executor.

The same plan prints as a POSIX sh script (--dry-run), is undone in reverse on failure,
and is what restore-by-difference produces.
"""

from lioctl.plan.ops import (CreateFile, Mkdir, Modprobe, Mount, Op, Plan, RemoveFile, Rmdir,
                             ServeUser, Symlink, Unlink, Write)

__all__ = ["CreateFile", "Mkdir", "Modprobe", "Mount", "Op", "Plan", "RemoveFile", "Rmdir",
           "ServeUser", "Symlink", "Unlink", "Write"]
