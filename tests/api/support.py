"""Helpers of the control-plane tests: create tenants and keys, build and post usage events."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import httpx

from interlock.contract.gatewaycred import mint_gateway_credential

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
