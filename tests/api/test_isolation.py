"""Tenant isolation: tenant A's key tries every read endpoint for tenant B's data and gets nothing, and every
other endpoint answers it 403."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import httpx
from fastapi import FastAPI

from tests.api.support import event, new_key, new_tenant, post_usage

READER_ROUTES = {
    ("GET", "/v1/usage"),
    ("GET", "/v1/usage/daily"),
    ("GET", "/v1/costs"),
    ("GET", "/v1/traces"),
    ("GET", "/v1/traces/{trace_id}"),
}


async def test_a_tenant_key_sees_only_its_own_tenant(
    app: FastAPI,
    admin: httpx.AsyncClient,
    client_for: Callable[[str | None], httpx.AsyncClient],
    gateway: httpx.AsyncClient,
) -> None:
    a, b = await new_tenant(admin, "tenant-a"), await new_tenant(admin, "tenant-b")
    key_a, key_b = await new_key(admin, a["id"]), await new_key(admin, b["id"])
    b_events = [
        event(b["id"], i, key_id=key_b["id"], trace_id=f"trace-b-{i}", model="secret-model", cost_usd=1.0)
        for i in range(1, 4)
    ]
    a_events = [event(a["id"], i, key_id=key_a["id"], trace_id=f"trace-a-{i}", cost_usd=0.5) for i in range(4, 6)]
    await post_usage(gateway, b_events + a_events)
    tenant_a = client_for(key_a["key"])

    async def get(path: str, **params: str) -> httpx.Response:
        response = await tenant_a.get(path, params=params)
        assert response.status_code in (200, 404), (path, params, response.text)
        return response

    for params in ({"tenant_id": b["id"]}, {"key_id": key_b["id"]}, {"tenant_id": b["id"], "model": "secret-model"}):
        usage = (await get("/v1/usage", **params)).json()
        assert usage["data"] == []
        assert usage["totals"]["requests"] == 0
        daily = (await get("/v1/usage/daily", **params, group_by="tenant,model")).json()
        assert daily["data"] == []
        assert daily["totals"]["requests"] == 0
        costs = (await get("/v1/costs", **params, since="2000-01-01T00:00:00Z")).json()
        assert costs["data"] == []
        assert Decimal(costs["totals"]["cost_usd"]) == 0
        assert (await get("/v1/traces", **params)).json()["data"] == []
    for i in range(1, 4):
        assert (await get(f"/v1/traces/trace-b-{i}")).status_code == 404

    own = (await get("/v1/usage")).json()
    assert {row["tenant_id"] for row in own["data"]} == {a["id"]}
    assert own["totals"]["requests"] == 2
    assert [c["tenant_id"] for c in (await get("/v1/costs", since="2000-01-01T00:00:00Z")).json()["data"]] == [a["id"]]
    assert {d["tenant_id"] for d in (await get("/v1/usage/daily", group_by="tenant")).json()["data"]} == {a["id"]}
    assert {t["tenant_id"] for t in (await get("/v1/traces")).json()["data"]} == {a["id"]}
    assert (await get("/v1/traces/trace-a-4")).json()["tenant_id"] == a["id"]
    assert "secret-model" not in (await get("/v1/usage/daily", group_by="model")).text

    values = {"tenant_id": b["id"], "key_id": key_b["id"], "price_id": "x", "trace_id": "trace-b-1"}
    checked = 0
    for template, operations in app.openapi()["paths"].items():
        for method in (m.upper() for m in operations):
            if (method, template) in READER_ROUTES:
                continue
            path = template.format(**values)
            response = await tenant_a.request(method, path, params={"gateway_id": "g"}, json={})
            assert response.status_code == 403, (method, path, response.text)
            checked += 1
    assert checked >= 16
    assert len((await admin.get(f"/v1/tenants/{b['id']}/keys")).json()["data"]) == 1  # nothing changed
