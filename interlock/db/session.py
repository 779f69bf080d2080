"""Engine and session factory for Postgres (asyncpg) and SQLite (aiosqlite).

Postgres URLs may be written the libpq way (``postgresql://u:p@host/db?sslmode=require``, also ``postgres://``), as
managed databases hand them out: asyncpg does not take libpq's query parameters as keyword arguments, so
``libpq_connect_args`` moves them into what it does take (its own libpq-style ``dsn`` for the TLS and session
parameters, ``timeout`` for ``connect_timeout``, ``server_settings`` for ``application_name`` and ``options``).

SQLite gets what the rest of the code assumes: enforced foreign keys, WAL with a busy timeout so concurrent
writers wait instead of failing, and real transactions (pysqlite's legacy mode would not ``BEGIN`` before a
``SELECT``, so two reads in one session could see different data: the snapshot reads spend and cursor together).
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["create_engine", "create_sessionmaker", "libpq_connect_args", "normalize_url"]

_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def normalize_url(url: str | URL) -> URL:
    """The async driver's URL for a plain one (``postgresql://``, ``postgres://``, ``sqlite://``)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


_ASYNCPG_DSN = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "passfile",
        "krbsrvname",
        "gsslib",
        "service",
    }
)
"""libpq parameters asyncpg understands in its own DSN (TLS, failover, auth files)."""


def libpq_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """A Postgres URL without libpq's query parameters, and asyncpg ``connect()`` arguments that say the same.

    ``sslmode=require`` and the other TLS parameters, ``target_session_attrs``, ``passfile``: asyncpg's ``dsn``
    (host, user, password and database still come from the URL, which override it); ``connect_timeout``
    (seconds): ``timeout``; ``application_name`` and ``options=-c name=value ...``: ``server_settings``. Anything
    else stays in the URL for SQLAlchemy (and asyncpg, which refuses what it does not know: a clear error).
    """
    if url.get_backend_name() != "postgresql" or not url.query:
        return url, {}
    query = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in url.query.items()}
    args: dict[str, Any] = {}
    dsn = {k: query.pop(k) for k in list(query) if k in _ASYNCPG_DSN}
    if dsn:
        args["dsn"] = "postgresql://?" + urlencode(dsn)
    if "connect_timeout" in query:
        seconds = float(query.pop("connect_timeout"))
        if seconds > 0:  # libpq: 0 (or negative) waits for ever
            args["timeout"] = max(seconds, 2.0)  # libpq's minimum is 2 s
    settings: dict[str, str] = {}
    if "application_name" in query:
        settings["application_name"] = query.pop("application_name")
    if "options" in query:
        words = shlex.split(query.pop("options"))
        for index, word in enumerate(words):
            pair = words[index + 1] if word == "-c" and index + 1 < len(words) else word.removeprefix("--")
            if "=" in pair and (word == "-c" or word.startswith("--")):
                name, _, value = pair.partition("=")
                settings[name.replace("-", "_")] = value
    if settings:
        args["server_settings"] = settings
    return url.set(query=query), args


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


_MAX_CACHED_STATEMENT = 1 << 20
"""Bytes of SQL up to which asyncpg keeps a statement prepared on its connection (its default is 15 KiB)."""


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    parsed = normalize_url(url)
    kwargs.setdefault("json_serializer", _json)  # span attributes: orjson is ~10x the stdlib's speed
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    parsed, connect_args = libpq_connect_args(parsed)
    if parsed.get_driver_name() == "asyncpg":
        # asyncpg keeps a prepared statement per connection only up to 15 KiB of SQL by default; the ingest
        # statement (interlock.api.crud.ingest) is ~140 KiB, and without this Postgres parsed and planned it anew
        # for every batch.
        connect_args = {"max_cacheable_statement_size": _MAX_CACHED_STATEMENT, **connect_args}
    if connect_args:
        kwargs["connect_args"] = {**connect_args, **kwargs.get("connect_args", {})}
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
        # IMMEDIATE takes the write lock up front, so every transaction queues on the busy timeout instead of
        # failing at once with SQLITE_BUSY(_SNAPSHOT) when one that read first upgrades to write after another
        # connection committed (WAL mode gives no wait there). SQLite is the embedded default of `interlock up`:
        # serialising its transactions costs little, and a request that reads then writes (a login, a tenant with a
        # unique name, a key) must not fail because a gateway's usage or status report was written meanwhile.
        # ``sqlite_begin="DEFERRED"`` keeps a read-only transaction out of the queue.
        deferred = connection.get_execution_options().get("sqlite_begin") == "DEFERRED"
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
