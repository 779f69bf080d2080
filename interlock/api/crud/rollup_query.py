"""Sums over a time window from the rollups, exact to the row: whole days from the daily rollup, whole hours from
the hourly one, and the ragged ends of the window (under an hour each) from the raw rows.

Each segment reads the first (narrowest) table of ``interlock.db.rollups.ROLLUPS`` of its grain whose key holds
every column the question groups by or filters on: a fleet-wide question by route reads ``fleet_route_*`` (one row
per bucket and route), one with no dimension ``fleet_backend_*``, one by model and route ``fleet_*``, and anything
about tenants ``usage_*``, through its ``(tenant_id, bucket)`` index when a tenant is given. Latency histograms of
the whole fleet are in the fleet tables; a question about tenants (a tenant's percentiles, or by tenant) by day or
over the whole window reads whole UTC days from the sparse ``tenant_latency_daily`` (one row per tenant, day, key
and nonzero bin; on Postgres what has been folded into it, a few minutes ago, ``interlock.api.crud.fold``)
and the ragged ends (under a day each) and what is not folded yet from the raw rows. By hour it reads the raw rows
only (there is no hourly per-tenant histogram: the console asks hours of a short window).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Table,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import dialect_name, one_of
from interlock.api.crud.fold import watermark
from interlock.api.crud.rollup import day_start, hour_start
from interlock.db.histogram import BINS, PER_DOUBLING, bin_of
from interlock.db.models import Usage
from interlock.db.rollups import COUNTERS, LATENCY_COLUMNS, ROLLUPS, TENANT_LATENCY_DAILY, TTFT_COLUMNS
from interlock.db.types import to_money

__all__ = [
    "DIMENSIONS",
    "Grain",
    "Histograms",
    "Key",
    "Query",
    "Segment",
    "Sums",
    "histograms",
    "month_start",
    "rollup_table",
    "sums",
    "total",
    "window_rows",
    "window_segments",
]

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
    ``equals`` holds and each ``(column, values)`` of ``among`` has the column's value among the values."""

    since: dt.datetime | None
    until: dt.datetime | None
    grain: Grain | None = None
    groups: tuple[str, ...] = ()
    equals: tuple[tuple[str, str], ...] = ()
    among: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def columns(self) -> frozenset[str]:
        """The columns the question groups by or filters on."""
        return frozenset(self.groups) | {column for column, _ in (*self.equals, *self.among)}


def rollup_table(query: Query, grain: Literal["hour", "day", "month"], histograms: bool = False) -> Table | None:
    """The narrowest rollup of ``grain`` that answers ``query`` (with histograms if asked), or None."""
    for rollup in ROLLUPS:
        if rollup.grain == grain and query.columns <= set(rollup.dimensions) and (rollup.histograms or not histograms):
            return rollup.table
    return None


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

    def add(self, requests: int, latency: Sequence[int], ttft: Sequence[int]) -> None:
        """Count another histogram's requests and bins in (histograms of disjoint rows sum exactly)."""
        self.requests += requests
        self.latency = [a + b for a, b in zip(self.latency, latency, strict=True)]
        self.ttft = [a + b for a, b in zip(self.ttft, ttft, strict=True)]


def _ceil(when: dt.datetime, floor: Any, step: dt.timedelta) -> dt.datetime:
    low: dt.datetime = floor(when)
    return low if low == when else low + step


def month_start(when: dt.datetime) -> dt.datetime:
    return day_start(when).replace(day=1)


def _next_month(when: dt.datetime) -> dt.datetime:
    return (when.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


class Segment(NamedTuple):
    """A stretch ``[lo, hi)`` of the window read from one ``source`` (``raw``, ``hour``, ``day`` or ``month``);
    ``sign`` -1: its rows are subtracted (the days of a month that lie outside the window)."""

    source: str
    lo: dt.datetime | None
    hi: dt.datetime | None
    sign: int = 1


def _days(
    query: Query, d0: dt.datetime | None, d1: dt.datetime | None, histograms: bool, now: dt.datetime
) -> list[Segment]:
    """Whole days ``[d0, d1)``; for a question not split by time, whole months from a monthly rollup where one
    answers it whose key is no wider than the daily rollup's that would (a fleet-wide total stays on the few rows
    of ``fleet_backend_daily`` rather than ``tenant_monthly``'s one per tenant).

    A month the window covers only in part is read either as its days in the window or, when fewer days' rows
    lie outside, as the whole month minus those days (sums are exact under subtraction, and the monthly and daily
    rollups hold the same rows: ingest writes both in one transaction, retention drops neither): a 30-day window
    that starts on the 6th reads five days and a month, not 25 days, and a year reads at most about half a month
    of days at each end. Days after today have no rows yet and cost nothing to read."""
    month = rollup_table(query, "month", histograms) if query.grain is None else None
    day = rollup_table(query, "day", histograms)
    if month is None or day is None or not set(month.c.keys()) <= set(day.c.keys()):
        return [Segment("day", d0, d1)]
    if d0 is None or d1 is None:
        return _open_days(d0, d1)
    horizon = day_start(now) + dt.timedelta(days=1)  # no day's rows begin later
    out: list[Segment] = []
    start = month_start(d0)
    while start < d1:
        end = _next_month(start)
        lo, hi = max(d0, start), min(d1, end)
        if (lo, hi) == (start, end):
            out.append(Segment("month", start, end))
        elif (lo - start).days + max(0, (min(end, horizon) - hi).days) < (hi - lo).days:
            out.append(Segment("month", start, end))
            out += [Segment("day", start, lo, -1)] if lo > start else []
            out += [Segment("day", hi, end, -1)] if hi < end else []
        else:
            out.append(Segment("day", lo, hi))
        start = end
    return _merged(out)


def _open_days(d0: dt.datetime | None, d1: dt.datetime | None) -> list[Segment]:
    """``_days`` of a window open at one end or both: whole months between the ragged days."""
    m0 = None if d0 is None else d0 if month_start(d0) == d0 else _next_month(d0)
    m1 = None if d1 is None else month_start(d1)
    if m0 is not None and m1 is not None and m0 >= m1:
        return [Segment("day", d0, d1)]
    out: list[Segment] = []
    if d0 is not None and m0 != d0:
        out.append(Segment("day", d0, m0))
    out.append(Segment("month", m0, m1))
    if d1 is not None and m1 != d1:
        out.append(Segment("day", m1, d1))
    return out


def _merged(segments: list[Segment]) -> list[Segment]:
    """Segments of the same source and sign that meet as one (consecutive months, consecutive days); the order of
    the segments of a sum does not matter."""
    out: list[Segment] = []
    for segment in sorted(segments, key=lambda s: (s.source, s.sign, s.lo)):
        last = out[-1] if out else None
        if last is not None and (last.source, last.sign, last.hi) == (segment.source, segment.sign, segment.lo):
            out[-1] = last._replace(hi=segment.hi)
        else:
            out.append(segment)
    return out


def window_segments(query: Query, histograms: bool = False, now: dt.datetime | None = None) -> list[Segment]:
    """Segments covering the window once, as a sum: ``raw``, ``hour``, ``day`` or ``month``.

    Each ragged end is read directly (the raw rows of its part-hour, the hours of its part-day) or, for sums (not
    histograms), as the enclosing hour or day less the part outside the window, whichever has fewer rows to read:
    a window that ends now reads today's daily row less the hours and raw rows after it, which do not exist yet,
    instead of every hour of today; one that starts at 16:10 reads that day less its first 16 hours."""
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    since, until = query.since, query.until
    h0 = _ceil(since, hour_start, hour) if since is not None else None
    h1 = hour_start(until) if until is not None else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return [Segment("raw", since, until)]
    now = now or dt.datetime.now(dt.UTC)  # rows begin no later (what is cheap to subtract)
    subtract = not histograms  # no histogram is subtracted: percentiles are read as they are
    out: list[Segment] = []
    # the raw ends: [since, h0) and [h1, until), or the enclosing hour less the rest of it
    if since is not None and h0 is not None and h0 != since:
        if subtract and since - (h0 - hour) < h0 - since:
            h0 -= hour
            out.append(Segment("raw", h0, since, -1))
        else:
            out.append(Segment("raw", since, h0))
    if until is not None and h1 is not None and h1 != until:
        if subtract and max(dt.timedelta(0), min(h1 + hour, now) - until) < until - h1:
            h1 += hour
            out.append(Segment("raw", until, h1, -1))
        else:
            out.append(Segment("raw", h1, until))
    if query.grain == "hour":
        return [*out, Segment("hour", h0, h1)]
    d0 = _ceil(h0, day_start, day) if h0 is not None else None
    d1 = day_start(h1) if h1 is not None else None
    if d0 is not None and d1 is not None and d0 >= d1:
        return [*out, Segment("hour", h0, h1)]
    # the part-days: [h0, d0) and [d1, h1), or the enclosing day less its other hours (those that exist yet)
    if h0 is not None and d0 is not None and d0 != h0:
        if subtract and h0 - (d0 - day) < d0 - h0:
            d0 -= day
            out.append(Segment("hour", d0, h0, -1))
        else:
            out.append(Segment("hour", h0, d0))
    if h1 is not None and d1 is not None and d1 != h1:
        if subtract and max(dt.timedelta(0), min(d1 + day, hour_start(now) + hour) - h1) < h1 - d1:
            d1 += day
            out.append(Segment("hour", h1, d1, -1))
        else:
            out.append(Segment("hour", d1, h1))
    return out + _days(query, d0, d1, histograms, now)


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


def _source(
    session: AsyncSession, query: Query, source: str, histograms: bool = False
) -> tuple[Any, Any, list[Any], Any]:
    """(the bucket expression or None, the time column, the group columns, a column getter) of one segment."""
    time: Any
    bucket: Any
    if source in ("raw", "unfolded"):
        time = Usage.started_at
        groups = [_RAW[g] for g in query.groups]
        bucket = _truncate(session, query.grain, time) if query.grain else None
        return bucket, time, groups, lambda name: getattr(Usage, name)
    table = rollup_table(query, source, histograms)  # type: ignore[arg-type]
    assert table is not None, "every question of the four dimensions has an hourly and a daily rollup"
    time = table.c.bucket
    if query.grain is None:
        bucket = None
    elif query.grain == source:
        bucket = time
    else:
        bucket = _truncate(session, query.grain, time)
    return bucket, time, [table.c[g] for g in query.groups], lambda name: table.c[name]


def _one_row_per_key(query: Query, source: str, histograms: bool = False) -> bool:
    """Whether each (bucket, groups) of the question is one row of the segment's table already (its grain, its key):
    then the rows are read as they are, without a ``GROUP BY`` that would sum each row with itself."""
    if source == "raw" or query.grain != source:
        return False
    table = rollup_table(query, source, histograms)
    return table is not None and set(_KEYS[table.name]) == set(query.groups)


_KEYS = {rollup.table.name: rollup.dimensions for rollup in ROLLUPS}


def _where(session: AsyncSession, query: Query, time: Any, column: Any, lo: Any, hi: Any) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [column(name) == value for name, value in query.equals]
    clauses += [one_of(session, column(name), values) for name, values in query.among]
    if lo is not None:
        clauses.append(time >= lo)
    if hi is not None:
        clauses.append(time < hi)
    return clauses


def _key(query: Query, row: Any) -> Key:
    if query.grain:
        return _as_utc(row[0]), tuple(row[1 : 1 + len(query.groups)])
    return None, tuple(row[: len(query.groups)])


def total(column: Any) -> ColumnElement[Any]:
    """``SUM`` as a BIGINT (Postgres sums BIGINTs as NUMERIC, which decodes to ``Decimal``, slowly)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def _values(source: str, column: Any) -> list[ColumnElement[Any]]:
    """The sums of ``COUNTERS`` and ``cost_usd``, in that order, over one segment's rows."""
    if source == "raw":
        return [
            func.count(),
            total(case((Usage.status >= 400, 1), else_=0)),
            *[total(column(c)) for c in COUNTERS[2:]],
            func.coalesce(func.sum(Usage.cost_usd), Decimal(0)),
        ]
    return [*(total(column(c)) for c in COUNTERS), func.coalesce(func.sum(column("cost_usd")), Decimal(0))]


def window_rows(session: AsyncSession, query: Query, counters: bool) -> Any:
    """Every row of the window's segments (``g0``, ``g1``, … the group values, the counters if asked, else
    ``requests`` alone, and ``cost_usd``; negated in a subtracted segment) as one ``UNION ALL`` subquery: summed
    once by the caller (``interlock.api.crud.ranking``), not per segment and again. A group whose ``requests`` sum
    to 0 had no rows in the window (only in a month's days outside it)."""
    parts = []
    for source, lo, hi, sign in window_segments(query):
        _, time, groups, column = _source(session, query, source)
        labeled = [g.label(f"g{i}") for i, g in enumerate(groups)]
        if counters:
            if source == "raw":
                values = [literal(1), case((Usage.status >= 400, 1), else_=0), *(column(c) for c in COUNTERS[2:])]
            else:
                values = [column(c) for c in COUNTERS]
        else:
            values = [literal(1) if source == "raw" else column("requests")]
        values.append(column("cost_usd"))
        names = (*COUNTERS, "cost_usd") if counters else ("requests", "cost_usd")
        labeled += [(v if sign > 0 else -v).label(c) for v, c in zip(values, names, strict=True)]
        parts.append(select(*labeled).where(*_where(session, query, time, column, lo, hi)))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


async def sums(session: AsyncSession, query: Query) -> dict[Key, Sums]:
    """The sums per (bucket start, groups); buckets without rows are absent."""
    out: dict[Key, Sums] = {}
    segments = window_segments(query)
    for source, lo, hi, sign in segments:
        bucket, time, groups, column = _source(session, query, source)
        keys = ([bucket] if bucket is not None else []) + groups
        if _one_row_per_key(query, source):
            values = [column(c) for c in (*COUNTERS, "cost_usd")]
            statement = select(*keys, *values).where(*_where(session, query, time, column, lo, hi))
        else:
            statement = select(*keys, *_values(source, column)).where(*_where(session, query, time, column, lo, hi))
            if keys:
                statement = statement.group_by(*keys)
        width = len(keys)
        for row in (await session.execute(statement)).all():
            if not row[width]:
                continue  # an empty window still yields one row when nothing is grouped
            key = _key(query, row)
            numbers = row[width:]
            entry = out.setdefault(key, Sums())
            entry.counts = [a + sign * b for a, b in zip(entry.counts, numbers[:-1], strict=True)]
            entry.cost_usd += sign * to_money(numbers[-1])
    if any(segment.sign < 0 for segment in segments):  # groups seen only in the days subtracted
        out = {key: entry for key, entry in out.items() if entry.counts[0]}
    return out


def _tenant_segments(query: Query, folded_until: dt.datetime | None = None) -> list[Segment]:
    """Whole UTC days of the window from ``tenant_latency_daily`` (``tenant_days``), the rest from the raw rows;
    all raw by hour (no hourly per-tenant histogram) or when the window holds no whole day. With ``folded_until``
    (the rollup holds the rows that started before it and those ingest marked ``latency_rolled``,
    ``interlock.api.crud.fold``), the whole days' unmarked rows from it on are read raw as well (``unfolded``)."""
    if query.grain == "hour":
        return [Segment("raw", query.since, query.until)]
    day = dt.timedelta(days=1)
    d0 = _ceil(query.since, day_start, day) if query.since is not None else None
    d1 = day_start(query.until) if query.until is not None else None
    if d0 is not None and d1 is not None and d0 >= d1:
        return [Segment("raw", query.since, query.until)]
    out: list[Segment] = []
    if query.since is not None and d0 != query.since:
        out.append(Segment("raw", query.since, d0))
    out.append(Segment("tenant_days", d0, d1))
    if folded_until is not None and (d1 is None or folded_until < d1):
        out.append(Segment("unfolded", folded_until if d0 is None else max(d0, folded_until), d1))
    if query.until is not None and d1 != query.until:
        out.append(Segment("raw", d1, query.until))
    return out


async def _tenant_days(
    session: AsyncSession, query: Query, lo: dt.datetime | None, hi: dt.datetime | None, out: dict[Key, Histograms]
) -> None:
    """The histograms of whole days ``[lo, hi)`` from the sparse ``tenant_latency_daily``: (bucket, groups, bin)
    counts summed by the database."""
    table = TENANT_LATENCY_DAILY
    keys: list[Any] = ([table.c.bucket] if query.grain == "day" else []) + [table.c[g] for g in query.groups]
    where = _where(session, query, table.c.bucket, lambda name: table.c[name], lo, hi)
    statement = (
        select(*keys, table.c.bin, total(table.c.latency), total(table.c.ttft))
        .where(*where)
        .group_by(*keys, table.c.bin)
    )
    width = len(keys)
    if dialect_name(session) == "postgresql":
        await _tenant_days_arrays(session, query, statement, width, out)
        return
    for row in (await session.execute(statement)).all():
        entry = out.setdefault(_key(query, row), Histograms())
        k, latency, ttft = int(row[width]), int(row[width + 1]), int(row[width + 2])
        entry.latency[k] += latency
        entry.ttft[k] += ttft
        entry.requests += latency


async def _tenant_days_arrays(
    session: AsyncSession, query: Query, binned: Any, width: int, out: dict[Key, Histograms]
) -> None:
    """``_tenant_days`` on Postgres: the (bucket, groups, bin) sums folded into one row per (bucket, groups) with
    the bins and their counts as arrays: a year of a big tenant by route is 1,464 rows to decode instead of 46,000."""
    inner = binned.subquery()
    columns = list(inner.c)
    keys, (k, latency, ttft) = columns[:width], columns[width:]
    statement = select(*keys, func.array_agg(k), func.array_agg(latency), func.array_agg(ttft))
    if keys:
        statement = statement.group_by(*keys)
    for row in (await session.execute(statement)).all():
        bins, latencies, ttfts = row[width:]
        if not bins:
            continue  # nothing in the window: one row of NULLs when nothing is grouped
        entry = out.setdefault(_key(query, row), Histograms())
        lat, first = entry.latency, entry.ttft
        for b, n, m in zip(bins, latencies, ttfts, strict=True):
            lat[b] += n
            first[b] += m
        entry.requests += sum(latencies)


async def histograms(session: AsyncSession, query: Query) -> dict[Key, Histograms]:
    """Latency and time-to-first-token histograms per (bucket start, groups).

    A question about tenants reads ``tenant_latency_daily`` and the raw rows not folded into it from its
    ``folded_until`` on, in statements of their own: a fold committed between them would count its rows twice, so
    ``folded_until`` is read again after them, and the question asked again in the rare case it moved (folds are
    minutes apart)."""
    if rollup_table(query, "hour", histograms=True) is not None:
        return await _histograms(session, query, window_segments(query, histograms=True))
    for _ in range(_FOLD_RACE_RETRIES):
        before = await watermark(session)
        out = await _histograms(session, query, _tenant_segments(query, before))
        if await watermark(session) == before:
            return out
    return out


_FOLD_RACE_RETRIES = 3


async def _histograms(session: AsyncSession, query: Query, segments: list[Segment]) -> dict[Key, Histograms]:
    out: dict[Key, Histograms] = {}
    for source, lo, hi, sign in segments:
        assert sign > 0, "no monthly rollup holds histograms"
        if source == "tenant_days":
            await _tenant_days(session, query, lo, hi, out)
            continue
        bucket, time, groups, column = _source(session, query, source, histograms=True)
        keys = ([bucket] if bucket is not None else []) + groups
        where = _where(session, query, time, column, lo, hi)
        if source == "unfolded":  # the raw rows neither folded nor added at ingest yet
            source = "raw"
            where.append(Usage.latency_rolled.is_(False))
        if source == "raw" and dialect_name(session) == "postgresql":
            await _raw_histograms_sql(session, query, keys, where, out)
            continue
        if source == "raw":
            statement = select(*keys, Usage.latency_ms, Usage.ttft_ms).where(*where)
            for row in (await session.execute(statement)).all():
                entry = out.setdefault(_key(query, row), Histograms())
                entry.requests += 1
                entry.latency[bin_of(float(row[len(keys)]))] += 1
                if row[len(keys) + 1] is not None:
                    entry.ttft[bin_of(float(row[len(keys) + 1]))] += 1
            continue
        names = ("requests", *LATENCY_COLUMNS, *TTFT_COLUMNS)
        if _one_row_per_key(query, source, histograms=True):
            statement = select(*keys, *(column(c) for c in names)).where(*where)
        else:
            statement = select(*keys, *(total(column(c)) for c in names)).where(*where)
            if keys:
                statement = statement.group_by(*keys)
        width = len(keys)
        for row in (await session.execute(statement)).all():
            numbers: Sequence[Any] = row[width:]
            if not numbers[0]:
                continue
            key = _key(query, row)
            found = out.get(key)
            if found is None:
                out[key] = Histograms(numbers[0], list(numbers[1 : 1 + BINS]), list(numbers[1 + BINS :]))
            else:
                found.add(numbers[0], numbers[1 : 1 + BINS], numbers[1 + BINS :])
    return out


def _bin_sql(column: Any) -> ColumnElement[Any]:
    """``interlock.db.histogram.bin_of`` in SQL (Postgres)."""
    step = cast(func.floor(PER_DOUBLING * func.ln(column) / math.log(2)), Integer)
    return case((column >= 1, func.least(BINS - 1, 1 + step)), else_=0)


async def _raw_histograms_sql(
    session: AsyncSession, query: Query, keys: list[Any], where: list[ColumnElement[bool]], out: dict[Key, Histograms]
) -> None:
    """Raw rows binned and counted by Postgres, so only (bucket, group, bin) counts come back."""
    width = len(keys)
    for column, field_name in ((Usage.latency_ms, "latency"), (Usage.ttft_ms, "ttft")):
        binned = _bin_sql(column).label("bin")
        statement = select(*keys, binned, func.count()).where(*where, column.is_not(None)).group_by(*keys, binned)
        for row in (await session.execute(statement)).all():
            entry = out.setdefault(_key(query, row), Histograms())
            getattr(entry, field_name)[int(row[width])] += int(row[width + 1])
            if field_name == "latency":
                entry.requests += int(row[width + 1])
