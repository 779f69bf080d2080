"""Unchanged snapshot and spend polls answered before routing (``interlock.api.unchanged``): the same 304 the routes
give, without opening a database session; every request the shortcut cannot vouch for still gets the routes'
answer; remembered gateway credentials are forgotten with the signing key that verified them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.configwatch import ConfigWatch
from interlock.api.deps import GatewayCredentials
from tests.api.support import ADMIN_TOKEN, GATEWAY_ID, SCOPE, SIGNING_KEY, event, gateway_credential, post_usage
from tests.support import eventually


class _Counted:
    """The app's session factory, counting the sessions the routes open."""

    def __init__(self, sessions: Callable[[], AsyncSession]) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self.sessions()


@pytest_asyncio.fixture
async def watched(app: FastAPI) -> AsyncIterator[_Counted]:
    """The app with its config watch listening (Postgres) and its sessions counted."""
    watch: ConfigWatch = app.state.config_watch
    watch.start()
    counted = _Counted(app.state.sessions)
    app.state.sessions = counted
    try:
        if app.state.engine.dialect.name == "postgresql":
            await eventually(lambda: watch.config_version() is not None and watch.cursors() is not None,
                             within=5, interval=0.02, what="the watch listens")  # fmt: skip
        yield counted
    finally:
        await watch.stop()


async def _poll(client: httpx.AsyncClient, what: str, etag: str | None, **params: Any) -> httpx.Response:
    headers = {"if-none-match": etag} if etag is not None else {}
    return await client.get(f"/v1/gateway/{what}", params={"gateway_id": GATEWAY_ID, **params}, headers=headers)


@pytest.mark.parametrize("what", ["snapshot", "spend"])
async def test_an_unchanged_poll_is_the_routes_304_without_a_session(
    app: FastAPI, gateway: httpx.AsyncClient, watched: _Counted, what: str
) -> None:
    if what == "spend":
        await post_usage(gateway, [event("t-1", 1)])
        if app.state.engine.dialect.name == "postgresql":
            await eventually(lambda: (c := app.state.config_watch.cursors()) is not None and c.seqs.get(GATEWAY_ID),
                             within=5, interval=0.02, what="the ingest's notification arrived")  # fmt: skip
    first = await _poll(gateway, what, None)
    assert first.status_code == 200
    etag = first.headers["etag"]
    since = {"since": "0"} if what == "snapshot" else {}

    before = watched.opened
    short = await _poll(gateway, what, etag, **since)
    shortcut_sessions = watched.opened - before
    # An extra query parameter (ignored by the route) is one the shortcut does not vouch for: the route answers.
    before = watched.opened
    routed = await _poll(gateway, what, etag, unknown="1", **since)
    routed_sessions = watched.opened - before

    assert short.status_code == routed.status_code == 304
    assert short.headers.multi_items() == routed.headers.multi_items()
    assert short.content == routed.content == b""
    assert routed_sessions == 1
    if app.state.engine.dialect.name == "postgresql":
        assert shortcut_sessions == 0  # the version was in memory: nothing touched the database
    else:
        assert shortcut_sessions == 1  # SQLite: no watch, so the route reads the version


@pytest.mark.parametrize("what", ["snapshot", "spend"])
async def test_what_the_shortcut_cannot_vouch_for_gets_the_routes_answer(
    app: FastAPI, client_for: Callable[[str | None], httpx.AsyncClient], watched: _Counted, what: str
) -> None:
    gateway = client_for(gateway_credential())
    etag = (await _poll(gateway, what, None)).headers["etag"]
    other_scope = client_for(gateway_credential("other/gw"))
    other_key = client_for(gateway_credential(key="another-signing-key-0123456789abcdef"))
    cases: list[tuple[httpx.AsyncClient, dict[str, Any], dict[str, str], int]] = [
        (gateway, {}, {}, 304),
        (gateway, {}, {"if-none-match": f'W/{etag}, "other"'}, 304),
        (gateway, {}, {"if-none-match": '"other"'}, 200),
        (other_scope, {}, {}, 403),  # matching ETag, but the gateway id is outside the credential's scope
        (other_key, {}, {}, 401),  # not signed with this control plane's key
        (client_for(ADMIN_TOKEN), {}, {}, 403),
        (client_for(None), {}, {}, 401),
        (client_for("ilgw1.forged.forged"), {}, {}, 401),
        (gateway, {"gateway_id": f"{SCOPE}/pod\x01"}, {}, 422),
        (gateway, {"gateway_id": f"{SCOPE}/" + "p" * 200}, {}, 422),
        (gateway, {"gateway_id": ""}, {}, 422),
        (gateway, {}, {"if-none-match": etag + " " * 5000}, 422),
    ]
    if what == "snapshot":
        cases += [(gateway, {"since": "-1"}, {}, 422), (gateway, {"since": str(2**63)}, {}, 422)]
    for client, params, headers, status in cases:
        response = await client.get(
            f"/v1/gateway/{what}",
            params={"gateway_id": GATEWAY_ID, **params},
            headers={"if-none-match": etag, **headers},
        )
        assert response.status_code == status, (params, headers, response.text)
        if status >= 400:
            assert "detail" in response.json()


def test_remembered_credentials_go_with_the_signing_key() -> None:
    old, new = SIGNING_KEY.encode(), b"a-rotated-signing-key-0123456789abcdefXYZ"
    credentials = GatewayCredentials(size=2)
    old_credential = gateway_credential()
    assert credentials.scope(old, old_credential) == SCOPE
    assert credentials.scope(old, old_credential) == SCOPE  # remembered
    assert credentials.scope(new, old_credential) is None  # the key rotated: refused at once
    new_credential = gateway_credential(key=new.decode())
    assert credentials.scope(new, new_credential) == SCOPE
    assert credentials.scope(old, new_credential) is None
    assert credentials.scope(old, "ilgw1.forged.forged") is None
    for i in range(5):  # bounded: starting over keeps answering right
        assert credentials.scope(old, gateway_credential(f"ns/gw-{i}")) == f"ns/gw-{i}"
    assert credentials.scope(old, old_credential) == SCOPE
