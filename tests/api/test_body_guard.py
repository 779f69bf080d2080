"""The control plane decides about a body before reading it: no valid admin or gateway token, no body read (401 or
403); over ``max_body_bytes``, 413 (declared or counted). Production settings refuse weak or shared secrets."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from interlock.api.bodyguard import BodyGuard
from interlock.api.settings import ApiSettings
from interlock.asgiserver import EmbeddedServer
from interlock.contract.gatewaycred import mint_gateway_credential
from tests.api.support import ADMIN_TOKEN, new_tenant

LIMIT = 64 * 1024
SIGNING_KEY = "k" + secrets.token_urlsafe(40)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": LIMIT, "gateway_signing_key": SIGNING_KEY}


async def _raw(server_url: str, head: bytes) -> bytes:
    """Send a request head (and no body); return what the server answers before it closes or within 5 s."""
    host, port = server_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    try:
        async with asyncio.timeout(5):
            return await reader.readuntil(b"}")
    finally:
        writer.close()


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    server = EmbeddedServer(app, lifespan="off")
    yield await server.start()
    await server.stop()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(b"", 401), (b"authorization: Bearer wrong\r\n", 401), (b"authorization: Bearer sk-il-abcdefgh\r\n", 403)],
)
async def test_a_300_mib_body_without_a_valid_token_is_refused_before_it_is_sent(
    served: str, authorization: bytes, status: int
) -> None:
    head = (
        b"POST /v1/tenants HTTP/1.1\r\nhost: cp\r\ncontent-type: application/json\r\n"
        b"content-length: 314572800\r\n" + authorization + b"\r\n"
    )
    answer = await _raw(served, head)  # not one byte of the body was sent: the answer cannot have waited for it
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer


async def test_an_admin_body_over_the_limit_is_413(served: str, admin: httpx.AsyncClient) -> None:
    head = (
        b"POST /v1/tenants HTTP/1.1\r\nhost: cp\r\ncontent-type: application/json\r\n"
        b"content-length: 314572800\r\nauthorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n\r\n"
    )
    assert (await _raw(served, head)).startswith(b"HTTP/1.1 413 ")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    response = await admin.post("/v1/tenants", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert (await admin.get("/v1/tenants")).json()["data"] == [], "nothing was created"
    assert (await new_tenant(admin, "small"))["name"] == "small", "bodies under the limit still work"


async def test_gateway_credentials_may_only_post_under_v1_gateway(
    client_for: Callable[[str | None], httpx.AsyncClient],
) -> None:
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "team-a/default")
    gateway = client_for(credential)
    refused = await gateway.post("/v1/tenants", json={"name": "nope"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This endpoint needs the admin token."
    forged = mint_gateway_credential(b"x" * 40, "team-a/default")
    assert (await client_for(forged).post("/v1/gateway/usage", json={"events": []})).status_code == 401


def test_the_guard_lets_gateway_credentials_reach_the_gateway_routes() -> None:
    settings = ApiSettings(admin_token=ADMIN_TOKEN, gateway_signing_key=SIGNING_KEY)
    guard = BodyGuard(FastAPI(), settings)
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "team-a/default").encode()
    assert guard._refusal({"path": "/v1/gateway/usage"}, b"Bearer " + credential) is None
    assert guard._refusal({"path": "/v1/tenants"}, b"Bearer " + credential) == (
        403,
        "This endpoint needs the admin token.",
    )
    assert guard._refusal({"path": "/v1/tenants"}, b"Bearer " + ADMIN_TOKEN.encode()) is None


STRONG = secrets.token_urlsafe(32)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"admin_token": "short-but-random-Q7x"}, "at least 32 characters"),
        ({"admin_token": "password" * 5}, "guessable"),
        ({"admin_token": "a" * 64}, "guessable"),
        ({"admin_token": STRONG, "gateway_signing_key": STRONG}, "SIGNING_KEY must not be the admin token"),
        ({"admin_token": STRONG, "gateway_signing_key": "k" * 16}, "has 16 bytes; at least 32 are needed"),
        ({"admin_token": STRONG, "gateway_signing_key": "ab" * 20}, "SIGNING_KEY looks guessable"),
    ],
)
def test_production_refuses_weak_or_shared_secrets(fields: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ApiSettings(environment="production", database_url="postgresql://u@db/i", **fields)


def test_production_accepts_strong_distinct_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_API_GATEWAY_SIGNING_KEY", secrets.token_urlsafe(32))
    settings = ApiSettings(
        environment="production",
        database_url="postgresql://u@db/i",
        admin_token=secrets.token_urlsafe(32),
    )
    assert settings.gateway_signing_key is not None
