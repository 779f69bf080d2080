"""The keys page with more tenants than its tenant list shows: the tenant a link asks for is always the one the new
key form has chosen (else the browser would choose the first listed, and the key would be another tenant's)."""

from __future__ import annotations

import re

import pytest

from interlock.api.console.pages import keys as keys_page
from tests.api.console_support import SAME_ORIGIN, logged_in
from tests.api.support import ADMIN_TOKEN, new_tenant

CHOICES = 3


@pytest.fixture
def few_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_page, "MAX_TENANT_CHOICES", CHOICES)


def _new_key_form(html: str) -> str:
    match = re.search(r'<select id="key-tenant".*?</select>', html, flags=re.S)
    assert match, "no tenant choice in the new key form"
    return match.group(0)


def _chosen(form: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)" selected>', form)


async def test_a_tenant_beyond_the_list_is_chosen_and_gets_the_key(admin, client_for, few_choices):
    tenants = [await new_tenant(admin, f"tenant-{letter}") for letter in "abcde"]  # by name: a, b, c, then d, e
    last = tenants[-1]
    browser = client_for(None)
    csrf = await logged_in(browser, ADMIN_TOKEN)

    page = await browser.get("/console/keys", params={"tenant": last["id"]})
    form = _new_key_form(page.text)
    assert _chosen(form) == [last["id"]]
    assert form.count("<option ") == CHOICES + 1
    assert "Only the first 3 tenants by name are listed" in page.text

    created = await browser.post(
        "/console/keys", data={"csrf": csrf, "tenant_id": _chosen(form)[0], "name": "for-e"}, headers=SAME_ORIGIN
    )
    assert created.status_code == 201, created.text
    keys = (await admin.get(f"/v1/tenants/{last['id']}/keys")).json()
    assert [k["name"] for k in keys["data"]] == ["for-e"]


async def test_the_list_says_nothing_of_more_tenants_when_all_are_listed(admin, client_for, few_choices):
    tenants = [await new_tenant(admin, f"tenant-{letter}") for letter in "abc"]
    browser = client_for(None)
    await logged_in(browser, ADMIN_TOKEN)
    page = await browser.get("/console/keys", params={"tenant": tenants[1]["id"]})
    form = _new_key_form(page.text)
    assert _chosen(form) == [tenants[1]["id"]]
    assert form.count("<option ") == CHOICES
    assert "Only the first" not in page.text
    unknown = await browser.get("/console/keys", params={"tenant": "no-such-tenant"})
    assert unknown.status_code == 200
    assert _new_key_form(unknown.text).count("<option ") == CHOICES
