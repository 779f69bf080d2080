"""Tenants, keys (shown once, stored as a hash, revocable, expiring), quotas and price overrides."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from interlock.db.models import ApiKey
from tests.api.support import new_key, new_tenant
from tests.support import eventually


async def test_tenant_lifecycle(admin: httpx.AsyncClient) -> None:
    created = await admin.post("/v1/tenants", json={"name": "acme"})
    assert created.status_code == 201
    tenant = created.json()
    assert tenant["name"] == "acme"
    assert tenant["id"]

    duplicate = await admin.post("/v1/tenants", json={"name": "acme"})
    assert duplicate.status_code == 409
    assert "acme" in duplicate.json()["detail"]

    assert (await admin.get(f"/v1/tenants/{tenant['id']}")).json()["name"] == "acme"
    renamed = await admin.patch(f"/v1/tenants/{tenant['id']}", json={"name": "acme-corp"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "acme-corp"
    other = await new_tenant(admin, "globex")
    clash = await admin.patch(f"/v1/tenants/{other['id']}", json={"name": "acme-corp"})
    assert clash.status_code == 409

    assert (await admin.delete(f"/v1/tenants/{tenant['id']}")).status_code == 204
    gone = await admin.get(f"/v1/tenants/{tenant['id']}")
    assert gone.status_code == 404
    assert "not found" in gone.json()["detail"]
    assert (await admin.delete(f"/v1/tenants/{tenant['id']}")).status_code == 404
    assert [t["name"] for t in (await admin.get("/v1/tenants")).json()["data"]] == ["globex"]


async def test_tenant_list_pages_and_refuses_oversize_pages(admin: httpx.AsyncClient) -> None:
    for i in range(5):
        await new_tenant(admin, f"tenant-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await admin.get("/v1/tenants", params=params)).json()
        seen += [t["name"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"tenant-{i}" for i in range(5)]

    oversize = await admin.get("/v1/tenants", params={"limit": 1001})
    assert oversize.status_code == 422
    assert oversize.json()["detail"] == "limit must be at most 1000 (got 1001); page with next_cursor"
    assert (await admin.get("/v1/tenants", params={"cursor": "garbage!"})).status_code == 422


async def test_a_key_is_shown_once_and_stored_as_a_hash(admin: httpx.AsyncClient, app: FastAPI) -> None:
    tenant = await new_tenant(admin)
    created = await new_key(admin, tenant["id"], name="ci")
    key = created["key"]
    assert key.startswith("sk-il-")
    assert len(key) >= len("sk-il-") + 43
    assert created["prefix"] == key[6:14]
    assert created["name"] == "ci"
    assert created["tenant_id"] == tenant["id"]
    assert created["revoked_at"] is None

    listing = (await admin.get(f"/v1/tenants/{tenant['id']}/keys")).json()
    assert [k["id"] for k in listing["data"]] == [created["id"]]
    assert "key" not in listing["data"][0]
    assert key not in str(listing)
    assert listing["data"][0]["prefix"] == key[6:14]

    async with app.state.sessions() as session:
        stored = (await session.scalars(select(ApiKey))).one()
    assert stored.sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {str(getattr(stored, c.key)) for c in ApiKey.__table__.columns}

    assert (await admin.get("/v1/tenants/nope/keys")).status_code == 404
    assert (await admin.post("/v1/tenants/nope/keys", json={"name": "x"})).status_code == 404


async def test_revoked_and_expired_keys_stop_working(
    admin: httpx.AsyncClient, client_for: Callable[[str | None], httpx.AsyncClient]
) -> None:
    tenant = await new_tenant(admin)
    key = await new_key(admin, tenant["id"])
    reader = client_for(key["key"])
    assert (await reader.get("/v1/usage")).status_code == 200

    assert (await admin.delete(f"/v1/keys/{key['id']}")).status_code == 204
    assert (await reader.get("/v1/usage")).status_code == 401
    listed = (await admin.get(f"/v1/tenants/{tenant['id']}/keys")).json()["data"][0]
    assert listed["revoked_at"] is not None
    assert (await admin.delete(f"/v1/keys/{key['id']}")).status_code == 204  # idempotent
    assert (await admin.delete("/v1/keys/unknown")).status_code == 404

    # Long enough for the key to be made and used once on a loaded machine (1 s was not, once), short enough to wait.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    expiring = await new_key(admin, tenant["id"], expires_at=soon.isoformat())
    assert dt.datetime.fromisoformat(expiring["expires_at"]) == soon
    short = client_for(expiring["key"])
    assert (await short.get("/v1/usage")).status_code == 200

    async def rejected() -> bool:
        return (await short.get("/v1/usage")).status_code == 401

    await eventually(rejected, within=10, interval=0.1, what="expired key refused")
    past = await admin.post(
        f"/v1/tenants/{tenant['id']}/keys", json={"name": "old", "expires_at": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    assert "future" in str(past.json()["detail"])


async def test_quota_put_and_get(admin: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    default = (await admin.get(f"/v1/tenants/{tenant['id']}/quota")).json()
    assert default["requests_per_minute"] == 0
    assert default["monthly_budget_usd"] is None
    assert default["priority"] == "standard"

    quota = {
        "requests_per_minute": 100,
        "tokens_per_minute": 50_000,
        "max_concurrency": 4,
        "monthly_budget_usd": "12.34",
        "priority": "critical",
    }
    put = await admin.put(f"/v1/tenants/{tenant['id']}/quota", json=quota)
    assert put.status_code == 200
    got = (await admin.get(f"/v1/tenants/{tenant['id']}/quota")).json()
    assert got["requests_per_minute"] == 100
    assert got["tokens_per_minute"] == 50_000
    assert got["max_concurrency"] == 4
    assert Decimal(got["monthly_budget_usd"]) == Decimal("12.34")
    assert Decimal(got["spent_this_month_usd"]) == 0
    assert got["priority"] == "critical"
    # A PUT is the whole quota: leaving priority out makes it standard again.
    put = await admin.put(f"/v1/tenants/{tenant['id']}/quota", json={"max_concurrency": 4})
    assert put.json()["priority"] == "standard"

    for bad in (
        {"requests_per_minute": -1},
        {"max_concurrency": 2**40},
        {"monthly_budget_usd": "0.0000000001"},
        {"priority": "urgent"},
        {"priority": None},
        {"x": 1},
    ):
        response = await admin.put(f"/v1/tenants/{tenant['id']}/quota", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert (await admin.put("/v1/tenants/nope/quota", json=quota)).status_code == 404
    assert (await admin.get("/v1/tenants/nope/quota")).status_code == 404


async def test_price_overrides(admin: httpx.AsyncClient) -> None:
    body = {"backend": "openai", "model": "gpt-4o-mini", "input_per_million": 0.15, "output_per_million": "0.6"}
    created = await admin.post("/v1/prices", json=body)
    assert created.status_code == 201
    price = created.json()
    assert Decimal(price["input_per_million"]) == Decimal("0.15")
    assert price["cached_input_per_million"] is None
    assert (await admin.post("/v1/prices", json=body)).status_code == 409

    patched = await admin.patch(f"/v1/prices/{price['id']}", json={"cached_input_per_million": 0.075})
    assert Decimal(patched.json()["cached_input_per_million"]) == Decimal("0.075")
    assert (await admin.patch(f"/v1/prices/{price['id']}", json={"input_per_million": None})).status_code == 422
    assert [p["id"] for p in (await admin.get("/v1/prices")).json()["data"]] == [price["id"]]
    assert (await admin.get(f"/v1/prices/{price['id']}")).json()["model"] == "gpt-4o-mini"
    assert (await admin.delete(f"/v1/prices/{price['id']}")).status_code == 204
    assert (await admin.get(f"/v1/prices/{price['id']}")).status_code == 404
    assert (await admin.get("/v1/prices")).json()["data"] == []
