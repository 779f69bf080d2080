"""Overview: requests, tokens, spend today and this month, error rate, latency and TTFT percentiles, and charts
over the chosen window. A tenant login sees its own tenant's numbers only (every query is scoped)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlock.api.console.auth import ConsoleUserDep
from interlock.api.console.charts import metrics_chart
from interlock.api.console.names import tenant_names
from interlock.api.console.params import FilterQuery, RangeQuery
from interlock.api.console.render import render
from interlock.api.console.window import RANGES, start_of_day, start_of_month, window
from interlock.api.crud import analytics
from interlock.api.deps import SessionDep

__all__ = ["router"]

router = APIRouter()


@router.get("/")
async def overview(
    request: Request, session: SessionDep, user: ConsoleUserDep, span: RangeQuery = None, part: FilterQuery = None
) -> Response:
    """``part=cards``: the cards only (what the page's 5-second refresh asks for), without the charts' queries."""
    now = dt.datetime.now(dt.UTC)
    tenant = user.scope()
    today, month = start_of_day(now), start_of_month(now)
    tomorrow = today + dt.timedelta(days=1)
    win = window(span, now)
    today_totals = await analytics.totals(session, since=today, until=tomorrow, tenant_id=tenant)
    month_totals = await analytics.totals(session, since=month, until=tomorrow, tenant_id=tenant)
    today_latency = await analytics.latency(session, since=today, until=tomorrow, bucket="day", tenant_id=tenant)
    names = await tenant_names(session, [user.tenant_id]) if user.tenant_id else {}
    common: dict[str, Any] = {
        "tenant_name": names.get(user.tenant_id or "", user.tenant_id),
        "window": win,
        "ranges": RANGES,
        "today": today_totals,
        "month": month_totals,
        "point": today_latency[0] if today_latency else None,
        "error_rate": (today_totals.errors / today_totals.requests) if today_totals.requests else None,
    }
    if part == "cards":
        return render(request, "overview.html", user, charts=None, **common)
    series = await analytics.series(session, since=win.since, until=win.until, bucket=win.bucket, tenant_id=tenant)
    latency = await analytics.latency(session, since=win.since, until=win.until, bucket=win.bucket, tenant_id=tenant)
    requests_chart = metrics_chart(
        win,
        series,
        {"succeeded": lambda p: p.requests - p.errors, "errors": lambda p: p.errors},
        stacked=True,
        title="Requests",
    )
    cost_chart = metrics_chart(win, series, {"spend": lambda p: float(p.cost_usd)}, unit="$", title="Spend")
    latency_chart = metrics_chart(
        win,
        latency,
        {
            "latency p50": lambda p: p.latency_p50_ms,
            "latency p95": lambda p: p.latency_p95_ms,
            "latency p99": lambda p: p.latency_p99_ms,
            "TTFT p50": lambda p: p.ttft_p50_ms,
            "TTFT p95": lambda p: p.ttft_p95_ms,
        },
        unit="ms",
        fill_missing=None,
        title="Latency",
    )
    charts = {"requests": requests_chart, "cost": cost_chart, "latency": latency_chart}
    return render(request, "overview.html", user, charts=charts, **common)
