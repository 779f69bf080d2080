"""Rollups folded from the raw usage rows after the fact (``interlock.db.rollups.ROLLUP_WATERMARKS``), instead of
upserted at ingest: today ``tenant_latency_daily`` on Postgres.

Why: that rollup has a row per tenant, day, key and histogram bin, so an event upserted about two of its rows at
ingest, and those upserts were a third of Postgres's time per ingested event (bench/RESULTS.md). Folded a few
minutes at a time, a key's busy bins are written once per fold instead of once per event, and the raw rows are read
back through ``ix_usage_started_at`` in time order.

Two marks per rollup: ``claimed_until`` (C) and ``folded_until`` (W ≤ C). The invariant, which makes it exactly
once: the rollup holds exactly the rows ingest marked ``latency_rolled`` and the unmarked rows that started before W.

- Ingest holds the claim lock (an advisory lock) shared to its commit, reads C after taking it, and marks and adds
  to the rollup its new rows that started before C (late rows: a gateway's journal resent after an outage); it
  leaves the others unmarked.
- A fold (``fold_once``), one at a time (an advisory lock: API replicas take turns):
  1. claims C' in a short transaction holding the claim lock alone (it waits for the ingest transactions that
     read the old C, and those that ask meanwhile wait for it, no longer); from then on ingest marks the rows
     before C' itself;
  2. then, in a transaction of its own that ingest never waits for, adds the unmarked rows of ``[W, C')`` to the
     rollup and moves W to C'. Every unmarked row there was counted by an ingest that read an older C, so it
     committed before step 1 did and this transaction sees it. If the fold dies between the two, the next one
     folds ``[W, C)`` again: the marks still tell which rows are left.
- Queries read the rollup, and the unmarked rows from W on raw (``interlock.api.crud.rollup_query``).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from interlock.api.crud.dialect import dialect_name
from interlock.api.crud.rollup import binned, tenant_latency_sql
from interlock.db.models import Usage
from interlock.db.rollups import ROLLUP_WATERMARKS, TENANT_LATENCY_FOLD

__all__ = ["FOLD_DELAY", "FOLD_SPAN", "claimed", "fold_once", "fold_tenant_latency", "fold_until", "watermark"]

log = logging.getLogger("interlock.api")

FOLD_DELAY = dt.timedelta(minutes=2)
"""How long after a minute ends its rows are folded: a gateway sends its usage within seconds, so by then nearly
every row of the minute is in (a later one is added by ingest itself, one upsert)."""
FOLD_SPAN = dt.timedelta(hours=1)
"""The most one fold covers from its first row: a long backlog (the API was down) is folded an hour of rows at a
time, each in transactions of its own."""
FOLD_WORK_MEM = "128MB"
"""The fold's ``work_mem``: a few minutes of a busy fleet sum into several hundred thousand (tenant, day, key, bin)
groups, which Postgres's 4 MB default hashed and sorted on disk."""
_LOCK = 0x696E746C_666F6C64  # "intlfold": one fold at a time, whichever API process runs it
_CLAIM = 0x696E746C_636C616D  # "intlclam": ingest shares it to its commit; a fold's claim takes it alone

_W = ROLLUP_WATERMARKS.c


async def watermark(session: AsyncSession, rollup: str = TENANT_LATENCY_FOLD) -> dt.datetime | None:
    """The rollup's ``folded_until``, or None when it is kept at ingest (no row)."""
    statement = select(_W.folded_until).where(_W.rollup == rollup)
    value: dt.datetime | None = (await session.execute(statement)).scalar_one_or_none()
    return value


async def claimed(session: AsyncSession, rollup: str = TENANT_LATENCY_FOLD) -> dt.datetime | None:
    """The rollup's ``claimed_until`` for ingest, with the claim lock held shared until the session's transaction
    ends, so no fold claims past it meanwhile; None when the rollup is kept at ingest (no row: every row is added).

    An advisory lock, not a row lock: a fold's claim waits for the ingest transactions that hold it, and the ones
    that ask after the claim queue behind it, so a claim waits for one ingest transaction at most. (A claim by
    ``FOR UPDATE`` against ingest's ``FOR KEY SHARE`` starved: with a few gateways sending, some ingest held the row
    at every moment, and each new one joined them ahead of the claim; 6 minutes at the bench's rate.) The claim is
    read in a statement after the lock's, so it is the latest committed one."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _CLAIM})
    statement = select(_W.claimed_until).where(_W.rollup == rollup)
    value: dt.datetime | None = (await session.execute(statement)).scalar_one_or_none()
    return value


def _fold_sql() -> str:
    raw = (
        "rollup_raw AS (SELECT tenant_id, started_at, model, route, backend, latency_ms, ttft_ms FROM usage "
        "WHERE started_at >= $1 AND started_at < $2 AND NOT latency_rolled)"
    )
    return f"WITH {raw}, rollup_binned AS ({binned('rollup_raw')}) {tenant_latency_sql('rollup_binned')}"


_FOLD_SQL = _fold_sql()


async def fold_once(connection: AsyncConnection, *, until: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """Fold ``tenant_latency_daily``'s unmarked raw rows from its W up to ``until`` (at most ``FOLD_SPAN`` of rows),
    as the module's text says, on this one connection (its advisory lock outlives the transactions): the range
    folded, or None when there was nothing to do (no row: kept at ingest; W already there; or another process is
    folding)."""
    if connection.dialect.name != "postgresql":
        return None
    locked = (await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK})).scalar()
    await connection.commit()
    if not locked:
        return None
    try:
        return await _fold_locked(connection, until)
    finally:
        await connection.rollback()
        await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK})
        await connection.commit()


_ROW = _W.rollup == TENANT_LATENCY_FOLD


async def _fold_locked(connection: AsyncConnection, until: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    row = (await connection.execute(select(_W.claimed_until, _W.folded_until).where(_ROW))).one_or_none()
    await connection.commit()
    if row is None:
        return None
    claim, start = row
    if claim <= start:  # no claim left over from a fold that died half-way: claim the next stretch
        if start >= until:
            return None
        # an empty stretch (the API was idle, or down) is skipped to its first row: a gap is not an hour per fold
        first = (
            await connection.execute(select(func.min(Usage.started_at)).where(Usage.started_at >= start))
        ).scalar_one_or_none()
        claim = until if first is None else min(until, max(start, first) + FOLD_SPAN)
        # waits for the ingest transactions that read the old claim; those that ask meanwhile wait for this one
        await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM})
        await connection.execute(update(ROLLUP_WATERMARKS).where(_ROW).values(claimed_until=claim))
        await connection.commit()
    await connection.execute(text(f"SET LOCAL work_mem = '{FOLD_WORK_MEM}'"))  # begins the transaction
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute(_FOLD_SQL, start, claim)
    await connection.execute(update(ROLLUP_WATERMARKS).where(_ROW).values(folded_until=claim))
    await connection.commit()
    return start, claim


async def fold_until(engine: AsyncEngine, until: dt.datetime) -> int:
    """Fold up to ``until``, a ``FOLD_SPAN`` of rows per fold, each on a connection of its own; how many folds moved
    ``folded_until`` (0 on SQLite, where ingest keeps the rollup, or while another process folds)."""
    folds = 0
    while True:
        async with engine.connect() as connection:
            done = await fold_once(connection, until=until)
        if done is None:
            return folds
        folds += 1
        log.debug("tenant_latency_daily folded %s to %s", *done)


async def fold_tenant_latency(engine: AsyncEngine, *, now: dt.datetime) -> int:
    """Fold every whole minute that ended ``FOLD_DELAY`` before ``now`` (``fold_until``)."""
    return await fold_until(engine, (now - FOLD_DELAY).replace(second=0, microsecond=0))
