"""Usage ingestion (exactly once, even when resent concurrently) and reading it back: rows, totals, per-day
rollups, costs and traces, with money exact to the nano-dollar."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import httpx
from fastapi import FastAPI

from tests.api.support import as_counted_before_spans_moved, event, new_tenant, post_usage


async def test_a_resent_batch_is_counted_once(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    batch = [event(tenant["id"], seq) for seq in range(1, 6)]
    assert await post_usage(gateway, batch) == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert await post_usage(gateway, batch) == {"accepted": 0, "duplicates": 5, "rejected": []}
    mixed = [*batch[:2], event(tenant["id"], 6)]
    assert await post_usage(gateway, mixed) == {"accepted": 1, "duplicates": 2, "rejected": []}
    within = event(tenant["id"], 7)
    assert await post_usage(gateway, [within, within]) == {"accepted": 1, "duplicates": 1, "rejected": []}

    usage = (await admin.get("/v1/usage", params={"tenant_id": tenant["id"]})).json()
    assert usage["totals"]["requests"] == 7
    assert len(usage["data"]) == 7
    assert Decimal(usage["totals"]["cost_usd"]) == Decimal("0.007")


async def test_concurrent_resends_of_one_batch_count_once(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    batch = [event(tenant["id"], seq, cost_usd=0.01) for seq in range(1, 201)]
    results = await asyncio.gather(*(post_usage(gateway, batch) for _ in range(4)))
    assert sum(r["accepted"] for r in results) == 200
    assert all(r["accepted"] + r["duplicates"] == 200 for r in results)
    totals = (await admin.get("/v1/usage", params={"tenant_id": tenant["id"], "limit": 1})).json()["totals"]
    assert totals["requests"] == 200
    assert Decimal(totals["cost_usd"]) == Decimal("2")
    quota = (await admin.get(f"/v1/tenants/{tenant['id']}/quota")).json()
    assert Decimal(quota["spent_this_month_usd"]) == Decimal("2")


async def test_totals_are_exact_and_count_cached_tokens(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    costs = [0.1, 0.2, 0.000000001, 1234.567891234, 0.3]
    events = [
        event(tenant["id"], i + 1, cost_usd=c, input_tokens=1000 + i, output_tokens=7, cached_tokens=300 * i)
        for i, c in enumerate(costs)
    ]
    events[0]["cache_creation_tokens"] = 11
    events[1]["usage_estimated"] = True
    events[2]["spilled_over"] = True
    await post_usage(gateway, events)
    body = (await admin.get("/v1/usage", params={"tenant_id": tenant["id"]})).json()
    totals = body["totals"]
    assert Decimal(totals["cost_usd"]) == Decimal("1235.167891235")  # float addition would give ...1234999
    assert totals["input_tokens"] == 5010
    assert totals["output_tokens"] == 35
    assert totals["cached_tokens"] == 300 * (0 + 1 + 2 + 3 + 4)
    assert totals["cache_creation_tokens"] == 11
    assert {Decimal(r["cost_usd"]) for r in body["data"]} == {Decimal(str(c)) for c in costs}
    assert sum(r["usage_estimated"] for r in body["data"]) == 1
    assert sum(r["spilled_over"] for r in body["data"]) == 1  # served by a route's spill-over target


async def test_filters_and_keyset_pages(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    t0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    events = [
        event(
            tenant["id"],
            i + 1,
            started_at=t0 + dt.timedelta(minutes=i),
            model="big" if i % 2 else "small",
            backend="openai" if i < 6 else "anthropic",
            route="r1" if i < 3 else "r2",
            key_id="key-a" if i < 8 else "key-b",
        )
        for i in range(10)
    ]
    await post_usage(gateway, events)
    tid = tenant["id"]

    async def count(**params: object) -> int:
        body = (await admin.get("/v1/usage", params={"tenant_id": tid, **params})).json()
        assert len(body["data"]) == body["totals"]["requests"]
        return int(body["totals"]["requests"])

    assert await count(model="big") == 5
    assert await count(backend="anthropic") == 4
    assert await count(route="r1") == 3
    assert await count(key_id="key-b") == 2
    assert await count(since=(t0 + dt.timedelta(minutes=4)).isoformat()) == 6
    assert await count(until=(t0 + dt.timedelta(minutes=4)).isoformat()) == 4  # until is exclusive
    assert await count(since="2026-03-01T12:02:00", until="2026-03-01T12:05:00") == 3  # naive means UTC
    assert await count(model="nothing") == 0

    pages: list[list[int]] = []
    cursor = None
    while True:
        params = {"tenant_id": tid, "limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await admin.get("/v1/usage", params=params)).json()
        pages.append([r["seq"] for r in body["data"]])
        assert body["totals"]["requests"] == 10  # totals cover the filter, not the page
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [[10, 9, 8], [7, 6, 5], [4, 3, 2], [1]]


async def test_daily_rollups_and_costs(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    day1 = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 2026-03-01 22:30 UTC
    day3 = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)
    events = [
        event(tenant["id"], 1, started_at=day1, model="a", cost_usd=0.5),
        event(tenant["id"], 2, started_at=day2, model="b", cost_usd=0.25),
        event(tenant["id"], 3, started_at=day3, model="a", cost_usd=1.0),
    ]
    await post_usage(gateway, events)
    params = {"tenant_id": tenant["id"]}

    daily = (await admin.get("/v1/usage/daily", params=params)).json()
    assert [(d["day"], d["tenant_id"], d["requests"], Decimal(d["cost_usd"])) for d in daily["data"]] == [
        ("2026-03-01", tenant["id"], 2, Decimal("0.75")),
        ("2026-03-02", tenant["id"], 1, Decimal("1")),
    ]
    by_model = (await admin.get("/v1/usage/daily", params={**params, "group_by": "model,backend"})).json()
    assert [(d["day"], d["tenant_id"], d["model"], d["backend"], d["requests"]) for d in by_model["data"]] == [
        ("2026-03-01", tenant["id"], "a", "mock", 1),
        ("2026-03-01", tenant["id"], "b", "mock", 1),
        ("2026-03-02", tenant["id"], "a", "mock", 1),
    ]
    assert Decimal(by_model["totals"]["cost_usd"]) == Decimal("1.75")

    window = {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}
    costs = (await admin.get("/v1/costs", params={**window, "group_by": "tenant,model"})).json()
    assert [(c["tenant_id"], c["model"], Decimal(c["cost_usd"])) for c in costs["data"]] == [
        (tenant["id"], "a", Decimal("1.5")),
        (tenant["id"], "b", Decimal("0.25")),
    ]
    assert costs["group_by"] == ["tenant", "model"]
    this_month = (await admin.get("/v1/costs")).json()  # default window: this month, so far
    assert this_month["data"] == []
    assert this_month["totals"]["requests"] == 0
    bad = await admin.get("/v1/costs", params={"group_by": "color"})
    assert bad.status_code == 422
    assert "color" in bad.json()["detail"]
    assert (await admin.get("/v1/usage", params={"since": "2026-03-02", "until": "2026-03-01"})).status_code == 422


async def test_costs_page_by_cost_descending(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    """Seven tenants, two of them tied: every page ranks by cost (ties by id), the pages cover each group once, in
    the rollups' path (by tenant) and the raw rows' (by key) alike, with ragged window ends; totals cover all."""
    tenants = [(await new_tenant(admin))["id"] for _ in range(7)]
    spend = [0.5, 3.25, 0.000000002, 1.75, 1.75, 12.0, 0.3]
    start = dt.datetime(2026, 2, 27, 22, 10, tzinfo=dt.UTC)
    events = []
    for i, (tenant, cost) in enumerate(zip(tenants, spend, strict=True)):
        for j in range(2):  # half in whole hours and days (rollups), half at the window's ragged ends (raw rows)
            when = start + dt.timedelta(days=3 * j, minutes=7 * i)
            events.append(
                event(tenant, 2 * i + j + 1, started_at=when, cost_usd=cost / 2, model=f"m{i % 2}", key_id=f"key-{i}")
            )
    # two more tenants spent most in the months the window touches, but outside it: ranked by the window only
    outside = [(await new_tenant(admin))["id"] for _ in range(2)]
    for i, (tenant, when) in enumerate(
        zip(outside, (start - dt.timedelta(days=25), start + dt.timedelta(days=30)), strict=True)
    ):
        events.append(event(tenant, 100 + i, started_at=when, cost_usd=500.0, key_id="key-out"))
        events.append(
            event(tenant, 110 + i, started_at=start + dt.timedelta(days=1), cost_usd=0.01, key_id=f"key-o{i}")
        )
    await post_usage(gateway, events)
    window = {"since": "2026-02-27T22:00:00Z", "until": "2026-03-02T23:00:00Z"}
    tenants += outside
    spend += [0.01, 0.01]
    expected = sorted(zip(tenants, spend, strict=True), key=lambda ts: (-Decimal(str(ts[1])), ts[0]))
    for group_by, field in (("tenant", "tenant_id"), ("key", "key_id")):
        seen: list[tuple[str, Decimal]] = []
        cursor = None
        for _ in range(10):
            params = {**window, "group_by": group_by, "limit": "3", **({"cursor": cursor} if cursor else {})}
            body = (await admin.get("/v1/costs", params=params)).json()
            assert len(body["data"]) <= 3
            assert body["totals"]["requests"] == 16
            seen += [(c[field], Decimal(c["cost_usd"])) for c in body["data"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [cost for _, cost in seen] == [Decimal(str(cost)) for _, cost in expected]
        assert len(seen) == 9
        if group_by == "tenant":
            assert [name for name, _ in seen] == [tenant for tenant, _ in expected]
    first = (await admin.get("/v1/costs", params={**window, "limit": "2"})).json()
    assert [c["tenant_id"] for c in first["data"]] == [tenants[5], tenants[1]]  # the default: top spenders
    by_model = (await admin.get("/v1/costs", params={**window, "group_by": "model", "limit": "1"})).json()
    other = await admin.get(
        "/v1/costs", params={**window, "group_by": "tenant,model", "cursor": by_model["next_cursor"]}
    )
    assert other.status_code == 422  # a cursor of another grouping
    for bad in ("nonsense", "W10", "WyJjIiwiTmFOIixbInQiXV0"):  # not base64 JSON, a list of one, a NaN cost
        answer = await admin.get("/v1/costs", params={**window, "cursor": bad})
        assert answer.status_code == 422, bad
        assert "cursor" in answer.json()["detail"]
    whole = (await admin.get("/v1/costs", params={**window, "group_by": ""})).json()
    assert [Decimal(c["cost_usd"]) for c in whole["data"]] == [sum(Decimal(str(c)) for c in spend)]


async def test_traces_keep_the_spans(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    spans = [
        {"name": "auth", "start_ms": 0.0, "duration_ms": 0.1, "attributes": {"tenant": "x"}},
        {"name": "upstream", "start_ms": 0.2, "duration_ms": 40.0, "attributes": {"backend": "a", "status": 429}},
        {"name": "upstream", "start_ms": 41.0, "duration_ms": 80.5, "attributes": {"backend": "b", "status": 200}},
        {"name": "respond", "start_ms": 121.5, "duration_ms": 1.0, "attributes": {"ok": True, "none": None}},
    ]
    traced = event(tenant["id"], 1, trace_id="trace-abc", spans=spans)
    other = event(tenant["id"], 2)
    await post_usage(gateway, [traced, other])

    listing = (await admin.get("/v1/traces", params={"tenant_id": tenant["id"]})).json()
    assert sorted(t["trace_id"] for t in listing["data"]) == sorted(["trace-abc", other["trace_id"]])
    trace = (await admin.get("/v1/traces/trace-abc")).json()
    assert trace["tenant_id"] == tenant["id"]
    assert trace["route"] == "chat-default"
    assert [(s["name"], s["attributes"].get("backend")) for s in trace["spans"]] == [
        ("auth", None),
        ("upstream", "a"),
        ("upstream", "b"),
        ("respond", None),
    ]
    assert trace["spans"][1]["attributes"]["status"] == 429
    assert trace["spans"][3]["attributes"]["ok"] is True
    assert (await admin.get("/v1/traces/unknown")).status_code == 404


async def test_a_trace_counted_before_spans_moved_into_the_row_keeps_them(
    app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(admin)
    spans = [
        {"name": "auth", "start_ms": 0.0, "duration_ms": 0.1, "attributes": {"tenant": "x"}},
        {"name": "upstream", "start_ms": 0.2, "duration_ms": 40.0},
        {"name": "respond", "start_ms": 40.5, "duration_ms": 1.0, "attributes": {"ok": True}},
    ]
    old = event(tenant["id"], 1, trace_id="trace-old", spans=spans)
    new = event(tenant["id"], 2, trace_id="trace-new", spans=spans)
    bare = event(tenant["id"], 3, trace_id="trace-bare")
    await post_usage(gateway, [old, new, bare])
    assert await as_counted_before_spans_moved(app.state.engine, old["idempotency_id"]) == 3

    expected = [(s["name"], s["start_ms"], s["duration_ms"], s.get("attributes", {})) for s in spans]
    for trace_id in ("trace-old", "trace-new"):
        trace = (await admin.get(f"/v1/traces/{trace_id}")).json()
        assert [(s["name"], s["start_ms"], s["duration_ms"], s["attributes"]) for s in trace["spans"]] == expected
    assert (await admin.get("/v1/traces/trace-bare")).json()["spans"] == []
    listing = (await admin.get("/v1/traces", params={"tenant_id": tenant["id"]})).json()
    assert sorted(t["trace_id"] for t in listing["data"]) == ["trace-bare", "trace-new", "trace-old"]
