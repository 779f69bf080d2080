"""Reading the ledger: usage rows (keyset pages), totals, per-day rollups and costs, all under one filter.

Totals, per-day figures and costs come from the rollups (``interlock.api.crud.rollup_query``) unless the filter
names a key or a trace or groups by key, which only the raw rows know.

``UsageFilter.scope_tenant_id`` is the caller's own tenant when a tenant key asks; it is ANDed with the requested
``tenant_id``, so asking for another tenant's data yields nothing rather than an error that would confirm it exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, tuple_, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import day_of
from interlock.api.crud.ranking import ranked
from interlock.api.crud.rollup_query import Query, Sums, sums
from interlock.api.pagination import decode_cursor, decode_rank_cursor, encode_cursor, encode_rank_cursor
from interlock.api.schemas import Cost, DailyUsage, UsageTotals
from interlock.db.models import Usage
from interlock.db.types import Money

__all__ = ["GROUPS", "Group", "UsageFilter", "costs", "daily_usage", "list_usage", "usage_totals"]

Group = Literal["tenant", "key", "route", "model", "backend"]
GROUPS: dict[str, Any] = {
    "tenant": Usage.tenant_id,
    "key": Usage.key_id,
    "route": Usage.route,
    "model": Usage.model,
    "backend": Usage.backend,
}
_FIELD = {"tenant": "tenant_id", "key": "key_id", "route": "route", "model": "model", "backend": "backend"}


@dataclass(frozen=True)
class UsageFilter:
    tenant_id: str | None = None
    scope_tenant_id: str | None = None
    key_id: str | None = None
    route: str | None = None
    model: str | None = None
    backend: str | None = None
    trace_id: str | None = None
    since: dt.datetime | None = None
    """Inclusive."""
    until: dt.datetime | None = None
    """Exclusive."""

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        for value, column in (
            (self.tenant_id, Usage.tenant_id),
            (self.scope_tenant_id, Usage.tenant_id),
            (self.key_id, Usage.key_id),
            (self.route, Usage.route),
            (self.model, Usage.model),
            (self.backend, Usage.backend),
            (self.trace_id, Usage.trace_id),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.since is not None:
            clauses.append(Usage.started_at >= self.since)
        if self.until is not None:
            clauses.append(Usage.started_at < self.until)
        return clauses


def _aggregates() -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(Usage.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(Usage.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(Usage.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(Usage.cache_creation_tokens), 0).label("cache_creation_tokens"),
        func.coalesce(func.sum(Usage.cost_usd), Decimal(0)).label("cost_usd"),
    ]


def _totals(row: Any) -> dict[str, Any]:
    return {
        "requests": int(row.requests),
        "input_tokens": int(row.input_tokens),
        "output_tokens": int(row.output_tokens),
        "cached_tokens": int(row.cached_tokens),
        "cache_creation_tokens": int(row.cache_creation_tokens),
        "cost_usd": row.cost_usd,
    }


async def list_usage(
    *, session: AsyncSession, filters: UsageFilter, limit: int, cursor: str | None = None
) -> tuple[Sequence[Usage], str | None]:
    """Newest first; the next page's cursor, or None on the last page."""
    query = select(Usage).where(*filters.where())
    if cursor is not None:
        started_at, row_id = decode_cursor(cursor)
        query = query.where(or_(Usage.started_at < started_at, and_(Usage.started_at == started_at, Usage.id < row_id)))
    query = query.order_by(Usage.started_at.desc(), Usage.id.desc()).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.started_at, last.id)


def _rollup_query(filters: UsageFilter, grain: Literal["day"] | None, group_by: Sequence[Group]) -> Query | None:
    """The same question for the rollups, or None when they cannot answer it."""
    if filters.key_id is not None or filters.trace_id is not None or "key" in group_by:
        return None
    equals = [
        (column, value)
        for column, value in (
            ("tenant_id", filters.tenant_id),
            ("tenant_id", filters.scope_tenant_id),
            ("route", filters.route),
            ("model", filters.model),
            ("backend", filters.backend),
        )
        if value is not None
    ]
    return Query(
        since=filters.since,
        until=filters.until,
        grain=grain,
        groups=tuple(_FIELD[g] for g in group_by),
        equals=tuple(equals),
    )


def _from_sums(entry: Sums) -> dict[str, Any]:
    return {
        "requests": entry.get("requests"),
        "input_tokens": entry.get("input_tokens"),
        "output_tokens": entry.get("output_tokens"),
        "cached_tokens": entry.get("cached_tokens"),
        "cache_creation_tokens": entry.get("cache_creation_tokens"),
        "cost_usd": entry.cost_usd,
    }


async def usage_totals(*, session: AsyncSession, filters: UsageFilter) -> UsageTotals:
    rollup = _rollup_query(filters, None, [])
    if rollup is not None:
        found = await sums(session, rollup)
        entry = next(iter(found.values()), None)
        return UsageTotals(**_from_sums(entry)) if entry is not None else UsageTotals()
    row = (await session.execute(select(*_aggregates()).where(*filters.where()))).one()
    return UsageTotals(**_totals(row))


async def daily_usage(*, session: AsyncSession, filters: UsageFilter, group_by: Sequence[Group]) -> list[DailyUsage]:
    rollup = _rollup_query(filters, "day", group_by)
    if rollup is not None:
        found = await sums(session, rollup)
        return [
            DailyUsage(
                day=start.date(), **dict(zip([_FIELD[g] for g in group_by], groups, strict=True)), **_from_sums(entry)
            )
            for (start, groups), entry in sorted(found.items(), key=lambda item: (item[0][0], item[0][1]))
            if start is not None
        ]
    day = day_of(session, Usage.started_at).label("day")
    groups = [GROUPS[g].label(_FIELD[g]) for g in group_by]
    query = select(day, *groups, *_aggregates()).where(*filters.where()).group_by(day, *groups)
    query = query.order_by(day, *groups)
    result = await session.execute(query)
    return [
        DailyUsage(day=row.day, **{_FIELD[g]: getattr(row, _FIELD[g]) for g in group_by}, **_totals(row))
        for row in result.all()
    ]


async def costs(
    *, session: AsyncSession, filters: UsageFilter, group_by: Sequence[Group], limit: int, cursor: str | None = None
) -> tuple[list[Cost], str | None]:
    """Spend per group over the filter's window, most expensive first (ties by the group values, ascending): the
    page after ``cursor``, at most ``limit`` groups, and the next page's cursor (None on the last page)."""
    after = decode_rank_cursor(cursor, len(group_by)) if cursor is not None else None
    names = [_FIELD[g] for g in group_by]
    if not group_by:  # one group: the whole window
        totals = await usage_totals(session=session, filters=filters)
        return ([Cost(**totals.model_dump())] if totals.requests and after is None else []), None
    rollup = _rollup_query(filters, None, group_by)
    if rollup is not None:
        found = await ranked(session, rollup, limit=limit + 1, after=after)
        page = [Cost(**dict(zip(names, groups, strict=True)), **_from_sums(entry)) for groups, entry in found]
    else:
        groups = [GROUPS[g].label(_FIELD[g]) for g in group_by]
        cost = type_coerce(func.coalesce(func.sum(Usage.cost_usd), Decimal(0)), Money())
        query = select(*groups, *_aggregates()).where(*filters.where()).group_by(*groups)
        if after is not None:
            mark = literal(after[0], Money())
            later = tuple_(*groups) > tuple_(*after[1])
            query = query.having(or_(cost < mark, and_(cost == mark, later)))
        query = query.order_by(cost.desc(), *groups).limit(limit + 1)
        result = await session.execute(query)
        page = [Cost(**{name: getattr(row, name) for name in names}, **_totals(row)) for row in result.all()]
    if len(page) <= limit:
        return page, None
    last = page[limit - 1]
    return page[:limit], encode_rank_cursor(last.cost_usd, tuple(str(getattr(last, name)) for name in names))
