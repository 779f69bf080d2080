"""The numbers the console draws: totals, series by hour or day, and latency percentiles, optionally split by one
dimension and limited to one tenant. Read from the rollups (``interlock.api.crud.rollup_query``), exact for counts,
tokens and cost over any window (``until`` exclusive; datetimes UTC-aware).

Percentiles come from the rollups' log-scale histograms (``interlock.db.histogram``: four bins per doubling, a
value reported as its bin's geometric middle), so they are within about 9 % of the exact ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.ranking import ranked
from interlock.api.crud.rollup_query import DIMENSIONS, Histograms, Key, Query, Sums, histograms, sums
from interlock.db.histogram import percentiles

__all__ = [
    "Bucket",
    "Dimension",
    "LatencyPoint",
    "SeriesPoint",
    "Totals",
    "latency",
    "latency_and_overall",
    "series",
    "totals",
]

_QUANTILES = (0.50, 0.95, 0.99)

Bucket = Literal["hour", "day"]
Dimension = Literal["tenant", "model", "route", "backend"]


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start: datetime
    group: str | None
    """The group's value; None when not split, and for ``others``."""
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    others: bool = False
    """The sum of every group outside the top ones (``series(top=…)``)."""


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    start: datetime
    group: str | None
    requests: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None


def _query(
    since: datetime, until: datetime, bucket: Bucket | None, group_by: Dimension | None, tenant_id: str | None
) -> Query:
    return Query(
        since=since,
        until=until,
        grain=bucket,
        groups=(DIMENSIONS[group_by],) if group_by else (),
        equals=(("tenant_id", tenant_id),) if tenant_id is not None else (),
    )


async def totals(session: AsyncSession, *, since: datetime, until: datetime, tenant_id: str | None = None) -> Totals:
    found = await sums(session, _query(since, until, None, None, tenant_id))
    entry = next(iter(found.values()), None)
    if entry is None:
        return Totals(requests=0, errors=0, input_tokens=0, output_tokens=0, cost_usd=Decimal(0))
    return Totals(
        requests=entry.get("requests"),
        errors=entry.get("errors"),
        input_tokens=entry.get("input_tokens"),
        output_tokens=entry.get("output_tokens"),
        cost_usd=entry.cost_usd,
    )


def _point(start: datetime | None, group: str | None, entry: Sums, others: bool = False) -> SeriesPoint:
    assert start is not None
    return SeriesPoint(
        start=start,
        group=group,
        requests=entry.get("requests"),
        errors=entry.get("errors"),
        input_tokens=entry.get("input_tokens"),
        output_tokens=entry.get("output_tokens"),
        cost_usd=entry.cost_usd,
        others=others,
    )


async def series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    bucket: Bucket,
    group_by: Dimension | None = None,
    tenant_id: str | None = None,
    top: int | None = None,
) -> list[SeriesPoint]:
    """One point per bucket (and group) that has requests, in time then group order. ``top``: only the ``top``
    groups with the highest spend over the window, and per bucket one point (``others``) summing the rest."""
    if top is not None and group_by is not None:
        return await _top_series(session, _query(since, until, bucket, group_by, tenant_id), top)
    found = await sums(session, _query(since, until, bucket, group_by, tenant_id))
    return [
        _point(start, groups[0] if groups else None, entry)
        for (start, groups), entry in sorted(found.items(), key=lambda item: (item[0][0], item[0][1]))
    ]


async def _top_series(session: AsyncSession, query: Query, top: int) -> list[SeriesPoint]:
    """The leaders ranked over the window, their series read through the rollups' ``(tenant_id, bucket)`` index (or
    the few rows of a one-dimension table), and ``others`` as the whole series less theirs: three small reads where
    every group's series would be one point per group and bucket."""
    (column,) = query.groups
    leaders = await ranked(session, replace(query, grain=None), limit=top + 1)
    names = tuple(groups[0] for groups, _ in leaders[:top])
    if not names:
        return []
    found = await sums(session, replace(query, among=((column, names),)))
    points = [_point(start, groups[0], entry) for (start, groups), entry in found.items()]
    if len(leaders) > top:  # someone is left out: the rest is the whole less the leaders
        rest = {start: Sums(list(entry.counts), entry.cost_usd) for (start, _), entry in
                (await sums(session, replace(query, groups=()))).items()}  # fmt: skip
        for (start, _), leader in found.items():
            entry = rest[start]
            entry.counts = [a - b for a, b in zip(entry.counts, leader.counts, strict=True)]
            entry.cost_usd -= leader.cost_usd
        points += [_point(start, None, entry, others=True) for start, entry in rest.items() if entry.get("requests")]
    return sorted(points, key=lambda p: (p.start, p.others, p.group or ""))


async def latency(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    bucket: Bucket,
    group_by: Dimension | None = None,
    tenant_id: str | None = None,
) -> list[LatencyPoint]:
    """Percentiles per bucket (and group) that has requests; TTFT ones are None where no request streamed."""
    return _latency_points(await histograms(session, _query(since, until, bucket, group_by, tenant_id)))


async def latency_and_overall(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    bucket: Bucket,
    group_by: Dimension,
    tenant_id: str | None = None,
) -> tuple[list[LatencyPoint], list[LatencyPoint]]:
    """``latency`` split by ``group_by``, and not split, from one read: each request is in exactly one group (no
    value is a group of its own), so a bucket's histogram is the sum of its groups', exactly."""
    found = await histograms(session, _query(since, until, bucket, group_by, tenant_id))
    overall: dict[Key, Histograms] = {}
    for (start, _), entry in found.items():
        overall.setdefault((start, ()), Histograms()).add(entry.requests, entry.latency, entry.ttft)
    return _latency_points(found), _latency_points(overall)


def _latency_points(found: dict[Key, Histograms]) -> list[LatencyPoint]:
    points = []
    for (start, groups), entry in sorted(found.items(), key=lambda item: (item[0][0], item[0][1])):
        assert start is not None
        lat = percentiles(entry.latency, _QUANTILES)
        ttft = percentiles(entry.ttft, _QUANTILES)
        points.append(
            LatencyPoint(
                start=start,
                group=groups[0] if groups else None,
                requests=entry.requests,
                latency_p50_ms=lat[0],
                latency_p95_ms=lat[1],
                latency_p99_ms=lat[2],
                ttft_p50_ms=ttft[0],
                ttft_p95_ms=ttft[1],
                ttft_p99_ms=ttft[2],
            )
        )
    return points
