"""``Spool``: the SQLite file where usage events wait until the control plane has acknowledged them.

Events are written in groups (one transaction per flush, never one per request), in WAL mode with
``synchronous=NORMAL``: a committed group survives the process being killed (``kill -9``); only an operating-system
crash may lose the last groups. An event stays after it is acknowledged until a snapshot counts it
(``ingested_seq``), because until then this gateway's budget arithmetic needs its cost after a restart; acknowledged
events are dropped after ``ACKED_RETENTION_S`` in any case. The file also keeps the last good snapshot, so a gateway
that restarts while the control plane is down still knows its keys, and the highest ``seq`` ever used, so ``seq``
keeps increasing across restarts.

The class is synchronous and not thread-safe: ``AsyncSpool`` runs every call on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["ACKED_RETENTION_S", "AsyncSpool", "Spool"]

ACKED_RETENTION_S = 3600.0
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    body BLOB NOT NULL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (seq) WHERE acked_at IS NULL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class Spool:
    """See the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def append(self, rows: Iterable[tuple[int, str, float, bytes]]) -> None:
        """Store events ``(seq, tenant_id, cost_usd, body)`` in one transaction."""
        db = self._db
        rows = list(rows)
        if not rows:
            return
        last = max(row[0] for row in rows)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO events (seq, tenant_id, cost_usd, body) VALUES (?, ?, ?, ?)", rows)
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('last_seq', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (last,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def pending(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest events the control plane has not acknowledged: ``(seq, body)``."""
        cursor = self._db.execute("SELECT seq, body FROM events WHERE acked_at IS NULL ORDER BY seq LIMIT ?", (limit,))
        return [(int(seq), bytes(body)) for seq, body in cursor]

    def ack(self, seqs: list[int], now: float | None = None) -> None:
        """Mark events acknowledged. ``seqs`` came from ``pending``: the oldest unacknowledged events, so every
        unacknowledged event between the first and the last of them is one of them, and one range update does."""
        if not seqs:
            return
        stamp = time.time() if now is None else now
        self._db.execute(
            "UPDATE events SET acked_at = ? WHERE seq BETWEEN ? AND ? AND acked_at IS NULL",
            (stamp, min(seqs), max(seqs)),
        )

    def prune(self, ingested_seq: int, now: float | None = None) -> int:
        """Drop acknowledged events the snapshot counts, or acknowledged long ago; how many went."""
        cutoff = (time.time() if now is None else now) - ACKED_RETENTION_S
        cursor = self._db.execute(
            "DELETE FROM events WHERE acked_at IS NOT NULL AND (seq <= ? OR acked_at < ?)", (ingested_seq, cutoff)
        )
        return cursor.rowcount

    def unsettled(self, above_seq: int) -> list[tuple[int, str, float]]:
        """``(seq, tenant_id, cost_usd)`` of every event above ``above_seq``, acknowledged or not, by seq."""
        cursor = self._db.execute(
            "SELECT seq, tenant_id, cost_usd FROM events WHERE seq > ? ORDER BY seq", (above_seq,)
        )
        return [(int(seq), str(tenant), float(cost)) for seq, tenant, cost in cursor]

    def last_seq(self) -> int:
        row = self._db.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM events), 0), "
            "coalesce((SELECT value FROM meta WHERE name = 'last_seq'), 0))"
        ).fetchone()
        return int(row[0])

    def counts(self) -> tuple[int, int]:
        """(events waiting to be sent, acknowledged events kept for the budget)."""
        row = self._db.execute("SELECT count(*) - count(acked_at), count(acked_at) FROM events").fetchone()
        return int(row[0]), int(row[1])

    def save_snapshot(self, etag: str, body: bytes) -> None:
        self._db.executemany(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (("snapshot_etag", etag.encode()), ("snapshot", body)),
        )

    def load_snapshot(self) -> tuple[str, bytes] | None:
        rows = dict(self._db.execute("SELECT name, value FROM meta WHERE name IN ('snapshot', 'snapshot_etag')"))
        if "snapshot" not in rows:
            return None
        return bytes(rows.get("snapshot_etag", b"")).decode(), bytes(rows["snapshot"])

    def close(self) -> None:
        self._db.close()


class AsyncSpool:
    """A ``Spool`` for the event loop: each call runs on the spool's own thread, one at a time."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="interlock-spool")
        self._spool: Spool | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("the spool is not open")
        return self._spool

    async def open(self) -> None:
        if self._spool is None:
            self._spool = await self._run(Spool, self.path)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the spool's thread (``fn`` may use ``self.spool``)."""
        return await self._run(fn, *args)

    async def load_snapshot(self) -> tuple[str, bytes] | None:
        return await self._run(self.spool.load_snapshot)

    async def save_snapshot(self, etag: str, body: bytes) -> None:
        await self._run(self.spool.save_snapshot, etag, body)

    async def close(self) -> None:
        if self._spool is not None:
            spool, self._spool = self._spool, None
            await self._run(spool.close)
        self._executor.shutdown(wait=True)
