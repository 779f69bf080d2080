"""The console's security points without a browser: CSP, cookie flags, CSRF and origin checks, the body guard
in front of console forms, login throttling, and the session ending with its key."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

from interlock.api import ApiSettings, create_app, dispose_app
from interlock.api.bodyguard import CONSOLE_LOGIN_MAX_BYTES
from interlock.api.console.cookie import COOKIE_NAME
from tests.api.console_support import SAME_ORIGIN, logged_in, login
from tests.api.support import ADMIN_TOKEN, new_key, new_tenant

PAGES = ["/console/", "/console/usage", "/console/latency", "/console/traces", "/console/tenants", "/console/keys",
         "/console/gateways", "/console/login"]  # fmt: skip


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"console_login_max_failures": 3, "console_login_max_failures_per_address": 5}


@pytest.fixture
def browser(client_for) -> httpx.AsyncClient:
    return client_for(None)


def _directives(policy: str) -> dict[str, list[str]]:
    parts = [p.strip().split() for p in policy.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


async def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(browser):
    await logged_in(browser, ADMIN_TOKEN)
    for path in PAGES:
        page = await browser.get(path)
        assert page.status_code == 200, path
        csp = _directives(page.headers["content-security-policy"])
        assert csp["default-src"] == ["'none'"]
        assert csp["script-src"] == ["'self'"]
        assert csp["style-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["form-action"] == ["'self'"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        html = page.text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"<style\b", html), path
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "javascript:" not in html


async def test_the_session_cookie_is_httponly_samesite_strict_and_scoped(browser):
    response = await login(browser, ADMIN_TOKEN)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert "secure" not in flags  # development on http://127.0.0.1


async def test_the_cookie_is_secure_in_production(sqlite_url):
    settings = ApiSettings(
        environment="production", database_url=sqlite_url, admin_token="Zq8-vN2rT7xLp4Kd9Wm3Hs6Yb1Fc5Gj0Ae"
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp") as client:
        response = await login(client, "Zq8-vN2rT7xLp4Kd9Wm3Hs6Yb1Fc5Gj0Ae")
    await dispose_app(app)
    assert response.status_code == 303
    assert "secure" in {f.strip().lower() for f in response.headers["set-cookie"].split(";")}


async def test_without_a_session_pages_redirect_to_the_login(browser):
    for path in PAGES[:-1]:
        response = await browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/console/login"), path
    htmx = await browser.get("/console/", headers={"hx-request": "true"})
    assert htmx.headers["hx-redirect"] == "/console/login"


async def test_a_change_needs_the_sessions_csrf_token_and_the_same_origin(browser, admin):
    csrf = await logged_in(browser, ADMIN_TOKEN)
    missing = await browser.post("/console/tenants", data={"name": "t-missing"}, headers=SAME_ORIGIN)
    wrong = await browser.post("/console/tenants", data={"name": "t-wrong", "csrf": "x" * 43}, headers=SAME_ORIGIN)
    cross = await browser.post(
        "/console/tenants",
        data={"name": "t-cross", "csrf": csrf},
        headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert [r.status_code for r in (missing, wrong, cross)] == [403, 403, 403]
    assert "CSRF" in missing.text
    assert "Cross-site" in cross.text
    other = httpx.AsyncClient(transport=browser._transport, base_url="http://cp")  # a second login: its own token
    other_csrf = await logged_in(other, ADMIN_TOKEN)
    assert other_csrf != csrf
    stolen = await browser.post("/console/tenants", data={"name": "t-stolen", "csrf": other_csrf}, headers=SAME_ORIGIN)
    assert stolen.status_code == 403
    await other.aclose()
    names = [t["name"] for t in (await admin.get("/v1/tenants")).json()["data"]]
    assert names == []
    made = await browser.post("/console/tenants", data={"name": "t-ok", "csrf": csrf}, headers=SAME_ORIGIN)
    assert made.status_code == 303
    assert [t["name"] for t in (await admin.get("/v1/tenants")).json()["data"]] == ["t-ok"]


async def test_console_posts_without_a_valid_cookie_are_refused_before_the_body_is_read(browser):
    anonymous = await browser.post("/console/tenants", data={"name": "x", "csrf": "y"})
    assert anonymous.status_code == 401
    browser.cookies.set(COOKIE_NAME, "forged.token", domain="cp", path="/console")
    forged = await browser.post("/console/keys", data={"name": "x"})
    assert forged.status_code == 401
    big = await browser.post("/console/login", content=b"token=" + b"a" * CONSOLE_LOGIN_MAX_BYTES,
                             headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert big.status_code == 413


async def test_a_wrong_token_is_refused_with_a_clear_message(browser):
    response = await login(browser, "not-the-token")
    assert response.status_code == 401
    assert "That token is not valid" in response.text
    assert COOKIE_NAME not in response.headers.get("set-cookie", "")


async def test_failed_logins_are_throttled_per_account(browser, caplog):
    for _ in range(3):
        assert (await login(browser, "wrong-admin-token")).status_code == 401
    refused = await login(browser, ADMIN_TOKEN)  # even the right token, until the window passes
    assert refused.status_code == 429
    assert "Too many failed logins for this account" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert any("console login refused" in r.getMessage() for r in caplog.records)


async def test_failed_logins_are_throttled_per_address(browser, admin):
    tenant = await new_tenant(admin)
    key = (await new_key(admin, tenant["id"]))["key"]
    for i in range(5):  # five different unknown keys: five accounts, one address
        assert (await login(browser, f"sk-il-{i:03d}nokey-0123456789")).status_code == 401
    refused = await login(browser, key)
    assert refused.status_code == 429
    assert "from your address" in refused.text


async def test_logout_ends_the_session(browser):
    csrf = await logged_in(browser, ADMIN_TOKEN)
    stale = browser.cookies.get(COOKIE_NAME)
    out = await browser.post("/console/logout", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login"
    browser.cookies.set(COOKIE_NAME, stale, domain="cp", path="/console")  # replaying the old cookie
    assert (await browser.get("/console/")).status_code == 303


async def test_a_tenant_session_ends_when_its_key_is_revoked(browser, admin):
    tenant = await new_tenant(admin)
    key = await new_key(admin, tenant["id"])
    await logged_in(browser, key["key"])
    assert (await browser.get("/console/usage")).status_code == 200
    assert (await admin.delete(f"/v1/keys/{key['id']}")).status_code == 204
    response = await browser.get("/console/usage")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert (await login(browser, key["key"])).status_code == 401


async def test_bad_form_input_is_answered_on_the_page_never_with_a_500(browser, admin):
    csrf = await logged_in(browser, ADMIN_TOKEN)
    tenant = await new_tenant(admin, "acme")
    post = {"headers": SAME_ORIGIN}
    cases = [
        ("/console/tenants", {"name": ""}, 422, "name"),
        ("/console/tenants", {"name": "acme"}, 409, "already exists"),
        (f"/console/tenants/{tenant['id']}/quota", {"requests_per_minute": "-1"}, 422, "requests per minute"),
        (f"/console/tenants/{tenant['id']}/quota", {"monthly_budget_usd": "lots"}, 422, "monthly budget usd"),
        (f"/console/tenants/{tenant['id']}/quota", {"priority": "urgent"}, 422, "priority"),
        ("/console/tenants/no-such-tenant/quota", {}, 404, "not found"),
        ("/console/keys", {"tenant_id": tenant["id"], "name": "k", "expires_on": "2001-01-01"}, 422, "future"),
        ("/console/keys", {"tenant_id": tenant["id"], "name": "k", "expires_on": "soon"}, 422, "not a date"),
        ("/console/keys", {"tenant_id": "no-such-tenant", "name": "k"}, 404, "not found"),
        ("/console/keys/no-such-key/revoke", {}, 404, "not found"),
    ]
    for path, form, status, words in cases:
        response = await browser.post(path, data={**form, "csrf": csrf}, **post)
        assert response.status_code == status, (path, form, response.text[:300])
        assert words in response.text.lower(), (path, form)
        assert response.headers["content-type"].startswith("text/html")
    saved = await browser.post(
        f"/console/tenants/{tenant['id']}/quota", data={"priority": "sheddable", "csrf": csrf}, **post
    )
    assert saved.status_code == 303
    assert (await admin.get(f"/v1/tenants/{tenant['id']}/quota")).json()["priority"] == "sheddable"
    page = await browser.get(f"/console/tenants/{tenant['id']}")
    assert '<option value="sheddable" selected>' in page.text
    as_json = await browser.post("/console/tenants", json={"name": "x", "csrf": csrf}, **post)
    assert as_json.status_code == 415
    many = "&".join(f"f{i}=x" for i in range(100)) + f"&csrf={csrf}"
    crowded = await browser.post(
        "/console/tenants",
        content=many.encode(),
        headers={**SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded"},
    )
    assert crowded.status_code == 400
    assert (await browser.get("/console/tenants/no-such-tenant")).status_code == 404
    assert (await browser.get("/console/traces/no-such-trace")).status_code == 404


async def test_the_overview_refresh_asks_for_the_cards_only(browser):
    await logged_in(browser, ADMIN_TOKEN)
    full = await browser.get("/console/")
    assert 'hx-get="/console/?range=24h&amp;part=cards"' in full.text
    assert 'data-chart="chart-requests"' in full.text
    cards = await browser.get("/console/", params={"range": "24h", "part": "cards"}, headers={"hx-request": "true"})
    assert cards.status_code == 200
    assert 'id="requests-today"' in cards.text
    assert "data-chart" not in cards.text


async def test_control_characters_anywhere_a_page_reads_are_refused_not_a_500(browser, admin):
    """A NUL (Postgres refuses it in any text) or another control character, in a filter, a path or a form field."""
    tenant = await new_tenant(admin, "controls")
    csrf = await logged_in(browser, ADMIN_TOKEN)
    for bad in ("a\x00b", "a\x1bb"):
        gets = [
            (path, {name: bad})
            for path in (
                "/console/",
                "/console/usage",
                "/console/usage.csv",
                "/console/latency",
                "/console/traces",
                "/console/keys",
            )
            for name in ("tenant", "model", "route")
        ]
        gets += [("/console/tenants", {"q": bad}), ("/console/traces", {"trace_id": bad})]
        gets += [(f"/console/tenants/{quote(bad)}", {}), (f"/console/traces/{quote(bad)}", {})]
        for path, params in gets:
            answer = await browser.get(path, params=params)
            assert answer.status_code < 500, (path, params, answer.status_code)
        posts = [("/console/keys", {"tenant_id": bad, "name": "k"}), ("/console/keys", {"tenant_id": tenant["id"],
                 "name": bad}), ("/console/tenants", {"name": bad}), (f"/console/keys/{quote(bad)}/revoke", {}),
                 (f"/console/tenants/{tenant['id']}/quota", {"requests_per_minute": bad})]  # fmt: skip
        for path, data in posts:
            answer = await browser.post(path, data={"csrf": csrf, **data}, headers=SAME_ORIGIN)
            assert 400 <= answer.status_code < 500, (path, data, answer.status_code)
    assert (await browser.post("/console/login", data={"token": "a\x00b"}, headers=SAME_ORIGIN)).status_code == 400
