"""What snapshot and spend polls compare against, kept in memory, so a poll that finds nothing new touches no
database.

On Postgres the ``config_changes`` trigger sends ``NOTIFY interlock_config`` with every config change, and ingest
sends ``NOTIFY interlock_spend`` when it counts events (both delivered at commit). ``ConfigWatch`` holds one
connection that ``LISTEN``s to both, and reads again what a notification says has moved: the config version, or the
gateway cursors (one small row per gateway) the spend document's version is made of; and both once after it starts
listening, so nothing committed in between is missed. While it is not listening (not started yet, the connection
lost, SQLite) ``config_version()`` and ``cursors()`` are None and the caller reads the database. A notification
arrives milliseconds after the commit: a poll in between is answered as if it came a moment earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["CONFIG_CHANNEL", "SPEND_CHANNEL", "ConfigWatch", "Cursors"]

CONFIG_CHANNEL = "interlock_config"
SPEND_CHANNEL = "interlock_spend"
log = logging.getLogger("interlock.api")


@dataclass(frozen=True, slots=True)
class Cursors:
    """The gateway cursors, as the spend version uses them."""

    count: int
    total: int
    last_update: dt.datetime | None
    seqs: dict[str, int]


class ConfigWatch:
    def __init__(self, engine: AsyncEngine, *, retry_s: float = 5.0) -> None:
        self._engine = engine
        self._retry_s = retry_s
        self._version: int | None = None
        self._cursors: Cursors | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._moved: set[str] = set()
        self._lost = False

    def config_version(self) -> int | None:
        """The config version as of the last notification; None while not listening."""
        return self._version

    def cursors(self) -> Cursors | None:
        """The gateway cursors as of the last notification; None while not listening."""
        return self._cursors

    def start(self) -> None:
        if self._engine.dialect.name == "postgresql" and self._task is None:
            self._task = asyncio.create_task(self._run(), name="interlock-config-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        self._version = self._cursors = None

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: polls read it directly until it is back
                log.warning("config version watch stopped (%s); retrying in %.0f s", exc, self._retry_s)
            self._version = self._cursors = None
            await asyncio.sleep(self._retry_s)

    def _notified(self, _connection: object, _pid: int, channel: str, _payload: object) -> None:
        self._moved.add(channel)
        self._wake.set()

    def _closed(self, _connection: object) -> None:
        self._lost = True
        self._wake.set()

    async def _listen(self) -> None:
        async with self._engine.connect() as connection:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            self._lost = False
            driver.add_termination_listener(self._closed)
            for channel in (CONFIG_CHANNEL, SPEND_CHANNEL):
                await driver.add_listener(channel, self._notified)
            try:
                self._moved = {CONFIG_CHANNEL, SPEND_CHANNEL}
                while not self._lost:
                    moved, self._moved = self._moved, set()
                    self._wake.clear()
                    if CONFIG_CHANNEL in moved:
                        self._version = int(await driver.fetchval("SELECT max(version) FROM config_changes") or 0)
                    if SPEND_CHANNEL in moved:
                        rows = await driver.fetch("SELECT gateway_id, seq, updated_at FROM gateway_cursors")
                        seqs = {str(row[0]): int(row[1]) for row in rows}
                        last = max((row[2] for row in rows), default=None)
                        self._cursors = Cursors(len(seqs), sum(seqs.values()), last, seqs)
                    if not self._moved:
                        await self._wake.wait()
            finally:
                self._version = self._cursors = None
                with contextlib.suppress(Exception):
                    for channel in (CONFIG_CHANNEL, SPEND_CHANNEL):
                        await driver.remove_listener(channel, self._notified)
            raise ConnectionError("the listening connection was closed")
