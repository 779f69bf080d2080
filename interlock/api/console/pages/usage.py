"""Usage and cost by tenant, model, route or backend per hour or day, as stacked charts and a table, with CSV
export: the ``TOP_GROUPS`` groups with the highest spend over the window, and the rest summed as "others" (with
10,000 tenants, every tenant's series would be 300,000 points a month). A tenant login's queries are confined to its
own tenant, the CSV included."""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.console.auth import ConsoleUserDep
from interlock.api.console.charts import MAX_GROUPS, chart
from interlock.api.console.names import tenant_names
from interlock.api.console.params import DIMENSIONS, FilterQuery, RangeQuery, dimension
from interlock.api.console.render import render
from interlock.api.console.sessions import ConsoleUser
from interlock.api.console.window import RANGES, Window, window
from interlock.api.crud import analytics
from interlock.api.crud.analytics import Dimension, SeriesPoint, Totals
from interlock.api.deps import SessionDep

__all__ = ["router"]

router = APIRouter()

MAX_TABLE_ROWS = 500
TOP_GROUPS = MAX_GROUPS
"""As many as a chart draws."""
OTHERS = "others"


async def _usage(
    session: AsyncSession, user: ConsoleUser, span: str | None, group: str | None, tenant: str | None
) -> tuple[Window, Dimension, str | None, list[SeriesPoint], Totals, dict[str, str]]:
    now = dt.datetime.now(dt.UTC)
    win = window(span, now, default="30d")
    allowed = tuple(DIMENSIONS) if user.is_admin else ("model", "route", "backend")
    group_by = dimension(group, allowed, "tenant" if user.is_admin else "model")
    scope = user.scope(tenant)
    points = await analytics.series(
        session, since=win.since, until=win.until, bucket=win.bucket, group_by=group_by, tenant_id=scope, top=TOP_GROUPS
    )
    totals = await analytics.totals(session, since=win.since, until=win.until, tenant_id=scope)
    ids = [p.group for p in points] if group_by == "tenant" else []
    names = await tenant_names(session, [*ids, user.tenant_id, scope])
    return win, group_by, scope, points, totals, names


@router.get("/usage")
async def usage_page(
    request: Request,
    session: SessionDep,
    user: ConsoleUserDep,
    span: RangeQuery = None,
    group: FilterQuery = None,
    tenant: FilterQuery = None,
) -> Response:
    win, group_by, scope, points, totals, names = await _usage(session, user, span, group, tenant)
    label = {**(names if group_by == "tenant" else {}), "": f"all other {DIMENSIONS[group_by].lower()}s"}
    charts = {
        "cost": chart(
            win, points, lambda p: float(p.cost_usd), group=lambda p: p.group, names=label, unit="$", stacked=True
        ),
        "tokens": chart(
            win, points, lambda p: p.input_tokens + p.output_tokens, group=lambda p: p.group, names=label, stacked=True
        ),
        "requests": chart(win, points, lambda p: p.requests, group=lambda p: p.group, names=label, stacked=True),
    }
    rows = sorted(points, key=lambda p: (p.start, not p.others, p.group or ""), reverse=True)[:MAX_TABLE_ROWS]
    return render(
        request,
        "usage.html",
        user,
        tenant_name=names.get(user.tenant_id or "", user.tenant_id),
        window=win,
        ranges=RANGES,
        group_by=group_by,
        dimensions={k: v for k, v in DIMENSIONS.items() if user.is_admin or k != "tenant"},
        tenant_filter=scope if user.is_admin else None,
        names=names,
        charts=charts,
        rows=rows,
        totals=totals,
        truncated=len(points) > MAX_TABLE_ROWS,
        top=TOP_GROUPS,
        query=urlencode(
            {"range": win.name, "group": group_by, **({"tenant": scope} if user.is_admin and scope else {})}
        ),
    )


@router.get("/usage.csv")
async def usage_csv(
    session: SessionDep,
    user: ConsoleUserDep,
    span: RangeQuery = None,
    group: FilterQuery = None,
    tenant: FilterQuery = None,
) -> Response:
    """The same numbers as the page, one row per bucket and group (``cost_usd`` exact, as a decimal string); the
    groups outside the top ones in one row per bucket, ``others``."""
    win, group_by, _scope, points, _totals, names = await _usage(session, user, span, group, tenant)
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["start", group_by, "requests", "errors", "input_tokens", "output_tokens", "cost_usd"]
    if group_by == "tenant":
        header.insert(2, "tenant_name")
    writer.writerow(header)
    for p in points:
        row: list[object] = [p.start.isoformat(), OTHERS if p.others else p.group or ""]
        if group_by == "tenant":
            row.append("" if p.others else names.get(p.group or "", ""))
        row += [p.requests, p.errors, p.input_tokens, p.output_tokens, str(p.cost_usd)]
        writer.writerow(row)
    filename = f"interlock-usage-{group_by}-{win.name}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
