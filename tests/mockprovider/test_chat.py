"""Chat completions through the official openai SDK: text, streaming, usage as OpenAI reports it, validation."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.mockprovider.served import Serve, Served

pytestmark = pytest.mark.asyncio(loop_scope="session")

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about gateways."},
]


async def _stream(served: Served, **kwargs: Any) -> list[Any]:
    stream = await served.client.chat.completions.create(model="mock-small", messages=MESSAGES, stream=True, **kwargs)
    return [chunk async for chunk in stream]


async def test_text_answer_is_deterministic_with_usage(mock: Served) -> None:
    first = await mock.client.chat.completions.create(model="mock-small", messages=MESSAGES)
    again = await mock.client.chat.completions.create(model="any-name", messages=MESSAGES)
    choice = first.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert choice.message.content == again.choices[0].message.content
    assert choice.message.content is not None
    assert 20 <= len(choice.message.content.split()) <= 50
    assert again.model == "any-name"
    assert first.object == "chat.completion"
    assert first.usage is not None
    assert first.usage.prompt_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    other = await mock.client.chat.completions.create(model="mock-small", messages=[{"role": "user", "content": "x"}])
    assert other.choices[0].message.content != choice.message.content


async def test_stream_without_include_usage_has_no_usage(mock: Served) -> None:
    chunks = await _stream(mock)
    raw = [chunk.model_dump(exclude_unset=True) for chunk in chunks]
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "mock-small" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    assert all(chunk.usage is None for chunk in chunks)
    assert all("usage" not in chunk for chunk in raw)


async def test_stream_with_include_usage_ends_with_a_usage_chunk(mock: Served) -> None:
    chunks = await _stream(mock, stream_options={"include_usage": True})
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in body)
    assert body[-1].choices[0].finish_reason == "stop"
    unary = await mock.client.chat.completions.create(model="mock-small", messages=MESSAGES)
    assert last.usage == unary.usage
    content = "".join(chunk.choices[0].delta.content or "" for chunk in body)
    assert content == unary.choices[0].message.content
    assert last.usage.completion_tokens == sum(1 for chunk in body if chunk.choices[0].delta.content)


async def test_every_chunk_carries_usage_null_when_asked(mock: Served) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    response = await mock.http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"] == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert all("usage" in chunk for chunk in chunks)
    assert [chunk["usage"] is None for chunk in chunks].count(False) == 1


async def test_max_tokens_caps_the_answer(mock: Served) -> None:
    capped = await mock.client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None
    assert capped.usage.completion_tokens == 5
    chunks = await _stream(mock, max_completion_tokens=5)
    assert sum(1 for chunk in chunks if chunk.choices[0].delta.content) == 5
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_stream_chunks_setting_gives_exact_chunk_count(serve: Serve) -> None:
    served = await serve(stream_chunks=50, cached_tokens=3)
    chunks = await _stream(served, stream_options={"include_usage": True})
    assert sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content) == 50
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 50
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 3


async def test_tool_result_turn_quotes_the_result(mock: Served) -> None:
    result = '{"temperature": 21, "conditions": "sunny with light wind from the west"}'
    messages: list[Any] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]
    tools: list[Any] = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    reply = await mock.client.chat.completions.create(model="m", messages=messages, tools=tools)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert result[:40] in (reply.choices[0].message.content or "")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": MESSAGES, "n": 2}, "n"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    ],
)
async def test_invalid_requests_are_400_in_the_openai_envelope(mock: Served, body: Any, param: str) -> None:
    response = await mock.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_malformed_json_is_400(mock: Served) -> None:
    response = await mock.http.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_sdk_maps_400_to_bad_request_error(mock: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await mock.client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert caught.value.status_code == 400
    assert caught.value.param == "n"


async def test_unknown_path_and_method(mock: Served) -> None:
    assert (await mock.http.get("/v1/nothing")).status_code == 404
    assert (await mock.http.get("/v1/chat/completions")).status_code == 405
    assert (await mock.http.get("/health")).status_code == 200
    assert mock.provider.stats.by_path == {"/v1/nothing": 1, "/v1/chat/completions": 1}
