"""OpenAI client, Anthropic upstream: the edges the golden fixtures do not show (refusals, defaults, odd input)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from interlock.gateway.translate import openai_anthropic
from interlock.gateway.translate.base import DONE, Event
from interlock.gateway.translate.openai_anthropic import DEFAULT_MAX_TOKENS, StreamTranslator, translate_request
from tests.gateway.translate.wire import check_openai_chunk, check_openai_completion

USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def _request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": USER, **fields}


def _translate(request: dict[str, Any]) -> dict[str, Any]:
    pristine = copy.deepcopy(request)
    out = translate_request(request)
    assert request == pristine
    return out


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": "hi"}, "messages must be a non-empty list"),
        (_request(messages=[{"role": "system", "content": "only a system prompt"}]), "at least one user or assistant"),
        (_request(messages=[{"role": "function", "content": "x", "name": "f"}]), "role 'function' is not supported"),
        (_request(messages=["hi"]), "messages[0] must be an object"),
        (_request(n=3), "n > 1 is not supported by the anthropic provider"),
        (_request(logprobs=True), "logprobs is not supported by the anthropic provider"),
        (_request(functions=[{"name": "f"}]), "legacy functions/function_call"),
        (_request(modalities=["text", "audio"]), "audio output is not supported"),
        (_request(max_tokens=0), "max_tokens must be a positive integer"),
        (_request(max_completion_tokens=True), "max_completion_tokens must be a positive integer"),
        (_request(temperature="hot"), "temperature must be a number"),
        (_request(stop=[1, 2]), "stop must be a string or a list of strings"),
        (_request(stop=5), "stop must be a string or a list of strings"),
        (_request(reasoning_effort="extreme"), "reasoning_effort must be one of"),
        (_request(tools=[{"type": "custom", "custom": {"name": "g"}}]), "tools of type 'custom' are not supported"),
        (_request(tools=[TOOL], tool_choice={"type": "allowed_tools"}), "tool_choice 'allowed_tools' is not supported"),
        (_request(tools=[TOOL], tool_choice={"type": "function"}), "tool_choice.function must name a function"),
        (
            _request(tools=[TOOL], response_format={"type": "json_schema", "json_schema": {"name": "f", "schema": {}}}),
            "'f' is also the name of a tool",
        ),
        (_request(response_format={"type": "json_schema", "json_schema": "x"}), "json_schema must be an object"),
        (
            _request(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
            "content parts of type 'input_audio' are not supported",
        ),
        (
            _request(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]),
            "only PDF file_data",
        ),
        (
            _request(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]),
            "must be an http(s) URL or a base64 data: URL",
        ),
        (
            _request(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
            "content parts of type 'image_url' are not supported by the anthropic provider here",
        ),
        (
            _request(
                messages=[
                    *USER,
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]},
                ]
            ),
            "messages[1].tool_calls[0].function.arguments must be a JSON object",
        ),
        (
            _request(
                messages=[*USER, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]
            ),
            "messages[1].tool_calls[0].id must be a non-empty string",
        ),
        (_request(messages=[*USER, {"role": "tool", "content": "x"}]), "messages[1].tool_call_id must be a non-empty"),
    ],
)
def test_refused_requests(request_: dict[str, Any], message: str) -> None:
    pristine = copy.deepcopy(request_)
    with pytest.raises(ValueError, match=re.escape(message)):
        translate_request(request_)
    assert request_ == pristine


def test_defaults_and_dropped_fields() -> None:
    out = _translate(
        _request(
            frequency_penalty=1,
            presence_penalty=1,
            seed=1,
            logit_bias={"1": 2},
            n=1,
            stream_options={"include_usage": True},
        )
    )
    assert out == {"model": "claude", "messages": USER, "max_tokens": DEFAULT_MAX_TOKENS}


@pytest.mark.parametrize(("given", "sent"), [(-0.5, 0.0), (0.7, 0.7), (2, 1.0)])
def test_temperature_is_clamped(given: float, sent: float) -> None:
    assert _translate(_request(temperature=given, top_p=0.5))["temperature"] == sent


def test_top_p_alone_is_kept() -> None:
    assert _translate(_request(top_p=0.5))["top_p"] == 0.5


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking", "sent_max"),
    [
        ("none", 100, None, 100),
        ("low", 8000, {"type": "enabled", "budget_tokens": 1024}, 8000),
        ("medium", 2048, {"type": "enabled", "budget_tokens": 2048}, 4096),
        ("max", None, {"type": "enabled", "budget_tokens": 16384}, 16384 + DEFAULT_MAX_TOKENS),
    ],
)
def test_reasoning_effort(effort: str, max_tokens: int | None, thinking: Any, sent_max: int) -> None:
    out = _translate(_request(reasoning_effort=effort, max_tokens=max_tokens, temperature=0.5, top_p=0.9))
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == sent_max
    assert ("temperature" in out) == (thinking is None)
    assert "top_p" not in out


@pytest.mark.parametrize(
    ("fields", "tool_choice"),
    [
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        ({"parallel_tool_calls": False, "tool_choice": "none"}, {"type": "none"}),
        ({"parallel_tool_calls": True}, None),
        ({"tool_choice": "auto"}, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_calls(fields: dict[str, Any], tool_choice: Any) -> None:
    assert _translate(_request(tools=[TOOL], **fields)).get("tool_choice") == tool_choice


def test_tool_choice_without_tools_is_dropped() -> None:
    out = _translate(_request(tool_choice="required", parallel_tool_calls=False, tools=[]))
    assert "tool_choice" not in out
    assert "tools" not in out


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    out = _translate(_request(tools=[{"type": "function", "function": {"name": "now"}}]))
    assert out["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_turns_merge_with_tool_results_first_and_blank_text_dropped() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    messages = [
        {"role": "user", "content": "  "},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "b"}]},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "user", "content": "after"},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
        {"role": "system", "content": "late system"},
    ]
    out = _translate(_request(messages=messages))
    assert out["system"] == "late system"
    assert out["messages"] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1"}, {"type": "text", "text": "after"}]},
    ]


def test_pdf_file_part_becomes_a_document() -> None:
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
    out = _translate(_request(messages=[{"role": "user", "content": [part]}]))
    source = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}
    assert out["messages"][0]["content"] == [{"type": "document", "source": source}]


def test_json_schema_without_name_or_schema_uses_defaults() -> None:
    out = _translate(_request(response_format={"type": "json_schema", "json_schema": {}}))
    assert out["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert out["tools"][0]["input_schema"] == {"type": "object"}


def _message(content: list[dict[str, Any]], stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    usage = {"input_tokens": 1, "output_tokens": 2}
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": content,
        "stop_reason": stop,
        "usage": usage,
        **extra,
    }


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("pause_turn", "stop"), ("model_context_window_exceeded", "length"), ("something_new", "stop"), (None, "stop")],
)
def test_response_finish_reasons(stop: Any, finish: str) -> None:
    out = openai_anthropic.translate_response(_message([{"type": "text", "text": "x"}], stop), _request())
    assert out["choices"][0]["finish_reason"] == finish
    check_openai_completion(out)


def test_response_joins_texts_and_drops_what_openai_cannot_carry() -> None:
    content: list[dict[str, Any]] = [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "a", "citations": []},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        {"type": "text", "text": "b"},
    ]
    out = openai_anthropic.translate_response(_message(content), _request())
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "ab", "refusal": None}
    check_openai_completion(out)


def test_response_without_usage_has_no_usage() -> None:
    message = _message([])
    del message["usage"]
    out = openai_anthropic.translate_response(message, _request())
    assert "usage" not in out
    assert out["choices"][0]["message"]["content"] is None


def test_structured_output_keeps_other_tool_calls() -> None:
    request = _request(tools=[TOOL], response_format={"type": "json_schema", "json_schema": {"name": "answer"}})
    content = [
        {"type": "tool_use", "id": "t1", "name": "answer", "input": {"a": 1}},
        {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
    ]
    out = openai_anthropic.translate_response(_message(content, "tool_use"), request)
    choice = out["choices"][0]
    assert choice["message"]["content"] == '{"a":1}'
    assert [call["id"] for call in choice["message"]["tool_calls"]] == ["t2"]
    assert choice["finish_reason"] == "tool_calls"


def _feed(translator: StreamTranslator, *events: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    for data in events:
        out += translator.feed(Event(data, data.get("type")))[0]
    return out


START = {
    "type": "message_start",
    "message": {**_message([]), "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 1}},
}


def test_stream_message_stop_without_message_delta_still_finishes() -> None:
    translator = StreamTranslator(_request(stream=True))
    out = _feed(translator, START, {"type": "some_future_event"}, {"type": "message_stop"})
    assert [e.data["choices"][0]["finish_reason"] for e in out[:-1]] == [None, "stop"]
    assert out[-1].data == DONE
    assert translator.finish() == []
    for event in out:
        check_openai_chunk(event)


def test_stream_ignores_everything_after_it_ended() -> None:
    translator = StreamTranslator(_request(stream=True))
    _feed(translator, START, {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    events, usage = translator.feed(Event({"type": "message_stop"}, "message_stop"))
    assert events == []
    assert usage is not None
    assert usage.input_tokens == 3
    assert translator.feed(Event(DONE)) == ([], usage)
    assert translator.finish() == []


def test_stream_without_message_start_still_opens_with_the_role_chunk() -> None:
    translator = StreamTranslator(_request(stream=True))
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "pre"}}
    out = _feed(translator, block)
    assert [e.data["choices"][0]["delta"] for e in out] == [{"role": "assistant", "content": ""}, {"content": "pre"}]
    assert translator.feed(Event(DONE)) == ([], None)
    assert translator.finish() == [Event(DONE)]


def test_stream_error_types_map_to_openai_types() -> None:
    translator = StreamTranslator(_request(stream=True))
    out = _feed(translator, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    error = {"message": "slow down", "type": "rate_limit_exceeded", "param": None, "code": "rate_limit_error"}
    assert out == [Event({"error": error}), Event(DONE)]
