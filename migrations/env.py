"""Alembic environment: async engines (asyncpg, aiosqlite), ``compare_type``, batch mode on SQLite.

Called two ways: by the ``alembic`` command (builds its own engine from the URL and runs in a new event loop),
or by ``interlock.db.migrate`` with a connection in ``config.attributes["connection"]`` (inside a running loop).
"""

from __future__ import annotations

import asyncio
import logging.config
import os

from alembic import context
from sqlalchemy.engine import Connection

from interlock.db import models  # noqa: F401  (registers every table on the metadata)
from interlock.db.base import Base
from interlock.db.migrate import compare_type, include_name, render_item
from interlock.db.session import create_engine

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("INTERLOCK_API_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "sqlite+aiosqlite:///./interlock.db"
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=compare_type,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=compare_type,
        render_item=render_item,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (given := config.attributes.get("connection")) is not None:
    _run_sync(given)
else:
    asyncio.run(_run_async())
