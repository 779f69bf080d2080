"""The Anthropic Messages API through the official anthropic SDK: text, streams, tools, thinking, stops, usage."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock

from tests.mockprovider.served import Serve, Served
from tests.mockprovider.sse import anthropic_events
from tests.mockprovider.test_tools import SCHEMAS, SEARCH, WEATHER

pytestmark = pytest.mark.asyncio(loop_scope="session")

ASK: list[Any] = [{"role": "user", "content": "Tell me about gateways."}]
TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
    {"name": "search", "input_schema": SEARCH},
]
BASE: dict[str, Any] = {"model": "mock-small", "max_tokens": 1024, "messages": ASK}


def _text(message: Message) -> str:
    assert all(isinstance(block, TextBlock) for block in message.content)
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def _tool_uses(message: Message) -> list[ToolUseBlock]:
    assert message.stop_reason == "tool_use"
    return [block for block in message.content if isinstance(block, ToolUseBlock)]


def _content(message: Message) -> list[dict[str, Any]]:
    """The blocks as data: a streamed message's blocks are the SDK's ``Parsed*`` subclasses."""
    return [block.model_dump(exclude_none=True) for block in message.content]


async def _raw(served: Served, **body: Any) -> list[dict[str, Any]]:
    response = await served.http.post("/v1/messages", json={**BASE, **body, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    return anthropic_events(response.text)


async def test_text_message(mock: Served) -> None:
    message = await mock.anthropic.messages.create(**BASE)
    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", "mock-small")
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert 20 <= len(_text(message).split()) <= 50
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens == len(_text(message).replace(",", " ,").replace(".", " .").split())
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (0, 0)
    again = await mock.anthropic.messages.create(**{**BASE, "model": "other"})
    assert _text(again) == _text(message)
    recorded = mock.provider.stats.last
    assert recorded is not None
    assert (recorded.path, recorded.body) == ("/v1/messages", BASE | {"model": "other"})
    assert recorded.headers["authorization"] == "Bearer x"  # this SDK sends its api_key as a bearer token
    assert recorded.headers["anthropic-version"]


async def test_stream_matches_the_unary_message(mock: Served) -> None:
    unary = await mock.anthropic.messages.create(**BASE)
    async with mock.anthropic.messages.stream(**BASE) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(texts) == unary.usage.output_tokens
    assert "".join(texts) == _text(unary)
    assert _content(final) == _content(unary)
    assert final.usage == unary.usage
    assert (final.stop_reason, final.stop_sequence) == ("end_turn", None)


async def test_raw_event_sequences(serve: Serve) -> None:
    served = await serve(stream_chunks=3)
    text = await _raw(served)
    assert [e["type"] for e in text] == [
        *("message_start", "content_block_start", "ping"),
        *["content_block_delta"] * 3,
        *("content_block_stop", "message_delta", "message_stop"),
    ]
    start = text[0]["message"]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == ([], None, 1)
    assert text[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert {e["delta"]["type"] for e in text[3:6]} == {"text_delta"}
    assert text[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert text[-2]["usage"] == {"output_tokens": 3}
    tool = await _raw(served, tools=TOOLS[:1])
    assert [e["type"] for e in tool] == [
        *("message_start", "content_block_start", "ping"),
        *["content_block_delta"] * 4,  # an empty fragment first, as Anthropic sends it, then three
        *("content_block_stop", "message_delta", "message_stop"),
    ]
    block = tool[1]["content_block"]
    assert (block["type"], block["name"], block["input"]) == ("tool_use", "get_weather", {})
    fragments = [e["delta"]["partial_json"] for e in tool[3:7]]
    assert fragments[0] == ""
    assert all(e["delta"]["type"] == "input_json_delta" for e in tool[3:7])
    jsonschema.validate(json.loads("".join(fragments)), WEATHER)
    assert tool[-2]["delta"]["stop_reason"] == "tool_use"


async def test_tool_use_validates_and_streams(mock: Served) -> None:
    ask: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    unary = await mock.anthropic.messages.create(**BASE | {"messages": ask, "tools": TOOLS})
    [use] = _tool_uses(unary)
    assert use.id.startswith("toolu_")
    assert use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER)
    assert unary.usage.output_tokens > 0
    events = await _raw(mock, messages=ask, tools=TOOLS)
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial) == use.input
    async with mock.anthropic.messages.stream(**BASE | {"messages": ask, "tools": TOOLS}) as stream:
        final = await stream.get_final_message()
    assert _content(final) == _content(unary)
    assert final.usage == unary.usage


@pytest.mark.parametrize(
    ("prompt", "choice", "names"),
    [
        ("Find it", {"type": "tool", "name": "search"}, ["search"]),
        ("Find it", {"type": "any"}, ["get_weather"]),
        ("Do both, please", {"type": "auto"}, ["get_weather", "search"]),
        ("Do both, please", {"type": "tool", "name": "search"}, ["search"]),
        ("Do both, please", {"type": "auto", "disable_parallel_tool_use": True}, ["get_weather"]),
    ],
)
async def test_tool_choice(mock: Served, prompt: str, choice: Any, names: list[str]) -> None:
    body = BASE | {"messages": [{"role": "user", "content": prompt}], "tools": TOOLS, "tool_choice": choice}
    uses = _tool_uses(await mock.anthropic.messages.create(**body))
    assert [use.name for use in uses] == names
    assert len({use.id for use in uses}) == len(uses)
    for use in uses:
        jsonschema.validate(use.input, SCHEMAS[use.name])


async def test_tool_choice_none_answers_with_text(mock: Served) -> None:
    message = await mock.anthropic.messages.create(**BASE | {"tools": TOOLS, "tool_choice": {"type": "none"}})
    assert message.stop_reason == "end_turn"
    assert _text(message)


@pytest.mark.parametrize("as_blocks", [False, True])
async def test_tool_result_turn_quotes_the_result(mock: Served, as_blocks: bool) -> None:
    result = '{"temperature": 21, "conditions": "sunny with light wind from the west"}'
    content: Any = [{"type": "text", "text": result}] if as_blocks else result
    messages: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": content}]},
    ]
    message = await mock.anthropic.messages.create(**BASE | {"messages": messages, "tools": TOOLS})
    assert message.stop_reason == "end_turn"
    assert result[:40] in _text(message)


async def test_thinking_comes_first_with_a_signature(mock: Served) -> None:
    body = BASE | {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    plain = await mock.anthropic.messages.create(**BASE)
    message = await mock.anthropic.messages.create(**body)
    thinking, text = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.thinking
    assert thinking.signature
    assert isinstance(text, TextBlock)
    assert text.text == _text(plain)
    assert message.usage.output_tokens > plain.usage.output_tokens
    async with mock.anthropic.messages.stream(**body) as stream:
        final = await stream.get_final_message()
    assert _content(final) == _content(message)
    assert final.usage == message.usage
    kinds = [e["delta"]["type"] for e in await _raw(mock, **body) if e["type"] == "content_block_delta"]
    thoughts = kinds.index("signature_delta")
    assert set(kinds[:thoughts]) == {"thinking_delta"}
    assert set(kinds[thoughts + 1 :]) == {"text_delta"}


async def test_stop_sequence_cuts_the_text(mock: Served) -> None:
    full = _text(await mock.anthropic.messages.create(**BASE))
    stop = " " + full.split()[6].strip(",.")
    body = BASE | {"stop_sequences": ["never there", stop]}
    message = await mock.anthropic.messages.create(**body)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    assert _text(message) == full[: full.index(stop)]
    async with mock.anthropic.messages.stream(**body) as stream:
        final = await stream.get_final_message()
    assert _content(final) == _content(message)
    assert (final.stop_reason, final.stop_sequence, final.usage) == ("stop_sequence", stop, message.usage)


async def test_max_tokens_caps_the_answer(mock: Served) -> None:
    message = await mock.anthropic.messages.create(**BASE | {"max_tokens": 5})
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 5)
    async with mock.anthropic.messages.stream(**BASE | {"max_tokens": 5}) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(texts) == 5
    assert (final.stop_reason, final.usage.output_tokens) == ("max_tokens", 5)


async def test_count_tokens_equals_usage_input_tokens(mock: Served) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image, url_image]},
        {"role": "assistant", "content": "A picture."},
        {"role": "user", "content": "Weather in Oslo, please."},
    ]
    system: Any = [{"type": "text", "text": "You are terse."}]
    for extra in ({}, {"system": "You are terse."}, {"system": system, "tools": TOOLS}):
        body: dict[str, Any] = {"model": "m", "messages": messages, **extra}
        counted = await mock.anthropic.messages.count_tokens(**body)
        message = await mock.anthropic.messages.create(**body, max_tokens=1024)
        assert counted.input_tokens == message.usage.input_tokens
    assert counted.input_tokens > 2 * 85


async def test_cache_tokens_are_outside_input_tokens(serve: Serve) -> None:
    served = await serve(cached_tokens=3, cache_creation_tokens=2)
    counted = await served.anthropic.messages.count_tokens(model="m", messages=ASK)
    message = await served.anthropic.messages.create(**BASE)
    usage = message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (3, 2)
    assert usage.input_tokens == counted.input_tokens - 5
    async with served.anthropic.messages.stream(**BASE) as stream:
        assert (await stream.get_final_message()).usage == usage


async def test_same_prompt_same_answer_on_both_apis(mock: Served) -> None:
    openai_messages: list[Any] = [{"role": "system", "content": "You are terse."}, *ASK]
    chat = await mock.client.chat.completions.create(model="m", messages=openai_messages)
    message = await mock.anthropic.messages.create(**BASE | {"system": "You are terse."})
    assert chat.usage is not None
    assert _text(message) == chat.choices[0].message.content
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        chat.usage.prompt_tokens,
        chat.usage.completion_tokens,
    )
    functions: Any = [
        {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in TOOLS
    ]
    functions[0]["function"]["description"] = "Weather"
    calls = await mock.client.chat.completions.create(model="m", messages=ASK, tools=functions)
    uses = _tool_uses(await mock.anthropic.messages.create(**BASE | {"tools": TOOLS}))
    call = (calls.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    assert [(u.name, u.input) for u in uses] == [(call.function.name, json.loads(call.function.arguments))]
    assert calls.usage is not None
    counted = await mock.anthropic.messages.count_tokens(model="m", messages=ASK, tools=TOOLS)
    assert calls.usage.prompt_tokens == counted.input_tokens


async def test_x_api_key_or_bearer(serve: Serve) -> None:
    served = await serve(api_key="k", client_key="k")
    assert _text(await served.anthropic.messages.create(**BASE))
    for header in ({"authorization": "Bearer k"}, {"x-api-key": "k"}):
        response = await served.http.post("/v1/messages", json=BASE, headers=header)
        assert response.status_code == 200
        assert response.headers["request-id"].startswith("req_")
    openai_path = await served.http.post(
        "/v1/chat/completions", json={**BASE, "max_tokens": 5}, headers={"x-api-key": "k"}
    )
    assert openai_path.status_code == 401  # x-api-key is Anthropic's header only
    wrong = await served.http.post("/v1/messages", json=BASE, headers={"x-api-key": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    unauthorized = anthropic.AsyncAnthropic(base_url=served.root, api_key="nope", max_retries=0)
    async with unauthorized:
        with pytest.raises(anthropic.AuthenticationError):
            await unauthorized.messages.create(**BASE)
