"""Upgrading a database that already holds usage: rows and spans survive (on Postgres into monthly partitions),
ids keep counting up, and the rollups are built from the existing rows; and back down again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interlock.api.crud.fold import fold_until
from interlock.api.crud.partitions import ensure_partitions, months_of
from interlock.db.histogram import bin_of
from interlock.db.migrate import downgrade, migrate
from interlock.db.session import create_engine
from tests.db.support import temporary_postgres

BEFORE = "37147a8cffa0"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MOMENTS = [NOW - dt.timedelta(days=62, hours=3), NOW - dt.timedelta(days=62, hours=1), NOW - dt.timedelta(hours=2)]


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with temporary_postgres("migrationdata") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'data.db'}"


async def _run(url: str, statements: list[tuple[str, Any]]) -> list[Any]:
    engine = create_engine(url)
    out = []
    try:
        async with engine.begin() as connection:
            sqlite = connection.dialect.name == "sqlite"
            for sql, params in statements:
                if callable(params):
                    params = params(sqlite)
                result = await connection.execute(sa.text(sql), params or {})
                out.append(result.all() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return out


def _usage(sqlite: bool) -> list[dict[str, Any]]:
    return [
        {
            "idempotency_id": f"evt-{i:08d}",
            "gateway_id": "gw",
            "seq": i + 1,
            "started_at": moment.replace(tzinfo=None) if sqlite else moment,
            "tenant_id": "t1" if i < 2 else "t2",
            "key_id": "k",
            "route": "r",
            "backend": "b",
            "model": "m",
            "status": 500 if i == 1 else 200,
            "input_tokens": 10 * (i + 1),
            "output_tokens": 5,
            "cached_tokens": 0,
            "cache_creation_tokens": 0,
            "usage_estimated": False,
            "cost_usd": 250_000_000 if sqlite else 0.25,
            "latency_ms": 100.0 * (i + 1),
            "ttft_ms": None,
            "trace_id": f"trace-{i}",
        }
        for i, moment in enumerate(MOMENTS)
    ]


INSERT_USAGE = (
    "INSERT INTO usage (idempotency_id, gateway_id, seq, started_at, tenant_id, key_id, route, backend, model, status, "
    "input_tokens, output_tokens, cached_tokens, cache_creation_tokens, usage_estimated, cost_usd, latency_ms, "
    "ttft_ms, trace_id) VALUES (:idempotency_id, :gateway_id, :seq, :started_at, :tenant_id, :key_id, :route, "
    ":backend, :model, :status, :input_tokens, :output_tokens, :cached_tokens, :cache_creation_tokens, "
    ":usage_estimated, :cost_usd, :latency_ms, :ttft_ms, :trace_id)"
)


async def test_upgrade_keeps_rows_and_builds_rollups(database_url: str) -> None:
    await migrate(database_url, BEFORE)
    await _run(
        database_url,
        [
            (INSERT_USAGE, _usage),
            (
                "INSERT INTO spans (usage_id, trace_id, position, name, start_ms, duration_ms, attributes) "
                "SELECT id, trace_id, 0, 'auth', 0, 1, '{}' FROM usage",
                None,
            ),
        ],
    )
    await migrate(database_url)
    usage, spans, hourly, daily, fleet, nextid = await _run(
        database_url,
        [
            ("SELECT id, idempotency_id, started_at FROM usage ORDER BY id", None),
            ("SELECT s.usage_id, s.started_at, u.started_at FROM spans s JOIN usage u ON u.id = s.usage_id", None),
            ("SELECT tenant_id, sum(requests), sum(errors), sum(input_tokens) FROM usage_hourly GROUP BY tenant_id "
             "ORDER BY tenant_id", None),
            ("SELECT count(*), sum(requests) FROM usage_daily", None),
            ("SELECT sum(requests), sum(lat_27 + lat_31 + lat_33) FROM fleet_daily", None),
            (INSERT_USAGE + " RETURNING id", lambda sqlite: {**_usage(sqlite)[0], "idempotency_id": "evt-new"}),
        ],
    )  # fmt: skip
    assert [row[1] for row in usage] == ["evt-00000000", "evt-00000001", "evt-00000002"]
    assert len(spans) == 3
    assert all(str(s[1]) == str(s[2]) for s in spans)
    assert [tuple(row) for row in hourly] == [("t1", 2, 1, 30), ("t2", 1, 0, 30)]
    assert daily[0][1] == 3
    assert tuple(fleet[0]) == (3, 3)  # 100, 200 and 300 ms in their bins
    assert nextid[0][0] > max(row[0] for row in usage)
    if "postgresql" in database_url:
        (partitions,) = await _run(
            database_url,
            [("SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage'",
              None)],
        )  # fmt: skip
        assert partitions[0][0] >= 2

    await downgrade(database_url, BEFORE)
    (after,) = await _run(database_url, [("SELECT count(*) FROM usage", None)])
    assert after[0][0] == 4


NARROWER = "6d2f4a8b1c53"


async def test_upgrade_builds_the_narrower_rollups_from_the_wider_ones(database_url: str) -> None:
    """Rows in two hours of one day and one of the month before, over two routes, backends and models: the
    one-dimension fleet rollups and the per-tenant daily and monthly ones hold the same sums as the raw rows."""
    await migrate(database_url, BEFORE)
    moments = [NOW - dt.timedelta(days=40), NOW - dt.timedelta(hours=5), NOW - dt.timedelta(hours=2)]

    def rows(sqlite: bool) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(_usage(sqlite) * 4):
            moment = moments[i % 3]
            out.append({
                **row, "idempotency_id": f"evt-{i:08d}", "seq": i + 1,
                "started_at": moment.replace(tzinfo=None) if sqlite else moment,
                "tenant_id": f"t{i % 2}", "route": f"r{i % 2}", "backend": f"b{i // 6}", "model": f"m{i % 4 // 2}",
                "latency_ms": 10.0 * (i + 1),
            })  # fmt: skip
        return out

    await _run(database_url, [(INSERT_USAGE, rows)])
    await migrate(database_url, NARROWER)
    checks = [
        (f"SELECT {dimension}, sum(requests), sum(errors), sum(input_tokens), sum(cost_usd) FROM {table} "
         f"GROUP BY {dimension} ORDER BY {dimension}")
        for dimension, table in (
            ("route", "usage"), ("route", "fleet_route_hourly"), ("route", "fleet_route_daily"),
            ("backend", "usage"), ("backend", "fleet_backend_hourly"), ("backend", "fleet_backend_daily"),
            ("model", "usage"), ("model", "fleet_model_hourly"), ("model", "fleet_model_daily"),
            ("tenant_id", "usage"), ("tenant_id", "tenant_daily"), ("tenant_id", "tenant_monthly"),
        )
    ]  # fmt: skip
    counted = [sql.replace("sum(requests)", "count(*)").replace("sum(errors)", "sum(CASE WHEN status >= 400 "
               "THEN 1 ELSE 0 END)") if " usage " in sql else sql for sql in checks]  # fmt: skip
    histograms = [
        f"SELECT sum({' + '.join(f'lat_{k:02d}' for k in range(80))}), sum(lat_14 + lat_18 + lat_22) FROM {name}"
        for name in ("fleet_route_hourly", "fleet_backend_daily", "fleet_model_daily")
    ]
    counts = [
        "SELECT count(*) FROM fleet_route_hourly",
        "SELECT count(*) FROM fleet_backend_daily",
        "SELECT count(*) FROM tenant_daily",
        "SELECT count(*) FROM tenant_monthly",
    ]
    found = await _run(database_url, [(sql, None) for sql in (*counted, *histograms, *counts)])
    for i in range(0, 12, 3):
        raw = [tuple(row) for row in found[i]]
        assert len(raw) == 2
        assert [tuple(row) for row in found[i + 1]] == raw
        assert [tuple(row) for row in found[i + 2]] == raw
    # 12 rows: latencies 10..120 ms, bins 13..27; 10, 20 and 40 ms sit in bins 14, 18 and 22 (of 4 per doubling)
    for total, some in (tuple(row[0]) for row in found[12:15]):
        assert (total, some) == (12, 3)
    hours = {(m.replace(minute=0, second=0), r) for m in moments for r in (0, 1)}
    days = {(m.date(), b) for i, m in enumerate(moments * 4) for b in [i // 6]}
    months = {(m.year, m.month, t) for i, m in enumerate(moments * 4) for t in [i % 2]}
    assert found[15][0][0] == len(hours)
    assert found[16][0][0] == len(days)
    assert found[17][0][0] == len({(m.date(), t) for i, m in enumerate(moments * 4) for t in [i % 2]})
    assert found[18][0][0] == len(months)

    await downgrade(database_url, BEFORE)
    await migrate(database_url)


PRIORITY = "6d2f1b3e8c54"


async def test_upgrade_builds_the_tenant_latency_histogram_from_the_kept_rows(database_url: str) -> None:
    """Rows of two tenants over two days, with and without a TTFT: ``tenant_latency_daily`` holds per (tenant, day,
    model, route, backend, bin) their latency and TTFT counts (bins as ``interlock.db.histogram.bin_of``), nonzero
    rows only; back down, the table goes and the rows stay."""
    await migrate(database_url, PRIORITY)
    moments = [NOW - dt.timedelta(days=3), NOW - dt.timedelta(hours=1)]

    def rows(sqlite: bool) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(_usage(sqlite) * 4):
            moment = moments[i % 2]
            out.append({
                **row, "idempotency_id": f"evt-{i:08d}", "seq": i + 1,
                "started_at": moment.replace(tzinfo=None) if sqlite else moment,
                "tenant_id": f"t{i % 3 // 2}", "route": f"r{i % 4 // 2}",
                "latency_ms": [0.5, 10.0, 100.0, 2.0 ** 5][i % 4], "ttft_ms": None if i % 3 else 4.0 + i,
            })  # fmt: skip
        return out

    inserted = rows(False)
    await _run(database_url, [(INSERT_USAGE, rows)])
    await migrate(database_url)
    (stored,) = await _run(
        database_url,
        [("SELECT tenant_id, bucket, model, route, backend, bin, latency, ttft FROM tenant_latency_daily", None)],
    )
    expected: dict[tuple[Any, ...], list[int]] = {}
    for row in inserted:
        day = row["started_at"].astimezone(dt.UTC).strftime("%Y-%m-%d")
        key = (row["tenant_id"], day, row["model"], row["route"], row["backend"])
        expected.setdefault((*key, bin_of(row["latency_ms"])), [0, 0])[0] += 1
        if row["ttft_ms"] is not None:
            expected.setdefault((*key, bin_of(row["ttft_ms"])), [0, 0])[1] += 1
    got = {(r[0], str(r[1])[:10], *r[2:6]): [r[6], r[7]] for r in stored}
    assert got == expected
    assert sum(latency for latency, _ in got.values()) == len(inserted)
    assert {key[5] for key in got} >= {0, 14, 21, 27}  # 0.5 ms, 10 ms, 2^5 ms (a bin's lower bound), 100 ms

    await downgrade(database_url, PRIORITY)
    (after,) = await _run(database_url, [("SELECT count(*) FROM usage", None)])
    assert after[0][0] == len(inserted)
    await migrate(database_url)
    (again,) = await _run(database_url, [("SELECT count(*) FROM tenant_latency_daily", None)])
    assert again[0][0] == len(expected)


FOLDED = "b7d41f6e2c90"


async def test_upgrade_leaves_nothing_counted_for_the_fold_to_add_again(database_url: str) -> None:
    """On Postgres ``tenant_latency_daily`` is folded from the raw rows from the upgrade on: its ``folded_until``
    starts after every row counted before, a row that started in the future (a gateway's clock ahead) included,
    so folding later adds none of them twice. On SQLite nothing is folded (no row: kept at ingest)."""
    await migrate(database_url, PRIORITY)  # before tenant_latency_daily: the upgrade builds it from these rows
    ahead = NOW + dt.timedelta(hours=1)
    engine = create_engine(database_url)
    try:
        await ensure_partitions(engine, months_of([*MOMENTS, ahead]))
    finally:
        await engine.dispose()

    def rows(sqlite: bool) -> list[dict[str, Any]]:
        out = _usage(sqlite)
        out[-1]["started_at"] = ahead.replace(tzinfo=None) if sqlite else ahead
        return out

    await _run(database_url, [(INSERT_USAGE, rows)])
    await migrate(database_url)
    (marks, counted) = await _run(
        database_url,
        [
            ("SELECT rollup, folded_until FROM rollup_watermarks", None),
            ("SELECT sum(latency) FROM tenant_latency_daily", None),
        ],
    )
    assert counted[0][0] == len(MOMENTS)  # built from the kept rows, as before
    if database_url.startswith("sqlite"):
        assert marks == []
        return
    ((name, folded),) = marks
    assert name == "tenant_latency_daily"
    assert folded > ahead
    engine = create_engine(database_url)
    try:
        await fold_until(engine, NOW + dt.timedelta(days=2))
    finally:
        await engine.dispose()
    (after,) = await _run(database_url, [("SELECT sum(latency) FROM tenant_latency_daily", None)])
    assert after[0][0] == len(MOMENTS)

    await downgrade(database_url, "e5b2c8d4f1a7")  # back to keeping it at ingest
    await migrate(database_url)
