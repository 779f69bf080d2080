"""``tenant_latency_daily`` folded from the raw rows after the fact (``interlock.api.crud.fold``, Postgres): every
counted row is in it exactly once, whether ingest added it (it started before the fold's claim) or a fold did, with
ingest and folds running at the same time, and after a fold that died half-way; ingest does not wait for a fold's
long part; the API's maintenance folds what ended two minutes ago; retention keeps a month not folded yet; and a
question's segments read the rollup, and the rows not in it raw."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.api.crud.fold import FOLD_DELAY, claimed, fold_once, fold_tenant_latency, fold_until, watermark
from interlock.api.crud.ingest import ingest_events
from interlock.api.crud.partitions import apply_retention, ensure_partitions, list_partitions
from interlock.api.crud.rollup import day_start
from interlock.api.crud.rollup_query import Query, Segment, _tenant_segments
from interlock.api.schemas import UsageEventWire
from interlock.contract.controlplane import UsageEvent
from interlock.db.histogram import bin_of
from interlock.db.rollups import ROLLUP_WATERMARKS, TENANT_LATENCY_DAILY
from interlock.db.session import create_engine, create_sessionmaker
from tests.api.conftest import TABLES
from tests.api.support import fold_from

NOW = dt.datetime.now(dt.UTC)
T0 = (NOW - dt.timedelta(hours=3)).replace(second=0, microsecond=0)


@pytest_asyncio.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield engine
    await fold_from(engine, dt.datetime.now(dt.UTC))
    await engine.dispose()


def _events(rng: random.Random, gateway: str, count: int, within: dt.timedelta) -> list[UsageEvent]:
    return [
        UsageEventWire.model_validate(
            {
                "idempotency_id": f"{gateway}-{seq:06d}",
                "gateway_id": gateway,
                "seq": seq,
                "started_at": T0 + dt.timedelta(seconds=rng.uniform(0, within.total_seconds())),
                "tenant_id": rng.choice(["t-1", "t-2", "t-3"]),
                "key_id": "k",
                "route": rng.choice(["chat", "embed"]),
                "backend": "vllm",
                "model": rng.choice(["m-a", "m-b"]),
                "status": 200,
                "input_tokens": 10,
                "output_tokens": 5,
                "cost_usd": 0.001,
                "latency_ms": rng.lognormvariate(5, 1),
                "ttft_ms": rng.choice([None, rng.lognormvariate(4, 1)]),
                "trace_id": f"tr-{seq}",
            }
        )
        for seq in range(1, count + 1)
    ]


def _expected(events: list[UsageEvent]) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = {}
    for e in events:
        key = (e.tenant_id, day_start(e.started_at), e.model, e.route, e.backend)
        out.setdefault((*key, bin_of(e.latency_ms)), [0, 0])[0] += 1
        if e.ttft_ms is not None:
            out.setdefault((*key, bin_of(e.ttft_ms)), [0, 0])[1] += 1
    return out


async def _stored(engine: AsyncEngine) -> dict[tuple[Any, ...], list[int]]:
    t = TENANT_LATENCY_DAILY
    async with engine.connect() as connection:
        rows = (await connection.execute(select(t))).all()
    return {(r.tenant_id, r.bucket, r.model, r.route, r.backend, r.bin): [r.latency, r.ttft] for r in rows}


async def test_ingest_and_folds_at_once_count_every_row_once(engine: AsyncEngine) -> None:
    """Six gateways send batches of rows that started within 20 minutes, in random order, while folds move
    ``folded_until`` through those 20 minutes a minute at a time: rows behind it when their batch is counted are
    added by ingest, the others by a fold; in the end the rollup holds each row once."""
    await fold_from(engine, T0)
    rng = random.Random(5)
    window = dt.timedelta(minutes=20)
    gateways = {f"gw/pod-{g}": _events(rng, f"gw/pod-{g}", 600, window) for g in range(6)}
    sessions = create_sessionmaker(engine)

    async def gateway(events: list[UsageEvent]) -> None:
        for start in range(0, len(events), 25):
            async with sessions() as session:
                await ingest_events(session=session, events=events[start : start + 25])
            await asyncio.sleep(0)

    folds: list[tuple[dt.datetime, dt.datetime]] = []

    async def folder() -> None:
        for minute in range(1, 21):
            async with engine.connect() as connection:
                done = await fold_once(connection, until=T0 + dt.timedelta(minutes=minute))
            if done is not None:
                folds.append(done)
            await asyncio.sleep(0.01)

    await asyncio.gather(folder(), *(gateway(events) for events in gateways.values()))
    async with sessions() as session:
        assert await watermark(session) == T0 + window
    assert len(folds) == 20  # one a minute, each while batches were being counted
    every = [event for events in gateways.values() for event in events]
    stored = await _stored(engine)
    assert sum(latency for latency, _ in stored.values()) == len(every)
    assert stored == _expected(every)


async def test_a_fold_that_died_after_its_claim_is_finished_by_the_next(engine: AsyncEngine) -> None:
    """The claim committed, the fold itself never did: rows counted before the claim are unmarked (the next fold
    adds them), rows counted after it and before the claimed time are marked (ingest added them); the next fold
    folds the claimed stretch, and each row is in the rollup once."""
    await fold_from(engine, T0)
    events = _events(random.Random(11), "gw/pod-a", 400, dt.timedelta(minutes=20))
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        await ingest_events(session=session, events=events[:200])
    async with engine.begin() as connection:  # the claim of a fold that then died
        await connection.execute(update(ROLLUP_WATERMARKS).values(claimed_until=T0 + dt.timedelta(minutes=10)))
    async with sessions() as session:
        await ingest_events(session=session, events=events[200:])
    marked = [e for e in events[200:] if e.started_at < T0 + dt.timedelta(minutes=10)]
    assert marked
    assert await _stored(engine) == _expected(marked)
    assert await fold_until(engine, T0 + dt.timedelta(minutes=5)) == 1  # the claimed 10 minutes, whatever asked
    async with sessions() as session:
        assert await watermark(session) == T0 + dt.timedelta(minutes=10)
    assert await _stored(engine) == _expected([e for e in events if e.started_at < T0 + dt.timedelta(minutes=10)])
    await fold_until(engine, T0 + dt.timedelta(minutes=20))
    assert await _stored(engine) == _expected(events)


async def test_ingest_does_not_wait_for_a_fold_that_is_adding_rows(engine: AsyncEngine) -> None:
    """The long part of a fold (adding the rows, moving ``folded_until``) holds the watermark row, not the claim
    lock: ingest goes on meanwhile. (Only the short claim waits for ingest, and ingest for it.)"""
    await fold_from(engine, T0)
    async with engine.connect() as folding:
        await folding.execute(update(ROLLUP_WATERMARKS).values(folded_until=T0 + dt.timedelta(minutes=1)))
        async with create_sessionmaker(engine)() as session:
            events = _events(random.Random(13), "gw/pod-a", 50, dt.timedelta(minutes=20))
            result = await asyncio.wait_for(ingest_events(session=session, events=events), timeout=10)
        assert result.accepted == 50
        await folding.rollback()


async def test_a_claim_waits_for_one_ingest_and_those_after_it_wait_for_the_claim(engine: AsyncEngine) -> None:
    """An ingest transaction holds the claim; a fold's claim waits for it; an ingest that asks meanwhile queues
    behind the claim (it does not join the first one ahead of it, so a steady stream of ingests cannot starve the
    claim) and then reads the new claim."""
    await fold_from(engine, T0)
    sessions = create_sessionmaker(engine)
    async with sessions() as first:
        assert await claimed(first) == T0
        async with engine.connect() as connection:
            fold = asyncio.create_task(fold_once(connection, until=T0 + dt.timedelta(minutes=3)))
            await asyncio.sleep(0.5)
            assert not fold.done()  # waiting for the first ingest's transaction
            async with sessions() as second:
                later = asyncio.create_task(claimed(second))
                await asyncio.sleep(0.5)
                assert not later.done()  # queued behind the claim
                await first.commit()
                assert await asyncio.wait_for(later, timeout=10) == T0 + dt.timedelta(minutes=3)
                await second.commit()
            assert await asyncio.wait_for(fold, timeout=10) == (T0, T0 + dt.timedelta(minutes=3))


async def test_a_row_behind_what_is_folded_is_added_by_ingest_once(engine: AsyncEngine) -> None:
    await fold_from(engine, T0 + dt.timedelta(minutes=10))
    events = _events(random.Random(7), "gw/pod-a", 200, dt.timedelta(minutes=20))
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        result = await ingest_events(session=session, events=events)
    assert result.accepted == 200
    late = [e for e in events if e.started_at < T0 + dt.timedelta(minutes=10)]
    assert 0 < len(late) < len(events)
    assert await _stored(engine) == _expected(late)
    async with sessions() as session:  # sent again (the gateway never heard the answer): nothing added
        assert (await ingest_events(session=session, events=events)).duplicates == 200
    assert await _stored(engine) == _expected(late)
    assert await fold_until(engine, T0 + dt.timedelta(minutes=20)) == 1
    assert await _stored(engine) == _expected(events)


async def test_the_api_maintenance_folds_what_ended_two_minutes_ago(engine: AsyncEngine) -> None:
    """``fold_tenant_latency`` folds whole minutes up to ``FOLD_DELAY`` before now; an idle stretch of hours costs
    one fold, not one per hour."""
    now = T0 + dt.timedelta(hours=2, minutes=30, seconds=40)
    await fold_from(engine, T0 - dt.timedelta(days=2))
    events = _events(random.Random(9), "gw/pod-a", 300, dt.timedelta(hours=2, minutes=30))
    async with create_sessionmaker(engine)() as session:
        await ingest_events(session=session, events=events)
    assert await _stored(engine) == {}
    assert await fold_tenant_latency(engine, now=now) == 3  # three hours of rows, an hour per fold
    expected_until = (now - FOLD_DELAY).replace(second=0)
    async with create_sessionmaker(engine)() as session:
        assert await watermark(session) == expected_until
    assert await _stored(engine) == _expected([e for e in events if e.started_at < expected_until])
    assert await fold_tenant_latency(engine, now=now) == 0


async def test_retention_keeps_a_month_not_folded_yet(engine: AsyncEngine) -> None:
    """The API was down for longer than the retention: the raw rows of a month not folded yet exist nowhere else,
    so that month stays until the fold has read it."""
    now = dt.datetime.now(dt.UTC)
    old = (now.replace(day=1) - dt.timedelta(days=70)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (old.year, old.month)
    await ensure_partitions(engine, [month])
    await fold_from(engine, old + dt.timedelta(days=3))
    assert await apply_retention(engine, now=now, keep_months=1) == []
    assert month in await list_partitions(engine)
    await fold_from(engine, now)
    assert month in await apply_retention(engine, now=now, keep_months=1)


def _day(d: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, d, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("folded", "unfolded"),
    [
        # before the window's whole days: all of them read raw as well (the unmarked rows: not in the rollup)
        (_day(1), [(_day(2), _day(9))]),
        # in the middle of a day: from it on
        (_day(6, 13, 7), [(_day(6, 13, 7), _day(9))]),
        # after the window, or kept at ingest (SQLite): the rollup holds every whole day
        (_day(31), []),
        (None, []),
    ],
)
def test_tenant_segments_read_raw_what_is_not_folded(folded: dt.datetime | None, unfolded: list[Any]) -> None:
    """Whole days from the rollup (which holds the rows before ``folded_until`` and those ingest marked), the
    unmarked rows of whole days from ``folded_until`` on raw, and the ragged ends raw (every row: no rollup)."""
    segments = _tenant_segments(Query(_day(1, 6), _day(9, 18), "day", (), (("tenant_id", "t-1"),)), folded)
    assert [s for s in segments if s.source == "tenant_days"] == [Segment("tenant_days", _day(2), _day(9))]
    assert sorted((s.lo, s.hi) for s in segments if s.source == "raw") == [
        (_day(1, 6), _day(2)),
        (_day(9), _day(9, 18)),
    ]
    assert sorted((s.lo, s.hi) for s in segments if s.source == "unfolded") == unfolded
    assert {s.source for s in segments} <= {"tenant_days", "raw", "unfolded"}
