"""``interlock.api.crud.analytics``: the console's numbers, on Postgres and SQLite.

Written to hold for any implementation of the interface (the raw table today, rollups later): counts, tokens and
cost exactly; percentiles within 10 % (or one bucket of a histogram's resolution)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from interlock.api.crud import analytics
from tests.api.support import event, new_tenant, post_usage

NOW = dt.datetime.now(dt.UTC).replace(minute=30, second=0, microsecond=0)
HOUR0 = NOW.replace(minute=0) - dt.timedelta(hours=3)
"""Traffic sits in hours HOUR0 and HOUR0 + 1h, a few hours ago."""


def close(actual: float | None, expected: float, tolerance: float = 0.10) -> bool:
    return actual is not None and abs(actual - expected) <= tolerance * expected


@pytest.fixture
async def traffic(admin, gateway) -> dict[str, str]:
    """Tenant a: 100 requests in HOUR0 (latency 1..100 ms, ttft = latency/2), 10 of them errors, on two models;
    tenant b: 5 requests in HOUR0 + 1h; one request of a exactly at the window's end (excluded)."""
    a = (await new_tenant(admin, "tenant-a"))["id"]
    b = (await new_tenant(admin, "tenant-b"))["id"]
    events = []
    seq = 0
    for i in range(1, 101):
        seq += 1
        events.append(
            event(
                a, seq,
                started_at=HOUR0 + dt.timedelta(seconds=i),
                model="m-big" if i % 2 else "m-small",
                route="r1" if i <= 50 else "r2",
                status=500 if i % 10 == 0 else 200,
                input_tokens=i, output_tokens=2 * i, cost_usd=0.001 * i, latency_ms=float(i), ttft_ms=i / 2,
            )
        )  # fmt: skip
    for i in range(5):
        seq += 1
        events.append(
            event(b, seq, started_at=HOUR0 + dt.timedelta(hours=1, minutes=i), model="m-small", backend="other",
                  input_tokens=7, output_tokens=3, cost_usd=0.5, latency_ms=200.0, ttft_ms=None)
        )  # fmt: skip
    seq += 1
    events.append(event(a, seq, started_at=HOUR0 + dt.timedelta(hours=2), cost_usd=99.0))
    result = await post_usage(gateway, events)
    assert result["accepted"] == len(events)
    return {"a": a, "b": b}


async def test_totals_are_exact_scoped_and_until_is_exclusive(app, traffic):
    until = HOUR0 + dt.timedelta(hours=2)
    async with app.state.sessions() as session:
        everything = await analytics.totals(session, since=HOUR0, until=until)
        only_a = await analytics.totals(session, since=HOUR0, until=until, tenant_id=traffic["a"])
        only_b = await analytics.totals(session, since=HOUR0, until=until, tenant_id=traffic["b"])
        nobody = await analytics.totals(session, since=HOUR0, until=until, tenant_id="no-such-tenant")
    assert only_a == analytics.Totals(100, 10, 5050, 10100, Decimal("5.050"))
    assert only_b == analytics.Totals(5, 0, 35, 15, Decimal("2.5"))
    assert everything.requests == 105
    assert everything.cost_usd == Decimal("7.550")
    assert nobody == analytics.Totals(0, 0, 0, 0, Decimal(0))


async def test_series_by_hour_and_by_group(app, traffic):
    until = HOUR0 + dt.timedelta(hours=3)
    async with app.state.sessions() as session:
        hourly = await analytics.series(session, since=HOUR0, until=until, bucket="hour")
        by_model = await analytics.series(session, since=HOUR0, until=until, bucket="hour", group_by="model",
                                          tenant_id=traffic["a"])  # fmt: skip
        by_tenant = await analytics.series(session, since=HOUR0, until=until, bucket="day", group_by="tenant")
    assert [(p.start, p.group, p.requests) for p in hourly] == [
        (HOUR0, None, 100),
        (HOUR0 + dt.timedelta(hours=1), None, 5),
        (HOUR0 + dt.timedelta(hours=2), None, 1),
    ]
    assert all(p.start.tzinfo is not None and p.start.utcoffset() == dt.timedelta(0) for p in hourly)
    first = [p for p in by_model if p.start == HOUR0]
    assert {(p.group, p.requests, p.errors, p.cost_usd) for p in first} == {
        ("m-big", 50, 0, Decimal("2.500")),
        ("m-small", 50, 10, Decimal("2.550")),
    }
    assert sum(p.requests for p in by_tenant) == 106
    assert {p.group for p in by_tenant} == {traffic["a"], traffic["b"]}
    assert sum(p.cost_usd for p in by_tenant if p.group == traffic["b"]) == Decimal("2.5")


async def test_latency_percentiles_per_bucket_and_group(app, traffic):
    until = HOUR0 + dt.timedelta(hours=2)
    async with app.state.sessions() as session:
        overall = await analytics.latency(session, since=HOUR0, until=until, bucket="hour", tenant_id=traffic["a"])
        by_route = await analytics.latency(session, since=HOUR0, until=until, bucket="hour", group_by="route")
        other = await analytics.latency(session, since=HOUR0, until=until, bucket="hour", tenant_id=traffic["b"])
    assert len(overall) == 1
    point = overall[0]
    assert point.start == HOUR0
    assert point.requests == 100
    assert point.group is None
    assert close(point.latency_p50_ms, 50.5)
    assert close(point.latency_p95_ms, 95)
    assert close(point.latency_p99_ms, 99)
    assert close(point.ttft_p50_ms, 25.25)
    assert close(point.ttft_p95_ms, 47.5)
    assert close(point.ttft_p99_ms, 49.5)
    routes = {(p.start, p.group): p for p in by_route}
    assert close(routes[(HOUR0, "r1")].latency_p50_ms, 25.5)
    assert close(routes[(HOUR0, "r2")].latency_p95_ms, 97.5)
    assert routes[(HOUR0 + dt.timedelta(hours=1), "chat-default")].requests == 5
    assert other[0].ttft_p95_ms is None  # no request of b had a first token
    assert close(other[0].latency_p95_ms, 200)


@pytest.mark.parametrize("bucket", ["hour", "day"])
async def test_latency_and_overall_from_one_read_equal_the_two_reads(app, traffic, bucket):
    """The latency page's two charts (by group, and overall) from one read are what two reads would give."""
    since, until = HOUR0 - dt.timedelta(days=2), NOW + dt.timedelta(hours=1)
    async with app.state.sessions() as session:
        for tenant_id in (None, traffic["a"], traffic["b"]):
            overall = await analytics.latency(session, since=since, until=until, bucket=bucket, tenant_id=tenant_id)
            assert overall, tenant_id
            for group_by in ("route", "backend", "model"):
                grouped = await analytics.latency(
                    session, since=since, until=until, bucket=bucket, group_by=group_by, tenant_id=tenant_id
                )
                both = await analytics.latency_and_overall(
                    session, since=since, until=until, bucket=bucket, group_by=group_by, tenant_id=tenant_id
                )
                assert both == (grouped, overall), (tenant_id, group_by)


async def test_series_of_the_top_groups_and_the_others(app, admin, gateway):
    """Ten tenants over two days: ``top=3`` draws the three biggest spenders of the window and, per bucket, the
    rest summed; the points add up to the totals; with room for everyone there is no ``others``."""
    day0 = NOW.replace(hour=0, minute=0) - dt.timedelta(days=3)
    tenants = [(await new_tenant(admin, f"top-{i}"))["id"] for i in range(10)]
    events = []
    for i, tenant in enumerate(tenants):
        for d in range(2):
            when = day0 + dt.timedelta(days=d, hours=i, minutes=20)  # whole days, and a ragged start (raw rows)
            events.append(event(tenant, 2 * i + d + 1, started_at=when, cost_usd=0.01 * (i + 1) * (d + 1),
                                input_tokens=i))  # fmt: skip
    assert (await post_usage(gateway, events))["accepted"] == 20
    since, until = day0 + dt.timedelta(minutes=10), day0 + dt.timedelta(days=2)
    async with app.state.sessions() as session:
        top = await analytics.series(session, since=since, until=until, bucket="day", group_by="tenant", top=3)
        everyone = await analytics.series(session, since=since, until=until, bucket="day", group_by="tenant")
        roomy = await analytics.series(session, since=since, until=until, bucket="day", group_by="tenant", top=10)
        totals = await analytics.totals(session, since=since, until=until)
    assert {p.group for p in top if not p.others} == set(tenants[-3:])
    others = {p.start: p for p in top if p.others}
    assert sorted(others) == [day0, day0 + dt.timedelta(days=1)]
    for start, point in others.items():
        rest = [p for p in everyone if p.start == start and p.group not in tenants[-3:]]
        assert (point.requests, point.input_tokens, point.cost_usd, point.group) == (
            len(rest),
            sum(p.input_tokens for p in rest),
            sum((p.cost_usd for p in rest), Decimal(0)),
            None,
        )
    assert sum(p.requests for p in top) == totals.requests == 20
    assert sum((p.cost_usd for p in top), Decimal(0)) == totals.cost_usd
    assert roomy == everyone
    assert [p.start for p in top] == sorted(p.start for p in top)
