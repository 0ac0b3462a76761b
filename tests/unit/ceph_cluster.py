"""A one-node Ceph cluster for host tests (tests/kernel/ceph.sh, memstore, on free ports):
one per session, shared by every test that asks for the `cluster` fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


needs_ceph = pytest.mark.skipif(not shutil.which("ceph-mon") or os.geteuid() != 0,
                                reason="Debian's ceph-mon/ceph-osd (tests/setup.sh) and root")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("ceph") / "c"
    env = dict(os.environ, MON_PORT=str(_free_port()), MON_PORT_V1=str(_free_port()))
    subprocess.run(["bash", str(REPO / "tests/kernel/ceph.sh"), "up", str(d)], check=True, env=env,
                   capture_output=True, timeout=180)
    yield d
    subprocess.run(["bash", str(REPO / "tests/kernel/ceph.sh"), "down", str(d)], timeout=120)


