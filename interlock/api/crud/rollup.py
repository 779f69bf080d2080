"""Adding newly ingested usage to the rollups (``interlock.db.rollups``) and the monthly spend, in the ingest
transaction: per key the sums of the batch are computed here and added with one ``INSERT … ON CONFLICT DO UPDATE``
per table, keys in sorted order (so concurrent batches lock rows in the same order and cannot deadlock).

Every table of ``ROLLUPS`` is made the same way: the batch is summed once per (hour, tenant, model, route, backend)
and once, with histograms, per (hour, model, route, backend); each rollup folds the first (if its key has the
tenant) or the second into its own grain and key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import dialect_name, insert_for
from interlock.api.crud.pgwrite import json_insert
from interlock.db.histogram import BINS, bin_of
from interlock.db.models import MonthlySpend
from interlock.db.rollups import COUNTERS, LATENCY_COLUMNS, ROLLUPS, TTFT_COLUMNS

__all__ = ["Fact", "add_to_rollups", "day_start", "hour_start"]


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


@dataclass(slots=True)
class _Sums:
    counts: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    cost: Decimal = Decimal(0)
    latency: list[int] | None = None
    ttft: list[int] | None = None

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
            if self.latency is None:
                self.latency, self.ttft = [0] * BINS, [0] * BINS
            assert self.ttft is not None
            self.latency[bin_of(fact.latency_ms)] += 1
            if fact.ttft_ms is not None:
                self.ttft[bin_of(fact.ttft_ms)] += 1


def hour_start(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def day_start(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _bucket(hour: dt.datetime, grain: str) -> dt.datetime:
    if grain == "hour":
        return hour
    return hour.replace(hour=0) if grain == "day" else hour.replace(day=1, hour=0)


def _row(names: tuple[str, ...], key: tuple[Any, ...], sums: _Sums, histograms: bool) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(names, key, strict=True))
    row.update(zip(COUNTERS, sums.counts, strict=True))
    row["cost_usd"] = sums.cost
    if histograms and sums.latency is not None and sums.ttft is not None:
        row.update(zip(LATENCY_COLUMNS, sums.latency, strict=True))
        row.update(zip(TTFT_COLUMNS, sums.ttft, strict=True))
    return row


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


_TENANT_DIMENSIONS = ("tenant_id", "model", "route", "backend")
_FLEET_DIMENSIONS = ("model", "route", "backend")


def _fold(into: dict[tuple[Any, ...], _Sums], key: tuple[Any, ...], sums: _Sums) -> None:
    """Add ``sums`` to ``into[key]``: counts and cost, and histograms where ``sums`` has them."""
    target = into.get(key)
    if target is None:
        latency = list(sums.latency) if sums.latency is not None else None
        ttft = list(sums.ttft) if sums.ttft is not None else None
        into[key] = _Sums(list(sums.counts), sums.cost, latency, ttft)
        return
    target.counts = [a + b for a, b in zip(target.counts, sums.counts, strict=True)]
    target.cost += sums.cost
    if sums.latency is not None and sums.ttft is not None and target.latency is not None and target.ttft is not None:
        target.latency = [a + b for a, b in zip(target.latency, sums.latency, strict=True)]
        target.ttft = [a + b for a, b in zip(target.ttft, sums.ttft, strict=True)]


async def add_to_rollups(session: AsyncSession, facts: Iterable[Fact]) -> None:
    """Add these (new, counted-once) usage rows to the hourly and daily rollups and the monthly spend. Each row is
    added once to its tenant's hourly key and once (with its latencies) to its fleet hourly key; the daily and
    monthly sums are made from those."""
    hourly: dict[tuple[Any, ...], _Sums] = {}
    fleet_hourly: dict[tuple[Any, ...], _Sums] = {}
    for fact in facts:
        hour = hour_start(fact.started_at)
        key = (hour, fact.tenant_id, fact.model, fact.route, fact.backend)
        sums = hourly.get(key)
        if sums is None:
            sums = hourly[key] = _Sums()
        sums.add(fact, False)
        fleet_key = (hour, fact.model, fact.route, fact.backend)
        sums = fleet_hourly.get(fleet_key)
        if sums is None:
            sums = fleet_hourly[fleet_key] = _Sums()
        sums.add(fact, True)
    spend: dict[tuple[str, str], list[Any]] = {}
    for (hour, tenant, *_), sums in hourly.items():
        total = spend.setdefault((tenant, f"{hour.year:04d}-{hour.month:02d}"), [0, Decimal(0)])
        total[0] += sums.counts[0]
        total[1] += sums.cost
    for rollup in ROLLUPS:
        tenant = "tenant_id" in rollup.dimensions
        source, names = (hourly, _TENANT_DIMENSIONS) if tenant else (fleet_hourly, _FLEET_DIMENSIONS)
        picks = [names.index(d) for d in rollup.dimensions]
        by_key: dict[tuple[Any, ...], _Sums] = {}
        for (hour, *rest), sums in source.items():
            bucket = _bucket(hour, rollup.grain)
            _fold(by_key, (bucket, *(rest[i] for i in picks)), sums)
        keys = ("bucket", *rollup.dimensions)
        rows = [_row(keys, key, by_key[key], rollup.histograms) for key in sorted(by_key)]
        await _upsert(session, rollup.table, keys, rows)
    spend_rows = [
        {"tenant_id": tenant, "month": month, "requests": n, "cost_usd": cost}
        for (tenant, month), (n, cost) in sorted(spend.items())
    ]
    await _upsert(session, MonthlySpend.__table__, ("tenant_id", "month"), spend_rows)  # type: ignore[arg-type]
