"""Completions of asynchronous backends, handed from the threads they finish on (librbd's)
to the handler's event loop: an eventfd the loop watches, and a queue.

A completion costs an append and, only when the loop has not been woken yet, one eventfd
write: a burst of completions wakes the loop once, which runs them all and then lets each
device that answered something ring its doorbell once (`flush` hooks). One that finishes on
the loop itself (a backend reaped there) runs at once and needs neither."""

from __future__ import annotations

import collections
import os
import threading
import time


class CompletionQueue:
    def __init__(self):
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.items = collections.deque()
        self.signalled = False
        self.dirty: dict = {}       # flush callables to run once after this wake-up's batch
        self.runs = 0               # wake-ups that found work (for the status and tests)
        self.ran = 0                # completions run
        self.loop = threading.get_ident()   # the thread that runs the loop (made it)
        self.stamp = time.monotonic()       # this wake-up's time: one clock read for its answers

    def tick(self) -> None:
        """A new wake-up of the loop: its clock (a system call under emulation, read once)."""
        self.stamp = time.monotonic()

    def post(self, fn, *args) -> None:
        """From any thread: run fn(*args) on the event loop. The flag is cleared by the loop
        before it empties the queue, so an item appended after that wakes it again."""
        self.items.append((fn, args))
        if not self.signalled:
            self.signalled = True
            try:
                os.eventfd_write(self.fd, 1)
            except OSError:
                pass    # closed: the handler is stopping

    def later(self, flush) -> None:
        """On the loop: call flush() once when the current batch is done."""
        self.dirty[flush] = None

    def run(self) -> int:
        """On the loop, after a wake-up: run every queued completion, then the flushes. The
        eventfd is read only when a post signalled it (a post after the flag is read wakes the
        loop again, to an empty queue at worst)."""
        if self.signalled:
            self.stamp = time.monotonic()
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:
                pass
            self.signalled = False
        pop = self.items.popleft
        n = 0
        while True:
            try:
                fn, args = pop()
            except IndexError:
                break
            fn(*args)
            n += 1
        if self.dirty:
            dirty, self.dirty = self.dirty, {}
            for flush in dirty:
                flush()
        if n:
            self.runs += 1
            self.ran += n
        return n

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
