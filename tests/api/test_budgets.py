"""The console's Tenants page data (``tenant_budgets``): a page of tenants by name with its quota, this month's spend
and active keys, counted for those tenants only."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

import httpx
from fastapi import FastAPI

from interlock.api.crud.budgets import tenant_budgets
from interlock.api.crud.quotas import month_of
from tests.api.support import event, new_key, new_tenant, post_usage


async def test_a_page_of_tenants_with_quota_spend_and_active_keys(app: FastAPI, admin: httpx.AsyncClient,
                                                                  gateway: httpx.AsyncClient) -> None:  # fmt: skip
    mark = secrets.token_hex(4)
    names = [f"budget-{mark}-{c}" for c in "dcba"]  # created out of name order
    tenants = {name: (await new_tenant(admin, name))["id"] for name in names}
    a, b = tenants[f"budget-{mark}-a"], tenants[f"budget-{mark}-b"]
    quota = {"requests_per_minute": 60, "monthly_budget_usd": "10"}
    assert (await admin.put(f"/v1/tenants/{a}/quota", json=quota)).status_code == 200
    await new_key(admin, a)
    await new_key(admin, a, expires_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat())
    revoked = await new_key(admin, a)
    assert (await admin.delete(f"/v1/keys/{revoked['id']}")).status_code == 204
    await new_key(admin, b)
    now = dt.datetime.now(dt.UTC)
    last_month = now.replace(day=1) - dt.timedelta(days=3)
    spend = [event(a, 1, cost_usd=2.5), event(a, 2, cost_usd=0.25), event(a, 3, started_at=last_month, cost_usd=7.0)]
    assert (await post_usage(gateway, spend))["accepted"] == 3

    async with app.state.sessions() as session:
        rows = await tenant_budgets(session=session, month=month_of(now), now=now, name_contains=mark, limit=3)
        assert [r.name for r in rows] == sorted(names)[:3]
        first, second, third = rows
        assert (first.requests_per_minute, first.monthly_budget_usd) == (60, Decimal("10"))
        assert (first.spent_usd, first.active_keys) == (Decimal("2.75"), 2)  # last month's spend, the revoked key: out
        assert first.budget_fraction == 0.275
        assert (second.spent_usd, second.active_keys, second.monthly_budget_usd) == (Decimal(0), 1, None)
        assert (third.active_keys, third.requests_per_minute, third.budget_fraction) == (0, 0, None)
        # the name filter escapes LIKE's wildcards: "%" matches only a literal percent sign
        month = month_of(now)
        wildcard = await tenant_budgets(session=session, month=month, now=now, name_contains=f"{mark}%", limit=5)
        assert wildcard == []
