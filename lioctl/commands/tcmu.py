"""`lioctl tcmu run|status|stop`: lioctl's own TCMU handler for user backstores.

`run` serves in the foreground (systemd's lioctl-tcmu.service runs it); `lioctl
/backstores/user create` and `export --user` start it in the background with --idle-exit
when it is not running. `status --json` prints
  {"running": bool, "pid", "since", "idle_exit",
   "devices": [{"name", "hba", "uio", "subtype", "config", "size", "block_size", "write_cache",
                "in_flight", "ring_size", "served_since", "commands", "reads", "writes",
                "read_bytes", "write_bytes", "errors", "batches", "max_batch", "threaded",
                "cached", "native", "copied", "mapped", "mapped_writes", "copied_writes", "handovers",
                "spins", "spin_hits", "io_threads", "ring_thread", "uring",
                "completes_on_doorbell_cpu" (a target exporting it has cmd_completion_affinity -2),
                "large_writes" ("inline" or "copy threads"), "doorbells" (doorbell writes),
                "asynchronous",
                "latency_us_total", "latency_us_max",
                and for asynchronous backends "backend_in_flight", "latency_us_avg", and for
                lioctl_rbd "image", "cluster_reachable", "backend_errors", "timeouts",
                "read_only", "error" (why the image cannot be served, or null)}],
   "opening": ["user_N/NAME" whose medium is being opened (a cluster connect)],
   "failed": [{"device", "error"}],
   "unserved": ["user_N/NAME" of lioctl subtypes nobody serves]}
"""

from __future__ import annotations

import os
import signal
import time

from lioctl import render
from lioctl.errors import LioError, NotPermitted
from lioctl.units import human

HELP = "run, inspect or stop lioctl's TCMU handler (user backstores)"


def configure(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    r = sub.add_parser("run", help="serve user backstores in the foreground (for systemd)")
    r.add_argument("--idle-exit", action="store_true", help="exit when no device is left to serve")
    st = sub.add_parser("start", help="start the handler in the background unless it runs, and wait "
                                      "until it serves the user backstores (default: all of lioctl's)")
    st.add_argument("devices", nargs="*", metavar="user_N/NAME", help="wait for these devices")
    sub.add_parser("status", help="devices served, queue depth and counters")
    s = sub.add_parser("stop", help="stop the handler (it answers what is queued first)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")


def run(args) -> int:
    if args.action == "run":
        return _run(args)
    if args.action == "status":
        return _status(args)
    if args.action == "start":
        return _start(args)
    return _stop(args)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NotPermitted("the TCMU handler must run as root")


def _run(args) -> int:
    _require_root()
    from lioctl.tcmu import daemon  # start-up: the handler loads only for the action that needs it
    argv = (["--idle-exit"] if args.idle_exit else []) + (["--debug"] if args.debug else [])
    return daemon.main(argv)


def unserved(served: set[str]) -> list[str]:
    from lioctl.tcmu.device import lioctl_devices  # start-up: as above
    return [k for k in lioctl_devices() if k not in served]


def _status(args) -> int:
    from lioctl.tcmu import daemon, launcher  # start-up: as above
    st = daemon.query()
    running = st is not None
    pid = daemon.running_pid()
    if not running and pid is not None and os.geteuid() != 0:
        if pid < 0:     # its runtime directory is root's: whether it runs is root's to know
            raise NotPermitted("the TCMU handler tells its status to root only")
        raise NotPermitted(f"the TCMU handler (pid {pid}) tells its status to root only")
    st = st or {"pid": pid, "devices": [], "failed": []}
    st["running"] = running
    st["unserved"] = unserved(launcher.served(st) | set(st.get("opening", [])))
    if args.json:
        render.print_json(st, "tcmu-status")
        return 0 if running else 1
    if not running:
        print("lioctl TCMU handler: not running" +
              (f"; unserved user backstores: {', '.join(st['unserved'])}" if st["unserved"] else ""))
        return 1
    up = int(time.time() - st["since"])
    print(f"lioctl TCMU handler: running, pid {st['pid']}, up {up // 3600}h{up // 60 % 60:02d}m{up % 60:02d}s"
          + (" (exits when idle)" if st.get("idle_exit") else ""))
    if st["devices"]:
        head = ("DEVICE", "UIO", "CONFIG", "SIZE", "WCE", "INFLIGHT", "MAXQ", "CMDS", "READ", "WRITTEN", "ERR")
        rows = [head]
        for d in st["devices"]:
            rows.append((f"user/{d['name']}", d["uio"], f"{d['subtype']}/{d['config']}", human(d["size"]),
                         "on" if d["write_cache"] else "off", str(d["in_flight"]), str(d["max_batch"]),
                         str(d["commands"]), human(d["read_bytes"]), human(d["write_bytes"]),
                         str(d["errors"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    else:
        print("no devices")
    for d in st["devices"]:
        if "image" in d:        # an RBD image: its cluster's state
            print(f"user/{d['name']}: rbd {d['image']}{' (read-only)' if d['read_only'] else ''}, cluster "
                  f"{'reachable' if d['cluster_reachable'] else 'NOT ANSWERING'}, {d['backend_in_flight']} in flight, "
                  f"latency {d['latency_us_avg']} us avg / {d['latency_us_max']} us max, "
                  f"{d['backend_errors']} errors ({d['timeouts']} timeouts)"
                  + (f"; ERROR: {d['error']}" if d.get("error") else ""))
    for k in st.get("opening", []):
        print(f"opening: {k} (its medium is being opened)")
    for f in st["failed"]:
        print(f"not served: {f['device']}: {f['error']}")
    for u in st["unserved"]:
        print(f"not served: {u}")
    return 0


def _start(args) -> int:
    from lioctl.tcmu import launcher  # start-up: as above
    _require_root()
    keys = args.devices or unserved(set())
    if not keys:
        _say(args, "no user backstores of lioctl's subtypes to serve", False)
        return 0
    st = launcher.ensure_serving(keys)
    _say(args, f"lioctl TCMU handler (pid {st['pid']}) serves {', '.join(sorted(keys))}", True,
         pid=st["pid"], devices=sorted(keys))
    return 0


def _say(args, message: str, changed: bool, **data) -> None:
    if args.json:
        from lioctl import results  # start-up: only for --json
        render.print_json(results.write_result(f"tcmu {args.action}", changed=changed,
                                               message=message, data=data), "write")
    else:
        print(message)


def _stop(args) -> int:
    from lioctl.tcmu import daemon  # start-up: as above
    _require_root()
    pid = daemon.running_pid()
    if pid is None:
        _say(args, "lioctl TCMU handler: not running", False)
        return 0
    if pid <= 0:
        raise LioError(f"cannot tell the handler's pid from {daemon.LOCK}")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + args.timeout
    delay = 0.02
    while daemon.running_pid() is not None:
        if time.monotonic() > deadline:
            raise LioError(f"the TCMU handler (pid {pid}) did not stop within {args.timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    _say(args, f"lioctl TCMU handler (pid {pid}) stopped", True, pid=pid)
    return 0
