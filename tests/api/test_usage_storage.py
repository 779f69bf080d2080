"""Usage storage at scale: the rollups agree with the raw rows over any window, percentiles from their histograms
are within their resolution, monthly partitions appear as needed, and retention drops whole months."""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, text

from interlock.api.crud import analytics
from interlock.api.crud.fold import fold_until
from interlock.api.crud.partitions import apply_retention, list_partitions
from interlock.api.crud.ranking import ranked
from interlock.api.crud.rollup import day_start
from interlock.api.crud.rollup_query import Query, histograms, rollup_table, sums, window_segments
from interlock.db.histogram import BINS, bin_of
from interlock.db.models import Span, Usage
from interlock.db.rollups import ROLLUPS, TENANT_LATENCY_DAILY, USAGE_DAILY
from tests.api.support import (
    as_counted_before_spans_moved,
    event,
    fold_from,
    new_tenant,
    post_usage,
)

NOW = dt.datetime.now(dt.UTC)
BASE = (NOW - dt.timedelta(days=40)).replace(minute=0, second=0, microsecond=0)


def _events(tenants: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for seq in range(1, count + 1):
        started = BASE + dt.timedelta(minutes=rng.uniform(0, 60 * 24 * 3))
        streamed = rng.random() < 0.7
        out.append(
            event(
                rng.choice(tenants),
                seq,
                started_at=started,
                model=rng.choice(["m-a", "m-b"]),
                route=rng.choice(["r1", "r2"]),
                status=rng.choice([200, 200, 200, 429, 500]),
                input_tokens=rng.randint(0, 1000),
                output_tokens=rng.randint(0, 500),
                cost_usd=round(rng.uniform(0, 0.01), 9),
                latency_ms=rng.lognormvariate(6, 1),
                ttft_ms=rng.lognormvariate(4, 1) if streamed else None,
            )
        )
    return out


def _exact(rows: list[dict[str, Any]], q: float) -> float:
    ordered = sorted(rows_value for rows_value in rows)  # type: ignore[type-var]
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


async def test_analytics_over_rollups_agree_with_the_raw_rows(app: FastAPI, admin: httpx.AsyncClient,
                                                              gateway: httpx.AsyncClient) -> None:  # fmt: skip
    tenants = [(await new_tenant(admin))["id"] for _ in range(3)]
    events = _events(tenants, 600, seed=7)
    for start in range(0, len(events), 200):
        assert (await post_usage(gateway, events[start : start + 200]))["accepted"] == 200
    assert (await post_usage(gateway, events[:50]))["duplicates"] == 50  # resent: counted once
    parsed = [{**e, "at": dt.datetime.fromisoformat(e["started_at"])} for e in events]

    # windows with ragged ends (raw rows), whole hours and whole days (rollups)
    windows = [
        (BASE + dt.timedelta(minutes=17), BASE + dt.timedelta(days=2, hours=5, minutes=41)),
        (BASE, BASE + dt.timedelta(days=3)),
        (BASE + dt.timedelta(hours=25, minutes=1), BASE + dt.timedelta(hours=25, minutes=50)),
        (BASE - dt.timedelta(days=1), BASE + dt.timedelta(days=5)),
    ]
    async with app.state.sessions() as session:
        for since, until in windows:
            for tenant_id in (None, tenants[1]):
                inside = [e for e in parsed if since <= e["at"] < until and tenant_id in (None, e["tenant_id"])]
                totals = await analytics.totals(session, since=since, until=until, tenant_id=tenant_id)
                assert totals.requests == len(inside)
                assert totals.errors == sum(e["status"] >= 400 for e in inside)
                assert totals.input_tokens == sum(e["input_tokens"] for e in inside)
                assert totals.output_tokens == sum(e["output_tokens"] for e in inside)
                assert totals.cost_usd == sum((Decimal(str(e["cost_usd"])) for e in inside), Decimal(0))

                for bucket in ("hour", "day"):
                    points = await analytics.series(
                        session, since=since, until=until, bucket=bucket, group_by="model", tenant_id=tenant_id
                    )
                    expected: dict[tuple[dt.datetime, str], int] = {}
                    for e in inside:
                        start = e["at"].astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
                        if bucket == "day":
                            start = start.replace(hour=0)
                        expected[(start, e["model"])] = expected.get((start, e["model"]), 0) + 1
                    assert {(p.start, p.group): p.requests for p in points} == expected
                    assert all(p.start.tzinfo is not None for p in points)

            inside = [e for e in parsed if since <= e["at"] < until]
            latency = await analytics.latency(session, since=since, until=until, bucket="day", group_by="route")
            for point in latency:
                group = [
                    e for e in inside
                    if e["route"] == point.group and e["at"].astimezone(dt.UTC).date() == point.start.date()
                ]  # fmt: skip
                assert point.requests == len(group)
                for q, got in ((0.5, point.latency_p50_ms), (0.95, point.latency_p95_ms)):
                    want = _exact([e["latency_ms"] for e in group], q)
                    assert got is not None
                    assert abs(got - want) <= 0.1 * want, (q, got, want)
                ttfts = [e["ttft_ms"] for e in group if e["ttft_ms"] is not None]
                if ttfts:
                    want = _exact(ttfts, 0.5)
                    assert point.ttft_p50_ms is not None
                    assert abs(point.ttft_p50_ms - want) <= 0.1 * want

        tenant_latency = await analytics.latency(
            session, since=windows[1][0], until=windows[1][1], bucket="day", tenant_id=tenants[0]
        )
        assert sum(p.requests for p in tenant_latency) == sum(
            1 for e in parsed if e["tenant_id"] == tenants[0] and windows[1][0] <= e["at"] < windows[1][1]
        )

    daily = (await admin.get("/v1/usage/daily", params={"tenant_id": tenants[2], "group_by": "model"})).json()
    assert sum(d["requests"] for d in daily["data"]) == sum(1 for e in events if e["tenant_id"] == tenants[2])


def _bucket(at: dt.datetime, grain: str) -> dt.datetime:
    at = at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return at if grain == "hour" else at.replace(hour=0) if grain == "day" else at.replace(day=1, hour=0)


async def test_every_rollup_holds_the_sums_of_the_raw_rows(app: FastAPI, admin: httpx.AsyncClient,
                                                           gateway: httpx.AsyncClient) -> None:  # fmt: skip
    """Each table of ``ROLLUPS`` (its grain, its key) is kept at ingest; a window over whole months reads
    ``tenant_monthly`` for a tenant's totals and still agrees with the rows."""
    tenants = [(await new_tenant(admin))["id"] for _ in range(3)]
    events = _events(tenants, 300, seed=11)
    for i, e in enumerate(events[:60]):  # some in the month before, so a window holds a whole month
        e["started_at"] = (BASE - dt.timedelta(days=31, minutes=37 * i)).isoformat()
    for start in range(0, len(events), 100):
        assert (await post_usage(gateway, events[start : start + 100]))["accepted"] == 100
    parsed = [{**e, "at": dt.datetime.fromisoformat(e["started_at"])} for e in events]
    async with app.state.sessions() as session:
        for rollup in ROLLUPS:
            table = rollup.table
            keys = [table.c[d] for d in rollup.dimensions]
            statement = select(table.c.bucket, *keys, table.c.requests, table.c.errors, table.c.cost_usd)
            stored = {(row[0], *row[1:-3]): tuple(row[-3:]) for row in (await session.execute(statement)).all()}
            expected: dict[tuple[Any, ...], list[Any]] = {}
            for e in parsed:
                key = (_bucket(e["at"], rollup.grain), *(e[d] for d in rollup.dimensions))
                sums = expected.setdefault(key, [0, 0, Decimal(0)])
                sums[0] += 1
                sums[1] += e["status"] >= 400
                sums[2] += Decimal(str(e["cost_usd"]))
            assert stored == {key: tuple(v) for key, v in expected.items()}, table.name
            if rollup.histograms:
                lat = select(func.sum(sum((table.c[f"lat_{k:02d}"] for k in range(80)), start=0)))
                assert (await session.scalar(lat)) == len(parsed), table.name

        since, until = BASE - dt.timedelta(days=70), NOW + dt.timedelta(hours=1)
        for tenant_id in tenants:
            totals = await analytics.totals(session, since=since, until=until, tenant_id=tenant_id)
            mine = [e for e in parsed if e["tenant_id"] == tenant_id]
            assert (totals.requests, totals.cost_usd) == (
                len(mine),
                sum((Decimal(str(e["cost_usd"])) for e in mine), Decimal(0)),
            )


def _expected_histograms(
    rows: list[dict[str, Any]], grain: str | None, groups: tuple[str, ...]
) -> dict[tuple[Any, ...], tuple[int, list[int], list[int]]]:
    out: dict[tuple[Any, ...], tuple[int, list[int], list[int]]] = {}
    for e in rows:
        key = (_bucket(e["at"], grain) if grain else None, tuple(e[g] for g in groups))
        entry = out.setdefault(key, (0, [0] * BINS, [0] * BINS))
        entry[1][bin_of(e["latency_ms"])] += 1
        if e["ttft_ms"] is not None:
            entry[2][bin_of(e["ttft_ms"])] += 1
        out[key] = (entry[0] + 1, entry[1], entry[2])
    return out


async def _histograms(session: Any, query: Query) -> dict[tuple[Any, ...], tuple[int, list[int], list[int]]]:
    return {key: (h.requests, h.latency, h.ttft) for key, h in (await histograms(session, query)).items()}


async def test_tenant_latency_rollup_holds_the_raw_rows_histograms(app: FastAPI, admin: httpx.AsyncClient,
                                                                   gateway: httpx.AsyncClient) -> None:  # fmt: skip
    """``tenant_latency_daily`` holds, per tenant, UTC day, model, route, backend and bin, the raw rows' latency and
    TTFT counts, and only nonzero ones: on SQLite every row, kept at ingest; on Postgres the rows that started
    before its ``folded_until`` (ingest adds those), then the rest once folded. A tenant's histograms over whole
    days are read from it up to ``folded_until`` (they outlive the raw rows), the rest and the ragged ends from the
    raw rows, an hourly question from the raw rows only: exact before the fold and after it."""
    engine = app.state.engine
    postgres = engine.dialect.name == "postgresql"
    folded = BASE + dt.timedelta(days=1, hours=5, minutes=17)  # mid-way through the events' second day
    await fold_from(engine, folded)
    tenants = [(await new_tenant(admin))["id"] for _ in range(3)]
    events = _events(tenants, 400, seed=13)
    for start in range(0, len(events), 100):
        assert (await post_usage(gateway, events[start : start + 100]))["accepted"] == 100
    assert (await post_usage(gateway, events[:30]))["duplicates"] == 30  # resent: counted once
    parsed = [{**e, "at": dt.datetime.fromisoformat(e["started_at"])} for e in events]
    assert any(e["at"] < folded for e in parsed)
    assert any(e["at"] >= folded for e in parsed)

    def expected(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[int]]:
        out: dict[tuple[Any, ...], list[int]] = {}
        for e in rows:
            key = (e["tenant_id"], _bucket(e["at"], "day"), e["model"], e["route"], e["backend"])
            out.setdefault((*key, bin_of(e["latency_ms"])), [0, 0])[0] += 1
            if e["ttft_ms"] is not None:
                out.setdefault((*key, bin_of(e["ttft_ms"])), [0, 0])[1] += 1
        return out

    t = TENANT_LATENCY_DAILY
    tenant = tenants[1]
    mine = [e for e in parsed if e["tenant_id"] == tenant]
    day0 = day_start(BASE)
    whole = (day0, day0 + dt.timedelta(days=5))
    ragged = (day0 + dt.timedelta(hours=7, minutes=13), day0 + dt.timedelta(days=2, hours=2, minutes=5))
    questions = [
        ("day", ("route",), (("tenant_id", tenant),)),
        (None, ("model",), (("tenant_id", tenant),)),
        ("day", (), (("tenant_id", tenant),)),
        (None, (), (("tenant_id", tenant),)),
        ("day", ("tenant_id",), ()),  # the admin's latency by tenant
    ]
    async with app.state.sessions() as session:
        for fold in (False, True):
            if fold:
                assert (await fold_until(engine, NOW) > 0) is postgres  # an hour of rows per transaction
                assert await fold_until(engine, NOW) == 0  # folded once
            kept = [e for e in parsed if e["at"] < folded] if postgres and not fold else parsed
            rows = (await session.execute(select(t))).all()
            stored = {(r.tenant_id, r.bucket, r.model, r.route, r.backend, r.bin): [r.latency, r.ttft] for r in rows}
            assert stored == expected(kept), fold
            assert all(latency or ttft for latency, ttft in stored.values())
            for since, until in (whole, ragged):
                for grain, groups, equals in questions:
                    inside = [e for e in parsed if since <= e["at"] < until and all(e[c] == v for c, v in equals)]
                    got = await _histograms(session, Query(since, until, grain, groups, equals))  # type: ignore[arg-type]
                    assert got == _expected_histograms(inside, grain, groups), (fold, since, until, grain, groups)
            await session.commit()

        # the raw rows gone (as retention drops them): whole days still answer, from the rollup
        await session.execute(Usage.__table__.delete().where(Usage.tenant_id == tenant))
        await session.commit()
        question = ("day", ("route",), (("tenant_id", tenant),))
        got = await _histograms(session, Query(*whole, *question))  # type: ignore[arg-type]
        assert got == _expected_histograms(mine, "day", ("route",))
        days = (day0 + dt.timedelta(days=1), day0 + dt.timedelta(days=2))  # the ragged window's whole days
        got = await _histograms(session, Query(*ragged, *question))  # type: ignore[arg-type]
        assert got == _expected_histograms([e for e in mine if days[0] <= e["at"] < days[1]], "day", ("route",))
        assert got  # something left to compare
        hourly = Query(*whole, "hour", (), (("tenant_id", tenant),))
        assert await _histograms(session, hourly) == {}  # by hour: the raw rows only
        empty = Query(day0 - dt.timedelta(days=9), day0 - dt.timedelta(days=8), None, (), (("tenant_id", tenant),))
        assert await _histograms(session, empty) == {}


async def test_partitions_by_month_and_retention(app: FastAPI, admin: httpx.AsyncClient,
                                                 gateway: httpx.AsyncClient) -> None:  # fmt: skip
    tenant = (await new_tenant(admin))["id"]
    old = NOW - dt.timedelta(days=100)
    recent = NOW - dt.timedelta(minutes=5)
    events = [
        event(tenant, 1, started_at=old, spans=[{"name": "auth", "start_ms": 0, "duration_ms": 1}]),
        event(tenant, 2, started_at=recent, spans=[{"name": "auth", "start_ms": 0, "duration_ms": 1}]),
    ]
    result = await post_usage(gateway, events)
    assert result["accepted"] == 2
    engine = app.state.engine
    for counted in events:  # spans kept as an upgraded database keeps those of rows counted before they moved
        assert await as_counted_before_spans_moved(engine, counted["idempotency_id"]) == 1
    postgres = engine.dialect.name == "postgresql"
    old_month = (old.year, old.month)
    if postgres:
        assert old_month in await list_partitions(engine)
    too_far = await post_usage(gateway, [event(tenant, 3, started_at=NOW + dt.timedelta(days=60))])
    assert too_far["accepted"] == 0
    assert "started_at" in too_far["rejected"][0]["reason"]

    assert await apply_retention(engine, now=NOW, keep_months=0) == []  # 0 keeps everything
    dropped = await apply_retention(engine, now=NOW, keep_months=2)
    async with app.state.sessions() as session:
        kept = (await session.execute(select(Usage.started_at))).scalars().all()
        assert kept == [recent]
        assert (await session.scalar(select(func.count()).select_from(Span))) == 1
        rolled = await session.scalar(select(func.sum(USAGE_DAILY.c.requests)).where(USAGE_DAILY.c.tenant_id == tenant))
        assert rolled == 2  # rollups outlive the raw rows
        if postgres:
            assert old_month in dropped
            assert old_month not in await list_partitions(engine)
            names = await session.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'spans_p%'"))
            assert f"spans_p{old.year:04d}{old.month:02d}" not in set(names.scalars())
    # a late event for the dropped month gets its partition again (usage's: spans are the row's now)
    assert (await post_usage(gateway, [event(tenant, 4, started_at=old)]))["accepted"] == 1
    if postgres:
        assert old_month in await list_partitions(engine)
        async with app.state.sessions() as session:
            names = await session.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'spans_p%'"))
            assert f"spans_p{old.year:04d}{old.month:02d}" not in set(names.scalars())


def test_each_question_reads_the_narrowest_rollup_that_answers_it() -> None:
    def table(grain: Any, groups: tuple[str, ...] = (), equals: tuple[tuple[str, str], ...] = (),
              histograms: bool = False) -> str | None:  # fmt: skip
        found = rollup_table(Query(None, None, None, groups, equals), grain, histograms)
        return found.name if found is not None else None

    assert table("hour", ("route",), histograms=True) == "fleet_route_hourly"
    assert table("day", ("backend",), histograms=True) == "fleet_backend_daily"
    assert table("day", ("model",), (("model", "m"),), histograms=True) == "fleet_model_daily"
    assert table("day", histograms=True) == "fleet_backend_daily"  # no dimension: the fewest rows per bucket
    assert table("day", ("model", "route"), histograms=True) == "fleet_daily"
    assert table("hour", ("tenant_id",)) == "usage_hourly"
    assert table("day", ("tenant_id",)) == "tenant_daily"
    assert table("month", ("tenant_id",)) == "tenant_monthly"
    assert table("day", ("tenant_id", "model")) == "usage_daily"
    # per-tenant percentiles: no fleet table; whole days from tenant_latency_daily (below), the rest raw rows
    assert table("day", (), (("tenant_id", "t"),), histograms=True) is None
    assert table("month", ("route",)) is None


async def test_ranking_by_bounds_is_the_exact_ranking(app: FastAPI, admin: httpx.AsyncClient,
                                                      gateway: httpx.AsyncClient) -> None:  # fmt: skip
    """25 decoys spent a lot in the window's month but a cent in the window, 5 tenants spent only in it: bounded by
    the month, the decoys come first and fill the first chunk of candidates; the ranking is still the window's."""
    month = (NOW - dt.timedelta(days=70)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since, until = month + dt.timedelta(days=10, minutes=30), month + dt.timedelta(days=12, hours=5)
    decoys = [(await new_tenant(admin))["id"] for _ in range(25)]
    real = [(await new_tenant(admin))["id"] for _ in range(5)]
    events = []
    for i, tenant in enumerate(decoys):
        events.append(event(tenant, 2 * i + 1, started_at=month + dt.timedelta(days=2), cost_usd=100.0))
        events.append(event(tenant, 2 * i + 2, started_at=since + dt.timedelta(hours=i), cost_usd=0.01))
    for i, tenant in enumerate(real):  # one in a ragged end (raw rows), one in whole days
        events.append(event(tenant, 100 + i, started_at=since + dt.timedelta(minutes=5), cost_usd=0.5 * (i + 1)))
        events.append(event(tenant, 200 + i, started_at=since + dt.timedelta(days=1), cost_usd=0.5 * (i + 1)))
    assert (await post_usage(gateway, events))["accepted"] == len(events)
    expected = [(t,) for t in reversed(real)] + sorted((t,) for t in decoys)
    query = Query(since, until, None, ("tenant_id",))
    async with app.state.sessions() as session:
        for limit in (1, 3, 30, 40):
            page = await ranked(session, query, limit=limit)
            assert [groups for groups, _ in page] == expected[:limit]
        seen: list[tuple[str, ...]] = []
        after = None
        while True:
            page = await ranked(session, query, limit=4, after=after)
            if not page:
                break
            seen += [groups for groups, _ in page]
            after = (page[-1][1].cost_usd, page[-1][0])
        assert seen == expected
        top = await ranked(session, query, limit=1)
        assert (top[0][1].get("requests"), top[0][1].cost_usd) == (2, Decimal("5.000000000"))


async def test_a_month_read_as_the_month_less_its_days_outside_the_window(
    app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    """A window that covers most of a month reads that month from ``tenant_monthly`` less the days outside it:
    spend on those days (and a tenant that spent only then) stays out of the sums, the ranking and ``/v1/costs``."""
    first = (NOW - dt.timedelta(days=130)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    second = (first + dt.timedelta(days=32)).replace(day=1)
    third = (second + dt.timedelta(days=32)).replace(day=1)
    since, until = first + dt.timedelta(days=2, hours=7, minutes=13), third + dt.timedelta(days=1, hours=3)
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    assert sorted(window_segments(Query(since, until, None, ("tenant_id",)))) == sorted(
        [
            ("month", first, third, 1),  # the first two months whole, less
            ("day", first, first + 2 * day, -1),  # the first month's first two days,
            ("hour", first + 2 * day, first + 2 * day + 7 * hour, -1),  # the third day's first 7 hours
            ("raw", first + 2 * day + 7 * hour, since, -1),  # and the 8th hour's first 13 minutes;
            ("day", third, third + day, 1),  # the third month's first day and
            ("hour", third + day, third + day + 3 * hour, 1),  # the next day's first 3 hours
        ]
    )
    outside_only, a, b = [(await new_tenant(admin))["id"] for _ in range(3)]
    at_ = [  # (tenant, when, cost): in the window or not
        (outside_only, first + dt.timedelta(hours=5), 9.0, False),
        (a, first + dt.timedelta(days=1), 7.0, False),
        (a, first + dt.timedelta(days=2, hours=6), 0.25, False),  # the ragged day, before `since`
        (a, first + dt.timedelta(days=2, hours=7, minutes=30), 0.5, True),  # raw rows
        (a, first + dt.timedelta(days=2, hours=9), 0.5, True),  # hourly
        (a, first + dt.timedelta(days=20), 1.0, True),
        (b, second + dt.timedelta(days=3), 2.0, True),
        (b, third + dt.timedelta(hours=2), 0.125, True),
        (b, third + dt.timedelta(days=1, hours=4), 5.0, False),
        (b, third + dt.timedelta(days=9), 5.0, False),
    ]
    events = [event(t, 500 + i, started_at=when, cost_usd=cost) for i, (t, when, cost, _) in enumerate(at_)]
    assert (await post_usage(gateway, events))["accepted"] == len(events)
    want: dict[tuple[str, ...], tuple[int, Decimal]] = {}
    for t, when, cost, inside in at_:
        if since <= when < until:
            assert inside, when
            n, c = want.get((t,), (0, Decimal(0)))
            want[(t,)] = (n + 1, c + Decimal(str(cost)))
        else:
            assert not inside, when
    async with app.state.sessions() as session:
        found = await sums(
            session, Query(since, until, None, ("tenant_id",), among=(("tenant_id", (outside_only, a, b)),))
        )
        assert {key[1]: (entry.get("requests"), entry.cost_usd) for key, entry in found.items()} == want
        page = await ranked(session, Query(since, until, None, ("tenant_id",)), limit=50)
        mine = [(groups, entry.get("requests"), entry.cost_usd) for groups, entry in page if groups in want]
        assert mine == [((b,), 2, Decimal("2.125")), ((a,), 3, Decimal("2.0"))]
        assert all(groups != (outside_only,) for groups, _ in page)
    params = {"since": since.isoformat(), "until": until.isoformat(), "tenant_id": outside_only}
    assert (await admin.get("/v1/costs", params=params)).json()["data"] == []


def test_a_window_that_ends_now_reads_today_less_what_comes_after_it() -> None:
    """Today's daily row less the hours and raw rows after ``until`` (which do not exist yet: nothing to read)
    instead of every hour of today; a window that ends early in the day reads its hours as they are."""
    now = dt.datetime(2026, 12, 6, 15, 40, tzinfo=dt.UTC)
    today, hour = dt.datetime(2026, 12, 6, tzinfo=dt.UTC), dt.timedelta(hours=1)
    since = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    read = window_segments(Query(since, now - dt.timedelta(minutes=2), None, ("tenant_id",)), now=now)
    assert sorted(read) == sorted(
        [
            ("raw", now - dt.timedelta(minutes=2), today + 16 * hour, -1),
            ("hour", today + 16 * hour, today + dt.timedelta(days=1), -1),
            ("day", since, today.replace(day=1), 1),  # November's days from the 20th
            ("month", today.replace(day=1), dt.datetime(2027, 1, 1, tzinfo=dt.UTC), 1),  # December less the days
            ("day", today + dt.timedelta(days=1), dt.datetime(2027, 1, 1, tzinfo=dt.UTC), -1),  # after today
        ]
    )
    early = today + 3 * hour + dt.timedelta(minutes=10)
    earlier = window_segments(Query(since, early, None, ("tenant_id",)), now=now)
    assert ("hour", today, today + 3 * hour, 1) in earlier
    assert ("raw", today + 3 * hour, early, 1) in earlier
    # histograms are never subtracted
    assert all(s.sign == 1 for s in window_segments(Query(since, now, "day"), histograms=True, now=now))


async def test_sums_over_a_window_that_ends_now(app: FastAPI, admin: httpx.AsyncClient,
                                                gateway: httpx.AsyncClient) -> None:  # fmt: skip
    """Whichever way the ends are read, the sums are the raw rows': rows just after ``until`` stay out."""
    now = dt.datetime.now(dt.UTC)
    tenant = (await new_tenant(admin))["id"]
    until = now - dt.timedelta(seconds=30)
    at = [now - dt.timedelta(days=2, minutes=m) for m in (0, 50, 600)]
    at += [now - dt.timedelta(minutes=m) for m in (1, 20, 90, 300)] + [now - dt.timedelta(seconds=10)]
    events = [event(tenant, 900 + i, started_at=when, cost_usd=0.5 + i) for i, when in enumerate(at)]
    assert (await post_usage(gateway, events))["accepted"] == len(events)
    for since in (now - dt.timedelta(days=2, minutes=30), now - dt.timedelta(hours=3), now - dt.timedelta(days=9)):
        inside = [e for e, when in zip(events, at, strict=True) if since <= when < until]
        async with app.state.sessions() as session:
            found = await sums(session, Query(since, until, None, (), (("tenant_id", tenant),)))
            entry = found.get((None, ()))
            assert (entry.get("requests") if entry else 0) == len(inside)
            assert (entry.cost_usd if entry else Decimal(0)) == sum(Decimal(str(e["cost_usd"])) for e in inside)
            for grain in ("hour", "day"):
                series = await sums(session, Query(since, until, grain, (), (("tenant_id", tenant),)))  # type: ignore[arg-type]
                assert sum(e.get("requests") for e in series.values()) == len(inside)
