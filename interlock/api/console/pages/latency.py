"""Latency by route or backend: p50/p95/p99 of the whole request and of the time to first token, over time."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlock.api.console.auth import ConsoleUserDep
from interlock.api.console.charts import chart, metrics_chart
from interlock.api.console.names import tenant_names
from interlock.api.console.params import DIMENSIONS, FilterQuery, RangeQuery, dimension
from interlock.api.console.render import render
from interlock.api.console.window import RANGES, window
from interlock.api.crud import analytics
from interlock.api.deps import SessionDep

__all__ = ["router"]

router = APIRouter()

GROUPS = ("route", "backend", "model")
MAX_TABLE_ROWS = 300


@router.get("/latency")
async def latency_page(
    request: Request,
    session: SessionDep,
    user: ConsoleUserDep,
    span: RangeQuery = None,
    group: FilterQuery = None,
    tenant: FilterQuery = None,
) -> Response:
    now = dt.datetime.now(dt.UTC)
    win = window(span, now, default="24h")
    group_by = dimension(group, GROUPS, "route")
    scope = user.scope(tenant)
    grouped, overall = await analytics.latency_and_overall(
        session, since=win.since, until=win.until, bucket=win.bucket, group_by=group_by, tenant_id=scope
    )
    charts = {
        "overall": metrics_chart(
            win,
            overall,
            {
                "p50": lambda p: p.latency_p50_ms,
                "p95": lambda p: p.latency_p95_ms,
                "p99": lambda p: p.latency_p99_ms,
            },
            unit="ms",
            fill_missing=None,
        ),
        "ttft": metrics_chart(
            win,
            overall,
            {"p50": lambda p: p.ttft_p50_ms, "p95": lambda p: p.ttft_p95_ms, "p99": lambda p: p.ttft_p99_ms},
            unit="ms",
            fill_missing=None,
        ),
        "grouped": chart(
            win, grouped, lambda p: p.latency_p95_ms, group=lambda p: p.group, unit="ms", fill_missing=None
        ),
    }
    rows = sorted(grouped, key=lambda p: (p.start, p.group or ""), reverse=True)[:MAX_TABLE_ROWS]
    names = await tenant_names(session, [user.tenant_id]) if user.tenant_id else {}
    return render(
        request,
        "latency.html",
        user,
        tenant_name=names.get(user.tenant_id or "", user.tenant_id),
        window=win,
        ranges=RANGES,
        group_by=group_by,
        dimensions={k: DIMENSIONS[k] for k in GROUPS},
        tenant_filter=scope if user.is_admin else None,
        charts=charts,
        rows=rows,
    )
