"""Engine and session factory for Postgres (asyncpg) and SQLite (aiosqlite).

SQLite gets what the rest of the code assumes: enforced foreign keys, WAL with a busy timeout so concurrent
writers wait instead of failing, and real transactions (pysqlite's legacy mode would not ``BEGIN`` before a
``SELECT``, so two reads in one session could see different data: the snapshot reads spend and cursor together).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["create_engine", "create_sessionmaker", "normalize_url"]

_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def normalize_url(url: str | URL) -> URL:
    """The async driver's URL for a plain one (``postgresql://``, ``postgres://``, ``sqlite://``)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    parsed = normalize_url(url)
    kwargs.setdefault("json_serializer", _json)  # span attributes: orjson is ~10x the stdlib's speed
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_setup(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front for transactions that will write, so they queue on the busy
        # timeout instead of failing with SQLITE_BUSY when upgrading a read lock.
        immediate = connection.get_execution_options().get("sqlite_begin") == "IMMEDIATE"
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
