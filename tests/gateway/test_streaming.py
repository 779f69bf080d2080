"""Streaming behaviour: keepalives, disconnects, concurrency."""

from __future__ import annotations

import asyncio
import time

import httpx

from interlock.mockprovider import Fault
from tests.gateway.harness import backend, config, route
from tests.support import eventually


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_keepalive_comments_flow_while_the_upstream_is_silent(upstream, gateway):
    up = await upstream(stream_chunks=3)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), keepalive_interval_s=0.1)
    up.provider.push_faults([Fault(first_token_delay_s=0.45)])

    async with gw.http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": ask("hi"), "stream": True}
    ) as response:
        body = b"".join([part async for part in response.aiter_bytes()])

    assert response.status_code == 200
    assert response.headers["x-interlock-backend"] == "a"
    assert body.startswith(b": keepalive\n\n")
    assert body.count(b": keepalive\n\n") >= 3
    assert body.endswith(b"data: [DONE]\n\n")
    assert up.requests == 1


async def test_keepalives_do_not_break_the_sdk(upstream, gateway):
    up = await upstream(stream_chunks=4, chunk_delay_s=0.15)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), keepalive_interval_s=0.05)
    stream = await gw.client.chat.completions.create(model="chat", messages=ask("hi"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_client_disconnect_reaches_the_upstream_within_a_second(upstream, gateway):
    up = await upstream(stream_chunks=500, chunk_delay_s=0.05)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    async with httpx.AsyncClient(base_url=gw.root, headers=gw.http.headers) as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json={"model": "chat", "messages": ask("long"), "stream": True}
        ) as response:
            async for _ in response.aiter_bytes():
                break
        closed = time.monotonic()

    await eventually(lambda: up.provider.stats.disconnects == 1, within=3, what="upstream saw the disconnect")
    assert up.provider.stats.disconnect_times[0] - closed < 1.0
    await eventually(lambda: gw.core.services.metrics.inflight == 0, what="gateway finished the request")
    runtime = gw.core.services.runtime
    assert runtime.backends["a"].inflight == 0, "the backend's concurrency slot is released"


async def test_client_disconnect_during_a_unary_call_cancels_it(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    up.provider.push_faults([Fault(delay_s=10)])

    async with httpx.AsyncClient(base_url=gw.root, headers=gw.http.headers) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json={"model": "chat", "messages": ask("x")}))
        await eventually(lambda: up.provider.stats.inflight == 1, what="request reached the upstream")
        request.cancel()
        closed = time.monotonic()
    await eventually(lambda: up.provider.stats.disconnects == 1, within=3, what="upstream saw the disconnect")
    assert up.provider.stats.disconnect_times[0] - closed < 1.0


async def test_200_concurrent_streams_all_complete_and_correct(upstream, gateway):
    up = await upstream(stream_chunks=20, chunk_delay_s=0.05)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    async def one(i: int) -> tuple[str, int, int]:
        stream = await gw.client.chat.completions.create(
            model="chat", messages=ask(f"prompt {i}"), stream=True, stream_options={"include_usage": True}
        )
        text, pieces, usage = "", 0, None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                pieces += 1
            usage = chunk.usage or usage
        assert usage is not None
        return text, pieces, usage.completion_tokens

    results = await asyncio.gather(*(one(i) for i in range(200)))

    expected = await asyncio.gather(
        *(gw.client.chat.completions.create(model="chat", messages=ask(f"prompt {i}")) for i in range(0, 200, 20))
    )
    for i, answer in zip(range(0, 200, 20), expected, strict=True):
        assert results[i][0] == answer.choices[0].message.content
    assert all(pieces == 20 == tokens for _, pieces, tokens in results)
    assert up.provider.stats.max_inflight >= 100, "the streams really overlapped (the SDK needs ~1 s to open 200)"
