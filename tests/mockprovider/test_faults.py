"""Fault injection and observation: what the gateway's tests rely on."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from interlock.mockprovider import Fault
from tests.mockprovider.served import Served
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
STREAM: dict[str, Any] = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


def _events(text: str) -> list[str]:
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_status_faults_map_to_sdk_errors(mock: Served, status: int, error: type[Exception]) -> None:
    mock.provider.push_faults([Fault(status=status)])
    with pytest.raises(error):
        await mock.client.chat.completions.create(**CHAT)
    assert (await mock.client.chat.completions.create(**CHAT)).choices[0].message.content


async def test_faults_are_consumed_in_order_with_retry_after(mock: Served) -> None:
    mock.provider.push_faults([Fault(status=429, retry_after=2), Fault(status=503, message="busy", code="overloaded")])
    first = await mock.http.post("/v1/chat/completions", json=CHAT)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert set(first.json()["error"]) == {"message", "type", "param", "code"}
    second = await mock.http.post("/v1/embeddings", json={"model": "e", "input": "x"})
    assert second.status_code == 503
    assert second.json()["error"]["message"] == "busy"
    assert second.json()["error"]["code"] == "overloaded"
    assert "retry-after" not in second.headers
    assert (await mock.http.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_delay_holds_back_the_headers(mock: Served) -> None:
    mock.provider.push_faults([Fault(delay_s=0.2)])
    started = time.monotonic()
    response = await mock.http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_first_token_delay_sends_headers_first(mock: Served) -> None:
    mock.provider.push_faults([Fault(first_token_delay_s=0.3)])
    started = time.monotonic()
    async with mock.http.stream("POST", "/v1/chat/completions", json=STREAM) as response:
        headers_after = time.monotonic() - started
        chunks = response.aiter_bytes()
        await anext(chunks)
        first_after = time.monotonic() - started
        rest = b"".join([chunk async for chunk in chunks])
    assert rest.endswith(b"data: [DONE]\n\n")
    assert headers_after < 0.25
    assert first_after >= 0.3


async def test_drop_after_chunks_breaks_the_stream(mock: Served) -> None:
    mock.provider.push_faults([Fault(drop_after_chunks=3)])
    stream = await mock.client.chat.completions.create(**STREAM)
    received: list[Any] = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await read_all()
    assert len(received) == 3
    mock.provider.push_faults([Fault(drop_after_chunks=2)])
    with pytest.raises(httpx.RemoteProtocolError):
        async with mock.http.stream("POST", "/v1/chat/completions", json=STREAM) as response:
            await response.aread()
    assert mock.provider.stats.disconnects == 0  # the mock dropped the client, not the other way round


async def test_omit_usage_even_when_asked(mock: Served) -> None:
    mock.provider.push_faults([Fault(omit_usage=True), Fault(omit_usage=True)])
    streamed = await mock.http.post("/v1/chat/completions", json=STREAM)
    events = _events(streamed.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert all("usage" not in chunk and len(chunk["choices"]) == 1 for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    unary = await mock.client.chat.completions.create(**CHAT)
    assert unary.usage is None


async def test_http_control_endpoints(mock: Served) -> None:
    faults = [{"status": 500}, {"delay_s": 0.01, "retry_after": 1}]
    assert (await mock.http.post("/_mock/faults", json=faults)).json() == {"queued": 2}
    assert (await mock.http.post("/_mock/faults", json=faults[1:])).json() == {"queued": 1}  # replaces
    assert (await mock.http.get("/_mock/faults")).json() == faults[1:]
    response = await mock.http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer k"})
    assert response.headers["retry-after"] == "1"
    stats = (await mock.http.get("/_mock/stats")).json()
    assert stats["by_path"] == {"/v1/chat/completions": 1}
    assert stats["pending_faults"] == 0
    assert stats["recent"][-1]["body"] == CHAT
    assert stats["recent"][-1]["headers"]["authorization"] == "Bearer k"
    assert (await mock.http.post("/_mock/faults", json=[{"status": 200}])).status_code == 400
    assert (await mock.http.post("/_mock/faults", json=[{"nonsense": 1}])).status_code == 400
    await mock.http.post("/_mock/faults", json=[{"status": 500}])
    assert (await mock.http.post("/_mock/reset")).json() == {"ok": True}
    stats = (await mock.http.get("/_mock/stats")).json()
    assert (stats["total"], stats["pending_faults"]) == (0, 0)
    assert (await mock.http.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_stream_notices_a_client_disconnect_at_once(mock: Served) -> None:
    mock.provider.push_faults([Fault(chunk_delay_s=5)])
    async with mock.http.stream("POST", "/v1/chat/completions", json=STREAM) as response:
        await anext(response.aiter_bytes())
        closed_at = time.monotonic()
    await eventually(lambda: mock.provider.stats.disconnects == 1, within=2, what="disconnect seen")
    assert mock.provider.stats.disconnect_times[0] - closed_at < 1
    await eventually(lambda: mock.provider.stats.inflight == 0, within=2, what="stream ended")


async def test_inflight_counts_concurrent_requests(mock: Served) -> None:
    mock.provider.push_faults([Fault(first_token_delay_s=30)] * 3)
    clients = [httpx.AsyncClient(base_url=mock.root, timeout=10) for _ in range(3)]
    try:
        for client in clients:
            request = client.build_request("POST", "/v1/chat/completions", json=STREAM)
            response = await client.send(request, stream=True)
            assert response.status_code == 200
        assert mock.provider.stats.inflight == 3
        assert mock.provider.stats.max_inflight == 3
    finally:
        for client in clients:
            await client.aclose()
    await eventually(lambda: mock.provider.stats.inflight == 0, within=2, what="all streams ended")
    assert mock.provider.stats.disconnects == 3
    assert mock.provider.stats.max_inflight == 3


async def test_stats_record_bodies_and_paths(mock: Served) -> None:
    await mock.client.chat.completions.create(**CHAT)
    await mock.client.embeddings.create(model="e", input="x")
    await mock.http.post("/v1/chat/completions", content=b"{broken")
    stats = mock.provider.stats
    assert stats.by_path == {"/v1/chat/completions": 2, "/v1/embeddings": 1}
    assert stats.total == 3
    assert stats.recent[0].body == CHAT
    assert stats.recent[0].headers["authorization"] == "Bearer x"
    assert stats.last is not None
    assert stats.last.body is None


async def test_in_stream_error_chunk_then_done(mock: Served) -> None:
    mock.provider.push_faults([Fault(stream_error_after_chunks=2), Fault(stream_error_after_chunks=2, message="boom")])
    events = _events((await mock.http.post("/v1/chat/completions", json=STREAM)).text)
    assert len(events) == 4
    assert events[-1] == "[DONE]"
    error = orjson.loads(events[2])["error"]
    assert error == {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    stream = await mock.client.chat.completions.create(**STREAM)
    received: list[Any] = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError, match="boom"):
        await read_all()
    assert len(received) == 2
    assert mock.provider.stats.disconnects == 0
