"""The backend interface, in two forms.

Synchronous (every backend): every call is self-contained (positional I/O, no shared file
offset), so the daemon may run calls for different commands concurrently on worker threads
and answer them out of order; blocking is fine in a worker.

Asynchronous (a backend with `asynchronous = True`, e.g. RBD through librbd's aio): each
`aio_*` call starts one operation and returns at once; the operation later calls
`done(ret, extra)` exactly once, from ANY thread (a library's own), with `ret` >= 0 on
success (bytes for a read, 0 otherwise) or -errno, and `extra` None except for
aio_compare_and_write's mismatch (the byte offset, within the compared data, of the first
byte that differs, with ret == -errno.EILSEQ). Buffers passed in stay valid and untouched
until done is called. A call may also raise OSError at once (nothing was started, done will
not be called). The device makes done() hand the result to the event loop (CompletionQueue
in lioctl/tcmu/aio.py): done must never block and does nothing but pass the result on.
READ, WRITE (FUA: the device chains aio_flush), SYNCHRONIZE CACHE, UNMAP, WRITE SAME and
COMPARE AND WRITE then keep any number of commands in flight with no thread per command;
anything else (VERIFY, MODE SELECT's flush) still uses the synchronous calls, on an I/O
thread when `blocking`. Optional operations a backend lacks (`None` below) fall back to the
synchronous path. `in_flight()` is what the status shows.

A backend may deliver its completions when asked rather than from its own threads:
`completion_fd()` then returns a file descriptor that becomes readable when operations have
finished, and the event loop calls `reap()`, which calls their done() right there (librbd's
event notification: no Python on the library's threads at all)."""

from __future__ import annotations


class Backend:
    size: int = 0
    thin: bool = True           # discard() is supported and the range then reads back zeros
    nonrotational: bool = False
    read_only: bool = False
    # its I/O may wait for a disk or the network: the daemon then runs reads, synchronous
    # writes, flushes and discards on I/O threads so one slow medium never stalls the event
    # loop (which serves every device); memory answers inline
    blocking: bool = True
    # opening it may wait for the network (a cluster to connect to): the daemon opens it on a
    # thread of its own and serves the device once it is open, so the other devices never wait
    opens_slowly: bool = False
    # a completed write is on stable storage (no volatile cache between the handler and the
    # medium): FUA, WRITE AND VERIFY and writes with the write cache off need no flush after it
    durable_writes: bool = False
    # every write waits for the medium (O_DIRECT), write-back ones too: all go to I/O threads
    writes_wait: bool = False

    # the handler's private runtime directory, for state a backend keeps across a crash (set by
    # the daemon once it holds the handler lock; None elsewhere: tools and tests keep nothing)
    state_dir: str | None = None

    # ---- the subtype's configuration, checked and completed before any device exists
    config_completion: str | None = None    # what completes CFGSTRING: "file", or nothing
    config_help = ""                        # CFGSTRING, in a few words (create's help)

    @classmethod
    def check_config(cls, config: str, size: int, others: list[str]) -> None:
        """Refuse (LioError, one line) a config string this subtype cannot serve at that size;
        `others`: the dev_config strings of the other user backstores."""

    @classmethod
    def from_cfgstring(cls, cfgstring: str) -> str | None:
        """The config (what follows 'SUBTYPE/' in dev_config) for a CFGSTRING in a form of this
        subtype's own, typed without subtype= (`rbd:POOL/IMAGE`, say: a form with a ':', which
        no plain config holds); None when it is not one."""
        return None

    @classmethod
    def complete_config(cls, word: str) -> list[tuple[str, str]] | None:
        """Candidates (value, what it is) of its own for a CFGSTRING being typed (pools and
        images, say), for a subtype that overrides this; the others have config_completion."""
        return None

    @classmethod
    def kernel_attributes(cls, config: str) -> dict[str, str]:
        """attrib/ values the backstore is made with (before enable) unless the admin gave them."""
        return {}

    @classmethod
    def backing_file(cls, config: str) -> str | None:
        """A file that create makes (sparse, of the backstore's size) when it is missing."""
        return None

    @classmethod
    def medium_size(cls, config: str) -> int | None:
        """The size of the medium the config names, when it has one of its own."""
        return None

    @classmethod
    def open(cls, config: str, size: int) -> "Backend":
        raise NotImplementedError

    def readv(self, bufs: list, offset: int) -> int:
        """Fill the buffers from offset; returns bytes read (short only at the end)."""
        raise NotImplementedError

    # (bufs, offset) -> bytes read, or None: a read served only from what is at hand (a page
    # cache) that never waits for the medium; the daemon answers such reads on its event loop
    # and sends the others to an I/O thread (a blocking backend that has it; None: it has not)
    readv_nowait = None

    # a descriptor the native path (tcmu/_fastpath.c) may preadv/pwritev a plain READ's or
    # WRITE's blocks through, exactly as readv/readv_nowait/writev would (native_dfd: the one
    # readv and writev use, O_DIRECT with FileBackend's `direct`); None: every command goes
    # through Python
    native_fd: int | None = None
    native_dfd: int | None = None

    def native_reads(self) -> int:
        """How the native path may read inline: 0 not at all (its wait threads read, through
        native_dfd), 1 plainly (the medium never waits), 2 from the page cache only
        (RWF_NOWAIT; what would wait goes to its wait threads)."""
        return 0

    def writev(self, bufs: list, offset: int, sync: bool = False) -> None:
        """Write the buffers at offset; sync means durable on return (FUA, or no write cache)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make every completed write durable (SYNCHRONIZE CACHE)."""

    def discard(self, offset: int, length: int) -> None:
        """Deallocate; the range reads back as zeros afterwards."""
        raise NotImplementedError

    def resize(self, size: int) -> None:
        self.size = size

    # the asynchronous form
    asynchronous: bool = False
    compare_and_write_max: int = 0   # bytes one atomic aio_compare_and_write takes (0: none)

    def aio_readv(self, bufs: list, offset: int, done) -> None:
        """Fill the buffers from offset; done(bytes read)."""
        raise NotImplementedError

    def aio_writev(self, bufs: list, offset: int, done) -> None:
        """Write the buffers at offset (durable only after a later aio_flush, unless durable_writes)."""
        raise NotImplementedError

    def aio_flush(self, done) -> None:
        """Make every write completed so far durable."""
        raise NotImplementedError

    def aio_discard(self, offset: int, length: int, done) -> None:
        """Deallocate; the range then reads back as zeros."""
        raise NotImplementedError

    aio_write_zeroes = None     # (offset, length, done): zeros written (or deallocated)
    aio_write_same = None       # (offset, length, block: bytes, done): block repeated
    aio_compare_and_write = None  # (offset, compare: bytes, data: bytes, done): atomic

    def in_flight(self) -> int:
        return 0

    def completion_fd(self) -> int | None:
        return None

    def reap(self) -> int:
        """Call done() of the operations that have finished; returns how many."""
        return 0

    def changed(self, notify) -> None:
        """Call notify() (from any thread) when the medium's size may have changed from outside
        (another host resized it); a backend that cannot tell does nothing."""

    def close(self) -> None:
        pass
