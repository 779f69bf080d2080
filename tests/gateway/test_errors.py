"""Every client-facing error has the OpenAI envelope and the right status; never a 500 or a traceback."""

from __future__ import annotations

import openai
import pytest

from interlock.mockprovider import Fault
from tests.gateway.harness import backend, config, route

HELLO = [{"role": "user", "content": "Hello"}]


def assert_envelope(response, status: int, *, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


@pytest.fixture
async def gw(upstream, gateway):
    up = await upstream()
    return await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), max_body_bytes=64 * 1024)


async def test_missing_key_is_401(gw):
    response = await gw.http.get("/v1/models", headers={"authorization": ""})
    error = assert_envelope(response, 401, code="invalid_api_key")
    assert "API key" in error["message"]


async def test_wrong_key_is_401(gw):
    async with openai.AsyncOpenAI(base_url=f"{gw.root}/v1", api_key="sk-il-nope", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="chat", messages=HELLO)
    response = await gw.http.get("/v1/models", headers={"authorization": "Basic abc"})
    assert_envelope(response, 401)


async def test_unknown_model_is_404(gw):
    with pytest.raises(openai.NotFoundError) as caught:
        await gw.client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"model": 42, "messages": []}', "model"),
        (b'{"model": "chat"}', "messages"),
        (b'{"model": "chat", "messages": "hi"}', "messages"),
        (b'{"model": "chat", "messages": []}', "messages"),
        (b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream_options": 1}', "stream_options"),
    ],
)
async def test_malformed_requests_are_400(gw, body, param):
    response = await gw.http.post("/v1/chat/completions", content=body)
    assert_envelope(response, 400, param=param)


async def test_wrong_field_type_raises_sdk_bad_request(gw):
    with pytest.raises(openai.BadRequestError):
        await gw.client.chat.completions.create(model="chat", messages="not a list")  # type: ignore[arg-type]


async def test_body_over_the_limit_is_413(gw):
    big = "x" * (80 * 1024)
    response = await gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": big}]}
    )
    assert_envelope(response, 413, code="request_too_large")


async def test_chunked_body_over_the_limit_is_413(gw):
    async def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = await gw.http.post("/v1/chat/completions", content=chunks())
    assert_envelope(response, 413)


async def test_wrong_method_and_unknown_path(gw):
    assert_envelope(await gw.http.get("/v1/chat/completions"), 405)
    assert_envelope(await gw.http.post("/v1/nothing-here", json={}), 404)


async def test_upstream_client_error_is_relayed_in_the_envelope(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    up.provider.push_faults([Fault(status=400, message="max_tokens is too large")])
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert "max_tokens is too large" in caught.value.message
    assert up.requests == 1, "the client's own mistake is not retried"


async def test_upstream_failure_after_retries_and_fallbacks_is_502(upstream, gateway):
    a, b = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("a", a.url),
            backend("b", b.url),
            route("chat", [("a", "m1")], fallbacks=[("b", "m1")], retry={"attempts": 2, "backoff": "10ms"}),
        )
    )
    a.provider.push_faults([Fault(status=500)] * 2)
    b.provider.push_faults([Fault(status=502)] * 2)

    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})

    error = assert_envelope(response, 502, code="upstream_error")
    assert "4 attempt(s)" in error["message"]
    assert (a.requests, b.requests) == (2, 2)
    a.provider.push_faults([Fault(status=500)] * 2)
    b.provider.push_faults([Fault(status=500)] * 2)
    with pytest.raises(openai.InternalServerError):
        await gw.client.chat.completions.create(model="chat", messages=HELLO)


async def test_request_timeout_is_504(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(backend("a", up.url), route("chat", [("a", "m1")], timeouts={"request": "300ms", "firstToken": "5s"}))
    )
    up.provider.push_faults([Fault(delay_s=3)])
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert_envelope(response, 504, code="timeout")


async def test_stream_broken_by_the_upstream_ends_with_an_error_event(upstream, gateway):
    up = await upstream(stream_chunks=20)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    up.provider.push_faults([Fault(drop_after_chunks=3)])

    async with gw.http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": HELLO, "stream": True}
    ) as r:
        body = b"".join([part async for part in r.aiter_bytes()])

    assert r.status_code == 200
    events = [e for e in body.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert b'"error"' in events[-2]
    assert b'"upstream_error"' in events[-2]
    assert up.requests == 1, "nothing is retried after the first byte reached the client"

    up.provider.push_faults([Fault(drop_after_chunks=3)])
    stream = await gw.client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_missing_credentials_make_the_backend_unavailable(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url, credentialsSecretRef={"name": "absent", "key": "api-key"}),
            route("chat", [("a", "m1")]),
        )
    )
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    error = assert_envelope(response, 503)
    assert "absent" in error["message"]
    assert up.requests == 0


@pytest.mark.parametrize(
    ("faults", "status", "code"),
    [
        ([Fault(status=429, retry_after=0.01)] * 2, 429, "upstream_rate_limited"),
        ([Fault(status=500), Fault(status=503)], 503, "upstream_overloaded"),
        ([Fault(status=429), Fault(status=500)], 502, "upstream_error"),
    ],
)
async def test_the_final_error_is_as_specific_as_the_failures(upstream, gateway, faults, status, code):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")], retry={"backoff": "1ms"})))
    up.provider.push_faults(faults)
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert_envelope(response, status, code=code)
