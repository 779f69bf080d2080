"""The control plane under test: one migrated Postgres database and one SQLite file per test session, emptied
before each test; the app is reached in-process through httpx's ASGITransport (``serve`` runs real uvicorn)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from interlock.api import ApiSettings, create_app, dispose_app, migrate
from interlock.db.rollups import ROLLUPS, TENANT_LATENCY_DAILY
from tests.api.support import ADMIN_TOKEN, SIGNING_KEY, fold_from, gateway_credential
from tests.db.support import temporary_postgres

TABLES = [
    "console_sessions",
    "gateway_status",
    "usage_dead_letters",
    "spans",
    "usage",
    *(rollup.table.name for rollup in ROLLUPS),
    TENANT_LATENCY_DAILY.name,
    "gateway_cursors",
    "api_keys",
    "quotas",
    "prices",
    "tenants",
]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with temporary_postgres("api") as url:
        asyncio.run(migrate(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('api') / 'interlock.db'}"
    asyncio.run(migrate(url))
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's settings."""
    return {}


@pytest_asyncio.fixture
async def app(database_url: str, settings_overrides: dict[str, Any]) -> AsyncIterator[FastAPI]:
    overrides = {"gateway_signing_key": SIGNING_KEY, **settings_overrides}
    settings = ApiSettings(database_url=database_url, admin_token=ADMIN_TOKEN, **overrides)
    application = create_app(settings)
    async with application.state.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                await connection.execute(text(f"DELETE FROM {table}"))
    await fold_from(application.state.engine, dt.datetime.now(dt.UTC))  # as a database migrated now
    yield application
    await dispose_app(application)


@pytest_asyncio.fixture
async def client_for(app: FastAPI) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    """``client_for(token)``: an httpx client of the app sending ``Authorization: Bearer <token>`` (None: none)."""
    clients: list[httpx.AsyncClient] = []

    def make(token: str | None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp", headers=headers)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def admin(client_for: Callable[[str | None], httpx.AsyncClient]) -> httpx.AsyncClient:
    return client_for(ADMIN_TOKEN)


@pytest.fixture
def gateway(client_for: Callable[[str | None], httpx.AsyncClient]) -> httpx.AsyncClient:
    """A gateway of scope ``tests/gw`` with its real credential."""
    return client_for(gateway_credential())


@pytest.fixture
def tmp_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
