"""p95 latency of the console's pages and of what ``/v1/usage`` is asked, over the last 30 days and the last year.

- **Pages** (``bench.controlplane.pages``): every console page as a logged-in browser gets it from the real ``interlock
  api`` process over HTTP, as the admin and as the heaviest tenant: its queries, charts and HTML together. What the
  target is about.
- **Their queries** (``console: …`` rows): each query a page makes, ``interlock.api.crud.analytics`` timed in this
  process on its own engine, over windows that end "now" rather than at midnight (so their ragged ends come from raw
  rows): where a page's time goes. This process's startup heap is frozen first, as ``interlock api``'s is
  (``interlock.heap``): unfrozen, each full collection here walks the whole benchmark's heap, 60 to 90 ms that the
  server does not pay (bench/RESULTS.md, 2026-12-07 02:30).
- **The API** (``/v1/…`` rows): ``/v1/usage``, ``/v1/usage/daily``, ``/v1/costs`` and ``/v1/traces`` through the
  API process over HTTP, as the admin and as the heaviest tenant's own key, over windows that end "now"."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.controlplane.pages import console_login, page_cases
from bench.controlplane.server import ADMIN_TOKEN, ApiProcess
from interlock.api.crud import analytics
from interlock.api.crud.budgets import tenant_budgets
from interlock.api.crud.quotas import month_of
from interlock.db.session import create_engine, create_sessionmaker
from interlock.heap import freeze_startup_heap

__all__ = ["run_queries", "timed"]


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, Any]:
    """(p95 ms, p50 ms, the last result) of ``repeat`` calls after one warm-up call."""
    await call()  # warm: plans, caches
    samples = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - began) * 1000)
    return _p95(samples), sorted(samples)[len(samples) // 2], result


def _size(result: Any) -> str:
    if isinstance(result, httpx.Response):
        result.raise_for_status()
        if not result.headers.get("content-type", "").startswith("application/json"):
            return f"{len(result.content):,} bytes"
        body = result.json()
        return f"{len(body.get('data', []))} rows"
    if isinstance(result, list):
        return f"{len(result)} points"
    return "1 row"


Case = tuple[str, str, Callable[[], Awaitable[Any]]]


def _cases(
    sessions: Any, admin: httpx.AsyncClient, tenant: httpx.AsyncClient, heavy: str, since: dt.datetime,
    until: dt.datetime,
) -> list[Case]:  # fmt: skip
    params = {"since": since.isoformat(), "until": until.isoformat()}

    def on(session_call: Callable[[Any], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            async with sessions() as session:
                return await session_call(session)

        return call

    fine: analytics.Bucket = "hour" if until - since <= dt.timedelta(days=31) else "day"
    top = 8  # interlock.api.console.pages.usage.TOP_GROUPS
    first_page: dict[str, str] = {}

    async def next_costs_page() -> httpx.Response:
        if "cursor" not in first_page:
            first_page["cursor"] = (await admin.get("/v1/costs", params=params)).json()["next_cursor"]
        return await admin.get("/v1/costs", params={**params, "cursor": first_page["cursor"]})

    cases: list[Case] = [
        ("console: totals", "admin", on(lambda s: analytics.totals(s, since=since, until=until))),
        ("console: totals", "tenant", on(lambda s: analytics.totals(s, since=since, until=until, tenant_id=heavy))),
        (f"console: series by {fine}", "admin", on(lambda s: analytics.series(s, since=since, until=until,
                                                                              bucket=fine))),
        ("console: series by day", "tenant",
         on(lambda s: analytics.series(s, since=since, until=until, bucket="day", tenant_id=heavy))),
        ("console: series by day and model", "admin",
         on(lambda s: analytics.series(s, since=since, until=until, bucket="day", group_by="model"))),
        ("console: series by day and route", "tenant",
         on(lambda s: analytics.series(s, since=since, until=until, bucket="day", group_by="route",
                                       tenant_id=heavy))),
        (f"console: series by day and tenant, top {top} + others", "admin",
         on(lambda s: analytics.series(s, since=since, until=until, bucket="day", group_by="tenant", top=top))),
        (f"console: series by day and model, top {top} + others", "tenant",
         on(lambda s: analytics.series(s, since=since, until=until, bucket="day", group_by="model", tenant_id=heavy,
                                       top=top))),
        ("console: latency by hour and route", "admin",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="hour", group_by="route"))),
        ("console: latency by day and route", "admin",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day", group_by="route"))),
        ("console: latency by day and backend", "admin",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day", group_by="backend"))),
        ("console: latency by day and model", "admin",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day", group_by="model"))),
        ("console: latency by day", "admin",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day"))),
        ("console: latency by day", "tenant",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day", tenant_id=heavy))),
        ("console: latency by day and route", "tenant",
         on(lambda s: analytics.latency(s, since=since, until=until, bucket="day", group_by="route",
                                        tenant_id=heavy))),
        ("/v1/usage (newest 100 + totals)", "admin", lambda: admin.get("/v1/usage", params=params)),
        ("/v1/usage (newest 100 + totals)", "tenant", lambda: tenant.get("/v1/usage", params=params)),
        ("/v1/usage/daily", "tenant", lambda: tenant.get("/v1/usage/daily", params=params)),
        ("/v1/usage/daily?group_by=model", "tenant",
         lambda: tenant.get("/v1/usage/daily", params={**params, "group_by": "model"})),
        ("/v1/costs (by tenant: top 100 + totals)", "admin", lambda: admin.get("/v1/costs", params=params)),
        ("/v1/costs (by tenant: next 100, cursor)", "admin", next_costs_page),
        ("/v1/costs?group_by=model", "admin", lambda: admin.get("/v1/costs", params={**params, "group_by": "model"})),
        ("/v1/costs?group_by=model", "tenant",
         lambda: tenant.get("/v1/costs", params={**params, "group_by": "model"})),
        ("/v1/traces (newest 100; the console's traces page)", "admin",
         lambda: admin.get("/v1/traces", params={**params, "limit": "100"})),
        ("/v1/traces (newest 100; the console's traces page)", "tenant",
         lambda: tenant.get("/v1/traces", params={**params, "limit": "100"})),
    ]  # fmt: skip
    if fine == "hour":  # pages that show this month, whatever the window: once
        cases.append(("console: tenants page (500 tenants, this month's budget bars)", "admin",
                      on(lambda s: tenant_budgets(session=s, month=month_of(until), now=until, name_contains=None,
                                                  limit=501))))  # fmt: skip
    if fine == "day":  # over a year: 8,760 hours; the console draws a year by day
        cases = [case for case in cases if case[0] != "console: latency by hour and route"]
    return cases


async def run_queries(api: ApiProcess, database_url: str, heavy_tenant: str, *, repeat: int) -> list[tuple[str, ...]]:
    """Rows of (query, window, caller, p50 ms, p95 ms, result size)."""
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    rows: list[tuple[str, ...]] = []
    now = dt.datetime.now(dt.UTC)
    freeze_startup_heap()  # as interlock api does once it listens
    async with httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                                 timeout=120) as admin:  # fmt: skip
        key = (await admin.post(f"/v1/tenants/{heavy_tenant}/keys", json={"name": "bench"})).json()["key"]
        async with (
            httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {key}"}, timeout=120) as tenant,
            console_login(api.url, ADMIN_TOKEN) as admin_pages,
            console_login(api.url, key) as tenant_pages,
        ):
            newest = (await tenant.get("/v1/traces", params={"limit": "1"})).json()["data"]
            trace_id = newest[0]["trace_id"] if newest else None
            for days in (30, 365):
                since = now - dt.timedelta(days=days)
                cases: list[Case] = [
                    *page_cases(admin_pages, tenant_pages, days, tenant_id=heavy_tenant, trace_id=trace_id)
                ]
                cases += _cases(sessions, admin, tenant, heavy_tenant, since, now)
                for name, caller, call in cases:
                    p95, p50, result = await timed(call, repeat)
                    rows.append((name, f"{days} days", caller, f"{p50:.1f}", f"{p95:.1f}", _size(result)))
                    print(f"| {' | '.join(rows[-1])} |", flush=True)
    await engine.dispose()
    return rows
