"""Monthly partitions of ``usage`` on Postgres, and retention.

Each month (UTC) of ``started_at`` has its own partition, ``usage_pYYYYMM``. There is no
default partition: a row for a month without one would fail, so ingest creates the partitions of a batch's months
first (``ensure_partitions``, in its own short transaction; ``CREATE TABLE … PARTITION OF`` briefly locks the parent),
and the API's maintenance task keeps this month's and the next one's ready. Events are accepted only within a bounded
window of ``started_at`` (``interlock.api.schemas.UsageEventIn``), so a gateway cannot make unbounded partitions.

``spans`` (the spans of rows counted before they became a column of the row, migration ``c5e8a1f3b7d2``) has
partitions ``spans_pYYYYMM`` of the months before it; none are made any more.

Retention (``usage_retention_months``) drops whole partitions of both older than the months kept; on SQLite, where
``usage`` and ``spans`` are plain tables, it deletes those rows. Rollups are kept.
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Iterable

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.db.models import Span, Usage
from interlock.db.rollups import ROLLUP_WATERMARKS

__all__ = [
    "Month",
    "apply_retention",
    "ensure_partitions",
    "list_partitions",
    "month_start",
    "months_of",
    "prepare_months_ahead",
]

Month = tuple[int, int]
PARTITIONED = ("usage", "spans")
"""What retention drops a month of; ingest creates ``usage``'s partitions only."""
_NAME = re.compile(r"^usage_p(\d{4})(\d{2})$")
_known: weakref.WeakKeyDictionary[object, set[Month]] = weakref.WeakKeyDictionary()


def month_start(month: Month) -> dt.datetime:
    return dt.datetime(month[0], month[1], 1, tzinfo=dt.UTC)


def _next(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def _minus(month: Month, months: int) -> Month:
    index = month[0] * 12 + month[1] - 1 - months
    return (index // 12, index % 12 + 1)


def months_of(moments: Iterable[dt.datetime]) -> set[Month]:
    return {(m.astimezone(dt.UTC).year, m.astimezone(dt.UTC).month) for m in moments}


async def ensure_partitions(engine: AsyncEngine, months: Iterable[Month]) -> None:
    """Create the partitions of these months where missing (Postgres; nothing to do on SQLite). Known months are
    remembered per engine, so the usual batch costs a set lookup."""
    if engine.dialect.name != "postgresql":
        return
    known = _known.setdefault(engine.sync_engine, set())
    missing = sorted(set(months) - known)
    if not missing:
        return
    for month in missing:
        lo, hi = month_start(month).isoformat(), month_start(_next(month)).isoformat()
        name = f"usage_p{month[0]:04d}{month[1]:02d}"
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "usage" '
                        f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
                    )
                )
        except DBAPIError as exc:  # another process created it between IF NOT EXISTS and CREATE
            if "already exists" not in str(exc):
                raise
        known.add(month)


async def list_partitions(engine: AsyncEngine) -> list[Month]:
    """The months that have a ``usage`` partition (Postgres), oldest first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage'"
            )
        )
        names = [str(row[0]) for row in rows]
    return sorted((int(m[1]), int(m[2])) for name in names if (m := _NAME.match(name)))


async def apply_retention(engine: AsyncEngine, *, now: dt.datetime, keep_months: int) -> list[Month]:
    """Drop the raw usage and spans of months before the ``keep_months`` most recent (the current one included);
    0 keeps everything. Returns the months dropped (Postgres) or ``[]`` (SQLite, where the rows are deleted)."""
    if keep_months <= 0:
        return []
    current = (now.astimezone(dt.UTC).year, now.astimezone(dt.UTC).month)
    first_kept = _minus(current, keep_months - 1)
    if engine.dialect.name != "postgresql":
        async with engine.begin() as connection:
            cutoff = month_start(first_kept)
            await connection.execute(delete(Span).where(Span.started_at < cutoff))
            await connection.execute(delete(Usage).where(Usage.started_at < cutoff))
        return []
    # A month not folded yet into every rollup kept by folding (the API was down for longer than the retention)
    # is kept until it is: its rows exist nowhere else.
    async with engine.connect() as connection:
        folded = (await connection.execute(select(func.min(ROLLUP_WATERMARKS.c.folded_until)))).scalar()
    dropped = [
        month
        for month in await list_partitions(engine)
        if month < first_kept and (folded is None or month_start(_next(month)) <= folded)
    ]
    for month in dropped:
        async with engine.begin() as connection:
            for table in PARTITIONED:
                await connection.execute(text(f'DROP TABLE IF EXISTS "{table}_p{month[0]:04d}{month[1]:02d}"'))
        _known.get(engine.sync_engine, set()).discard(month)
    return dropped


async def prepare_months_ahead(engine: AsyncEngine, *, now: dt.datetime) -> None:
    """This month's and the next month's partitions, so ingest rarely has to create one."""
    current = (now.astimezone(dt.UTC).year, now.astimezone(dt.UTC).month)
    await ensure_partitions(engine, [current, _next(current)])
