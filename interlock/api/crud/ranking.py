"""Groups ranked by what they spent over a window, most expensive first (ties by the group values), a page at a
time: what ``/v1/costs`` and the console's top groups read.

The database ranks, so only a page comes back. Two ways:

- **Bounded** (the question's groups are a monthly rollup's key, i.e. tenants): a tenant's spend in the window is at
  most its spend in the calendar months the window touches (costs are never negative: ingest refuses them), which
  ``tenant_monthly`` gives from a few rows per tenant. Candidates are taken in that bound's order, a chunk at a
  time, and their exact spend summed through the tenant index; it stops when the page's last exact spend is above
  the next candidate's bound (the threshold algorithm). A month's window reads about 20,000 monthly rows and the
  exact rows of a few hundred tenants, where ranking every tenant exactly reads every tenant's days.
- **Exact** (anything else): every row of the window's segments as one ``UNION ALL``, summed by cost alone, ``ORDER
  BY cost DESC, groups LIMIT n``; then the counters of that page's groups.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, tuple_, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import one_of
from interlock.api.crud.rollup_query import Query, Sums, month_start, rollup_table, total, window_rows
from interlock.db.rollups import COUNTERS
from interlock.db.types import Money, to_money

__all__ = ["After", "ranked"]

After = tuple[Decimal, tuple[str, ...]]
"""The previous page's last (cost, group values)."""


async def ranked(
    session: AsyncSession, query: Query, *, limit: int, after: After | None = None
) -> list[tuple[tuple[str, ...], Sums]]:
    """The groups of ``query`` (not split by time), most expensive first and then by their values, that come after
    ``after``; at most ``limit``."""
    assert query.grain is None, "rank over the whole window"
    assert query.groups, "rank groups"
    if rollup_table(query, "month") is not None:
        return await _bounded(session, query, limit, after)
    page = await _exact_page(session, query, limit, after)
    found = await _sums_of(session, query, page)
    return [(groups, found[groups]) for groups in page]


def _later(cost: Any, keys: list[Any], after: After) -> Any:
    mark = literal(after[0], Money())
    return or_(cost < mark, and_(cost == mark, tuple_(*keys) > tuple_(*after[1])))


async def _exact_page(session: AsyncSession, query: Query, limit: int, after: After | None) -> list[tuple[str, ...]]:
    width = len(query.groups)
    united = window_rows(session, query, counters=False)
    keys = [united.c[f"g{i}"] for i in range(width)]
    cost = type_coerce(func.sum(united.c.cost_usd), Money())
    statement = select(*keys, cost).group_by(*keys).having(func.sum(united.c.requests) > 0)
    if after is not None:
        statement = statement.having(_later(cost, keys, after))
    statement = statement.order_by(cost.desc(), *keys).limit(limit)
    return [tuple(row[:width]) for row in await session.execute(statement)]


async def _sums_of(session: AsyncSession, query: Query, groups: list[tuple[str, ...]]) -> dict[tuple[str, ...], Sums]:
    """The exact sums over the window of these groups (read through the rollups' group indexes)."""
    if not groups:
        return {}
    width = len(query.groups)
    among = tuple((column, tuple(sorted({g[i] for g in groups}))) for i, column in enumerate(query.groups))
    united = window_rows(session, replace(query, among=query.among + among), counters=True)
    keys = [united.c[f"g{i}"] for i in range(width)]
    cost = type_coerce(func.sum(united.c.cost_usd), Money())
    statement = select(*keys, *[total(united.c[c]) for c in COUNTERS], cost).group_by(*keys)
    wanted = set(groups)
    out = {}
    for row in (await session.execute(statement)).all():
        key = tuple(row[:width])
        if key in wanted:  # among several columns: their cross product, narrowed here
            out[key] = Sums(list(row[width:-1]), to_money(row[-1]))
    return out


async def _bounds(
    session: AsyncSession, query: Query, offset: int, count: int
) -> list[tuple[tuple[str, ...], Decimal]]:
    """Groups by their spend over the months the window touches, highest first: entries ``offset`` onwards."""
    table = rollup_table(query, "month")
    assert table is not None
    keys = [table.c[g] for g in query.groups]
    where = [table.c[name] == value for name, value in query.equals]
    where += [one_of(session, table.c[name], values) for name, values in query.among]
    if query.since is not None:
        where.append(table.c.bucket >= month_start(query.since))
    if query.until is not None:
        where.append(table.c.bucket < query.until)
    bound = type_coerce(func.sum(table.c.cost_usd), Money())
    statement = select(*keys, bound).where(*where).group_by(*keys).order_by(bound.desc(), *keys)
    rows = await session.execute(statement.offset(offset).limit(count))
    return [(tuple(row[:-1]), to_money(row[-1])) for row in rows]


async def _bounded(
    session: AsyncSession, query: Query, limit: int, after: After | None
) -> list[tuple[tuple[str, ...], Sums]]:
    found: dict[tuple[str, ...], Sums] = {}
    # a later page lies deeper in the bounds' order: start with more candidates than for the first
    offset, chunk = 0, (4 if after is not None else 2) * limit + 20
    while True:
        candidates = await _bounds(session, query, offset, chunk)
        offset += len(candidates)
        found.update(await _sums_of(session, query, [groups for groups, _ in candidates]))
        order = sorted(
            (
                (entry.cost_usd, groups)
                for groups, entry in found.items()
                if entry.get("requests")
                and (after is None or entry.cost_usd < after[0] or (entry.cost_usd == after[0] and groups > after[1]))
            ),
            key=lambda item: (-item[0], item[1]),
        )
        exhausted = len(candidates) < chunk
        # every group not yet summed spent at most the last candidate's bound (bounds come highest first)
        if exhausted or (len(order) >= limit and order[limit - 1][0] > candidates[-1][1]):
            return [(groups, found[groups]) for _, groups in order[:limit]]
        chunk *= 2
