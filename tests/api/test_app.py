"""The app as a whole: the committed OpenAPI document, settings that refuse to run insecurely, the bootstrap
tenant and key of ``interlock up``, and ``interlock api`` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import inspect

from interlock.api import ApiSettings, ensure_bootstrap
from interlock.api.errors import ConflictError, InvalidError
from interlock.api.openapi import render_openapi
from interlock.api.settings import DEV_ADMIN_TOKEN, DEV_DATABASE_URL
from interlock.db.session import create_engine, normalize_url
from tests.api.support import new_tenant
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_openapi_document_matches_the_app() -> None:
    committed = (ROOT / "api" / "openapi.json").read_text()
    assert committed == render_openapi(), (
        "api/openapi.json is stale: run `interlock api --write-openapi api/openapi.json`"
    )


def test_binding_paths_are_in_the_openapi_document() -> None:
    import json

    paths = json.loads(render_openapi())["paths"]
    for path, method in [
        ("/v1/tenants", "post"),
        ("/v1/tenants/{tenant_id}/keys", "post"),
        ("/v1/tenants/{tenant_id}/keys", "get"),
        ("/v1/keys/{key_id}", "delete"),
        ("/v1/tenants/{tenant_id}/quota", "put"),
        ("/v1/usage", "get"),
        ("/v1/traces", "get"),
        ("/v1/traces/{trace_id}", "get"),
        ("/v1/gateway/snapshot", "get"),
        ("/v1/gateway/usage", "post"),
    ]:
        assert method in paths[path], (path, method)


def test_settings_refuse_insecure_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("INTERLOCK_API_ADMIN_TOKEN", "INTERLOCK_API_DATABASE_URL", "DATABASE_URL", "INTERLOCK_API_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    dev = ApiSettings()
    assert dev.admin_secret() == DEV_ADMIN_TOKEN
    assert dev.url == DEV_DATABASE_URL
    db = "postgresql://u@db/interlock"
    for token in (None, DEV_ADMIN_TOKEN, "short"):
        with pytest.raises(ValidationError, match="INTERLOCK_API_ADMIN_TOKEN"):
            ApiSettings(environment="production", admin_token=token, database_url=db)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        ApiSettings(environment="production", admin_token="a-real-secret-of-32-characters!!")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/interlock")
    monkeypatch.setenv("INTERLOCK_API_ENVIRONMENT", "production")
    monkeypatch.setenv("INTERLOCK_API_ADMIN_TOKEN", "a-real-secret-of-32-characters!!")
    prod = ApiSettings()
    assert str(normalize_url(prod.url)) == "postgresql+asyncpg://u@db/interlock"
    assert "a-real-secret" not in repr(prod)


async def test_bootstrap_is_idempotent(app: FastAPI, client_for: Callable[[str | None], httpx.AsyncClient]) -> None:
    given = "sk-il-local-bootstrap-key-0123456789"
    async with app.state.sessions() as session:
        first = await ensure_bootstrap(session=session, key=given)
        again = await ensure_bootstrap(session=session, key=given)
    assert first.created
    assert not again.created
    assert (again.tenant_id, again.key_id, again.key) == (first.tenant_id, first.key_id, given)
    assert (await client_for(given).get("/v1/usage")).status_code == 200

    async with app.state.sessions() as session:
        generated = await ensure_bootstrap(session=session, tenant_name="other")
        kept = await ensure_bootstrap(session=session, tenant_name="other")
        assert generated.key is not None
        assert generated.key.startswith("sk-il-")
        assert (kept.key_id, kept.key, kept.created) == (generated.key_id, None, False)
        with pytest.raises(ConflictError):
            await ensure_bootstrap(session=session, tenant_name="other", key=given)
        with pytest.raises(InvalidError):
            await ensure_bootstrap(session=session, key="sk-il-short")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _interlock(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "--log-level", "WARNING", "api", *args,
        env={**os.environ, **env}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_interlock_api_migrates_and_serves(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    clean = {"INTERLOCK_API_ENVIRONMENT": "development", "DATABASE_URL": url}
    proc = await _interlock("--migrate-only", env=clean)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    engine = create_engine(url)
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert {"tenants", "usage", "alembic_version"} <= tables

    refused = await _interlock("--migrate-only", env={**clean, "INTERLOCK_API_ENVIRONMENT": "production"})
    _, err = await refused.communicate()
    assert refused.returncode == 2
    assert "INTERLOCK_API_ADMIN_TOKEN" in err.decode()

    port = _free_port()
    server = await _interlock("--port", str(port), "--migrate", env=clean)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
        ) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=20, interval=0.1, what="interlock api listening")
            assert (await new_tenant(client, "from-cli"))["name"] == "from-cli"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = await server.communicate()
    assert server.returncode in (0, -signal.SIGTERM), err.decode()  # uvicorn re-raises the signal after shutdown
    assert "Traceback" not in err.decode()
