"""``GET /readyz`` of the control plane: 200 only when the database answers and is migrated to head; and
migrations running at once (several API pods' init containers) take turns instead of failing."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from interlock.api import ApiSettings, create_app, dispose_app, migrate
from interlock.db.migrate import head_revision
from tests.db.support import temporary_postgres


async def _readyz(url: str) -> httpx.Response:
    app = create_app(ApiSettings(database_url=url))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return await client.get("/readyz")
    finally:
        await dispose_app(app)


async def test_ready_only_once_migrated_to_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'interlock.db'}"
    before = await _readyz(url)
    assert before.status_code == 503
    assert before.json() == {
        "status": "not migrated",
        "database": "ok",
        "migrations": {"head": head_revision(), "current": None},
    }
    await migrate(url)
    after = await _readyz(url)
    assert after.status_code == 200
    assert after.json()["migrations"] == {"head": head_revision(), "current": head_revision()}


async def test_unready_without_the_database_and_without_leaking_its_url() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    response = await _readyz(f"postgresql://interlock:hunter2-password@127.0.0.1:{port}/interlock")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"].startswith("unreachable (")
    assert "hunter2" not in response.text
    assert str(port) not in response.text


def test_concurrent_migrations_on_postgres_take_turns() -> None:
    async def both(url: str) -> None:
        await asyncio.gather(migrate(url), migrate(url), migrate(url))
        assert (await _readyz(url)).status_code == 200

    with temporary_postgres("migrate_race") as url:
        asyncio.run(both(url))
