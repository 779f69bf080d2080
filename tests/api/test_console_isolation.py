"""A tenant's console login sees its own tenant's data only, on every page and in the CSV, whatever it asks for;
the admin pages are closed to it. Also: gateways' status reports and the page that shows them."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import httpx
import pytest

from tests.api.console_support import logged_in
from tests.api.support import ADMIN_TOKEN, GATEWAY_ID, event, gateway_credential, new_key, new_tenant, post_usage

READ_PAGES = ["/console/", "/console/usage", "/console/usage.csv", "/console/latency", "/console/traces"]
ADMIN_PAGES = ["/console/tenants", "/console/keys", "/console/gateways"]


@pytest.fixture
async def two_tenants(admin, gateway) -> dict[str, dict[str, str]]:
    """Tenants "alpha" and "bravo", each with a key and traffic on its own model, route and backend."""
    found: dict[str, dict[str, str]] = {}
    seq = 0
    now = dt.datetime.now(dt.UTC)
    for name in ("alpha", "bravo"):
        tenant = await new_tenant(admin, f"tenant-{name}")
        key = await new_key(admin, tenant["id"])
        events = []
        for i in range(3):
            seq += 1
            events.append(
                event(tenant["id"], seq, started_at=now - dt.timedelta(minutes=i), key_id=key["id"],
                      model=f"model-{name}", route=f"route-{name}", backend=f"backend-{name}",
                      trace_id=f"trace-{name}-{i}", cost_usd=0.25)
            )  # fmt: skip
        await post_usage(gateway, events)
        found[name] = {"id": tenant["id"], "key": key["key"], "trace": f"trace-{name}-0"}
    return found


def _mentions(text: str, name: str, found: dict[str, str]) -> list[str]:
    """Which of a tenant's names and ids the answer shows (the filter form, which echoes what was typed, aside)."""
    text = re.sub(r'<form class="filters".*?</form>', "", text, flags=re.S)
    needles = [f"tenant-{name}", f"model-{name}", f"route-{name}", f"backend-{name}", found["id"], f"trace-{name}"]
    return [n for n in needles if n in text]


async def test_a_tenant_login_sees_only_its_own_data_everywhere(client_for, two_tenants):
    alpha, bravo = two_tenants["alpha"], two_tenants["bravo"]
    browser = client_for(None)
    await logged_in(browser, alpha["key"])
    asks = [
        {},
        {"tenant": bravo["id"]},
        {"tenant": bravo["id"], "group": "tenant"},
        {"group": "tenant", "range": "30d"},
        {"tenant_id": bravo["id"]},
        {"trace_id": bravo["trace"]},
        {"model": "model-bravo"},
    ]
    for path in READ_PAGES:
        for params in asks:
            response = await browser.get(path, params=params)
            assert response.status_code == 200, (path, params)
            assert _mentions(response.text, "bravo", bravo) == [], (path, params)
        own = await browser.get(path, params={"range": "24h", "group": "model"})
        assert _mentions(own.text, "alpha", alpha), path
    csv = await browser.get("/console/usage.csv", params={"group": "model", "range": "24h"})
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("start,model,")
    rows = [line.split(",") for line in lines[1:]]  # one per hour: the three events may straddle two hours
    assert {row[1] for row in rows} == {"model-alpha"}
    assert sum(Decimal(row[-1]) for row in rows) == Decimal("0.75")
    assert (await browser.get(f"/console/traces/{bravo['trace']}")).status_code == 404
    assert (await browser.get(f"/console/traces/{alpha['trace']}")).status_code == 200
    for path in [*ADMIN_PAGES, f"/console/tenants/{bravo['id']}", f"/console/tenants/{alpha['id']}"]:
        assert (await browser.get(path)).status_code == 403, path


async def test_a_tenant_login_cannot_change_anything(client_for, admin, two_tenants):
    alpha, bravo = two_tenants["alpha"], two_tenants["bravo"]
    browser = client_for(None)
    csrf = await logged_in(browser, alpha["key"])
    headers = {"origin": "http://cp", "sec-fetch-site": "same-origin"}
    keys = (await admin.get(f"/v1/tenants/{bravo['id']}/keys")).json()["data"]
    attempts = [
        ("/console/tenants", {"name": "evil"}),
        (f"/console/tenants/{bravo['id']}/quota", {"monthly_budget_usd": "0.01"}),
        ("/console/keys", {"tenant_id": bravo["id"], "name": "evil"}),
        (f"/console/keys/{keys[0]['id']}/revoke", {}),
    ]
    for path, form in attempts:
        response = await browser.post(path, data={**form, "csrf": csrf}, headers=headers)
        assert response.status_code == 403, path
    assert (await admin.get(f"/v1/tenants/{bravo['id']}/keys")).json()["data"][0]["revoked_at"] is None
    assert (await admin.get(f"/v1/tenants/{bravo['id']}/quota")).json()["monthly_budget_usd"] is None
    assert len((await admin.get("/v1/tenants")).json()["data"]) == 2


async def test_the_admin_sees_every_tenant(client_for, two_tenants):
    browser = client_for(None)
    await logged_in(browser, ADMIN_TOKEN)
    usage = await browser.get("/console/usage", params={"group": "tenant", "range": "24h"})
    assert "tenant-alpha" in usage.text
    assert "tenant-bravo" in usage.text
    one = await browser.get("/console/usage", params={"tenant": two_tenants["bravo"]["id"], "group": "model"})
    assert "model-bravo" in one.text
    assert "model-alpha" not in one.text


async def test_the_usage_page_shows_the_top_spenders_and_the_others(client_for, admin, gateway):
    """Eleven tenants: the page and the CSV split by tenant show the eight biggest spenders by name and the other
    three as one "others" row per bucket, the numbers adding up to the window's totals."""
    now = dt.datetime.now(dt.UTC)
    tenants = [await new_tenant(admin, f"spender-{i:02d}") for i in range(11)]
    events = [
        event(tenant["id"], i + 1, started_at=now - dt.timedelta(minutes=1), cost_usd=0.5 * (i + 1))
        for i, tenant in enumerate(tenants)
    ]
    await post_usage(gateway, events)
    browser = client_for(None)
    await logged_in(browser, ADMIN_TOKEN)
    page = (await browser.get("/console/usage", params={"group": "tenant", "range": "24h"})).text
    assert all(f"spender-{i:02d}" in page for i in range(3, 11))
    assert not any(f"spender-{i:02d}" in page for i in range(3))
    assert "all other tenants" in page
    csv = (await browser.get("/console/usage.csv", params={"group": "tenant", "range": "24h"})).text
    rows = [line.split(",") for line in csv.strip().splitlines()[1:]]
    assert sorted(row[2] for row in rows) == ["", *(f"spender-{i:02d}" for i in range(3, 11))]
    others = [row for row in rows if row[1] == "others"]
    assert [(row[3], row[-1]) for row in others] == [("3", "3.000000000")]  # 0.5 + 1.0 + 1.5


def _report(gateway_id: str = GATEWAY_ID) -> dict[str, object]:
    return {
        "gateway_id": gateway_id,
        "config_version": "cfg-abc123",
        "ready": True,
        "loaded_at": 1_700_000_000.0,
        "routes": [{"name": "chat-default", "targets": ["mock-a", "mock-b"]}],
        "backends": [
            {"name": "mock-a", "provider": "mock", "breaker_open": True, "inflight": 2},
            {"name": "mock-b", "provider": "openai", "breaker_open": False, "unusable_reason": "no key"},
        ],
    }


async def test_gateways_report_their_status_and_the_admin_sees_it(gateway, client_for, admin):
    assert (await gateway.post("/v1/gateway/status", json=_report())).status_code == 204
    newer = {**_report(), "config_version": "cfg-def456"}
    assert (await gateway.post("/v1/gateway/status", json=newer)).status_code == 204
    outside = await gateway.post("/v1/gateway/status", json=_report("other/scope/pod"))
    assert outside.status_code == 403
    assert (await admin.post("/v1/gateway/status", json=_report())).status_code == 403
    too_many = {**_report(), "routes": [{"name": f"r{i}"} for i in range(501)]}
    assert (await gateway.post("/v1/gateway/status", json=too_many)).status_code == 422
    browser = client_for(None)
    await logged_in(browser, ADMIN_TOKEN)
    page = await browser.get("/console/gateways")
    assert page.status_code == 200
    assert GATEWAY_ID in page.text
    assert "cfg-def456" in page.text
    assert "cfg-abc123" not in page.text
    assert "open (cooling down)" in page.text
    assert "no key" in page.text
    assert "mock-a, mock-b" in page.text
    assert page.text.count('<section class="panel gateway"') == 1


async def test_a_status_report_needs_a_gateway_credential(client_for):
    anonymous = client_for(None)
    assert (await anonymous.post("/v1/gateway/status", json=_report())).status_code == 401
    forged = client_for(gateway_credential(key="another-signing-key-0123456789abcdef"))
    assert (await forged.post("/v1/gateway/status", json=_report())).status_code == 401
    assert isinstance(forged, httpx.AsyncClient)
