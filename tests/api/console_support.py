"""Helpers of the console's API tests: log in through the form, read the CSRF token off a page."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SAME_ORIGIN = {"origin": "http://cp", "sec-fetch-site": "same-origin"}


async def login(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/console/login", data={"token": token}, headers=SAME_ORIGIN)


async def logged_in(client: httpx.AsyncClient, token: str) -> str:
    """Log in and return the session's CSRF token."""
    response = await login(client, token)
    assert response.status_code == 303, response.text
    return csrf_of(await client.get("/console/"))


def csrf_of(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)
