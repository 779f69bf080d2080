"""Throwaway databases for tests: fresh Postgres databases on 127.0.0.1:5432 (dropped at the end) and SQLite files.

A missing Postgres fails the test with a message saying so; it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest

__all__ = ["ADMIN_DSN", "postgres_url", "temporary_postgres"]

ADMIN_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_url(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


async def _admin(sql: str) -> None:
    try:
        connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"these tests need PostgreSQL at {ADMIN_DSN} (set INTERLOCK_TEST_POSTGRES to another server): {exc}",
            pytrace=False,
        )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def temporary_postgres(purpose: str) -> Iterator[str]:
    """``CREATE DATABASE interlock_test_<purpose>_<random>``; its SQLAlchemy URL; dropped afterwards."""
    name = f"interlock_test_{purpose}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
