"""What one configfs attribute costs to read in this guest: the floor under save, diff and a
no-op restore, which must read every attribute a saved configuration names.

    bash tests/kernel/boot.sh bash -c 'bash tests/kernel/prepare-guest.sh; /opt/lioctl-venv/bin/python bench/configfs_cost.py'

Builds the large configuration, then reads every storage object's attrib/ files: by absolute
path, relative to an open directory, from two threads or processes, and lstat alone (the lookup, which
configfs redoes on every access because it keeps no attribute dentries), with getppid as the
bare system-call cost."""

from __future__ import annotations

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernel"))
import cfs  # noqa: E402
import large_config as lc  # noqa: E402


def attribute_files() -> list[tuple[str, str]]:
    core = lc.ROOT + "/core"
    out = []
    for hba in sorted(os.listdir(core)):
        if not hba.startswith("fileio_"):
            continue
        for so in os.scandir(f"{core}/{hba}"):
            if so.is_dir(follow_symlinks=False):
                g = so.path + "/attrib"
                out += [(g, n) for n in sorted(os.listdir(g))]
    return out


def by_path(files):
    for g, n in files:
        fd = os.open(f"{g}/{n}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.read(fd, 4096)
        except OSError:
            pass    # write-only attributes
        os.close(fd)


def by_dir_fd(files):
    cur, dfd = None, -1
    for g, n in files:
        if g != cur:
            if dfd >= 0:
                os.close(dfd)
            dfd, cur = os.open(g, os.O_RDONLY | os.O_DIRECTORY | os.O_PATH), g
        fd = os.open(n, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
        try:
            os.read(fd, 4096)
        except OSError:
            pass
        os.close(fd)
    if dfd >= 0:
        os.close(dfd)


def two_threads(files):
    ts = [threading.Thread(target=by_path, args=(files[i::2],)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def two_processes(files):
    pid = os.fork()
    if pid == 0:
        try:
            by_path(files[1::2])
        finally:
            os._exit(0)
    by_path(files[0::2])
    os.waitpid(pid, 0)


def lstat_only(files):
    for g, n in files:
        os.lstat(f"{g}/{n}")


def bare_syscall(files):
    for _ in files:
        os.getppid()


def main() -> None:
    cfs.clear()
    lc.build()
    files = attribute_files()
    print(f"{len(files)} attribute files of {lc.N_SO} storage objects")
    print(f"{'read by':<28}{'total s':>9}{'us/file':>9}")
    for name, fn in (("absolute path", by_path), ("open directory fd", by_dir_fd),
                     ("absolute path, 2 threads", two_threads), ("absolute path, 2 processes", two_processes),
                     ("lstat only", lstat_only),
                     ("getppid (no configfs)", bare_syscall)):
        fn(files)   # warm
        t = time.perf_counter()
        fn(files)
        dt = time.perf_counter() - t
        print(f"{name:<28}{dt:>9.2f}{dt / len(files) * 1e6:>9.0f}", flush=True)
    cfs.clear()


if __name__ == "__main__":
    main()
