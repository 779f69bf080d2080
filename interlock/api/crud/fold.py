"""Rollups folded from the raw usage rows after the fact (``interlock.db.rollups.ROLLUP_WATERMARKS``), instead of
upserted at ingest: today ``tenant_latency_daily`` on Postgres.

Why: that rollup has a row per tenant, day, key and histogram bin, so an event upserted about two of its rows at
ingest, and those upserts were a third of Postgres's time per ingested event (bench/RESULTS.md). Folded a minute
at a time, the same rows are written once per minute instead of once per event (a tenant's key repeats its busy
bins many times a minute), and the raw rows are read back through ``ix_usage_started_at`` in time order.

The invariant, which makes it exactly once: the rollup holds exactly the counted usage rows that started before the
rollup's ``folded_until`` (W).

- Ingest takes W with ``FOR SHARE`` in its transaction (``watermark(lock=True)``) and adds to the rollup the new
  rows that started before W (late rows: a gateway's journal resent after an outage), none of the others.
- ``fold_once`` takes W with ``FOR UPDATE`` (it waits for the ingest transactions holding it, and ingest waits for
  it), adds every row of ``[W, W')`` from the raw table, and moves W to W', in one transaction. A row is in that
  range either from an ingest that committed before the fold's lock (the fold's next statement sees it) or from
  one that locked after the fold committed (it reads W' and adds a row before W' itself).
- Queries read the rollup for rows before W and the raw rows from W (``interlock.api.crud.rollup_query``).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from interlock.api.crud.dialect import dialect_name, driver_connection
from interlock.api.crud.rollup import binned, tenant_latency_sql
from interlock.db.models import Usage
from interlock.db.rollups import ROLLUP_WATERMARKS, TENANT_LATENCY_FOLD
from interlock.db.session import create_sessionmaker

__all__ = ["FOLD_DELAY", "FOLD_SPAN", "fold_once", "fold_tenant_latency", "watermark"]

log = logging.getLogger("interlock.api")

FOLD_DELAY = dt.timedelta(minutes=2)
"""How long after a minute ends its rows are folded: a gateway sends its usage within seconds, so by then nearly
every row of the minute is in (a later one is added by ingest itself, one upsert)."""
FOLD_SPAN = dt.timedelta(hours=1)
"""The most one fold transaction covers from its first row: ingest waits while a fold holds W, so a long backlog
(the API was down) is folded an hour of rows at a time, each in its own transaction."""

_W = ROLLUP_WATERMARKS.c


async def watermark(session: AsyncSession, rollup: str = TENANT_LATENCY_FOLD, lock: bool = False) -> dt.datetime | None:
    """The rollup's ``folded_until``, or None when it is kept at ingest (no row). ``lock``: held (``FOR SHARE``)
    until the session's transaction ends, so no fold moves it meanwhile (ingest)."""
    statement = select(_W.folded_until).where(_W.rollup == rollup)
    if lock and dialect_name(session) == "postgresql":
        statement = statement.with_for_update(read=True)
    value: dt.datetime | None = (await session.execute(statement)).scalar_one_or_none()
    return value


def _fold_sql() -> str:
    raw = (
        "rollup_raw AS (SELECT tenant_id, started_at, model, route, backend, latency_ms, ttft_ms FROM usage "
        "WHERE started_at >= $1 AND started_at < $2)"
    )
    return f"WITH {raw}, rollup_binned AS ({binned('rollup_raw')}) {tenant_latency_sql('rollup_binned')}"


_FOLD_SQL = _fold_sql()


async def fold_once(session: AsyncSession, *, until: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """Fold ``tenant_latency_daily``'s raw rows from its W up to ``until`` (at most ``FOLD_SPAN``) and commit:
    the range folded, or None when there was nothing to do (no row: kept at ingest; or W already there)."""
    if dialect_name(session) != "postgresql":
        return None
    seen = await watermark(session)  # without the lock first: a fold that has nothing to do makes ingest wait for none
    await session.rollback()
    if seen is None or seen >= until:
        return None
    statement = select(_W.folded_until).where(_W.rollup == TENANT_LATENCY_FOLD).with_for_update()
    start = (await session.execute(statement)).scalar_one_or_none()
    if start is None or start >= until:
        await session.rollback()
        return None
    # an empty stretch (the API was idle, or down) is skipped to its first row: a long gap is not an hour per fold
    first = (
        await session.execute(select(func.min(Usage.started_at)).where(Usage.started_at >= start))
    ).scalar_one_or_none()
    end = until if first is None else min(until, max(start, first) + FOLD_SPAN)
    await (await driver_connection(session)).execute(_FOLD_SQL, start, end)
    await session.execute(update(ROLLUP_WATERMARKS).where(_W.rollup == TENANT_LATENCY_FOLD).values(folded_until=end))
    await session.commit()
    return start, end


async def fold_tenant_latency(engine: AsyncEngine, *, now: dt.datetime) -> int:
    """Fold every whole minute that ended ``FOLD_DELAY`` before ``now``, a ``FOLD_SPAN`` per transaction; how many
    transactions moved ``folded_until``."""
    until = (now - FOLD_DELAY).replace(second=0, microsecond=0)
    folds = 0
    sessions = create_sessionmaker(engine)
    while True:
        async with sessions() as session:
            done = await fold_once(session, until=until)
        if done is None:
            return folds
        folds += 1
        log.debug("tenant_latency_daily folded %s to %s", *done)
