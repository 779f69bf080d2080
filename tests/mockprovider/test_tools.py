"""Tool calls: arguments that validate against the tool's schema, streamed in fragments like OpenAI."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall

from tests.mockprovider.served import Served

pytestmark = pytest.mark.asyncio(loop_scope="session")

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
SEARCH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "filters": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "value": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
                "required": ["field", "value"],
            },
        },
        "exact": {"type": "boolean"},
    },
    "required": ["query", "filters"],
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "search", "parameters": SEARCH}},
]
SCHEMAS = {"get_weather": WEATHER, "search": SEARCH}


def _ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _function_calls(reply: ChatCompletion) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    assert all(isinstance(call, ChatCompletionMessageFunctionToolCall) for call in calls)
    return [call for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]


async def _streamed_calls(served: Served, **kwargs: Any) -> tuple[dict[int, dict[str, Any]], str | None, int]:
    """Tool calls reassembled from a stream, as a client does it; also the finish reason and fragment count."""
    stream = await served.client.chat.completions.create(model="m", stream=True, tools=TOOLS, **kwargs)
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    fragments = 0
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            if delta.id:
                call["id"], call["name"] = delta.id, delta.function and delta.function.name
                assert delta.function is not None
                assert delta.function.arguments == ""
            elif delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
                fragments += 1
    return calls, finish, fragments


async def test_tool_call_arguments_validate(mock: Served) -> None:
    reply = await mock.client.chat.completions.create(model="m", messages=_ask("Weather in Oslo?"), tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = _function_calls(reply)
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0


async def test_streamed_tool_call_matches_the_unary_one(mock: Served) -> None:
    messages = _ask("Weather in Oslo?")
    unary = await mock.client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    calls, finish, fragments = await _streamed_calls(mock, messages=messages)
    assert finish == "tool_calls"
    assert fragments > 1
    expected = _function_calls(unary)[0]
    assert calls == {0: {"id": expected.id, "name": "get_weather", "arguments": expected.function.arguments}}


async def test_named_tool_choice_is_honoured(mock: Served) -> None:
    choice: Any = {"type": "function", "function": {"name": "search"}}
    calls, _, _ = await _streamed_calls(mock, messages=_ask("Find both"), tool_choice=choice)
    assert [call["name"] for call in calls.values()] == ["search"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), SEARCH)


async def test_parallel_tool_calls(mock: Served) -> None:
    reply = await mock.client.chat.completions.create(model="m", messages=_ask("Do both, please"), tools=TOOLS)
    calls = _function_calls(reply)
    assert [c.function.name for c in calls] == ["get_weather", "search"]
    assert len({c.id for c in calls}) == 2
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    streamed, finish, _ = await _streamed_calls(mock, messages=_ask("Do both, please"))
    assert finish == "tool_calls"
    assert [(streamed[i]["name"], streamed[i]["arguments"]) for i in (0, 1)] == [
        (c.function.name, c.function.arguments) for c in calls
    ]


@pytest.mark.parametrize(
    "extra",
    [{"parallel_tool_calls": False}, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}],
)
async def test_parallel_calls_need_permission_and_choice(mock: Served, extra: dict[str, Any]) -> None:
    reply = await mock.client.chat.completions.create(model="m", messages=_ask("in parallel"), tools=TOOLS, **extra)
    assert [c.function.name for c in _function_calls(reply)] == ["get_weather"]


async def test_tool_choice_none_answers_with_text(mock: Served) -> None:
    reply = await mock.client.chat.completions.create(model="m", messages=_ask("hi"), tools=TOOLS, tool_choice="none")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


async def test_unknown_named_tool_is_400(mock: Served) -> None:
    choice = {"type": "function", "function": {"name": "nope"}}
    body = {"model": "m", "messages": _ask("hi"), "tools": TOOLS, "tool_choice": choice}
    response = await mock.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"
