"""The Anthropic Messages API's errors and faults: its envelope, the SDK's exceptions, in-stream errors."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest

from interlock.mockprovider import Fault
from tests.mockprovider.served import Served
from tests.mockprovider.sse import anthropic_events
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASE: dict[str, Any] = {"model": "m", "max_tokens": 1024, "messages": [{"role": "user", "content": "hello"}]}
STREAM: dict[str, Any] = {**BASE, "stream": True}
OVERLOADED: type[anthropic.APIStatusError] = getattr(anthropic, "OverloadedError", anthropic.APIStatusError)


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (413, "request_too_large", getattr(anthropic, "ContentTooLargeError", anthropic.APIStatusError)),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", OVERLOADED),
    ],
)
async def test_status_faults_in_the_anthropic_envelope(
    mock: Served, status: int, kind: str, error: type[anthropic.APIStatusError]
) -> None:
    mock.provider.push_faults([Fault(status=status), Fault(status=status, message="custom")])
    with pytest.raises(error) as caught:
        await mock.anthropic.messages.create(**BASE)
    assert caught.value.status_code == status
    raw = await mock.http.post("/v1/messages", json=BASE)
    assert raw.status_code == status
    body = raw.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": kind, "message": "custom"}
    assert body["request_id"] == raw.headers["request-id"]
    assert (await mock.anthropic.messages.create(**BASE)).content


async def test_fault_error_type_and_retry_after(mock: Served) -> None:
    mock.provider.push_faults([Fault(status=429, retry_after=3, error_type="rate_limit_error", message="slow down")])
    response = await mock.http.post("/v1/messages/count_tokens", json=BASE)
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
    assert response.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}


async def test_in_stream_error_event(mock: Served) -> None:
    mock.provider.push_faults([Fault(stream_error_after_chunks=4)] * 2)
    response = await mock.http.post("/v1/messages", json=STREAM)
    events = anthropic_events(response.text)
    assert [e["type"] for e in events] == [
        *("message_start", "content_block_start", "ping", "content_block_delta", "error"),
    ]
    assert events[-1]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    texts: list[str] = []

    async def read_all() -> None:
        async with mock.anthropic.messages.stream(**BASE) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await read_all()
    assert len(texts) == 1
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert mock.provider.stats.disconnects == 0


async def test_stream_faults(mock: Served) -> None:
    mock.provider.push_faults([Fault(first_token_delay_s=0.3), Fault(drop_after_chunks=3), Fault(omit_usage=True)])
    started = time.monotonic()
    async with mock.http.stream("POST", "/v1/messages", json=STREAM) as response:
        headers_after = time.monotonic() - started
        chunks = response.aiter_bytes()
        await anext(chunks)
        first_after = time.monotonic() - started
        rest = b"".join([chunk async for chunk in chunks])
    assert rest.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert headers_after < 0.25
    assert first_after >= 0.3
    with pytest.raises(httpx.RemoteProtocolError):
        async with mock.http.stream("POST", "/v1/messages", json=STREAM) as response:
            await response.aread()
    events = anthropic_events((await mock.http.post("/v1/messages", json=STREAM)).text)
    assert events[-1] == {"type": "message_stop"}
    assert all("usage" not in e and "usage" not in e.get("message", {}) for e in events)


async def test_unary_faults(mock: Served) -> None:
    mock.provider.push_faults([Fault(delay_s=0.2), Fault(first_token_delay_s=0.2), Fault(omit_usage=True)])
    for _ in range(2):
        started = time.monotonic()
        assert (await mock.http.post("/v1/messages", json=BASE)).status_code == 200
        assert time.monotonic() - started >= 0.2
    body = (await mock.http.post("/v1/messages", json=BASE)).json()
    assert "usage" not in body
    assert body["content"]


async def test_stream_notices_a_client_disconnect(mock: Served) -> None:
    mock.provider.push_faults([Fault(chunk_delay_s=5)])
    async with mock.http.stream("POST", "/v1/messages", json=STREAM) as response:
        await anext(response.aiter_bytes())
    await eventually(lambda: mock.provider.stats.disconnects == 1, within=2, what="disconnect seen")
    await eventually(lambda: mock.provider.stats.inflight == 0, within=2, what="stream ended")


TOOL_USE: Any = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": BASE["messages"]}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"max_tokens": 5, "messages": BASE["messages"]}, "model: Field required"),
        (BASE | {"max_tokens": 0}, "max_tokens"),
        (BASE | {"messages": []}, "messages"),
        (BASE | {"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        (BASE | {"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text"),
        (BASE | {"temperature": 1.5}, "temperature"),
        (BASE | {"tools": [{"name": "t"}]}, "tools.0.input_schema"),
        (BASE | {"tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "x"}}, "tool"),
        (BASE | {"thinking": {"type": "enabled", "budget_tokens": 100}}, "budget_tokens"),
        (BASE | {"thinking": {"type": "enabled", "budget_tokens": 2048}}, "max_tokens"),
        (BASE | {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "tool_use_id"),
        (
            BASE | {"messages": [*BASE["messages"], TOOL_USE, {"role": "user", "content": "x"}]},
            "without `tool_result`",
        ),
    ],
)
async def test_invalid_requests_are_400_in_the_anthropic_envelope(mock: Served, body: Any, message: str) -> None:
    response = await mock.http.post("/v1/messages", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]


async def test_malformed_json_and_unknown_paths(mock: Served) -> None:
    broken = await mock.http.post("/v1/messages", content=b"{not json")
    assert (broken.status_code, broken.json()["error"]["type"]) == (400, "invalid_request_error")
    missing = await mock.http.post("/v1/messages/nothing", json=BASE)
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found_error")
    with pytest.raises(anthropic.BadRequestError):
        await mock.anthropic.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": []}, {}])  # type: ignore[list-item]
    assert mock.provider.stats.by_path == {"/v1/messages": 2, "/v1/messages/nothing": 1}
