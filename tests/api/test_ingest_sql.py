"""Ingest on Postgres counts a batch in one statement (rows with their spans, and every rollup summed by Postgres);
it must store exactly what the row-by-row path (rows built and rollups summed in Python, as on SQLite) stores for
the same batches: every column of every row, span and rollup, money to the nano-dollar and histogram bins
included."""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.api.crud import ingest
from interlock.api.crud.fold import fold_until
from interlock.api.crud.rollup import MAINTAINED
from interlock.api.schemas import UsageEventWire
from interlock.contract.controlplane import UsageBatchResult, UsageEvent
from interlock.db.histogram import BOUNDS, bin_of, bin_sql
from interlock.db.rollups import TENANT_LATENCY_KEYS
from interlock.db.session import create_engine
from tests.api.conftest import TABLES
from tests.api.support import fold_from

NOW = dt.datetime.now(dt.UTC)


@pytest_asyncio.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def _events(seed: int, count: int, gateway: str = "tests/gw/pod-a") -> list[UsageEvent]:
    rng = random.Random(seed)
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    moments = [
        month_start - dt.timedelta(microseconds=1),  # the last moment of last month
        month_start,
        NOW - dt.timedelta(days=3, minutes=7),
        (NOW - dt.timedelta(days=1)).replace(hour=23, minute=59, second=59),
        NOW.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),  # not UTC: its UTC hour counts
    ]
    costs = [0.0000000005, 0.0000000015, 0.0000000025, 0.1, 1e-05, 0.000123456789, 0.3333333333333333, 0.0]
    latencies = [*BOUNDS[:12], 0.25, 1.0, 12.5, 1e9]
    events = []
    for seq in range(1, count + 1):
        streamed = rng.random() < 0.7
        events.append(
            UsageEventWire.model_validate(
                {
                    "idempotency_id": f"evt-{seed}-{seq:05d}" + ("\x00x" if seq % 17 == 0 else ""),
                    "gateway_id": gateway,
                    "seq": seq,
                    "started_at": rng.choice(moments) + dt.timedelta(seconds=rng.randint(0, 3)),
                    "tenant_id": rng.choice(["t-1", "t-2", "t\x00nul", "t-é"]),
                    "key_id": "key-1",
                    "route": rng.choice(["chat", "embed", "Z-route", "a-route"]),
                    "backend": rng.choice(["vllm", "openai"]),
                    "model": rng.choice(["m-a", "m-b"]),
                    "status": rng.choice([200, 200, 399, 400, 429, 500]),
                    "input_tokens": rng.randint(0, 2**40),
                    "output_tokens": rng.randint(0, 500),
                    "cached_tokens": rng.randint(0, 50),
                    "cache_creation_tokens": rng.randint(0, 50),
                    "usage_estimated": rng.random() < 0.2,
                    "spilled_over": rng.random() < 0.1,
                    "cost_usd": rng.choice(costs) if rng.random() < 0.5 else rng.uniform(0, 0.01),
                    "latency_ms": rng.choice(latencies) if rng.random() < 0.5 else rng.lognormvariate(6, 2),
                    "ttft_ms": (rng.choice(latencies) if rng.random() < 0.5 else rng.lognormvariate(4, 1))
                    if streamed
                    else None,
                    "trace_id": f"trace-{seq}" + ("\x00" if seq % 13 == 0 else ""),
                    "spans": [
                        {
                            "name": name + ("\x00" if seq % 11 == 0 else ""),
                            "start_ms": float(j) - 0.5,
                            "duration_ms": rng.uniform(0, 100),
                            **(
                                {}  # no attributes sent: none stored, a trace shows {}
                                if seq % 7 == 0 and j == 1
                                else {
                                    "attributes": {
                                        "n": j,
                                        "ok": True,
                                        "none": None,
                                        "text": "a\x00b \\u0000 é",
                                        "odd": rng.choice([math.inf, -math.inf, math.nan, 1.5]),
                                        "k\x00": "v",
                                    }
                                }
                            ),
                        }
                        for j, name in enumerate(["auth", "route", "upstream"][: rng.randint(0, 3)])
                    ],
                }
            )
        )
    return events


async def _count(
    engine: AsyncEngine,
    how: Callable[[AsyncSession, Sequence[UsageEvent]], Awaitable[UsageBatchResult]],
    events: Sequence[UsageEvent],
) -> UsageBatchResult:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        await ingest._prepare(session, events)
        result = await how(session, events)
        await session.commit()
    return result


async def _contents(engine: AsyncEngine) -> dict[str, list[Any]]:
    """Every row of usage (its spans parsed), the spans of each, and the maintained rollups, without ids, in a
    stable order."""
    out: dict[str, list[Any]] = {}
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM usage ORDER BY idempotency_id, started_at"))
        out["usage"] = [
            {k: orjson.loads(v) if k == "spans" and isinstance(v, str) else v for k, v in row._mapping.items()}
            for row in rows
        ]
        for row in out["usage"]:
            del row["id"], row["ingested_at"]
        out["spans"] = [(row["idempotency_id"], span) for row in out["usage"] for span in row["spans"] or ()]
        cursors = await connection.execute(text("SELECT gateway_id, seq FROM gateway_cursors ORDER BY gateway_id"))
        out["gateway_cursors"] = [tuple(row) for row in cursors]
        legacy = await connection.execute(text("SELECT count(*) FROM spans"))
        out["legacy spans"] = [legacy.scalar_one()]
        for rollup in MAINTAINED:
            order = ", ".join(rollup.keys)
            rows = await connection.execute(text(f"SELECT * FROM {rollup.table.name} ORDER BY {order}"))
            out[rollup.table.name] = [dict(row._mapping) for row in rows]
        order = ", ".join(TENANT_LATENCY_KEYS)
        rows = await connection.execute(text(f"SELECT * FROM tenant_latency_daily ORDER BY {order}"))
        out["tenant_latency_daily"] = [dict(row._mapping) for row in rows]
    return out


FOLDED = NOW - dt.timedelta(days=2)
"""``tenant_latency_daily``'s ``folded_until`` in these tests: ingest adds the rows that started before it (some of
``_events``'s moments), the fold the others (``interlock.api.crud.fold``)."""


async def test_one_statement_stores_what_the_row_by_row_path_stores(engine: AsyncEngine) -> None:
    first, second = _events(1, 400), _events(2, 300, gateway="tests/gw/pod-b")
    resent = [*first[:50], *second[100:150]]  # duplicates, counted once by both paths
    results = {}
    contents = {}
    late = {}
    for name, how in (("sql", ingest._count_postgres), ("rows", ingest._count_rows)):
        await _empty(engine)
        await fold_from(engine, FOLDED)
        results[name] = [
            await _count(engine, how, first),
            await _count(engine, how, [*resent, *second]),  # adds to rollup rows the first batch made
            await _count(engine, how, resent),
        ]
        late[name] = (await _contents(engine))["tenant_latency_daily"]
        assert await fold_until(engine, NOW + dt.timedelta(minutes=1)) > 0
        contents[name] = await _contents(engine)
    assert late["sql"] == late["rows"]
    before = sum(1 for row in contents["sql"]["usage"] if row["started_at"] < FOLDED)
    assert 0 < sum(row["latency"] for row in late["sql"]) == before < 700  # at ingest: the rows before FOLDED
    assert [(r.accepted, r.duplicates) for r in results["sql"]] == [(400, 0), (300, 100), (0, 100)]
    assert results["sql"] == results["rows"]
    assert len(contents["sql"]["usage"]) == 700
    assert contents["sql"]["usage"] == contents["rows"]["usage"]
    assert contents["sql"]["spans"] == contents["rows"]["spans"]
    assert contents["sql"]["spans"]  # something to compare
    assert contents["sql"]["gateway_cursors"] == contents["rows"]["gateway_cursors"]
    assert contents["sql"]["gateway_cursors"] == [("tests/gw/pod-a", 400), ("tests/gw/pod-b", 300)]
    assert contents["sql"]["legacy spans"] == contents["rows"]["legacy spans"] == [0]  # the table is not written
    assert not any(row["spans"] == [] for row in contents["sql"]["usage"])  # none: NULL, not an empty array
    assert any(row["spans"] is None for row in contents["sql"]["usage"])
    for rollup in MAINTAINED:
        name = rollup.table.name
        assert contents["sql"][name] == contents["rows"][name], name
        assert sum(row["requests"] for row in contents["sql"][name]) == 700, name
    sparse = contents["sql"]["tenant_latency_daily"]
    assert sparse == contents["rows"]["tenant_latency_daily"]
    assert sum(row["latency"] for row in sparse) == 700
    streamed = sum(1 for row in contents["sql"]["usage"] if row["ttft_ms"] is not None)
    assert sum(row["ttft"] for row in sparse) == streamed
    assert all(row["latency"] or row["ttft"] for row in sparse)  # sparse: no row of zeros
    # NUL became U+FFFD, an escaped backslash before "u0000" stayed text, non-finite floats null
    usage_ids = {row["idempotency_id"] for row in contents["sql"]["usage"]}
    assert "evt-1-00017\ufffdx" in usage_ids
    attributes = [span["attributes"] for _, span in contents["sql"]["spans"] if "attributes" in span]
    assert len(attributes) < len(contents["sql"]["spans"])  # some spans came without attributes
    assert all(a["text"] == "a\ufffdb \\u0000 é" and "k\ufffd" in a for a in attributes)
    assert {a["odd"] for a in attributes} <= {None, 1.5}
    costs = {row["cost_usd"] for row in contents["sql"]["usage"]}
    assert {Decimal("0E-9"), Decimal("0.000000002"), Decimal("0.000123457")} <= costs  # half to even


async def test_histogram_bins_in_sql_are_bin_of(engine: AsyncEngine) -> None:
    rng = random.Random(3)
    values = [*BOUNDS, *(math.nextafter(b, 0) for b in BOUNDS), 0.0, 0.999, 1e12]
    values += [rng.lognormvariate(5, 3) for _ in range(2000)]
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT v, {bin_sql('v')} FROM unnest(CAST(:values AS float8[])) AS t(v)"), {"values": values}
        )
        got = [(float(v), int(k)) for v, k in rows]
    assert got == [(v, bin_of(v)) for v in values]


def test_nul_escapes_are_replaced_in_the_document_only_where_they_are_nul() -> None:
    (event,) = _events(4, 1)
    tricky = event.model_copy(update={"tenant_id": "a\x00b\\u0000c\\\x00d", "route": "\\\\u0000"})
    document = orjson.loads(ingest.batch_document([tricky]))
    assert document[0]["tenant_id"] == "a\ufffdb\\u0000c\\\ufffdd"
    assert document[0]["route"] == "\\\\u0000"


async def test_the_statement_tells_listeners_only_when_rows_were_new(engine: AsyncEngine, postgres_url: str) -> None:
    """The spend notification (``interlock.api.configwatch``): a batch of duplicates sends none, a batch with a new
    row one (empty payload). Notifications arrive in commit order, so a marker sent between the two batches tells
    them apart."""
    await _empty(engine)
    events = _events(5, 20)
    await _count(engine, ingest._count_postgres, events)
    heard: list[str] = []
    listener = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await listener.add_listener("interlock_spend", lambda _c, _pid, _channel, payload: heard.append(payload))
        assert await _count(engine, ingest._count_postgres, events) == UsageBatchResult(accepted=0, duplicates=20)
        async with engine.begin() as connection:
            await connection.execute(text("SELECT pg_notify('interlock_spend', 'marker')"))
        new = _events(6, 1, gateway="tests/gw/pod-c")
        assert await _count(engine, ingest._count_postgres, new) == UsageBatchResult(accepted=1, duplicates=0)
        deadline = time.monotonic() + 10
        while len(heard) < 2 and time.monotonic() < deadline:
            await listener.execute("SELECT 1")  # notifications are read between queries
        assert heard == ["marker", ""]
    finally:
        await listener.close()
