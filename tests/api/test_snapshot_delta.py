"""The split snapshot: config versioned by a change counter (ingest does not move its ETag), deltas since a
version, full snapshots when the change log no longer reaches back, and spend as its own small document; and the
gateway's client following all of it over real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import httpx
from fastapi import FastAPI

from interlock.api.configwatch import ConfigWatch
from interlock.api.crud.snapshot import prune_config_changes
from interlock.asgiserver import EmbeddedServer
from interlock.contract.controlplane import Snapshot, SpendSnapshot
from interlock.gateway.controlplane.snapshot import SnapshotSource
from tests.api.support import GATEWAY_ID, event, gateway_credential, new_key, new_tenant, post_usage
from tests.support import eventually


async def get(client: httpx.AsyncClient, path: str, etag: str | None = None, **params: Any) -> httpx.Response:
    headers = {"if-none-match": etag} if etag else {}
    return await client.get(f"/v1/gateway/{path}", params={"gateway_id": GATEWAY_ID, **params}, headers=headers)


async def test_deltas_since_a_version_and_ingest_leaves_the_config_etag_alone(
    app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    kept = await new_tenant(admin, "kept")
    doomed = await new_tenant(admin, "doomed")
    revoked = await new_key(admin, kept["id"])
    staying = await new_key(admin, kept["id"])
    doomed_key = await new_key(admin, doomed["id"])
    full = await get(gateway, "snapshot")
    base = Snapshot.model_validate_json(full.content)
    assert base.base_version is None
    assert {k.id for k in base.keys} == {revoked["id"], staying["id"], doomed_key["id"]}
    etag = full.headers["etag"]
    assert etag == f'"{base.version}"'

    assert (await post_usage(gateway, [event(kept["id"], 1, cost_usd=2.0)]))["accepted"] == 1
    assert (await get(gateway, "snapshot", etag)).status_code == 304, "spend is no longer in the config's version"
    assert (await get(gateway, "snapshot", etag, since=base.version)).status_code == 304

    await admin.delete(f"/v1/keys/{revoked['id']}")
    await admin.delete(f"/v1/tenants/{doomed['id']}")
    await admin.put(f"/v1/tenants/{kept['id']}/quota", json={"requests_per_minute": 7, "priority": "sheddable"})
    added = await new_key(admin, kept["id"])

    response = await get(gateway, "snapshot", etag, since=base.version)
    assert response.status_code == 200
    delta = Snapshot.model_validate_json(response.content)
    assert delta.base_version == base.version
    assert int(delta.version) > int(base.version)
    assert response.headers["etag"] == f'"{delta.version}"'
    assert [(t.id, t.quota.requests_per_minute, t.quota.priority) for t in delta.tenants] == [
        (kept["id"], 7, "sheddable")
    ]
    assert delta.removed_tenants == [doomed["id"]]
    assert [k.id for k in delta.keys] == [added["id"]]
    assert sorted(delta.removed_keys) == sorted([revoked["id"], doomed_key["id"]])
    assert (await get(gateway, "snapshot", response.headers["etag"], since=delta.version)).status_code == 304

    # a version the change log no longer reaches: the full snapshot
    async with app.state.sessions() as session:
        await prune_config_changes(session=session, older_than=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    fallback = Snapshot.model_validate_json((await get(gateway, "snapshot", since=base.version)).content)
    assert fallback.base_version is None
    assert {k.id for k in fallback.keys} == {staying["id"], added["id"]}
    future = Snapshot.model_validate_json((await get(gateway, "snapshot", since=int(delta.version) + 5)).content)
    assert future.base_version is None


async def test_spend_is_its_own_document_of_budgeted_tenants(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    budgeted = await new_tenant(admin)
    free = await new_tenant(admin)
    await admin.put(f"/v1/tenants/{budgeted['id']}/quota", json={"monthly_budget_usd": 10})
    first = await get(gateway, "spend")
    assert first.status_code == 200
    document = SpendSnapshot.model_validate_json(first.content)
    assert (document.spent_usd, document.ingested_seq) == ({}, 0)
    assert (await get(gateway, "spend", first.headers["etag"])).status_code == 304

    await post_usage(gateway, [event(budgeted["id"], 1, cost_usd=1.5), event(free["id"], 2, cost_usd=4.0)])
    second = await get(gateway, "spend", first.headers["etag"])
    assert second.status_code == 200
    document = SpendSnapshot.model_validate_json(second.content)
    assert document.spent_usd == {budgeted["id"]: 1.5}
    assert document.ingested_seq == 2
    assert document.month == dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert (await get(gateway, "spend", second.headers["etag"])).status_code == 304
    assert (await get(gateway, "spend", gateway_id="other/gw")).status_code == 403


async def test_the_gateway_client_follows_deltas_and_spend(app: FastAPI, admin: httpx.AsyncClient,
                                                           gateway: httpx.AsyncClient) -> None:  # fmt: skip
    tenant = await new_tenant(admin, "acme")
    await admin.put(f"/v1/tenants/{tenant['id']}/quota", json={"monthly_budget_usd": 10})
    first = await new_key(admin, tenant["id"])
    server = EmbeddedServer(app, host="127.0.0.1", port=0, lifespan="off")
    url = await server.start()
    source = SnapshotSource(url=url, gateway_id=GATEWAY_ID, token=gateway_credential(), interval_s=60)

    def finds(key: dict[str, Any]) -> bool:
        policy = source.policy
        assert policy is not None
        digest = hashlib.sha256(key["key"].encode()).digest()
        return policy.find(key["key"][6:14], digest, dt.datetime.now(dt.UTC).timestamp()) is not None

    try:
        assert await source.poll() is True
        assert finds(first)
        assert await source.poll() is False

        await post_usage(gateway, [event(tenant["id"], 3, cost_usd=2.5)])
        assert await source.poll() is True  # spend moved; the config did not
        policy = source.policy
        assert policy is not None
        assert policy.tenants[tenant["id"]].spent_usd == 2.5
        assert policy.ingested_seq == 3

        second = await new_key(admin, tenant["id"])
        await admin.delete(f"/v1/keys/{first['id']}")
        assert await source.poll() is True  # a delta: one key in, one out
        assert finds(second)
        assert not finds(first)
        assert source.policy is not None
        assert source.policy.tenants[tenant["id"]].spent_usd == 2.5, "the delta keeps the spend"
        assert source.status.last_error is None
    finally:
        await source.stop()
        await server.stop()


async def test_the_config_version_is_watched_in_memory_on_postgres(
    app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    watch: ConfigWatch = app.state.config_watch
    watch.start()
    try:
        first = await get(gateway, "snapshot")
        if app.state.engine.dialect.name != "postgresql":
            assert watch.config_version() is None  # SQLite: nothing to listen to, the version is read each time
            return
        await eventually(lambda: watch.config_version() == int(first.json()["version"]), within=5, interval=0.02,
                         what="the watch has the version")  # fmt: skip
        assert (await get(gateway, "snapshot", first.headers["etag"])).status_code == 304
        await new_tenant(admin)
        await eventually(lambda: (watch.config_version() or 0) > int(first.json()["version"]), within=5, interval=0.02,
                         what="a change's notification arrived")  # fmt: skip
        assert (await get(gateway, "snapshot", first.headers["etag"])).status_code == 200

        spend = await get(gateway, "spend")
        assert (await get(gateway, "spend", spend.headers["etag"])).status_code == 304
        tenant = await new_tenant(admin)
        await post_usage(gateway, [event(tenant["id"], 9)])
        await eventually(lambda: (c := watch.cursors()) is not None and c.seqs.get(GATEWAY_ID) == 9, within=5,
                         interval=0.02, what="the ingest's notification arrived")  # fmt: skip
        assert (await get(gateway, "spend", spend.headers["etag"])).status_code == 200
    finally:
        await watch.stop()
    assert watch.config_version() is None
