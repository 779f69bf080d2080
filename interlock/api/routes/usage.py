"""Usage rows, per-day rollups and costs: the admin sees every tenant, a tenant key only its own tenant."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

from fastapi import APIRouter, Query

from interlock.api.crud import usage as crud
from interlock.api.crud.usage import GROUPS, Group
from interlock.api.deps import SessionDep, SettingsDep
from interlock.api.errors import InvalidError
from interlock.api.routes.filters import UsageFilterDep, with_window
from interlock.api.routes.params import CursorQuery, LimitQuery, page_size
from interlock.api.schemas import CostsPublic, DailyUsagesPublic, UsagePublic, UsagesPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["usage"])

GroupQuery = Annotated[
    str | None,
    Query(max_length=128, description=f"Comma-separated, any of: {', '.join(GROUPS)}."),
]


def _groups(value: str | None, default: list[Group]) -> list[Group]:
    if value is None:
        return default
    groups: list[Group] = []
    for part in (p.strip() for p in value.split(",")):
        if part and part not in GROUPS:
            raise InvalidError(f"group_by: unknown group {part!r}; choose from {', '.join(GROUPS)}")
        if part and part not in groups:
            groups.append(cast(Group, part))
    return groups


@router.get("/usage")
async def list_usage(
    session: SessionDep,
    settings: SettingsDep,
    filters: UsageFilterDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> UsagesPublic:
    """One row per request, newest first; ``totals`` cover every row of the filter, not only this page."""
    rows, next_cursor = await crud.list_usage(
        session=session, filters=filters, limit=page_size(limit, settings), cursor=cursor
    )
    totals = await crud.usage_totals(session=session, filters=filters)
    return UsagesPublic(data=[UsagePublic.model_validate(r) for r in rows], totals=totals, next_cursor=next_cursor)


@router.get("/usage/daily")
async def daily_usage(
    session: SessionDep,
    filters: UsageFilterDep,
    group_by: GroupQuery = None,
) -> DailyUsagesPublic:
    """Per UTC day and tenant (every row has its ``tenant_id``), split further by ``group_by``."""
    groups = _groups(group_by, [])
    if "tenant" not in groups:
        groups.insert(0, "tenant")
    data = await crud.daily_usage(session=session, filters=filters, group_by=groups)
    return DailyUsagesPublic(data=data, totals=await crud.usage_totals(session=session, filters=filters))


@router.get("/costs")
async def costs(
    session: SessionDep,
    settings: SettingsDep,
    filters: UsageFilterDep,
    group_by: GroupQuery = None,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> CostsPublic:
    """Spend over a window (default: this calendar month, UTC), by ``group_by`` (default: ``tenant``), most
    expensive first, a page at a time: the first page is the top spenders. ``totals`` cover every group. Pass the
    first page's ``since`` and ``until`` with ``cursor`` so every page ranks the same window."""
    now = dt.datetime.now(dt.UTC)
    since = filters.since or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    until = filters.until or now
    filters = with_window(filters, since, until)
    groups = _groups(group_by, ["tenant"])
    data, next_cursor = await crud.costs(
        session=session, filters=filters, group_by=groups, limit=page_size(limit, settings), cursor=cursor
    )
    return CostsPublic(
        since=since,
        until=until,
        group_by=list(groups),
        data=data,
        totals=await crud.usage_totals(session=session, filters=filters),
        next_cursor=next_cursor,
    )
