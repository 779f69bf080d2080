"""The gateway side of the contract: the snapshot (strong ETag, 304, active keys only, spend of this month,
``ingested_seq``) and the gateway token, checked with the gateway's own snapshot client over real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from interlock.asgiserver import EmbeddedServer
from interlock.contract.controlplane import Snapshot
from interlock.gateway.controlplane.snapshot import SnapshotSource
from tests.api.support import ADMIN_TOKEN, event, new_key, new_tenant, post_usage

GATEWAY_TOKEN = "test-gateway-token-abcdefghij"


async def snapshot(client: httpx.AsyncClient, gateway_id: str = "gw-test", etag: str | None = None) -> httpx.Response:
    headers = {"if-none-match": etag} if etag else {}
    return await client.get("/v1/gateway/snapshot", params={"gateway_id": gateway_id}, headers=headers)


async def test_etag_304_and_what_the_snapshot_holds(admin: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin, "acme")
    await admin.put(f"/v1/tenants/{tenant['id']}/quota", json={"requests_per_minute": 60, "monthly_budget_usd": 5})
    key = await new_key(admin, tenant["id"])
    first = await snapshot(admin)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    body = Snapshot.model_validate_json(first.content)
    assert etag == f'"{body.version}"'
    assert [(t.name, t.quota.requests_per_minute, t.quota.monthly_budget_usd, t.spent_usd) for t in body.tenants] == [
        ("acme", 60, 5.0, 0.0)
    ]
    assert [(k.id, k.prefix, k.sha256) for k in body.keys] == [
        (key["id"], key["key"][6:14], hashlib.sha256(key["key"].encode()).hexdigest())
    ]
    assert body.ingested_seq == 0

    unchanged = await snapshot(admin, etag=etag)
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    assert unchanged.content == b""
    assert (await snapshot(admin, etag=f"W/{etag}")).status_code == 304
    assert (await snapshot(admin, etag=f'"other", {etag}')).status_code == 304
    again = await snapshot(admin)
    assert again.content == first.content  # one ETag, one representation

    assert (await admin.delete(f"/v1/keys/{key['id']}")).status_code == 204
    revoked = await snapshot(admin, etag=etag)
    assert revoked.status_code == 200
    assert revoked.headers["etag"] != etag
    assert Snapshot.model_validate_json(revoked.content).keys == []


async def test_expired_keys_leave_and_spend_and_seq_arrive(admin: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=600)).isoformat()
    expiring = await new_key(admin, tenant["id"], expires_at=soon)
    lasting = await new_key(admin, tenant["id"])
    body = Snapshot.model_validate_json((await snapshot(admin)).content)
    assert {k.id for k in body.keys} == {expiring["id"], lasting["id"]}

    now = dt.datetime.now(dt.UTC)
    last_month = (now.replace(day=1) - dt.timedelta(days=1)).replace(hour=12)
    await post_usage(
        admin,
        [
            event(tenant["id"], 1, cost_usd=0.25, gateway_id="gw-a"),
            event(tenant["id"], 7, cost_usd=0.5, gateway_id="gw-a"),
            event(tenant["id"], 3, cost_usd=100.0, gateway_id="gw-a", started_at=last_month),
            event(tenant["id"], 40, cost_usd=0.125, gateway_id="gw-b"),
        ],
    )
    a = Snapshot.model_validate_json((await snapshot(admin, "gw-a")).content)
    b = Snapshot.model_validate_json((await snapshot(admin, "gw-b")).content)
    fresh = Snapshot.model_validate_json((await snapshot(admin, "gw-new")).content)
    assert (a.ingested_seq, b.ingested_seq, fresh.ingested_seq) == (7, 40, 0)
    assert a.tenants[0].spent_usd == 0.875  # this month (UTC) only, from every gateway

    async def expired_gone() -> bool:
        keys = Snapshot.model_validate_json((await snapshot(admin)).content).keys
        return {k.id for k in keys} == {lasting["id"]}

    from tests.support import eventually

    await eventually(expired_gone, within=5, interval=0.1, what="expired key left the snapshot")


@pytest.mark.parametrize("settings_overrides", [{"gateway_token": GATEWAY_TOKEN}])
async def test_a_gateway_token_of_its_own(
    settings_overrides: dict[str, Any], admin: httpx.AsyncClient, client_for: Callable[[str | None], httpx.AsyncClient]
) -> None:
    gateway = client_for(GATEWAY_TOKEN)
    tenant = await new_tenant(admin)
    key = await new_key(admin, tenant["id"])
    assert (await snapshot(gateway)).status_code == 200
    assert (await post_usage(gateway, [event(tenant["id"], 1)]))["accepted"] == 1
    assert (await snapshot(admin)).status_code == 403  # the admin token is not the gateway's once it has its own
    assert (await snapshot(client_for(key["key"]))).status_code == 403
    assert (await snapshot(client_for(None))).status_code == 401
    assert (await snapshot(client_for("wrong"))).status_code == 401
    assert (await gateway.get("/v1/tenants")).status_code == 403  # and the gateway token is no admin


async def test_the_gateways_snapshot_client_reads_it_over_http(app: FastAPI, admin: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin, "acme")
    key = await new_key(admin, tenant["id"])
    await admin.post("/v1/prices", json={"backend": "b", "model": "m", "input_per_million": 1, "output_per_million": 2})
    server = EmbeddedServer(app, host="127.0.0.1", port=0, lifespan="off")
    url = await server.start()
    source = SnapshotSource(url=url, gateway_id="gw-real", token=ADMIN_TOKEN, interval_s=60)
    try:
        assert await source.poll() is True
        policy = source.policy
        assert policy is not None
        assert source.status.last_error is None
        raw = key["key"].encode()
        principal = policy.find(key["key"][6:14], hashlib.sha256(raw).digest(), dt.datetime.now(dt.UTC).timestamp())
        assert principal is not None
        assert principal.tenant_id == tenant["id"]
        assert policy.price("b", "m", None) is not None
        assert await source.poll() is False  # 304: nothing new

        await admin.delete(f"/v1/keys/{key['id']}")
        assert await source.poll() is True
        assert source.policy is not None
        assert source.policy.find(key["key"][6:14], hashlib.sha256(raw).digest(), 0) is None
    finally:
        await source.stop()
        await server.stop()
