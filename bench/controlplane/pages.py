"""The console's pages as a browser gets them: logged in (the admin token, or the heaviest tenant's key), each page
fetched over HTTP from the real ``interlock api`` process, its queries, its charts and its HTML together.

A page's range (``30d``, ``365d``) ends at the next midnight UTC (``interlock.api.console.window``). The pages
without a range (tenants, keys, gateways, one tenant's, one trace's) are timed once, with the 30-day ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx

__all__ = ["ADMIN_PAGES", "TENANT_PAGES", "UNRANGED", "console_login", "page_cases"]

ADMIN_PAGES = (
    ("overview", "/console/"),
    ("usage by tenant, top 8 + others", "/console/usage"),
    ("usage by model", "/console/usage?group=model"),
    ("usage CSV export, by tenant", "/console/usage.csv"),
    ("latency by route", "/console/latency"),
    ("latency by backend", "/console/latency?group=backend"),
    ("latency by model", "/console/latency?group=model"),
    ("traces", "/console/traces"),
)
TENANT_PAGES = (
    ("overview", "/console/"),
    ("usage by model", "/console/usage"),
    ("usage by route", "/console/usage?group=route"),
    ("latency by route", "/console/latency"),
    ("traces", "/console/traces"),
)
UNRANGED = (
    ("tenants (500, this month's budget bars)", "/console/tenants"),
    ("keys (the newest 500)", "/console/keys"),
    ("gateways", "/console/gateways"),
)


@asynccontextmanager
async def console_login(base_url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a console session cookie, as the login form sets it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        answer = await client.post("/console/login", data={"token": token}, headers={"origin": base_url})
        if answer.status_code != 303:
            raise SystemExit(f"console login refused: {answer.status_code}")
        yield client


def _get(client: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[httpx.Response]]:
    async def call() -> httpx.Response:
        answer = await client.get(path)
        answer.raise_for_status()
        return answer

    return call


def page_cases(
    admin: httpx.AsyncClient, tenant: httpx.AsyncClient, days: int, *, tenant_id: str, trace_id: str | None
) -> list[tuple[str, str, Callable[[], Awaitable[httpx.Response]]]]:
    """(name, caller, fetch) of every page over ``days`` (30 or 365), and the unranged pages with the 30 days
    (``tenant_id``'s page and its keys, ``trace_id``'s waterfall, if any: the heaviest tenant's newest trace)."""
    span = f"range={days}d"

    def ranged(path: str) -> str:
        return f"{path}{'&' if '?' in path else '?'}{span}"

    cases = [(f"page: {name}", "admin", _get(admin, ranged(path))) for name, path in ADMIN_PAGES]
    cases += [(f"page: {name}", "tenant", _get(tenant, ranged(path))) for name, path in TENANT_PAGES]
    if days <= 31:
        cases += [(f"page: {name}", "admin", _get(admin, path)) for name, path in UNRANGED]
        cases += [
            ("page: one tenant (quota, budget bar)", "admin", _get(admin, f"/console/tenants/{tenant_id}")),
            ("page: one tenant's keys", "admin", _get(admin, f"/console/keys?tenant={tenant_id}")),
        ]
        if trace_id is not None:
            cases.append(("page: one trace (waterfall)", "tenant", _get(tenant, f"/console/traces/{trace_id}")))
    return cases
