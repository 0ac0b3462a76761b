import signal

import pytest

import ceph_cluster

cluster = ceph_cluster.cluster      # one Ceph cluster for every host test that needs it


@pytest.fixture
def bounded():
    """A ring walk that never ends becomes a failure rather than a stuck run: call it before
    the walk (one second), then signal.setitimer(signal.ITIMER_REAL, 0)."""
    def expire(*_):
        raise TimeoutError("the ring walk did not end")
    old = signal.signal(signal.SIGALRM, expire)
    yield lambda: signal.setitimer(signal.ITIMER_REAL, 1.0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)
