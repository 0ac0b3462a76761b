"""The backend interface.

Every call is self-contained (positional I/O, no shared file offset), so the daemon may run
calls for different commands concurrently on worker threads and answer them out of order;
a networked backend only has to make these calls (blocking is fine in a worker)."""

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

    def close(self) -> None:
        pass
