"""Anthropic client, OpenAI-compatible upstream: the edges the golden fixtures do not show."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from interlock.gateway.translate import anthropic_openai
from interlock.gateway.translate.anthropic_openai import StreamTranslator, translate_request, translate_response
from interlock.gateway.translate.base import DONE, Event
from tests.gateway.translate.wire import anthropic_stream_message, check_anthropic_event, check_anthropic_message

USER = [{"role": "user", "content": "hi"}]
TOOL = {"name": "f", "input_schema": {"type": "object", "properties": {}}}


def _request(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt", "max_tokens": 10, "messages": USER, **fields}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"messages": "hi"}, "messages must be a list"),
        (_request(messages=[{"role": "system", "content": "x"}]), "messages[0]: role 'system' is not supported"),
        (_request(system=[{"type": "image"}]), "system must be a string or a list of text blocks"),
        (_request(messages=[{"role": "user", "content": 5}]), "messages[0].content must be a string or a list"),
        (
            _request(messages=[{"role": "user", "content": [{"type": "search_result", "source": "s"}]}]),
            "content blocks of type 'search_result' are not supported by the openai provider",
        ),
        (
            _request(
                messages=[{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "u"}}]}]
            ),
            "content blocks of type 'document' with a 'url' source are not supported",
        ),
        (
            _request(tools=[{"type": "bash_20250124", "name": "bash"}]),
            "tools of type 'bash_20250124' are not supported",
        ),
        (_request(tools=[TOOL], tool_choice={"type": "tool"}), "tool_choice 'tool' is not supported"),
        (
            _request(output_config={"format": {"type": "json_schema", "schema": "x"}}),
            "output_config.format.schema must be a JSON schema object",
        ),
    ],
)
def test_refused_requests(request_: dict[str, Any], message: str) -> None:
    pristine = copy.deepcopy(request_)
    with pytest.raises(ValueError, match=re.escape(message)):
        translate_request(request_)
    assert request_ == pristine


def test_dropped_fields_and_defaults() -> None:
    request = _request(
        top_k=5,
        thinking={"type": "enabled", "budget_tokens": 2048},
        service_tier="auto",
        tool_choice={"type": "any"},
        stop_sequences=[],
        stream=False,
        output_config={"effort": "low"},
    )
    assert translate_request(request) == {"model": "gpt", "max_tokens": 10, "messages": USER, "stream": False}


def test_beta_output_format_is_structured_output() -> None:
    schema = {"type": "object"}
    out = translate_request(_request(output_format={"type": "json_schema", "schema": schema}))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "json_response", "schema": schema}}


def test_assistant_history_keeps_text_and_tool_calls_only() -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"é": 1}},
            ],
        },
        {"role": "assistant", "content": []},
    ]
    out = translate_request(_request(messages=messages))
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"é":1}'}}
    assert out["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "assistant", "content": ""},
    ]


def test_text_document_and_empty_tool_result() -> None:
    content = [
        {"type": "tool_result", "tool_use_id": "t1"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}, "title": "n"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
    ]
    out = translate_request(_request(messages=[{"role": "user", "content": content}]))
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "notes"},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}},
            ],
        },
    ]


def _completion(message: dict[str, Any], finish: str | None = "stop", **response: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return {"id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "gpt", "choices": [choice], **response}


@pytest.mark.parametrize(
    ("arguments", "tool_input"),
    [
        ("", {}),
        (None, {}),
        ({"already": "parsed"}, {"already": "parsed"}),
        ("[1, 2]", {"_raw": "[1, 2]"}),
        ("{oops", {"_raw": "{oops"}),
        (42, {"_raw": "42"}),
    ],
)
def test_tool_arguments_that_are_not_a_json_object(arguments: Any, tool_input: dict[str, Any]) -> None:
    calls = [{"type": "function", "function": {"name": "f", "arguments": arguments}}]
    out = translate_response(_completion({"content": None, "tool_calls": calls}, "stop"), _request())
    assert out["content"] == [{"type": "tool_use", "id": "toolu_0", "name": "f", "input": tool_input}]
    assert out["stop_reason"] == "tool_use"
    check_anthropic_message(out)


def test_response_edge_shapes() -> None:
    empty = translate_response({"id": "msg_abc", "model": "gpt"}, _request())
    assert empty["id"] == "msg_abc"
    assert (empty["content"], empty["stop_reason"]) == ([], "end_turn")
    assert empty["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    check_anthropic_message(empty)
    parts = translate_response(
        _completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}), _request()
    )
    assert parts["content"] == [{"type": "text", "text": "ab"}]
    # reasoning is shown only to a client that asked for thinking
    hidden = translate_response(_completion({"content": "x", "reasoning": "why"}), _request())
    assert [b["type"] for b in hidden["content"]] == ["text"]
    shown = translate_response(
        _completion({"content": "x", "reasoning": "why"}), _request(thinking={"type": "adaptive"})
    )
    assert [b["type"] for b in shown["content"]] == ["thinking", "text"]
    # a stop string the client did not ask for is not a stop sequence
    other = translate_response(_completion({"content": "x"}, "stop", stop_reason=None), _request(stop_sequences=["Z"]))
    assert (other["stop_reason"], other["stop_sequence"]) == ("end_turn", None)


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Event:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return Event(
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt", "choices": choices, **extra}
    )


def _run(request: dict[str, Any], *events: Event) -> list[Event]:
    translator = StreamTranslator(request)
    out: list[Event] = []
    for event in events:
        out += translator.feed(event)[0]
    out += translator.finish()
    for event in out:
        check_anthropic_event(event)
    return out


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_stream_closes_at_once_when_usage_comes_with_the_finish() -> None:
    translator = StreamTranslator(_request(stream=True))
    translator.feed(_chunk({"content": "hi"}))
    events, usage = translator.feed(_chunk({}, "stop", usage=USAGE))
    assert [e.name for e in events] == ["content_block_stop", "message_delta", "message_stop"]
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (5, 2)
    assert translator.feed(Event(DONE)) == ([], usage)
    assert translator.finish() == []


def test_stream_of_nothing_is_an_empty_message() -> None:
    out = _run(_request(model="asked"), Event(DONE))
    assert [e.name for e in out] == ["message_start", "message_delta", "message_stop"]
    message = anthropic_stream_message(out)
    assert (message.id, message.model, message.content) == ("msg_", "asked", [])


def test_stream_interleaved_tool_fragments_reach_their_own_blocks() -> None:
    first = {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":'}}
    second = {"index": 1, "type": "function", "function": {"name": "g", "arguments": "{}"}}
    late = {"index": 0, "function": {"arguments": " 1}"}}
    out = _run(
        _request(),
        _chunk({"tool_calls": [first]}),
        _chunk({"tool_calls": [second]}),
        _chunk({"tool_calls": [late]}),
        _chunk({}, "tool_calls"),
    )
    message = anthropic_stream_message(out)
    assert [(b.id, b.name, b.input) for b in message.content] == [("a", "f", {"x": 1}), ("toolu_1", "g", {})]  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


def test_stream_refusal_is_text_with_a_refusal_stop() -> None:
    out = _run(_request(), _chunk({"refusal": "no"}), _chunk({}, "stop"), Event(DONE))
    message = anthropic_stream_message(out)
    assert message.stop_reason == "refusal"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "no")]


def test_stream_reasoning_is_dropped_unless_thinking_was_asked() -> None:
    out = _run(_request(), _chunk({"reasoning_content": "why"}), _chunk({"content": "x"}), Event(DONE))
    assert [b.type for b in anthropic_stream_message(out).content] == ["text"]


def test_stream_ignores_other_choices_and_non_objects() -> None:
    other = Event({"id": "c1", "choices": [{"index": 1, "delta": {"content": "n=2"}, "finish_reason": None}]})
    out = _run(_request(), other, Event("garbage"), _chunk({"content": "x"}), Event(DONE))
    assert [b.text for b in anthropic_stream_message(out).content] == ["x"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("chunk", "error"),
    [
        (
            {"error": {"message": "bad", "type": "BadRequestError", "code": 400}},
            {"type": "invalid_request_error", "message": "bad"},
        ),
        (
            {"object": "error", "message": "gone", "type": "NotFoundError", "code": 404},
            {"type": "not_found_error", "message": "gone"},
        ),
        ({"error": "plain text"}, {"type": "api_error", "message": "plain text"}),
        (
            {"error": {"type": "rate_limit_exceeded", "message": "slow"}},
            {"type": "rate_limit_error", "message": "slow"},
        ),
        ({"error": {"type": "service_unavailable"}}, {"type": "overloaded_error", "message": "upstream stream error"}),
        ({"error": {"type": "timeout", "message": "late"}}, {"type": "timeout_error", "message": "late"}),
    ],
)
def test_stream_errors(chunk: dict[str, Any], error: dict[str, Any]) -> None:
    translator = StreamTranslator(_request())
    events, _ = translator.feed(Event(chunk))
    assert events == [Event({"type": "error", "error": error}, "error")]
    assert translator.feed(_chunk({"content": "late"})) == ([], None)
    assert translator.finish() == []


def test_translator_module_surface() -> None:
    assert anthropic_openai.__all__ == ["ERROR_PREFIX", "StreamTranslator", "translate_request", "translate_response"]
