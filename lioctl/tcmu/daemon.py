"""The handler process: one event loop over every served device's doorbell, the TCM-USER
netlink events, signals and the status socket. It sleeps in epoll when idle (no polling).

    python -m lioctl.tcmu.daemon [--idle-exit]      (what `lioctl tcmu run` runs)
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from lioctl import rundir
from lioctl.tcmu import config as tcmu_config
from lioctl.tcmu import netlink
from lioctl.tcmu.aio import CompletionQueue
from lioctl.tcmu.backends import Backend
from lioctl.tcmu.backends import backend as backend_class
from lioctl.tcmu.device import Device, scan
from lioctl.tcmu.ring import RingError

# lioctl's private runtime directory (root only, never a link): see lioctl/rundir.py
RUN_DIR = os.environ.get("LIOCTL_TCMU_RUN_DIR", rundir.RUN_DIR)
LOCK = f"{RUN_DIR}/tcmu.lock"
SOCKET = f"{RUN_DIR}/tcmu.sock"
LOG = f"{RUN_DIR}/tcmu.log"
log = logging.getLogger("lioctl.tcmu")
# how often each device re-reads where the kernel completes its commands (Device.follow_completion):
# a LUN added or a target's cmd_completion_affinity set shows within this many seconds
FOLLOW_EVERY = 5.0


class Reaper:
    """The completion fd of a device's backend (backends/base.py: completion_fd, reap)."""
    __slots__ = ("dev", "fd")

    def __init__(self, dev, fd):
        self.dev, self.fd = dev, fd


class NativeDone:
    """The eventfd of a device's native threads, which hand commands back (device.py: reap_native)."""
    __slots__ = ("dev",)

    def __init__(self, dev):
        self.dev = dev


class AlreadyRunning(Exception):
    pass


class BadSetting(Exception):
    pass


def thread_count(var: str, default: int) -> int:
    """An I/O thread count from the environment (0: answer everything on the event loop)."""
    value = os.environ.get(var, str(default))
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise BadSetting(f"{var}={value!r} is not a thread count (0 or more)")
    return n


def open_run_file(path: str, flags: int) -> int:
    """Open one of the handler's files in the private runtime directory, never through a link."""
    try:
        return rundir.open_private(os.path.basename(path), flags, directory=os.path.dirname(path))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise rundir.UnsafeRunDir(f"{path} is a symbolic link (planted there?); not following it, remove it")
        raise


def take_lock() -> int:
    """The one-handler-per-host lock; the file holds the owner's pid. It lives in the private
    runtime directory and a link planted in its place is refused (root would follow it)."""
    fd = open_run_file(LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(running_pid())
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def running_pid() -> int | None:
    """The pid of the running handler, or None (nobody holds the lock)."""
    try:
        fd = os.open(LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError:
        return -1       # the private directory is root's: a handler may run, its pid is hidden
    except OSError as e:
        if e.errno == errno.ELOOP:      # a planted link: no handler locks through it
            return None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        try:
            return int(os.read(fd, 32).split()[0])
        except (ValueError, IndexError):
            return -1
    finally:
        os.close(fd)


class Daemon:
    def __init__(self, idle_exit: bool = False):
        self.idle_exit = idle_exit
        self.devices: dict[int, Device] = {}
        self.failed: dict[str, str] = {}     # 'user_N/NAME' -> why it is not served
        # minor -> (device, thread) of a device whose medium is being opened off the loop
        self.opening: dict[int, tuple[Device, threading.Thread]] = {}
        self.notified = False               # systemd told we serve (once the first opens ended)
        # epoll itself rather than selectors: this loop runs once per doorbell, and under
        # emulation every Python step of the per-command path shows in the latency
        self.ep = select.epoll()
        self.poll = self.ep.poll
        self.fds: dict[int, object] = {}
        self.stopping = False
        self.started = time.time()
        # Two pools: large reads from memory gain from a few threads and lose to GIL hand-offs
        # with more (1 MiB reads at qd8 in the guest: 186 MiB/s on 4, 170 on 16), while a disk
        # is kept busy only with as many threads as commands in flight (4 KiB random reads at
        # qd32 on a 5 ms disk: 306 IOPS on 4 threads, 1173 on 16)
        threads = thread_count("LIOCTL_TCMU_IO_THREADS", 4)
        disk_threads = self.disk_threads = thread_count("LIOCTL_TCMU_DISK_THREADS", 16)
        self.copy_threads = thread_count("LIOCTL_TCMU_COPY_THREADS", 2)   # each device's (device.py)
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, "tcmu-io") if threads > 0 else None
        self.disk_pool = (concurrent.futures.ThreadPoolExecutor(disk_threads, "tcmu-disk")
                          if disk_threads > 0 else None)
        # asynchronous backends (RBD) answer through this, not through threads of ours
        self.completions = CompletionQueue()

    # setup
    def _events(self) -> netlink.Events:
        try:
            return netlink.Events()
        except OSError:
            subprocess.run(["modprobe", "target_core_user"], capture_output=True)
            return netlink.Events()

    def _listen(self) -> socket.socket:
        rundir.private_dir(os.path.dirname(SOCKET))
        try:
            os.unlink(SOCKET)   # stale: we hold the lock, so its owner is gone
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.bind(SOCKET)
        os.chmod(SOCKET, 0o600)
        s.listen(8)
        s.setblocking(False)
        return s

    def run(self) -> int:
        lock = take_lock()
        Backend.state_dir = RUN_DIR
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGHUP, lambda *_: None)   # wakes the loop; a rescan follows
        self.events = self._events()
        listener = self._listen()
        self.watch(self.events.fileno(), "netlink")
        self.watch(listener.fileno(), "status")
        self.watch(wake_r.fileno(), "signal")
        self.watch(self.completions.fd, "completions")
        self.rescan(restart=True)
        log.info("lioctl TCMU handler %d serving %d device(s)%s", os.getpid(), len(self.devices),
                 f", opening {len(self.opening)}" if self.opening else "")
        self._ready()
        follow_at = 0.0
        try:
            while not self.stopping:
                if self.idle_exit and not self.devices and not self.opening:
                    log.info("no devices left, exiting")
                    break
                timeout = -1
                if self.devices:
                    now = time.monotonic()
                    if now >= follow_at:
                        self._follow_completion(list(self.devices.values()))
                        follow_at = now + FOLLOW_EVERY
                    timeout = follow_at - now
                for fd, _ in self.poll(timeout):
                    what = self.fds.get(fd)
                    if what is None:
                        continue
                    if what.__class__ is Device:
                        self._service(what)
                    elif what.__class__ is NativeDone:
                        self._service(what.dev, what.dev.native_wake)
                    elif what.__class__ is Reaper:
                        self._reap(what.dev)
                    elif what == "completions":
                        self._completions()
                    elif what == "netlink":
                        self._netlink()
                    elif what == "status":
                        self._answer(listener)
                    elif what == "signal":
                        try:
                            while wake_r.recv(64):
                                pass
                        except BlockingIOError:
                            pass
                        self.rescan(restart=False)
        finally:
            self.shutdown()
            listener.close()
            try:
                os.unlink(SOCKET)
            except OSError:
                pass
            os.close(lock)
        return 0

    def _follow_completion(self, devices) -> None:
        known: dict[str, list[int]] = {}    # a target shared by many devices is read once a pass
        for dev in devices:
            try:
                dev.follow_completion(known)
            except Exception as e:      # configfs read as the device goes away: next time
                log.debug("%s: reading its targets' completion affinity: %s", dev.key, e)

    def _reap(self, dev: Device) -> None:
        """Finished backend operations: their next steps and answers now, one doorbell each."""
        self.completions.tick()
        try:
            if dev.backend is not None:
                dev.backend.reap()
        except Exception as e:
            log.error("%s: reaping completions: %s", dev.key, e)
        self._completions()

    def _completions(self) -> None:
        """Answers of asynchronous backends: every device that got some rings its doorbell once."""
        try:
            self.completions.run()
        except Exception as e:      # a bug in a completion step: logged, the loop lives
            log.error("completion: %s", e)
        for dev in list(self.devices.values()):
            if dev.broken is not None:
                self.fail(dev, f"corrupt command ring: {dev.broken}")

    def watch(self, fd: int, what, edge: bool = False) -> None:
        self.ep.register(fd, select.EPOLLIN | (select.EPOLLET if edge else 0))
        self.fds[fd] = what

    def unwatch(self, fd: int) -> None:
        self.fds.pop(fd, None)
        try:
            self.ep.unregister(fd)
        except (OSError, ValueError):
            pass

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    # devices
    def _ready(self) -> None:
        """Tell systemd we serve once the devices present at start are served or failed (a
        restore at boot exposes LUNs after this)."""
        if not self.notified and not self.opening:
            self.notified = True
            sd_notify("READY=1")

    def rescan(self, restart: bool) -> None:
        present = scan()
        minors = {m for m, _ in present}
        for minor in list(self.devices) + list(self.opening):
            if minor not in minors:
                self.detach(minor)
        keys = {tcmu_config.key_of(n) for _, n in present}
        for key in list(self.failed):
            if key not in keys:
                del self.failed[key]
        for minor, name in present:
            if minor not in self.devices and minor not in self.opening:
                # a device failed earlier (a corrupt ring, say) comes back with a reset ring
                self.attach(minor, name, restart or tcmu_config.key_of(name) in self.failed)

    def attach(self, minor: int, name: str, restart: bool) -> None:
        """Serve a device. A medium that opens slowly (an RBD image: a cluster connect) is
        opened on a thread of its own while the loop serves the others; the device is claimed
        (its ring mapped) once it is open, and only then is it served and in the status, which
        is what `create` waits for before a LUN can reach it."""
        if tcmu_config.key_of(name) is None or minor in self.opening:
            return      # tcmu-runner's (or anyone else's): never touched
        dev = Device(minor, name)
        dev.pool, dev.disk_pool, dev.queue = self.pool, self.disk_pool, self.completions
        dev.copy_threads, dev.wait_threads = self.copy_threads, self.disk_threads
        cls = backend_class(dev.subtype)
        if cls is not None and cls.opens_slowly:
            t = threading.Thread(target=self._open_medium, args=(dev, restart), name=f"tcmu-open-{minor}",
                                 daemon=True)
            self.opening[minor] = (dev, t)
            t.start()
            return
        try:
            dev.open_medium()
        except Exception as e:   # a bad config must not stop the others
            self._cannot_serve(dev, e)
            return
        self._claim(dev, restart)

    def _open_medium(self, dev: Device, restart: bool) -> None:
        """On its own thread: open the medium, then hand the device back to the loop."""
        try:
            dev.open_medium()
            error = None
        except Exception as e:
            error = e
        self.completions.post(self._opened, dev, restart, error)

    def _opened(self, dev: Device, restart: bool, error: Exception | None) -> None:
        """On the loop: a medium opened (or not) off the loop; a device removed meanwhile is let go."""
        if self.opening.get(dev.minor, (None,))[0] is not dev:
            dev.close()
            return
        del self.opening[dev.minor]
        if error is not None:
            dev.close()
            self._cannot_serve(dev, error)
        else:
            self._claim(dev, restart)
        self._ready()

    def _cannot_serve(self, dev: Device, e: Exception) -> None:
        if isinstance(e, OSError) and e.errno == errno.EBUSY:
            why = f"uio{dev.minor} is held by another process"
        elif isinstance(e, OSError):
            why = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        else:
            why = str(e)
        self.failed[dev.key] = why
        log.error("%s: cannot serve %s/%s: %s", dev.key, dev.subtype, dev.config, why)

    def _claim(self, dev: Device, restart: bool) -> None:
        try:
            dev.claim(restart)
        except Exception as e:   # a bad ring must not stop the others
            self._cannot_serve(dev, e)
            return
        minor = dev.minor
        self.failed.pop(dev.key, None)
        self.devices[minor] = dev
        self._watch_ring(dev)
        if getattr(dev, "native_done_fd", -1) >= 0:
            self.watch(dev.native_done_fd, NativeDone(dev))
        cfd = dev.backend.completion_fd()
        if cfd is not None:
            dev.reaper = Reaper(dev, cfd)
            self.watch(cfd, dev.reaper)
        log.info("serving %s (uio%d, %s/%s, %d bytes)", dev.key, minor, dev.subtype, dev.config,
                 dev.unit.num_blocks * dev.unit.block_size)
        self._follow_completion([dev])  # on a restart its LUNs are there already
        self._service(dev)   # anything queued before we mapped it

    def _watch_ring(self, dev: Device) -> None:
        """The kernel's notifications wake the loop, unless the device's ring thread waits for
        them (it wakes the loop through native_done_fd for what is Python's). Edge-triggered:
        every notification wakes us once, so the doorbell's event count need not be read (one
        system call less per wake-up)."""
        self.unwatch(dev.fd)
        if not getattr(dev, "ring_threaded", False):
            self.watch(dev.fd, dev, edge=True)

    def detach(self, minor: int) -> None:
        if self.opening.pop(minor, None) is not None:
            return      # its thread's answer finds it gone and closes it (_opened)
        dev = self.devices.pop(minor, None)
        if dev is None:
            return
        self.failed.pop(dev.key, None)
        self.unwatch(dev.fd)
        if getattr(dev, "native_done_fd", -1) >= 0:
            self.unwatch(dev.native_done_fd)
        if getattr(dev, "reaper", None) is not None:
            self.unwatch(dev.reaper.fd)
        dev.close()
        log.info("stopped serving %s", dev.key)

    def _service(self, dev: Device, work=None) -> None:
        """dev.drain() (or `work`), with what a failure means for the device."""
        try:
            (work or dev.drain)()
        except OSError as e:
            if e.errno in (errno.EIO, errno.ENODEV, errno.ENXIO):   # device gone under us
                self.detach(dev.minor)
            else:
                log.error("%s: %s", dev.key, e)
        except RingError as e:      # corrupt ring: this device is failed, the others served on
            self.fail(dev, f"corrupt command ring: {e}")
        except Exception as e:      # a bug: the ring needs a reset, the daemon lives
            log.error("%s: %s; resetting its ring", dev.key, e)
            self._reset(dev)

    def fail(self, dev: Device, why: str) -> None:
        """Stop serving one device (its commands time out in the kernel) and say why in the
        log and the status; a rescan (SIGHUP, `lioctl tcmu start`) tries it again."""
        log.error("%s: %s; no longer served", dev.key, why)
        self.detach(dev.minor)
        self.failed[dev.key] = why

    def _reset(self, dev: Device) -> None:
        minor, name = dev.minor, dev.uio_name
        self.detach(minor)
        self.attach(minor, name, restart=True)

    def _netlink(self) -> None:
        for ev in self.events.read():
            if ev.cmd == netlink.ADDED_DEVICE and ev.minor is not None:
                self.attach(ev.minor, ev.device, restart=False)
            elif ev.cmd == netlink.REMOVED_DEVICE and ev.minor is not None:
                self.detach(ev.minor)
            elif ev.cmd == netlink.RECONFIG_DEVICE and ev.minor in self.devices:
                dev = self.devices[ev.minor]
                try:
                    before = dev.backend
                    dev.reconfigure(ev.dev_size, ev.writecache, ev.dev_cfg)
                    self._watch_ring(dev)       # a new medium may have no ring thread
                    if dev.backend is not before:       # a new medium: its own completion fd
                        if getattr(dev, "reaper", None) is not None:
                            self.unwatch(dev.reaper.fd)
                            dev.reaper = None
                        cfd = dev.backend.completion_fd()
                        if cfd is not None:
                            dev.reaper = Reaper(dev, cfd)
                            self.watch(cfd, dev.reaper)
                    log.info("%s reconfigured: %s", dev.key,
                             {k: v for k, v in (("size", ev.dev_size), ("write_cache", ev.writecache),
                                                ("config", ev.dev_cfg)) if v is not None})
                except OSError as e:
                    log.error("%s: reconfigure failed: %s", dev.key, e)

    # status
    def status(self) -> dict:
        return {"pid": os.getpid(), "since": int(self.started), "idle_exit": self.idle_exit,
                "devices": [d.status() for d in sorted(self.devices.values(), key=lambda d: d.key)],
                "opening": sorted(d.key for d, _ in self.opening.values()),
                "failed": [{"device": k, "error": v} for k, v in sorted(self.failed.items())]}

    def _answer(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall(json.dumps(self.status()).encode() + b"\n")
            except OSError:
                pass

    def _settle(self, dev: Device, timeout: float = 60.0) -> None:
        """Let an asynchronous backend's operations end and their answers reach the ring (their
        own timeout bounds them; this bound is a second one)."""
        deadline = time.monotonic() + timeout
        while dev.backend is not None and dev.backend.in_flight() and time.monotonic() < deadline:
            fds = [self.completions.fd] + ([dev.backend.completion_fd()] if dev.backend.completion_fd() else [])
            select.select(fds, [], [], 0.1)
            dev.backend.reap()
            self.completions.run()
        self.completions.run()

    def shutdown(self) -> None:
        """Clean stop: answer whatever the kernel has queued, then let go of every device. A
        medium still opening is waited for (its own timeout bounds it): a library left
        connecting on a thread while the interpreter ends can crash it."""
        for dev, t in list(self.opening.values()):
            t.join(120)
            self.detach(dev.minor)
        self.completions.run()      # their _opened: each closes its device
        for dev in list(self.devices.values()):
            try:
                dev.drain()
                dev.quiesce()
                self._settle(dev)
            except Exception as e:
                log.error("%s: %s", dev.key, e)
            self.detach(dev.minor)
        for pool in (self.pool, self.disk_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self.completions.close()


def query(timeout: float = 5.0) -> dict | None:
    """The running handler's status, or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        s.connect(SOCKET)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) we serve: a datagram to $NOTIFY_SOCKET, as sd_notify(3) does."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or path[0] not in "/@":
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(state.encode(), "\0" + path[1:] if path[0] == "@" else path)
        except OSError as e:
            log.warning("cannot notify systemd (%s): %s", path, e)


def log_format() -> str:
    """Under journald (JOURNAL_STREAM set) the journal stamps time and pid itself."""
    if os.environ.get("JOURNAL_STREAM"):
        return "%(levelname)s %(message)s"
    return "%(asctime)s lioctl-tcmu[%(process)d] %(levelname)s %(message)s"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.DEBUG if "--debug" in argv else logging.INFO,
                        format=log_format(), stream=sys.stderr)
    try:
        prof = os.environ.get("LIOCTL_TCMU_PROFILE")   # a file for cProfile stats (benchmarks)
        if prof:
            import cProfile  # only when a benchmark asks for a profile
            pr = cProfile.Profile()
            try:
                return pr.runcall(Daemon(idle_exit="--idle-exit" in argv).run)
            finally:
                pr.dump_stats(prof)
        return Daemon(idle_exit="--idle-exit" in argv).run()
    except AlreadyRunning as e:
        print(f"lioctl tcmu: a handler is already running (pid {e.args[0]})", file=sys.stderr)
        return 1
    except BadSetting as e:
        print(f"lioctl tcmu: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"lioctl tcmu: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
