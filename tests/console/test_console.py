"""The console in real headless Chromium, against a real ``interlock up`` (gateway, control plane, mock provider),
with traffic from the official openai SDK. Screenshots of every page go to docs/console/ (shown in the README)."""

from __future__ import annotations

import csv
import io
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import openai
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import SHOTS, Watched
from tests.console.up import LocalStack

T = TypeVar("T")
HELLO = [{"role": "user", "content": "Hello"}]


def poll(check: Callable[[], T | None], *, within: float = 30.0, what: str) -> T:
    """``check()`` until it is truthy (each try does real work: a reload, a request); fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        time.sleep(0.1)  # the pause between tries of a deadline-bounded poll, as tests.support.eventually


def log_in(w: Watched, stack: LocalStack, token: str) -> Page:
    page = w.page
    page.goto(stack.console + "login")
    page.get_by_label("Admin token or API key").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Overview")
    return page


def admin_api(stack: LocalStack) -> httpx.Client:
    return httpx.Client(base_url=stack.api, headers={"authorization": f"Bearer {stack.admin_token}"}, timeout=10)


def chat(stack: LocalStack, key: str, *, stream: bool = False) -> None:
    with openai.OpenAI(base_url=f"{stack.gateway}/v1", api_key=key, max_retries=0, timeout=20) as client:
        if stream:
            chunks = client.chat.completions.create(model="chat-default", messages=HELLO, stream=True)
            assert list(chunks)
        else:
            answer = client.chat.completions.create(model="chat-default", messages=HELLO)
            assert answer.choices[0].message.content


def first_chat(stack: LocalStack, key: str) -> None:
    """The first request with a new key: the gateway knows it from its next snapshot poll (every second here)."""

    def accepted() -> bool:
        try:
            chat(stack, key)
        except openai.AuthenticationError:
            return False
        return True

    poll(accepted, what="the gateway accepting the new key")


def series_pixels(page: Page, chart_id: str) -> int:
    """Coloured pixels on the chart's canvas: series are drawn in saturated colours, axes, grid and labels in greys,
    so these are the data, not an empty frame."""
    script = """(id) => {
      const holder = document.querySelector(`[data-chart="${id}"]`);
      const canvas = holder && holder.querySelector("canvas");
      if (!canvas) return 0;
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
        if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 80) n++;
      }
      return n;
    }"""
    count: int = page.evaluate(script, chart_id)
    return count


def assert_chart_drawn(page: Page, chart_id: str) -> None:
    holder = page.locator(f'[data-chart="{chart_id}"]')
    expect(holder.locator("canvas")).to_have_count(1)
    assert int(holder.get_attribute("data-drawn") or "0") > 0, f"{chart_id}: no data points"
    poll(lambda: series_pixels(page, chart_id) > 30, within=10, what=f"{chart_id}'s data drawn")


def test_admin_creates_a_tenant_and_a_key_sees_its_traffic_and_revokes_it(stack: LocalStack, new_page: Any) -> None:
    w: Watched = new_page()
    page = log_in(w, stack, stack.admin_token)
    name = f"acme-{secrets.token_hex(3)}"

    page.get_by_role("link", name="Tenants").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Tenant {name}")
    page.get_by_label("Monthly budget (USD)").fill("5")
    page.get_by_role("button", name="Save quota").click()
    expect(page.get_by_role("status")).to_contain_text("Quota saved")
    tenant_id = page.locator("#tenant-id").inner_text()

    page.get_by_role("link", name=f"Keys of {name}").click()
    expect(page.locator("#key-tenant")).to_have_value(tenant_id)
    page.get_by_label("Name", exact=True).fill("browser-test")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("The new key").input_value()
    assert key.startswith("sk-il-")
    w.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.locator('[data-copied-for="new-key"]')).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key

    first_chat(stack, key)
    chat(stack, key, stream=True)

    page.goto(f"{stack.console}traces?tenant={tenant_id}")

    def two_rows() -> bool:
        page.reload()
        return page.locator("#traces-table tbody tr td.cost").count() == 2

    poll(two_rows, what="the two requests in the console's traces")
    costs = page.locator("#traces-table tbody tr td.cost").all_inner_texts()
    assert all(c.startswith("$") and float(c[1:]) > 0 for c in costs), costs
    latencies = page.locator("#traces-table tbody tr td.num").all_inner_texts()
    assert any(t.endswith(" ms") for t in latencies)
    page.locator("#traces-table tbody a").first.click()
    expect(page.get_by_role("heading", level=2, name="Spans")).to_be_visible()
    assert page.locator("#waterfall rect").count() >= 2
    assert float(page.locator("#trace-cost").inner_text()[1:]) > 0

    page.goto(f"{stack.console}usage?range=24h&group=tenant")
    expect(page.locator("#usage-table")).to_contain_text(name)
    assert_chart_drawn(page, "chart-usage-cost")
    page.goto(f"{stack.console}tenants?q={name}")
    expect(page.locator(f"#budget-{tenant_id}")).to_have_count(1)
    assert float(page.locator(f"#budget-{tenant_id}").get_attribute("value") or 0) > 0

    page.goto(f"{stack.console}keys?tenant={tenant_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke key browser-test of {name}").click()
    expect(page.get_by_role("status")).to_contain_text("Key revoked")
    expect(page.locator("#keys-table td.state").first).to_contain_text("revoked")

    def refused() -> bool:
        try:
            chat(stack, key)
        except openai.AuthenticationError:
            return True
        return False

    poll(refused, what="the gateway refusing the revoked key")
    assert w.problems == []


def test_charts_show_the_traffic_on_every_chart_page(stack: LocalStack, new_page: Any) -> None:
    chat(stack, stack.key)
    chat(stack, stack.key, stream=True)
    w: Watched = new_page()
    page = log_in(w, stack, stack.admin_token)
    expect(page.locator("#requests-today")).not_to_have_text("0", timeout=30_000)  # htmx refreshes the cards
    for chart in ("chart-requests", "chart-cost", "chart-latency"):
        assert_chart_drawn(page, chart)
    page.goto(f"{stack.console}latency?range=24h")
    for chart in ("chart-latency-overall", "chart-latency-ttft", "chart-latency-grouped"):
        assert_chart_drawn(page, chart)
    expect(page.locator("#latency-table tbody tr").first).to_contain_text("ms")
    assert w.problems == []


def test_a_tenant_login_sees_only_its_own_data(stack: LocalStack, new_page: Any) -> None:
    with admin_api(stack) as api:
        tenants = {}
        for label in ("alpha", "bravo"):
            tenant = api.post("/v1/tenants", json={"name": f"{label}-{secrets.token_hex(3)}"}).json()
            key = api.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "k"}).json()["key"]
            tenants[label] = (tenant, key)
        alpha, alpha_key = tenants["alpha"]
        bravo, bravo_key = tenants["bravo"]
        first_chat(stack, alpha_key)
        chat(stack, alpha_key)
        first_chat(stack, bravo_key)
        for _ in range(2):
            chat(stack, bravo_key)

        def bravo_trace() -> str | None:
            data = api.get("/v1/traces", params={"tenant_id": bravo["id"]}).json()["data"]
            return str(data[0]["trace_id"]) if len(data) == 3 else None

        trace_of_bravo = poll(bravo_trace, what="bravo's traffic in the control plane")

    w: Watched = new_page()
    page = log_in(w, stack, alpha_key)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Overview of {alpha['name']}")
    expect(page.locator("#requests-today")).to_have_text("2", timeout=30_000)
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Tenants")).to_have_count(0)

    page.goto(f"{stack.console}traces?tenant={bravo['id']}")
    expect(page.locator("#traces-table tbody tr")).to_have_count(2)
    assert bravo["name"] not in page.content()
    page.goto(f"{stack.console}usage?range=24h&group=tenant&tenant={bravo['id']}")
    expect(page.locator("#usage-totals")).to_contain_text("2 requests")
    page.goto(f"{stack.console}traces/{trace_of_bravo}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Trace not found")
    page.goto(f"{stack.console}tenants")
    expect(page.get_by_role("alert")).to_contain_text("This page is for the admin")
    answer = w.context.request.get(f"{stack.console}usage.csv?range=24h&group=model&tenant={bravo['id']}")
    rows = list(csv.DictReader(io.StringIO(answer.text())))
    assert sum(int(r["requests"]) for r in rows) == 2
    assert w.problems == []


def test_a_failed_login_is_throttled(stack: LocalStack, new_page: Any) -> None:
    w: Watched = new_page()
    page = w.page
    wrong = f"sk-il-{secrets.token_hex(4)}-not-a-key"  # one account (its lookup prefix), so the admin stays usable
    page.goto(stack.console + "login")
    for _ in range(5):
        page.get_by_label("Admin token or API key").fill(wrong)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("That token is not valid")
    page.get_by_label("Admin token or API key").fill(wrong)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed logins for this account")
    log_in(new_page(), stack, stack.admin_token)  # the admin is another account


def test_the_console_works_from_the_keyboard(stack: LocalStack, new_page: Any) -> None:
    """Log in, move between pages and hide a chart's series with the keyboard alone."""
    chat(stack, stack.key)
    w: Watched = new_page()
    page = w.page
    page.goto(stack.console + "login")
    page.keyboard.type(stack.admin_token)  # the token field has the focus
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Overview")

    def focus_on(name: str) -> bool:
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == name:
                return True
        return False

    assert focus_on("Usage and cost"), "the Usage and cost link cannot be reached with Tab"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage and cost")
    entry = page.locator('[data-chart="chart-usage-cost"] .u-legend tr.u-series[role="button"]').first
    expect(entry).to_have_attribute("aria-pressed", "true")
    entry.focus()
    page.keyboard.press("Enter")
    expect(entry).to_have_attribute("aria-pressed", "false")
    expect(entry).to_have_class(re.compile(r"\bu-off\b"))
    assert w.problems == []


PAGES = {
    "overview": "",
    "usage": "usage?range=24h&group=model",
    "latency": "latency?range=24h&group=route",
    "traces": "traces",
    "tenants": "tenants",
    "keys": "keys",
    "gateways": "gateways",
}


def test_screenshots_of_every_page(stack: LocalStack, new_page: Any) -> None:
    """docs/console/*.png, for the README; the pages have traffic (the tests above, and a few requests here)."""
    for stream in (False, True, False):
        chat(stack, stack.key, stream=stream)
    SHOTS.mkdir(parents=True, exist_ok=True)
    w: Watched = new_page()
    w.page.goto(stack.console + "login")
    w.page.screenshot(path=SHOTS / "login.png")
    page = log_in(w, stack, stack.admin_token)
    expect(page.locator("#requests-today")).not_to_have_text("0", timeout=30_000)
    for name, path in PAGES.items():
        page.goto(stack.console + path)
        if name == "gateways":
            poll(lambda: page.reload() or page.locator(".config-version").count() > 0, what="the gateway's report")
            expect(page.locator(".gateway .badge.ok")).to_have_text("ready")
        for holder in page.locator("[data-chart]").all():
            expect(holder.locator("canvas")).to_have_count(1)
        page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    page.goto(stack.console + "traces")
    page.locator("#traces-table tbody a").first.click()
    expect(page.locator("#waterfall")).to_be_visible()
    page.screenshot(path=SHOTS / "trace.png", full_page=True)
    assert w.problems == []
    assert {p.name for p in SHOTS.glob("*.png")} >= {f"{n}.png" for n in [*PAGES, "login", "trace"]}
