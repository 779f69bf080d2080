"""Helpers of the control-plane tests: create tenants and keys, build and post usage events."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import httpx
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.db.models import Span, Usage
from interlock.db.rollups import ROLLUP_WATERMARKS, TENANT_LATENCY_FOLD

ADMIN_TOKEN = "test-admin-token-0123456789"
SIGNING_KEY = "test-gateway-signing-key-0123456789abcdef"
SCOPE = "tests/gw"
"""The scope of the gateway credential the tests use: gateway ids ``tests/gw/<name>``."""
GATEWAY_ID = f"{SCOPE}/pod-1"


def gateway_credential(scope: str = SCOPE, key: str = SIGNING_KEY) -> str:
    return mint_gateway_credential(key.encode(), scope)


async def new_tenant(admin: httpx.AsyncClient, name: str | None = None) -> dict[str, Any]:
    response = await admin.post("/v1/tenants", json={"name": name or f"t-{secrets.token_hex(4)}"})
    assert response.status_code == 201, response.text
    tenant: dict[str, Any] = response.json()
    return tenant


async def new_key(admin: httpx.AsyncClient, tenant_id: str, **fields: Any) -> dict[str, Any]:
    response = await admin.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "k", **fields})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def event(tenant_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A usage event as a gateway sends it (JSON-ready)."""
    started = fields.pop("started_at", dt.datetime.now(dt.UTC))
    base: dict[str, Any] = {
        "idempotency_id": f"evt-{secrets.token_hex(8)}",
        "gateway_id": GATEWAY_ID,
        "seq": seq,
        "started_at": started.isoformat(),
        "tenant_id": tenant_id,
        "key_id": "key-1",
        "route": "chat-default",
        "backend": "mock",
        "model": "mock-small",
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_tokens": 0,
        "cost_usd": 0.001,
        "latency_ms": 12.5,
        "ttft_ms": 3.0,
        "trace_id": f"trace-{secrets.token_hex(8)}",
        "spans": [],
    }
    base.update(fields)
    return base


async def post_usage(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = await client.post("/v1/gateway/usage", json={"events": events})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def as_counted_before_spans_moved(engine: AsyncEngine, idempotency_id: str) -> int:
    """Make the usage row of ``idempotency_id`` what a database upgraded past migration ``c5e8a1f3b7d2`` has for a
    row counted before it: its spans as rows of the ``spans`` table (in its month's partition, which such a
    database has, on Postgres), ``usage.spans`` NULL. Returns how many spans moved."""
    async with engine.begin() as connection:
        columns = (Usage.id, Usage.started_at, Usage.trace_id, Usage.spans)
        row = (await connection.execute(select(*columns).where(Usage.idempotency_id == idempotency_id))).one()
        spans = row.spans or []
        if connection.dialect.name == "postgresql":
            month = row.started_at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            upper = (month + dt.timedelta(days=32)).replace(day=1)
            await connection.execute(
                text(
                    f'CREATE TABLE IF NOT EXISTS "spans_p{month:%Y%m}" PARTITION OF spans '
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
                )
            )
        for position, span in enumerate(spans):
            values = {"usage_id": row.id, "started_at": row.started_at, "trace_id": row.trace_id, "position": position}
            values.update(span, attributes=span.get("attributes", {}))
            await connection.execute(insert(Span).values(values))
        await connection.execute(update(Usage).where(Usage.id == row.id).values(spans=None))
    return len(spans)


async def fold_from(engine: AsyncEngine, when: dt.datetime) -> None:
    """Make ``tenant_latency_daily`` hold exactly the rows that started before ``when`` from now on (Postgres; the
    test empties the tables first): ingest adds those, the fold the rest."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as connection:
        await connection.execute(
            update(ROLLUP_WATERMARKS)
            .where(ROLLUP_WATERMARKS.c.rollup == TENANT_LATENCY_FOLD)
            .values(claimed_until=when, folded_until=when)
        )
