"""Sums over a time window from the rollups, exact to the row: whole days from the daily rollup, whole hours from
the hourly one, and the ragged ends of the window (under an hour each) from the raw rows.

Fleet-wide questions (no tenant condition, not split by tenant) read ``fleet_*``, a few rows per bucket; the
others ``usage_*``, through its ``(tenant_id, bucket)`` index when a tenant is given. Latency histograms exist in
``fleet_*`` only: per-tenant percentiles are counted from the raw rows (``histograms``), bounded by the tenant's
index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import dialect_name
from interlock.api.crud.rollup import day_start, hour_start
from interlock.db.histogram import BINS, bin_of
from interlock.db.models import Usage
from interlock.db.rollups import (
    COUNTERS,
    FLEET_DAILY,
    FLEET_HOURLY,
    LATENCY_COLUMNS,
    TTFT_COLUMNS,
    USAGE_DAILY,
    USAGE_HOURLY,
)
from interlock.db.types import to_money

__all__ = ["DIMENSIONS", "Grain", "Histograms", "Query", "Sums", "histograms", "sums"]

Grain = Literal["hour", "day"]
DIMENSIONS = {"tenant": "tenant_id", "model": "model", "route": "route", "backend": "backend"}
_RAW = {
    "tenant_id": Usage.tenant_id,
    "model": Usage.model,
    "route": Usage.route,
    "backend": Usage.backend,
}


@dataclass(frozen=True, slots=True)
class Query:
    """What to sum: ``[since, until)`` (None: unbounded), split by ``grain`` (None: one bucket) and by the
    columns ``groups`` (of ``tenant_id``, ``model``, ``route``, ``backend``), where each ``(column, value)`` of
    ``equals`` holds."""

    since: dt.datetime | None
    until: dt.datetime | None
    grain: Grain | None = None
    groups: tuple[str, ...] = ()
    equals: tuple[tuple[str, str], ...] = ()

    @property
    def fleet(self) -> bool:
        return "tenant_id" not in self.groups and all(column != "tenant_id" for column, _ in self.equals)


Key = tuple[dt.datetime | None, tuple[str, ...]]


@dataclass(slots=True)
class Sums:
    counts: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    cost_usd: Decimal = Decimal(0)

    def get(self, name: str) -> int:
        return self.counts[COUNTERS.index(name)]


@dataclass(slots=True)
class Histograms:
    requests: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * BINS)
    ttft: list[int] = field(default_factory=lambda: [0] * BINS)


def _ceil(when: dt.datetime, floor: Any, step: dt.timedelta) -> dt.datetime:
    low: dt.datetime = floor(when)
    return low if low == when else low + step


def _segments(query: Query) -> list[tuple[str, dt.datetime | None, dt.datetime | None]]:
    """``(source, lo, hi)`` covering the window once: ``raw``, ``hour`` or ``day``."""
    hour = dt.timedelta(hours=1)
    since, until = query.since, query.until
    h0 = _ceil(since, hour_start, hour) if since is not None else None
    h1 = hour_start(until) if until is not None else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return [("raw", since, until)]
    out: list[tuple[str, dt.datetime | None, dt.datetime | None]] = []
    if since is not None and h0 != since:
        out.append(("raw", since, h0))
    if query.grain == "hour":
        out.append(("hour", h0, h1))
    else:
        d0 = _ceil(h0, day_start, dt.timedelta(days=1)) if h0 is not None else None
        d1 = day_start(h1) if h1 is not None else None
        if d0 is not None and d1 is not None and d0 >= d1:
            out.append(("hour", h0, h1))
        else:
            if h0 is not None and d0 != h0:
                out.append(("hour", h0, d0))
            out.append(("day", d0, d1))
            if h1 is not None and d1 != h1:
                out.append(("hour", d1, h1))
    if until is not None and h1 != until:
        out.append(("raw", h1, until))
    return out


def _truncate(session: AsyncSession, grain: Grain, column: Any) -> ColumnElement[Any]:
    if dialect_name(session) == "postgresql":
        return func.date_trunc(literal_column(f"'{grain}'"), func.timezone(literal_column("'UTC'"), column))
    pattern = "'%Y-%m-%d %H:00:00'" if grain == "hour" else "'%Y-%m-%d 00:00:00'"
    return func.strftime(literal_column(pattern), column)


def _as_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _source(session: AsyncSession, query: Query, source: str, lo: Any, hi: Any) -> tuple[Any, Any, list[Any], Any]:
    """(the bucket expression or None, the time column, the group columns, a column getter) of one segment."""
    time: Any
    bucket: Any
    if source == "raw":
        time = Usage.started_at
        groups = [_RAW[g] for g in query.groups]
        bucket = _truncate(session, query.grain, time) if query.grain else None
        return bucket, time, groups, lambda name: getattr(Usage, name)
    table: Table
    if source == "hour":
        table = FLEET_HOURLY if query.fleet else USAGE_HOURLY
    else:
        table = FLEET_DAILY if query.fleet else USAGE_DAILY
    time = table.c.bucket
    if query.grain is None:
        bucket = None
    elif query.grain == source:
        bucket = time
    else:
        bucket = _truncate(session, query.grain, time)
    return bucket, time, [table.c[g] for g in query.groups], lambda name: table.c[name]


def _where(query: Query, time: Any, column: Any, lo: Any, hi: Any) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [column(name) == value for name, value in query.equals]
    if lo is not None:
        clauses.append(time >= lo)
    if hi is not None:
        clauses.append(time < hi)
    return clauses


def _key(query: Query, row: Any) -> Key:
    start = _as_utc(row[0]) if query.grain else None
    offset = 1 if query.grain else 0
    return start, tuple(str(v) for v in row[offset : offset + len(query.groups)])


async def sums(session: AsyncSession, query: Query) -> dict[Key, Sums]:
    """The sums per (bucket start, groups); buckets without rows are absent."""
    out: dict[Key, Sums] = {}
    for source, lo, hi in _segments(query):
        bucket, time, groups, column = _source(session, query, source, lo, hi)
        keys = ([bucket] if bucket is not None else []) + groups
        if source == "raw":
            values = [
                func.count(),
                func.coalesce(func.sum(case((Usage.status >= 400, 1), else_=0)), 0),
                *[func.coalesce(func.sum(column(c)), 0) for c in COUNTERS[2:]],
                func.coalesce(func.sum(Usage.cost_usd), Decimal(0)),
            ]
        else:
            values = [func.coalesce(func.sum(column(c)), 0) for c in (*COUNTERS, "cost_usd")]
        statement = select(*keys, *values).where(*_where(query, time, column, lo, hi))
        if keys:
            statement = statement.group_by(*keys)
        for row in (await session.execute(statement)).all():
            if int(row[len(keys)]) == 0:
                continue  # an empty window still yields one row when nothing is grouped
            entry = out.setdefault(_key(query, row), Sums())
            numbers = row[len(keys) :]
            for i in range(len(COUNTERS)):
                entry.counts[i] += int(numbers[i])
            entry.cost_usd += to_money(numbers[-1])
    return out


async def histograms(session: AsyncSession, query: Query) -> dict[Key, Histograms]:
    """Latency and time-to-first-token histograms per (bucket start, groups)."""
    out: dict[Key, Histograms] = {}
    for source, lo, hi in _segments(query) if query.fleet else [("raw", query.since, query.until)]:
        bucket, time, groups, column = _source(session, query, source, lo, hi)
        keys = ([bucket] if bucket is not None else []) + groups
        where = _where(query, time, column, lo, hi)
        if source == "raw":
            statement = select(*keys, Usage.latency_ms, Usage.ttft_ms).where(*where)
            for row in (await session.execute(statement)).all():
                entry = out.setdefault(_key(query, row), Histograms())
                entry.requests += 1
                entry.latency[bin_of(float(row[len(keys)]))] += 1
                if row[len(keys) + 1] is not None:
                    entry.ttft[bin_of(float(row[len(keys) + 1]))] += 1
            continue
        values = [func.coalesce(func.sum(column(c)), 0) for c in ("requests", *LATENCY_COLUMNS, *TTFT_COLUMNS)]
        statement = select(*keys, *values).where(*where)
        if keys:
            statement = statement.group_by(*keys)
        for row in (await session.execute(statement)).all():
            numbers: Sequence[Any] = row[len(keys) :]
            if int(numbers[0]) == 0:
                continue
            entry = out.setdefault(_key(query, row), Histograms())
            entry.requests += int(numbers[0])
            for k in range(BINS):
                entry.latency[k] += int(numbers[1 + k])
                entry.ttft[k] += int(numbers[1 + BINS + k])
    return out
