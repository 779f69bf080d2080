"""Adding newly ingested usage to the rollups (``interlock.db.rollups.ROLLUPS``) and the monthly spend, in the ingest
transaction. Every table in ``MAINTAINED`` is kept the same way, from its ``Rollup`` entry: its key (the primary key:
the grain's bucket and usage columns of the same name) and its sums (the other columns), so adding a rollup is
adding a table and an entry.

- Postgres (``rollup_ctes``): the sums are made by Postgres from the rows the ingest statement has just inserted
  (its ``RETURNING``), one ``INSERT … SELECT … GROUP BY … ORDER BY … ON CONFLICT DO UPDATE SET c = t.c +
  excluded.c`` per table, histogram bins by ``width_bucket`` against the same bounds as ``bin_of``.
- SQLite, or any session through ``add_to_rollups``: the sums per key are made here and upserted once per table.

The sparse per-tenant latency histogram (``interlock.db.rollups.TENANT_LATENCY_DAILY``: one row per tenant, day,
model, route, backend and bin) is not a ``Rollup`` spec (its key has a bin, its sums are counts): ``rollup_ctes``
and ``add_to_rollups`` add to it beside the specs, through ``tenant_latency_sql`` and ``add_to_tenant_latency``;
where it is folded later (``interlock.api.crud.fold``, Postgres), only the late rows, those that started before
the fold's claim.

Either way each table's rows are written in sorted key order, so concurrent batches lock them in the same order and
cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import dialect_name, insert_for
from interlock.api.crud.pgwrite import json_insert
from interlock.db.histogram import BINS, bin_of, bin_sql
from interlock.db.rollups import (
    COUNTERS,
    FLEET_HOURLY,
    LATENCY_COLUMNS,
    ROLLUPS,
    TENANT_LATENCY_DAILY,
    TENANT_LATENCY_KEYS,
    TTFT_COLUMNS,
    Grain,
    Rollup,
)

__all__ = [
    "MAINTAINED",
    "Fact",
    "add_to_rollups",
    "add_to_tenant_latency",
    "day_start",
    "hour_start",
    "rollup_ctes",
    "tenant_latency_sql",
]

MAINTAINED: tuple[Rollup, ...] = ROLLUPS
"""What ingest adds every newly counted usage row to (budgets read a month's spend from ``tenant_monthly``)."""

_BUCKETS = frozenset({"bucket", "month"})
_DIMENSIONS = frozenset({"tenant_id", "key_id", "model", "route", "backend", "gateway_id"})
_LATENCY = {name: k for k, name in enumerate(LATENCY_COLUMNS)}
_TTFT = {name: k for k, name in enumerate(TTFT_COLUMNS)}


def _check(rollup: Rollup) -> None:
    known = {*COUNTERS, "cost_usd", *LATENCY_COLUMNS, *TTFT_COLUMNS}
    for key in rollup.keys:
        if key not in _BUCKETS and key not in _DIMENSIONS:
            raise ValueError(f"{rollup.table.name}: key column {key!r} is neither a bucket nor a usage dimension")
    for name in rollup.sums:
        if name not in known:
            raise ValueError(f"{rollup.table.name}: no rule to sum column {name!r}")


for _rollup in MAINTAINED:
    _check(_rollup)


@dataclass(frozen=True, slots=True)
class Fact:
    """What a rollup needs of one usage row (its strings already cleaned)."""

    started_at: dt.datetime
    tenant_id: str
    model: str
    route: str
    backend: str
    status: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    cost_usd: Decimal
    latency_ms: float
    ttft_ms: float | None
    key_id: str = ""
    gateway_id: str = ""


@dataclass(slots=True)
class _Sums:
    counts: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    cost: Decimal = Decimal(0)
    latency: list[int] = field(default_factory=lambda: [0] * BINS)
    ttft: list[int] = field(default_factory=lambda: [0] * BINS)

    def add(self, fact: Fact, histograms: bool) -> None:
        c = self.counts
        c[0] += 1
        c[1] += fact.status >= 400
        c[2] += fact.input_tokens
        c[3] += fact.output_tokens
        c[4] += fact.cached_tokens
        c[5] += fact.cache_creation_tokens
        self.cost += fact.cost_usd
        if histograms:
            self.latency[bin_of(fact.latency_ms)] += 1
            if fact.ttft_ms is not None:
                self.ttft[bin_of(fact.ttft_ms)] += 1

    def value(self, column: str) -> Any:
        if column == "cost_usd":
            return self.cost
        if column in _LATENCY:
            return self.latency[_LATENCY[column]]
        if column in _TTFT:
            return self.ttft[_TTFT[column]]
        return self.counts[COUNTERS.index(column)]


def hour_start(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def day_start(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _bucket(grain: Grain, column: str, when: dt.datetime) -> Any:
    """The key value of ``column`` (``bucket``: the start of the UTC hour, day or month; ``month``: ``YYYY-MM``)."""
    if grain == "hour":
        return hour_start(when)
    if grain == "day":
        return day_start(when)
    if column == "bucket":
        return day_start(when).replace(day=1)
    utc = when.astimezone(dt.UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


async def _upsert(session: AsyncSession, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if dialect_name(session) == "postgresql":
        await json_insert(session, table, rows, conflict=keys, update="add")
        return
    statement = insert_for(session)(table)
    summed = [c.name for c in table.c if c.name not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + statement.excluded[c] for c in summed}
    )
    await session.execute(statement, rows)


async def add_to_rollups(
    session: AsyncSession,
    facts: Iterable[Fact],
    rollups: Sequence[Rollup] = MAINTAINED,
    tenant_latency: bool = True,
    latency_facts: Sequence[Fact] | None = None,
) -> None:
    """Add these (new, counted-once) usage rows to ``rollups`` (and, unless told not to, to the sparse per-tenant
    latency histogram: ``latency_facts`` of them when given, those ingest marks ``latency_rolled``, the fold adding
    the others, ``interlock.api.crud.fold``), summed per key here (the SQLite path; on Postgres ingest uses
    ``rollup_ctes``)."""
    facts = list(facts)
    if tenant_latency:
        await add_to_tenant_latency(session, facts if latency_facts is None else latency_facts)
    for rollup in rollups:
        keys, histograms = rollup.keys, rollup.histograms
        sums_by_key: dict[tuple[Any, ...], _Sums] = {}
        for fact in facts:
            key = tuple(_bucket(rollup.grain, k, fact.started_at) if k in _BUCKETS else getattr(fact, k) for k in keys)
            sums = sums_by_key.get(key)
            if sums is None:
                sums = sums_by_key[key] = _Sums()
            sums.add(fact, histograms)
        rows = []
        for key in sorted(sums_by_key):
            sums = sums_by_key[key]
            row: dict[str, Any] = dict(zip(keys, key, strict=True))
            row.update((column, sums.value(column)) for column in rollup.sums)
            rows.append(row)
        await _upsert(session, rollup.table, keys, rows)


async def add_to_tenant_latency(session: AsyncSession, facts: Sequence[Fact]) -> None:
    """Add these usage rows to ``tenant_latency_daily``: per (tenant, day, model, route, backend, bin) how many
    latencies and TTFTs fell in the bin; rows only for nonzero counts, in sorted key order."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for fact in facts:
        key = (fact.tenant_id, day_start(fact.started_at), fact.model, fact.route, fact.backend)
        counts.setdefault((*key, bin_of(fact.latency_ms)), [0, 0])[0] += 1
        if fact.ttft_ms is not None:
            counts.setdefault((*key, bin_of(fact.ttft_ms)), [0, 0])[1] += 1
    rows = [
        {**dict(zip(TENANT_LATENCY_KEYS, key, strict=True)), "latency": n[0], "ttft": n[1]}
        for key, n in sorted(counts.items())
    ]
    await _upsert(session, TENANT_LATENCY_DAILY, TENANT_LATENCY_KEYS, rows)


# --- Postgres: the same sums in SQL ------------------------------------------------------------------------------


def binned(source: str) -> str:
    """A ``SELECT`` of ``source``'s rows with their histogram bins (``lb``, ``tb``) added."""
    return (
        f"SELECT *, {bin_sql('latency_ms')} AS lb, "  # noqa: S608
        f"CASE WHEN ttft_ms IS NULL THEN NULL ELSE {bin_sql('ttft_ms')} END AS tb FROM {source}"
    )


def _key_sql(grain: Grain, column: str) -> str:
    if column not in _BUCKETS:
        return column
    if column == "month":
        return "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"date_trunc('{grain}', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


def _sum_sql(column: str) -> str:
    if column == "requests":
        return "count(*)"
    if column == "errors":
        return "count(*) FILTER (WHERE status >= 400)"
    if column in _LATENCY:
        return f"count(*) FILTER (WHERE lb = {_LATENCY[column]})"
    if column in _TTFT:
        return f"count(*) FILTER (WHERE tb = {_TTFT[column]})"
    return f"sum({column})"


_FLEET_KEYS = frozenset({"bucket", "model", "route", "backend"})
_FLEET_SUMS = tuple(str(c.name) for c in FLEET_HOURLY.c if not c.primary_key)


def _from_fleet_hours(rollup: Rollup) -> bool:
    """Whether the rollup's key and sums are those of ``fleet_hours_sql``'s rows, summed further: every table of
    the fleet (an hour or a day, and some of model, route and backend)."""
    return rollup.grain in ("hour", "day") and set(rollup.keys) <= _FLEET_KEYS and set(rollup.sums) <= set(_FLEET_SUMS)


def fleet_hours_sql(source: str) -> str:
    """The batch's new rows summed per (UTC hour, model, route, backend), histogram bins included: the few rows
    every fleet table is summed from (``upsert_sql(…, presummed=True)``). Each of the eight fleet tables summed the
    batch's 500 rows into 160 bins itself before (about 1 ms each); now that is done once."""
    hour = "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    sums = ", ".join(
        f"{_sum_sql(c)}::int AS {c}" if c in _LATENCY or c in _TTFT else f"{_sum_sql(c)} AS {c}" for c in _FLEET_SUMS
    )
    return (
        f"SELECT {hour} AS started_at, model, route, backend, {sums} FROM {source} "  # noqa: S608
        f"GROUP BY {hour}, model, route, backend"
    )


def upsert_sql(rollup: Rollup, source: str, presummed: bool = False) -> str:
    """One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` adding ``source``'s rows (usage columns, and the
    bins of ``binned`` where the rollup has histograms; or, ``presummed``, rows of ``fleet_hours_sql``) to the
    rollup, keys in sorted order."""
    table, keys, sums = rollup.table.name, rollup.keys, rollup.sums
    key_sql = [_key_sql(rollup.grain, k) for k in keys]
    select = ", ".join([*key_sql, *(f"sum({c})" if presummed else _sum_sql(c) for c in sums)])
    # Keys in code-point order, as Python sorts them: the same lock order whichever path wrote a batch.
    order = ", ".join(
        f'{sql} COLLATE "C"' if isinstance(rollup.table.c[k].type, String) else sql
        for k, sql in zip(keys, key_sql, strict=True)
    )
    added = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in sums)
    return (
        f'INSERT INTO "{table}" ({", ".join((*keys, *sums))}) SELECT {select} FROM {source} '  # noqa: S608
        f"GROUP BY {', '.join(key_sql)} ORDER BY {order} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


def tenant_latency_sql(source: str) -> str:
    """One ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` adding the binned rows of ``source`` (``binned``)
    to ``tenant_latency_daily``: each row counted once in its latency bin and once in its TTFT bin (when it has a
    TTFT), keys in sorted (code-point) order, as ``add_to_tenant_latency`` writes them."""
    day = _key_sql("day", "bucket")
    keys = ", ".join(TENANT_LATENCY_KEYS)
    order = 'tenant_id COLLATE "C", 2, model COLLATE "C", route COLLATE "C", backend COLLATE "C", 6'
    return (
        f"INSERT INTO tenant_latency_daily ({keys}, latency, ttft) "  # noqa: S608
        f"SELECT tenant_id, {day}, model, route, backend, v.bin, sum(v.l)::int, sum(v.t)::int FROM {source} "
        "CROSS JOIN LATERAL (VALUES (lb, 1, 0), (tb, 0, 1)) AS v(bin, l, t) WHERE v.bin IS NOT NULL "
        f"GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY {order} ON CONFLICT ({keys}) DO UPDATE SET "
        "latency = tenant_latency_daily.latency + EXCLUDED.latency, ttft = tenant_latency_daily.ttft + EXCLUDED.ttft"
    )


def rollup_ctes(
    source: str, rollups: Sequence[Rollup] = MAINTAINED, tenant_latency: bool = True, latency_rolled_only: bool = False
) -> list[str]:
    """``WITH`` items (``name AS (…)``) that add the rows of the CTE ``source`` (new usage rows with every usage
    column a rollup reads) to ``rollups``: a binned view of it, then one upsert per table (and, unless told not to,
    one adding to the sparse per-tenant latency histogram: with ``latency_rolled_only``, only the rows whose
    ``latency_rolled`` is true; the fold adds the others, ``interlock.api.crud.fold``)."""
    items = [f"rollup_binned AS ({binned(source)})"]
    if any(_from_fleet_hours(r) for r in rollups):
        items.append(f"rollup_fleet_hours AS ({fleet_hours_sql('rollup_binned')})")
    items += [
        f"rollup_{i} AS ({upsert_sql(r, 'rollup_fleet_hours', presummed=True)})"
        if _from_fleet_hours(r)
        else f"rollup_{i} AS ({upsert_sql(r, 'rollup_binned')})"
        for i, r in enumerate(rollups)
    ]
    if tenant_latency and latency_rolled_only:
        items.append("rollup_late AS (SELECT * FROM rollup_binned WHERE latency_rolled)")
        items.append(f"rollup_tenant_latency AS ({tenant_latency_sql('rollup_late')})")
    elif tenant_latency:
        items.append(f"rollup_tenant_latency AS ({tenant_latency_sql('rollup_binned')})")
    return items
