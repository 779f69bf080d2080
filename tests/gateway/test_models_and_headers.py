"""``GET /v1/models/{id}`` through the official SDK, the headers on every answer (errors included), and upstream
connection errors told without internal host names."""

from __future__ import annotations

import logging
import socket

import openai
import pytest

from interlock.gateway.app import create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver
from interlock.gateway.settings import GatewaySettings
from interlock.gatewayconfig import StaticConfigSource
from interlock.mockprovider import Fault
from tests.gateway.harness import KEY, backend, config, route

HELLO = [{"role": "user", "content": "Hello"}]


async def test_models_retrieve_through_the_sdk_sees_only_the_callers_routes(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url),
            route("chat", [("a", "m1")]),
            route("meta-llama/Llama-3.1-8B-Instruct", [("a", "m1")], name="llama"),
            route("team-a-only", [("a", "m1")], tenants=["team-a"]),
        ),
        keys={"sk-a": "team-a", "sk-b": "team-b"},
        api_key="sk-b",
    )
    model = await gw.client.models.retrieve("chat")
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "interlock")
    llama = "meta-llama/Llama-3.1-8B-Instruct"
    assert (await gw.client.models.retrieve(llama)).id == llama
    for hidden in ("team-a-only", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            await gw.client.models.retrieve(hidden)
        assert caught.value.code == "model_not_found"
        assert caught.value.body == {
            "message": f"The model {hidden!r} does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    async with openai.AsyncOpenAI(base_url=f"{gw.root}/v1", api_key="sk-a", max_retries=0) as team_a:
        assert (await team_a.models.retrieve("team-a-only")).id == "team-a-only"
    async with openai.AsyncOpenAI(base_url=f"{gw.root}/v1", api_key="sk-nobody", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            await stranger.models.retrieve("chat")
    refused = await gw.http.post("/v1/models/chat", json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_which_answers_carry_which_headers(upstream, gateway):
    """README, "Headers": ``x-request-id`` on every answer; ``x-interlock-backend`` on every answer for which a
    backend was chosen (successes, relayed upstream errors, and errors after an upstream attempt), and on none
    other; ``x-interlock-cost-usd`` on non-streamed successes."""
    up, slow = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("a", up.url),
            backend("slow", slow.url),
            backend("locked", up.url, credentialsSecretRef={"name": "absent", "key": "api-key"}),
            route("chat", [("a", "m1")], retry={"attempts": 1}),
            route("locked", [("locked", "m1")]),
            route("slow", [("slow", "m1")], timeouts={"request": "300ms", "firstToken": "5s"}),
        ),
        max_body_bytes=4096,
    )
    chat = {"model": "chat", "messages": HELLO}
    with_backend = {
        "200": await gw.http.post("/v1/chat/completions", json=chat),
        "stream 200": await gw.http.post("/v1/chat/completions", json={**chat, "stream": True}),
        "relayed 400": await _with_fault(up, Fault(status=400), gw.http.post("/v1/chat/completions", json=chat)),
        "429": await _with_fault(up, Fault(status=429), gw.http.post("/v1/chat/completions", json=chat)),
        "502": await _with_fault(up, Fault(status=500), gw.http.post("/v1/chat/completions", json=chat)),
        "504": await _with_fault(
            slow, Fault(delay_s=3), gw.http.post("/v1/chat/completions", json={**chat, "model": "slow"})
        ),
    }
    without_backend = {
        "healthz": await gw.http.get("/healthz"),
        "models": await gw.http.get("/v1/models"),
        "401": await gw.http.post("/v1/chat/completions", json=chat, headers={"authorization": "Bearer sk-il-no"}),
        "400": await gw.http.post("/v1/chat/completions", content=b"{not json"),
        "404 model": await gw.http.post("/v1/chat/completions", json={**chat, "model": "nope"}),
        "404 path": await gw.http.get("/v1/nothing"),
        "405": await gw.http.get("/v1/chat/completions"),
        "413": await gw.http.post("/v1/chat/completions", content=b"x" * 8192),
        "503 nothing to send to": await gw.http.post("/v1/chat/completions", json={**chat, "model": "locked"}),
    }
    assert without_backend["503 nothing to send to"].status_code == 503
    expected = {"200": 200, "stream 200": 200, "relayed 400": 400, "429": 429, "502": 502, "504": 504}
    assert {name: r.status_code for name, r in with_backend.items()} == expected
    for name, response in [*with_backend.items(), *without_backend.items()]:
        assert response.headers.get("x-request-id", "").startswith("req_"), name
    for name, response in with_backend.items():
        assert response.headers.get("x-interlock-backend") in ("a", "slow"), name
    for name, response in without_backend.items():
        assert "x-interlock-backend" not in response.headers, name
    assert float(with_backend["200"].headers["x-interlock-cost-usd"]) > 0
    echoed = await gw.http.get("/v1/models", headers={"x-request-id": "my-trace-42"})
    assert echoed.headers["x-request-id"] == "my-trace-42"


async def test_rate_limit_headers_come_with_every_answer_under_limits(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url),
            route("limited", [("a", "m1")], retry={"attempts": 1}, limits={"requestsPerMinute": 2}),
        )
    )
    chat = {"model": "limited", "messages": HELLO}
    answers = [
        await gw.http.post("/v1/chat/completions", json=chat),
        await _with_fault(up, Fault(status=500), gw.http.post("/v1/chat/completions", json=chat)),
        await gw.http.post("/v1/chat/completions", json=chat),
    ]
    assert [r.status_code for r in answers] == [200, 502, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers] == ["1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "2" for r in answers)
    assert "x-interlock-backend" not in answers[2].headers, "refused before any backend was chosen"


async def _with_fault(up, fault: Fault, request):
    up.provider.push_faults([fault])
    return await request


async def test_an_internal_error_is_a_500_envelope_with_the_request_id(servers):
    class Broken:
        def authenticate(self, authorization: bytes | None, x_api_key: bytes | None):
            raise RuntimeError("a bug")

    app, _ = create_gateway_app(
        settings=GatewaySettings(),
        source=StaticConfigSource(config(backend("a", "http://127.0.0.1:9/v1"), route("chat", [("a", "m1")]))),
        resolver=MappingSecretResolver({}),
        authenticator=Broken(),
    )
    root = await servers.start(app, lifespan="on")
    async with openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.models.list()
    assert caught.value.status_code == 500
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    assert "a bug" not in caught.value.response.text


async def test_a_connection_error_names_the_backend_not_its_host(gateway, caplog):
    port = _closed_port()
    gw = await gateway(config(backend("llama-8b", f"http://localhost:{port}/v1"), route("chat", [("llama-8b", "m1")])))
    with caplog.at_level(logging.WARNING, logger="interlock.gateway"):
        response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 502
    assert response.headers["x-interlock-backend"] == "llama-8b"
    message = response.json()["error"]["message"]
    assert "backend 'llama-8b': cannot connect (connection refused)" in message
    assert "localhost" not in message
    assert str(port) not in message
    logged = [r.getMessage() for r in caplog.records if r.name == "interlock.gateway"]
    assert any(f"localhost:{port}" in line and "llama-8b" in line for line in logged), logged
