"""``AsyncSpool``: the gateway's durable usage spool for the event loop: the journal (``journal.Journal``), its
counters and size cap, the sync task, and the last good snapshot.

- ``append`` (event loop, synchronous) writes one encoded event into the kernel. Nothing on the request path
  waits for the disk beyond that one ``write``.
- Every ``sync_interval_s`` a task ``fdatasync``s what was written, on the spool's own thread: a power loss loses
  at most that interval; ``kill -9`` loses nothing that was appended.
- ``read`` / ``ack`` (the sender) run on the spool's thread.
- ``full`` is true while the unacknowledged events take ``max_bytes`` or more: the gateway then refuses new
  metered requests with a 503 (``usage_spool_full``) rather than answer requests whose usage it could not keep.
- The last good snapshot is kept in ``snapshot`` beside the journal (replaced atomically), so a gateway that
  restarts while the control plane is down still knows its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from interlock.gateway.tasks import cancel_and_wait
from interlock.gateway.usage.journal import Journal, Position, Replay

__all__ = ["AsyncSpool"]

log = logging.getLogger("interlock.gateway.usage")

T = TypeVar("T")
_SNAPSHOT = "snapshot"


class AsyncSpool:
    """See the module docstring. ``open`` before use, ``close`` at the end."""

    def __init__(
        self,
        path: Path | str,
        *,
        sync_interval_s: float = 0.05,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.sync_interval_s = sync_interval_s
        self.max_bytes = max_bytes
        self.journal = Journal(self.path, segment_bytes=segment_bytes)
        self.pending_events = 0
        self.pending_bytes = 0
        self.last_error: str | None = None
        """The last failure to write or sync the journal; None once a write and a sync succeed again."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="interlock-spool")
        self._opened = False
        self._sync_task: asyncio.Task[None] | None = None

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the spool's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self, on_pending: Callable[[int, memoryview], None] | None = None) -> Replay:
        """Open the journal (replaying what a previous process left) and start the sync task."""
        if _is_legacy_file(self.path):
            raise ValueError(
                f"{self.path} is a file (the SQLite spool of an older gateway); the spool is now a directory: "
                "send what it holds with that version, or point spool_path at a new directory"
            )
        replay = await self.call(self.journal.open, on_pending)
        self.pending_events = replay.pending_events
        self.pending_bytes = replay.pending_bytes
        self._opened = True
        self._sync_task = asyncio.create_task(self._sync_loop(), name="interlock-spool-sync")
        return replay

    # --- the request path --------------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self.pending_bytes >= self.max_bytes

    def append(self, seq: int, payload: bytes) -> None:
        """Write one event into the kernel; raises ``OSError`` when it cannot."""
        self.journal.append(seq, payload)
        self.pending_events += 1
        self.pending_bytes += len(payload)

    # --- the sender -------------------------------------------------------------------------------------------

    async def read(self, limit: int, max_bytes: int = 8 * 1024 * 1024) -> tuple[list[tuple[int, bytes]], Position]:
        return await self.call(self.journal.read, limit, max_bytes)

    async def ack(self, events: list[tuple[int, bytes]], position: Position) -> None:
        """The control plane has these events (the oldest unacknowledged ones) for good."""
        if not events:
            return
        await self.call(self.journal.ack, events[-1][0], position)
        self.pending_events = max(0, self.pending_events - len(events))
        self.pending_bytes = max(0, self.pending_bytes - sum(len(body) for _, body in events))

    def settle(self, ingested_seq: int) -> None:
        """A snapshot counts this gateway's events up to ``ingested_seq``: acknowledged segments up to it may go."""
        self.journal.settled = max(self.journal.settled, ingested_seq)

    # --- durability --------------------------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval_s)
            await self.sync()

    async def sync(self) -> None:
        try:
            await self.call(self.journal.sync)
        except OSError as exc:
            message = f"cannot sync the usage journal {self.path}: {exc}"
            if message != self.last_error:
                log.error("%s", message)
            self.last_error = message
            return
        if self.last_error is not None and self.last_error.startswith("cannot sync"):
            self.last_error = None

    # --- the last good snapshot ------------------------------------------------------------------------------

    async def load_snapshot(self) -> tuple[str, bytes] | None:
        return await self.call(self._load_snapshot)

    async def save_snapshot(self, etag: str, body: bytes) -> None:
        await self.call(self._save_snapshot, etag, body)

    def _load_snapshot(self) -> tuple[str, bytes] | None:
        try:
            data = (self.path / _SNAPSHOT).read_bytes()
        except FileNotFoundError:
            return None
        etag, _, body = data.partition(b"\n")
        return etag.decode("utf-8", "replace"), body

    def _save_snapshot(self, etag: str, body: bytes) -> None:
        tmp = self.path / f"{_SNAPSHOT}.tmp"
        tmp.write_bytes(etag.replace("\n", "").encode() + b"\n" + body)
        os.replace(tmp, self.path / _SNAPSHOT)

    async def close(self) -> None:
        await cancel_and_wait(self._sync_task)
        self._sync_task = None
        if self._opened:
            self._opened = False
            with contextlib.suppress(OSError):
                await self.call(self.journal.close)
        self._executor.shutdown(wait=True)


def _is_legacy_file(path: Path) -> bool:
    return path.is_file()
