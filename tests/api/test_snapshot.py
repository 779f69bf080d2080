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
from sqlalchemy import text

from interlock.asgiserver import EmbeddedServer
from interlock.contract.controlplane import Snapshot
from interlock.gateway.controlplane.snapshot import SnapshotSource
from tests.api.support import (
    GATEWAY_ID,
    event,
    gateway_credential,
    new_key,
    new_tenant,
    post_usage,
)


async def snapshot(client: httpx.AsyncClient, gateway_id: str = GATEWAY_ID, etag: str | None = None) -> httpx.Response:
    headers = {"if-none-match": etag} if etag else {}
    return await client.get("/v1/gateway/snapshot", params={"gateway_id": gateway_id}, headers=headers)


async def test_etag_304_and_what_the_snapshot_holds(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin, "acme")
    await admin.put(f"/v1/tenants/{tenant['id']}/quota", json={"requests_per_minute": 60, "monthly_budget_usd": 5})
    key = await new_key(admin, tenant["id"])
    first = await snapshot(gateway)
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

    unchanged = await snapshot(gateway, etag=etag)
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    assert unchanged.content == b""
    assert (await snapshot(gateway, etag=f"W/{etag}")).status_code == 304
    assert (await snapshot(gateway, etag=f'"other", {etag}')).status_code == 304
    again = await snapshot(gateway)
    assert again.content == first.content  # one ETag, one representation

    assert (await admin.delete(f"/v1/keys/{key['id']}")).status_code == 204
    revoked = await snapshot(gateway, etag=etag)
    assert revoked.status_code == 200
    assert revoked.headers["etag"] != etag
    assert Snapshot.model_validate_json(revoked.content).keys == []


async def test_expired_keys_leave_and_spend_and_seq_arrive(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(admin)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=600)).isoformat()
    expiring = await new_key(admin, tenant["id"], expires_at=soon)
    lasting = await new_key(admin, tenant["id"])
    body = Snapshot.model_validate_json((await snapshot(gateway)).content)
    assert {k.id for k in body.keys} == {expiring["id"], lasting["id"]}

    now = dt.datetime.now(dt.UTC)
    last_month = (now.replace(day=1) - dt.timedelta(days=1)).replace(hour=12)
    await post_usage(
        gateway,
        [
            event(tenant["id"], 1, cost_usd=0.25, gateway_id="tests/gw/a"),
            event(tenant["id"], 7, cost_usd=0.5, gateway_id="tests/gw/a"),
            event(tenant["id"], 3, cost_usd=100.0, gateway_id="tests/gw/a", started_at=last_month),
            event(tenant["id"], 40, cost_usd=0.125, gateway_id="tests/gw/b"),
        ],
    )
    a = Snapshot.model_validate_json((await snapshot(gateway, "tests/gw/a")).content)
    b = Snapshot.model_validate_json((await snapshot(gateway, "tests/gw/b")).content)
    fresh = Snapshot.model_validate_json((await snapshot(gateway, "tests/gw/new")).content)
    assert (a.ingested_seq, b.ingested_seq, fresh.ingested_seq) == (7, 40, 0)
    assert a.tenants[0].spent_usd == 0.875  # this month (UTC) only, from every gateway

    async def expired_gone() -> bool:
        keys = Snapshot.model_validate_json((await snapshot(gateway)).content).keys
        return {k.id for k in keys} == {lasting["id"]}

    from tests.support import eventually

    await eventually(expired_gone, within=5, interval=0.1, what="expired key left the snapshot")


async def test_only_a_scoped_gateway_credential_opens_the_gateway_endpoints(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient, client_for: Callable[[str | None], httpx.AsyncClient]
) -> None:
    tenant = await new_tenant(admin)
    key = await new_key(admin, tenant["id"])
    assert (await snapshot(gateway)).status_code == 200
    assert (await post_usage(gateway, [event(tenant["id"], 1)]))["accepted"] == 1
    assert (await snapshot(gateway, "other/gw/pod-1")).status_code == 403, "outside the credential's scope"
    assert (await snapshot(gateway, "tests/gw")).status_code == 403, "the scope itself is no gateway id"
    assert (await snapshot(admin)).status_code == 403, "the admin token is not a gateway"
    assert (await snapshot(client_for(key["key"]))).status_code == 403
    assert (await snapshot(client_for(None))).status_code == 401
    assert (await snapshot(client_for("wrong"))).status_code == 401
    forged = gateway_credential(key="another-signing-key-0123456789abcdefgh")
    assert (await snapshot(client_for(forged))).status_code == 401, "signed with another key"
    tampered = gateway_credential().rsplit(".", 1)[0] + "." + gateway_credential("tests/other").rsplit(".", 1)[1]
    assert (await snapshot(client_for(tampered))).status_code == 401
    assert (await gateway.get("/v1/tenants")).status_code == 403, "and the gateway credential is no admin"
    assert (await gateway.get("/v1/usage")).status_code == 403


@pytest.mark.parametrize("settings_overrides", [{"gateway_signing_key": None}])
async def test_without_a_signing_key_the_gateway_endpoints_say_so(
    settings_overrides: dict[str, Any], gateway: httpx.AsyncClient
) -> None:
    response = await snapshot(gateway)
    assert response.status_code == 503
    assert "INTERLOCK_API_GATEWAY_SIGNING_KEY" in response.text


async def test_events_outside_the_scope_or_seq_window_or_malformed_are_dead_lettered_alone(
    app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(admin)
    good = [event(tenant["id"], 1), event(tenant["id"], 2)]
    foreign = event(tenant["id"], 3, gateway_id="other/gw/pod-1")
    huge = event(tenant["id"], 2**40)
    broken = {**event(tenant["id"], 4), "input_tokens": -1}
    result = await post_usage(gateway, [good[0], foreign, huge, broken, "not an event", good[1]])
    assert (result["accepted"], result["duplicates"]) == (2, 0)
    rejected = {r["index"]: r for r in result["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4]
    assert "outside this credential's scope" in rejected[1]["reason"]
    assert rejected[2]["seq"] == 2**40
    assert "above what gateway" in rejected[2]["reason"]
    assert "input_tokens" in rejected[3]["reason"]
    assert rejected[4]["idempotency_id"] is None
    body = Snapshot.model_validate_json((await snapshot(gateway)).content)
    assert body.ingested_seq == 2, "the forged huge seq moved nothing"
    # the same batch again: the good ones are duplicates, the bad ones rejected again, nothing blocks
    again = await post_usage(gateway, [good[0], foreign, huge, good[1], event(tenant["id"], 5)])
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (1, 2, 2)
    async with app.state.sessions() as session:
        rows = (await session.execute(text("SELECT scope, gateway_id, seq, reason FROM usage_dead_letters"))).all()
    assert len(rows) == 6
    assert {row.scope for row in rows} == {"tests/gw"}
    assert {row.gateway_id for row in rows} >= {"other/gw/pod-1", GATEWAY_ID}
    usage = (await admin.get("/v1/usage", params={"tenant_id": tenant["id"]})).json()
    assert usage["totals"]["requests"] == 3


async def test_the_gateways_snapshot_client_reads_it_over_http(app: FastAPI, admin: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin, "acme")
    key = await new_key(admin, tenant["id"])
    await admin.post("/v1/prices", json={"backend": "b", "model": "m", "input_per_million": 1, "output_per_million": 2})
    server = EmbeddedServer(app, host="127.0.0.1", port=0, lifespan="off")
    url = await server.start()
    source = SnapshotSource(url=url, gateway_id=GATEWAY_ID, token=gateway_credential(), interval_s=60)
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
