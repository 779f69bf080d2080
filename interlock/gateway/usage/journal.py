"""``Journal``: the append-only files where usage events wait until the control plane has acknowledged them.

Why a journal and not a database: a usage event must be in the kernel before the last byte of its answer leaves
(so ``kill -9`` of the gateway cannot lose an answered request's usage), and that write is on the request path.
One ``os.write`` of an already-encoded event into the page cache costs a few microseconds; an SQLite transaction
per request costs a hundred. Durability against a power loss comes from ``fdatasync`` every sync interval, off the
event loop, so a power loss may lose at most the last interval.

Layout: a directory of segment files ``<first seq, 16 hex digits>.log``, each a sequence of records::

    length (u32 LE) | CRC-32 of the payload (u32 LE) | seq (u64 LE) | payload (the event's JSON)

A new segment starts when the active one passes ``segment_bytes``. ``acked`` holds the highest ``seq`` the control
plane has acknowledged (events go in ``seq`` order, so everything at or below it is done) and its CRC, rewritten
in place (12 bytes, one sector) after every acknowledged batch; an unreadable one means "nothing acknowledged",
which costs resends, never a loss or a double count. A segment is deleted once every event in it is
acknowledged and counted by a snapshot (``settled``: the budget arithmetic needs the cost of acknowledged events
until then, also after a restart), or acknowledged more than ``ACKED_RETENTION_S`` ago.

A record cut short by a crash (a torn write after a power loss) fails its length or CRC check: ``open`` drops it
and everything after it in that segment, logging how many bytes. The sender reads records from the files
themselves (the page cache), so nothing is held in memory but positions and counters.

Threads: ``append`` runs on the event loop; ``read``, ``ack``, ``sync`` and ``open`` run on the spool's own thread
(``spool.AsyncSpool``). They share the segment list under a lock; a record is appended with one ``write`` and a
reader treats an incomplete record at the end of the active segment as not there yet.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ACKED_RETENTION_S", "HEADER", "Journal", "Position", "Replay"]

log = logging.getLogger("interlock.gateway.usage")

ACKED_RETENTION_S = 3600.0
HEADER = struct.Struct("<IIQ")
_MAX_RECORD = 16 * 1024 * 1024
_READ_CHUNK = 1 << 20
_SUFFIX = ".log"


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    last_seq: int = 0
    size: int = 0
    fd: int = -1
    """Open for appending (the active segment only), else -1."""
    acked_at: float | None = None
    """When its last event was acknowledged."""


Position = tuple[int, int]
"""(first seq of a segment, byte offset in it): where the next unacknowledged record starts."""


@dataclass(slots=True)
class Replay:
    """What ``open`` found: the highest seq ever used, and what is still unacknowledged."""

    last_seq: int
    acked: int
    pending_events: int
    pending_bytes: int
    truncated_bytes: int


def _name(first_seq: int) -> str:
    return f"{first_seq:016x}{_SUFFIX}"


def _scan(data: bytes, visit: Callable[[int, memoryview], None] | None = None) -> tuple[int, int]:
    """Walk whole, valid records from the start of ``data``: (bytes they fill, highest seq). Stops at the first
    short or corrupt record."""
    view = memoryview(data)
    pos = 0
    last = 0
    size = len(data)
    unpack = HEADER.unpack_from
    while pos + HEADER.size <= size:
        length, crc, seq = unpack(data, pos)
        end = pos + HEADER.size + length
        if length > _MAX_RECORD or end > size:
            break
        payload = view[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        if visit is not None:
            visit(seq, payload)
        last = seq
        pos = end
    return pos, last


class Journal:
    """See the module docstring."""

    def __init__(self, directory: Path | str, *, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.acked = 0
        self.settled = 0
        """The latest snapshot's ``ingested_seq``: segments at or below it may go once acknowledged."""
        self._segments: list[_Segment] = []
        self._lock = threading.Lock()
        self._retired: list[int] = []
        """File descriptors of segments that were active: synced, then closed, by ``sync``."""
        self._dirty = False
        self._dir_dirty = False
        """A segment was created or removed since the last ``sync``."""
        self._acked_fd = -1
        self._cursor: Position = (0, 0)
        self._readers: dict[int, int] = {}

    # --- start (spool thread) ------------------------------------------------------------------------------

    def open(self, on_pending: Callable[[int, memoryview], None] | None = None) -> Replay:
        """Read the directory: drop torn tails, find the highest seq and the first unacknowledged record; call
        ``on_pending(seq, payload)`` for every record above ``acked``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.acked = self._read_acked()
        segments = sorted(
            (_Segment(p, int(p.stem, 16)) for p in self.directory.glob("*" + _SUFFIX) if _is_segment(p)),
            key=lambda s: s.first_seq,
        )
        truncated = events = pending_bytes = 0
        cursor: Position | None = None
        for segment in segments:
            data = segment.path.read_bytes()
            acked = self.acked

            def visit(seq: int, payload: memoryview, acked: int = acked) -> None:
                nonlocal events, pending_bytes
                if seq > acked:
                    events += 1
                    pending_bytes += len(payload)
                    if on_pending is not None:
                        on_pending(seq, payload)

            valid, last = _scan(data, visit)
            if valid < len(data):
                truncated += len(data) - valid
                log.warning("usage journal %s: dropping %d bytes of a torn record", segment.path, len(data) - valid)
                with segment.path.open("r+b") as handle:
                    handle.truncate(valid)
            segment.size = valid
            segment.last_seq = last
            if cursor is None and last > self.acked:
                cursor = (segment.first_seq, self._offset_after(data[:valid], self.acked))
        self._segments = [s for s in segments if s.size]
        for segment in segments:
            if not segment.size:
                segment.path.unlink(missing_ok=True)
        last_seq = max([self.acked, *(s.last_seq for s in self._segments)])
        self._cursor = cursor if cursor is not None else (last_seq + 1, 0)
        return Replay(last_seq, self.acked, events, pending_bytes, truncated)

    @staticmethod
    def _offset_after(data: bytes, acked: int) -> int:
        """Byte offset of the first record above ``acked`` in a segment's valid bytes."""
        pos = 0
        while pos + HEADER.size <= len(data):
            length, _, seq = HEADER.unpack_from(data, pos)
            if seq > acked:
                return pos
            pos += HEADER.size + length
        return pos

    def _read_acked(self) -> int:
        try:
            data = (self.directory / "acked").read_bytes()
        except FileNotFoundError:
            return 0
        if len(data) != 12 or zlib.crc32(data[:8]) != int.from_bytes(data[8:], "little"):
            log.warning("usage journal: ignoring an unreadable acked file; unacknowledged events are resent")
            return 0
        return int.from_bytes(data[:8], "little")

    # --- the request path (event loop) ---------------------------------------------------------------------

    def append(self, seq: int, payload: bytes) -> None:
        """Write one event into the kernel (one ``write``). Raises ``OSError`` (disk full, directory gone)."""
        segments = self._segments
        active = segments[-1] if segments else None
        if active is None or active.fd < 0 or active.size >= self.segment_bytes:
            active = self._rotate(seq)
        record = HEADER.pack(len(payload), zlib.crc32(payload), seq) + payload
        written = os.write(active.fd, record)
        if written != len(record):  # a short write to a regular file: the disk is full
            os.ftruncate(active.fd, active.size)
            raise OSError(f"short write to {active.path} ({written} of {len(record)} bytes)")
        active.size += written
        active.last_seq = seq
        self._dirty = True

    def _rotate(self, first_seq: int) -> _Segment:
        segment = _Segment(self.directory / _name(first_seq), first_seq)
        segment.fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        with self._lock:
            if self._segments and self._segments[-1].fd >= 0:
                old = self._segments[-1]
                self._retired.append(old.fd)
                old.fd = -1
            self._segments.append(segment)
        self._dirty = self._dir_dirty = True
        return segment

    # --- durability (spool thread) -------------------------------------------------------------------------

    def sync(self) -> bool:
        """``fdatasync`` what was written since the last call; False when there was nothing to do."""
        with self._lock:
            retired, self._retired = self._retired, []
            active = self._segments[-1].fd if self._segments else -1
            dirty, self._dirty = self._dirty, False
            names, self._dir_dirty = self._dir_dirty, False
        for fd in retired:
            os.fdatasync(fd)
            os.close(fd)
        try:
            if dirty and active >= 0:
                os.fdatasync(active)
            if self._acked_fd >= 0:
                os.fdatasync(self._acked_fd)
            if names:
                _fsync_directory(self.directory)
        except OSError:
            self._dirty = self._dir_dirty = True
            raise
        return dirty or bool(retired)

    # --- the sender (spool thread) -------------------------------------------------------------------------

    def read(self, limit: int, max_bytes: int) -> tuple[list[tuple[int, bytes]], Position]:
        """Up to ``limit`` unacknowledged records (``(seq, payload)``, in seq order, about ``max_bytes`` at most)
        and the position after them, for ``ack``. A corrupt record in a finished segment (the disk failed) is
        logged and the rest of that segment skipped, so it never blocks the events after it."""
        out: list[tuple[int, bytes]] = []
        first, offset = self._cursor
        with self._lock:
            segments = [s for s in self._segments if s.first_seq >= first]
            active = self._segments[-1] if self._segments else None
        total = 0
        position: Position = self._cursor
        for segment in segments:
            start = offset if segment.first_seq == first else 0
            fd = self._reader(segment)
            while len(out) < limit and total < max_bytes:
                data = os.pread(fd, _READ_CHUNK, start)
                pos = 0
                while len(out) < limit and total < max_bytes and pos + HEADER.size <= len(data):
                    length, crc, seq = HEADER.unpack_from(data, pos)
                    end = pos + HEADER.size + length
                    if end > len(data) and length <= _MAX_RECORD and pos == 0:
                        data = os.pread(fd, HEADER.size + length, start)  # one record larger than a read
                        if len(data) < end:
                            break
                    if end > len(data) and length <= _MAX_RECORD:
                        break  # the rest comes with the next read (or is being written)
                    payload = data[pos + HEADER.size : end]
                    if length > _MAX_RECORD or zlib.crc32(payload) != crc:
                        if segment is active:
                            break  # being written right now: not there yet
                        log.error("usage journal %s: corrupt record at byte %d; skipping the rest of the segment",
                                  segment.path, start + pos)  # fmt: skip
                        start = segment.size
                        pos = 0
                        data = b""
                        break
                    out.append((seq, payload))
                    total += len(payload)
                    pos = end
                if pos == 0:
                    break
                start += pos
            position = (segment.first_seq, start)
            if len(out) >= limit or total >= max_bytes or segment is active:
                break
        return out, position

    def _reader(self, segment: _Segment) -> int:
        fd = self._readers.get(segment.first_seq)
        if fd is None:
            fd = self._readers[segment.first_seq] = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def ack(self, seq: int, position: Position, now: float | None = None) -> None:
        """The control plane has every event up to ``seq``; the next unacknowledged record is at ``position``."""
        if seq <= self.acked:
            return
        data = seq.to_bytes(8, "little")
        if self._acked_fd < 0:
            self._acked_fd = os.open(self.directory / "acked", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._dir_dirty = True
        os.pwrite(self._acked_fd, data + zlib.crc32(data).to_bytes(4, "little"), 0)  # 12 bytes: one sector
        self.acked = seq
        self._cursor = position
        stamp = time.time() if now is None else now
        with self._lock:
            for segment in self._segments[:-1]:
                if segment.acked_at is None and segment.last_seq <= seq:
                    segment.acked_at = stamp
        self.prune(now=stamp)

    def prune(self, now: float | None = None) -> int:
        """Delete segments no longer needed (see the module docstring); how many went."""
        cutoff = (time.time() if now is None else now) - ACKED_RETENTION_S
        with self._lock:
            gone = [
                s
                for s in self._segments[:-1]
                if s.acked_at is not None and (s.last_seq <= self.settled or s.acked_at < cutoff)
            ]
            self._segments = [s for s in self._segments if s not in gone]
        if gone:
            self._dir_dirty = True
        for segment in gone:
            fd = self._readers.pop(segment.first_seq, None)
            if fd is not None:
                os.close(fd)
            segment.path.unlink(missing_ok=True)
        return len(gone)

    def unsettled(self, above_seq: int, visit: Callable[[int, memoryview], None]) -> None:
        """Call ``visit(seq, payload)`` for every record above ``above_seq``, acknowledged or not."""
        with self._lock:
            segments = [s for s in self._segments if s.last_seq > above_seq]
        for segment in segments:
            data = segment.path.read_bytes()[: segment.size]
            _scan(data, lambda seq, payload: visit(seq, payload) if seq > above_seq else None)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def close(self) -> None:
        self.sync()
        with self._lock:
            for segment in self._segments:
                if segment.fd >= 0:
                    os.close(segment.fd)
                    segment.fd = -1
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        if self._acked_fd >= 0:
            os.close(self._acked_fd)
            self._acked_fd = -1


def _is_segment(path: Path) -> bool:
    stem = path.stem
    return len(stem) == 16 and all(c in "0123456789abcdef" for c in stem)


def _fsync_directory(directory: Path) -> None:
    """Make new and removed segment names durable too."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
