"""The console's numbers: totals, series over time and latency percentiles, from the usage ledger.

This implementation reads the raw ``usage`` table (Postgres and SQLite). The interface is what the console and any
faster implementation (rollups) share: counts, tokens and cost are exact; percentiles may be approximate.
``errors`` counts requests answered with status >= 400. Datetimes are UTC-aware; ``until`` is exclusive. Passing
``tenant_id`` confines every number to that tenant (the console passes a tenant login's own tenant always).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ARRAY, ColumnElement, Float, case, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import dialect_name
from interlock.db.models import Usage

__all__ = ["Bucket", "Dimension", "LatencyPoint", "SeriesPoint", "Totals", "latency", "series", "totals"]

Bucket = Literal["hour", "day"]
Dimension = Literal["tenant", "model", "route", "backend"]

_COLUMNS: dict[str, Any] = {
    "tenant": Usage.tenant_id,
    "model": Usage.model,
    "route": Usage.route,
    "backend": Usage.backend,
}
_SQLITE_FORMAT = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start: dt.datetime
    group: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    start: dt.datetime
    group: str | None
    requests: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None


def _where(since: dt.datetime, until: dt.datetime, tenant_id: str | None) -> list[ColumnElement[bool]]:
    clauses = [Usage.started_at >= since, Usage.started_at < until]
    if tenant_id is not None:
        clauses.append(Usage.tenant_id == tenant_id)
    return clauses


def _sums() -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((Usage.status >= 400, 1), else_=0)), 0).label("errors"),
        func.coalesce(func.sum(Usage.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(Usage.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(Usage.cost_usd), Decimal(0)).label("cost_usd"),
    ]


def _bucket(session: AsyncSession, bucket: Bucket) -> Any:
    if dialect_name(session) == "postgresql":
        return func.date_trunc(bucket, func.timezone("UTC", Usage.started_at))
    return func.strftime(_SQLITE_FORMAT[bucket], Usage.started_at)


def _start(value: Any) -> dt.datetime:
    """A bucket's start as an aware UTC datetime (Postgres gives a naive UTC timestamp, SQLite text)."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, dt.datetime)
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _group(group_by: Dimension | None) -> Any:
    return _COLUMNS[group_by] if group_by is not None else literal(None)


async def totals(
    session: AsyncSession, *, since: dt.datetime, until: dt.datetime, tenant_id: str | None = None
) -> Totals:
    row = (await session.execute(select(*_sums()).where(*_where(since, until, tenant_id)))).one()
    return Totals(
        requests=int(row.requests),
        errors=int(row.errors),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        cost_usd=Decimal(row.cost_usd),
    )


async def series(
    session: AsyncSession,
    *,
    since: dt.datetime,
    until: dt.datetime,
    bucket: Bucket,
    group_by: Dimension | None = None,
    tenant_id: str | None = None,
) -> list[SeriesPoint]:
    """One point per bucket (and group) that has traffic, ordered by start then group."""
    start = _bucket(session, bucket).label("start")
    group = _group(group_by).label("grp")
    query = select(start, group, *_sums()).where(*_where(since, until, tenant_id)).group_by(start, group)
    rows = (await session.execute(query)).all()
    points = [
        SeriesPoint(
            start=_start(row.start),
            group=row.grp,
            requests=int(row.requests),
            errors=int(row.errors),
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            cost_usd=Decimal(row.cost_usd),
        )
        for row in rows
    ]
    points.sort(key=lambda p: (p.start, p.group or ""))
    return points


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (as Postgres's ``percentile_cont``)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def latency(
    session: AsyncSession,
    *,
    since: dt.datetime,
    until: dt.datetime,
    bucket: Bucket,
    group_by: Dimension | None = None,
    tenant_id: str | None = None,
) -> list[LatencyPoint]:
    """p50/p95/p99 of latency and time to first token per bucket (and group) with traffic."""
    start = _bucket(session, bucket).label("start")
    group = _group(group_by).label("grp")
    where = _where(since, until, tenant_id)
    if dialect_name(session) == "postgresql":
        fractions: Any = literal_column("ARRAY[0.5, 0.95, 0.99]::double precision[]")
        query = (
            select(
                start,
                group,
                func.count().label("requests"),
                func.percentile_cont(fractions, type_=ARRAY(Float)).within_group(Usage.latency_ms).label("lat"),
                func.percentile_cont(fractions, type_=ARRAY(Float)).within_group(Usage.ttft_ms).label("ttft"),
            )
            .where(*where)
            .group_by(start, group)
        )
        points = []
        for row in (await session.execute(query)).all():
            lat = row.lat or [None, None, None]
            ttft = row.ttft or [None, None, None]
            points.append(LatencyPoint(_start(row.start), row.grp, int(row.requests), *lat, *ttft))
    else:
        query = select(start, group, Usage.latency_ms, Usage.ttft_ms).where(*where)
        values: dict[tuple[Any, Any], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for row in (await session.execute(query)).all():
            lat_values, ttft_values = values[(row.start, row.grp)]
            lat_values.append(row.latency_ms)
            if row.ttft_ms is not None:
                ttft_values.append(row.ttft_ms)
        points = []
        for (when, grp), (lat_values, ttft_values) in values.items():
            lat_values.sort()
            ttft_values.sort()
            points.append(
                LatencyPoint(
                    _start(when),
                    grp,
                    len(lat_values),
                    *(_percentile(lat_values, f) for f in (0.5, 0.95, 0.99)),
                    *(_percentile(ttft_values, f) for f in (0.5, 0.95, 0.99)),
                )
            )
    points.sort(key=lambda p: (p.start, p.group or ""))
    return points
