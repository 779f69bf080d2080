"""A broken upstream stream ends as one in-stream error event in the client's API and a proper end, on every
endpoint, passthrough and translated: never garbage relayed, never an empty "successful" answer.

Broken: lines that are not SSE (an HTML page), events whose data is not JSON, a JSON body answering a stream
request, an event larger than ``max_sse_event_bytes``. A stream that ends before its first byte is known before
the client's stream starts: it is retried or falls back like any failed attempt, and ends as a 502.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest

from bench.faults.hostile import HostileUpstream
from interlock.gateway.upstream.sse import parse_event, split_events
from tests.gateway.harness import backend, config, route

BROKEN = ("garbage", "not-json", "json-body", "huge-event")
BEHAVIOURS = (*BROKEN, "empty-stream")
HELLO = [{"role": "user", "content": "Hello"}]
MAX_EVENT = 64 * 1024


@pytest.fixture
async def gw(servers, gateway):
    root = await servers.start(HostileUpstream(huge_event_bytes=4 * MAX_EVENT), lifespan="off")
    manifests = [
        backend("oa", f"{root}/v1", provider="openai", models=BEHAVIOURS),
        backend("an", f"{root}/v1", provider="anthropic", models=BEHAVIOURS),
        *(route(f"{b}-{p}", [(p, b)], retry={"attempts": 1}) for b in BEHAVIOURS for p in ("oa", "an")),
    ]
    return await gateway(config(*manifests), max_sse_event_bytes=MAX_EVENT)


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    out = []
    for event in split_events(raw.replace(b"\r\n", b"\n")):
        name, data = parse_event(event)
        if data is not None:
            out.append((name, "[DONE]" if data == b"[DONE]" else orjson.loads(data)))
    return out


REQUESTS = {
    "chat": ("/v1/chat/completions", {"messages": HELLO, "stream": True}),
    "messages": ("/v1/messages", {"messages": HELLO, "max_tokens": 20, "stream": True}),
    "responses": ("/v1/responses", {"input": "Hello", "stream": True}),
}


def assert_one_error_and_a_proper_end(endpoint: str, seen: list[tuple[str | None, Any]]) -> None:
    if endpoint == "chat":
        errors = [data for _, data in seen if isinstance(data, dict) and "error" in data]
        assert len(errors) == 1, seen
        assert seen[-1] == (None, "[DONE]"), "the stream ends with its terminator"
        content = [d for _, d in seen if isinstance(d, dict) and d.get("choices")]
        assert not any(c["choices"][0].get("finish_reason") for c in content), "no successful end"
    elif endpoint == "messages":
        names = [name for name, _ in seen]
        assert names.count("error") == 1, seen
        assert names[-1] == "error", "the error event is the end of the stream"
        assert "message_stop" not in names, "never a successful message"
    else:
        names = [name for name, _ in seen]
        assert names.count("error") == 1, seen
        assert names[-1] == "response.failed", "a failed response ends with response.failed"
        assert "response.completed" not in names, "never a successful response"
    message = next(
        str(data)
        for name, data in seen
        if name in ("error", "response.failed") or (isinstance(data, dict) and "error" in data)
    )
    assert "broken" in message or "larger than" in message, message


@pytest.mark.parametrize("behaviour", BROKEN)
@pytest.mark.parametrize("provider", ["oa", "an"])
@pytest.mark.parametrize("endpoint", list(REQUESTS))
async def test_a_broken_stream_ends_with_one_error_event(gw, endpoint, provider, behaviour):
    path, body = REQUESTS[endpoint]
    response = await gw.http.post(path, json={**body, "model": f"{behaviour}-{provider}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert b"<html>" not in response.content, "garbage is never relayed"
    assert b"not json" not in response.content
    assert_one_error_and_a_proper_end(endpoint, events(response.content))


async def test_the_event_size_limit_trips_its_metric(gw):
    await gw.http.post("/v1/chat/completions", json={"model": "huge-event-oa", "messages": HELLO, "stream": True})
    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_limit_trips_total{limit="sse_event_bytes"} 1.0' in metrics


async def test_the_sdks_see_an_error_not_an_empty_answer(gw):
    client = gw.client

    async def chat_stream() -> None:
        stream = await client.chat.completions.create(model="garbage-oa", messages=HELLO, stream=True)
        [c async for c in stream]

    async def messages_stream(claude: anthropic.AsyncAnthropic) -> None:
        async with claude.messages.stream(model="json-body-oa", max_tokens=20, messages=HELLO) as stream:
            [e async for e in stream]

    with pytest.raises(openai.APIError):
        await chat_stream()
    async with anthropic.AsyncAnthropic(base_url=gw.root, api_key="sk-il-test-key", max_retries=0) as claude:
        with pytest.raises(anthropic.APIError):
            await messages_stream(claude)
    with pytest.raises(openai.APIError):
        await client.chat.completions.create(model="garbage-oa", messages=HELLO)


@pytest.mark.parametrize("provider", ["oa", "an"])
@pytest.mark.parametrize("endpoint", list(REQUESTS))
async def test_a_stream_without_a_byte_is_a_502_before_the_stream_starts(gw, endpoint, provider):
    path, body = REQUESTS[endpoint]
    response = await gw.http.post(path, json={**body, "model": f"empty-stream-{provider}"})
    assert response.status_code == 502, response.text
    assert "empty stream" in response.text


@pytest.mark.parametrize("behaviour", ["garbage", "not-json", "empty-stream"])
async def test_a_broken_unary_answer_is_a_502(gw, behaviour):
    for endpoint, path in (("chat", "/v1/chat/completions"), ("messages", "/v1/messages")):
        for provider in ("oa", "an"):
            body = {"model": f"{behaviour}-{provider}", "messages": HELLO, "max_tokens": 20}
            response = await gw.http.post(path, json=body)
            assert response.status_code == 502, (endpoint, provider, response.text)
            assert b"<html>" not in response.content


async def test_an_upstream_answer_over_the_body_limit_is_a_502(servers, gateway):
    root = await servers.start(HostileUpstream(text="x" * 100_000), lifespan="off")
    gw = await gateway(
        config(backend("oa", f"{root}/v1", models=["ok"]), route("chat", [("oa", "ok")], retry={"attempts": 1})),
        max_upstream_body_bytes=64 * 1024,
    )
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 502
    assert "over the limit of 65536 bytes" in response.json()["error"]["message"]
    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_limit_trips_total{limit="upstream_body_bytes"} 1.0' in metrics
