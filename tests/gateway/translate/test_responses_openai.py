"""Responses API in, Chat Completions out: golden fixtures, SDK validation and properties.

Golden cases live in ``tests/testdata/translate/responses_openai/<case>/``: ``request.json`` with either
``error.txt`` (a substring of the expected ``UnsupportedFeature`` message) or ``upstream_request.json`` plus
``upstream_response.json``/``response.json`` (unary) and/or ``upstream_stream.sse``/``stream.sse`` (stream).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
)
from openai.types.chat.completion_create_params import ResponseFormat
from openai.types.responses import Response, ResponseInputItemParam, ResponseStreamEvent
from pydantic import TypeAdapter

from interlock.gateway.translate.base import DONE, Event
from interlock.gateway.translate.responses_openai import (
    StreamTranslator,
    UnsupportedFeature,
    translate_request,
    translate_response,
)
from interlock.gateway.usage.metering import Usage

CASES_DIR = Path(__file__).resolve().parents[2] / "testdata" / "translate" / "responses_openai"
CASES = sorted(path.name for path in CASES_DIR.iterdir() if path.is_dir()) if CASES_DIR.is_dir() else []

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)
CHAT_MESSAGE = TypeAdapter(ChatCompletionMessageParam)
CHAT_TOOL = TypeAdapter(ChatCompletionFunctionToolParam)
CHAT_TOOL_CHOICE = TypeAdapter(ChatCompletionToolChoiceOptionParam)
CHAT_RESPONSE_FORMAT = TypeAdapter(ResponseFormat)
INPUT_ITEM = TypeAdapter(ResponseInputItemParam)

# -- helpers -------------------------------------------------------------------------------------------------------


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def parse_sse(text: str) -> list[Event]:
    """Raw SSE text as events: ``event:`` names and JSON (or ``[DONE]``) data."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        payload = "\n".join(data)
        events.append(Event(data=payload if payload == DONE else json.loads(payload), name=name))
    return events


def run_stream(request: dict[str, Any], upstream: list[Event]) -> tuple[list[Event], Usage | None]:
    translator = StreamTranslator(request)
    out: list[Event] = []
    usage = None
    for event in upstream:
        events, usage = translator.feed(event)
        out += events
    out += translator.finish()
    assert translator.finish() == [], "finish() must be idempotent"
    return out, usage


def check_chat_request(chat: dict[str, Any]) -> None:
    """The translated request is a valid chat completions request, by the openai SDK's own types."""
    assert chat["messages"], "a chat request needs messages"
    for message in chat["messages"]:
        CHAT_MESSAGE.validate_python(message)
    for tool in chat.get("tools", []):
        CHAT_TOOL.validate_python(tool)
    if "tool_choice" in chat:
        CHAT_TOOL_CHOICE.validate_python(chat["tool_choice"])
    if "response_format" in chat:
        CHAT_RESPONSE_FORMAT.validate_python(chat["response_format"])


def check_stream(request: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    """Validate a translated stream and return its final response object.

    Checks every event against the SDK's ``ResponseStreamEvent``, the sequence numbers, the lifecycle order,
    that the SDK's own ``ResponseStreamState`` accumulates it without complaint, and that text and function
    call arguments reassembled from the deltas equal the final response's.
    """
    assert [event.data["sequence_number"] for event in events] == list(range(len(events)))
    assert all(event.name == event.data["type"] for event in events)
    names = [event.name for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    terminal = {"response.completed", "response.incomplete", "response.failed"}
    assert names[-1] in terminal
    assert not terminal & set(names[:-1])
    assert "error" not in names or names[-2:] == ["error", "response.failed"]
    ids = {event.data["response"]["id"] for event in events if "response" in event.data}
    assert len(ids) == 1

    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    texts: dict[tuple[str, int], str] = {}
    arguments: dict[str, str] = {}
    final = None
    for event in events:
        parsed = STREAM_EVENT.validate_python(event.data)
        for sdk_event in state.handle_event(parsed):
            if sdk_event.type == "response.output_text.delta":
                key = (sdk_event.item_id, sdk_event.content_index)
                texts[key] = texts.get(key, "") + sdk_event.delta
                assert sdk_event.snapshot == texts[key]
            elif sdk_event.type == "response.function_call_arguments.delta":
                arguments[sdk_event.item_id] = arguments.get(sdk_event.item_id, "") + sdk_event.delta
                assert sdk_event.snapshot == arguments[sdk_event.item_id]
            elif sdk_event.type in terminal:
                final = cast(Any, sdk_event).response
    assert final is not None
    response = events[-1].data["response"]
    Response.model_validate(response)
    for item in response["output"]:
        if item["type"] == "function_call":
            assert arguments.get(item["id"], "") == item["arguments"]
        else:
            for index, part in enumerate(item["content"]):
                if part["type"] == "output_text" and response["status"] != "failed":
                    assert texts.get((item["id"], index), "") == part["text"]
    if names[-1] == "response.completed":
        assert final.output_text == "".join(
            part["text"]
            for item in response["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )
    return dict(response)


# -- golden fixtures -----------------------------------------------------------------------------------------------


def test_fixture_cases_exist() -> None:
    assert len(CASES) >= 20, f"golden cases missing under {CASES_DIR}"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    folder = CASES_DIR / case
    files = {path.name for path in folder.iterdir()}
    assert "request.json" in files, f"{case}: request.json missing"
    request = load_json(folder / "request.json")
    pristine = copy.deepcopy(request)

    if "error.txt" in files:
        assert files == {"request.json", "error.txt"}, f"{case}: an error case holds request.json and error.txt"
        with pytest.raises(UnsupportedFeature) as caught:
            translate_request(request)
        assert (folder / "error.txt").read_text().strip() in str(caught.value)
        assert caught.value.param
        assert request == pristine
        return

    assert "upstream_request.json" in files, f"{case}: upstream_request.json missing"
    unary = {"upstream_response.json", "response.json"} & files
    streamed = {"upstream_stream.sse", "stream.sse"} & files
    assert len(unary) in (0, 2), f"{case}: upstream_response.json and response.json go together"
    assert len(streamed) in (0, 2), f"{case}: upstream_stream.sse and stream.sse go together"
    assert unary or streamed, f"{case}: no expected output"

    chat = translate_request(request)
    assert chat == load_json(folder / "upstream_request.json")
    check_chat_request(chat)
    assert bool(chat.get("stream")) == bool(streamed)

    if unary:
        upstream = load_json(folder / "upstream_response.json")
        ChatCompletion.model_validate(upstream)
        upstream_pristine = copy.deepcopy(upstream)
        response = translate_response(upstream, request)
        assert response == load_json(folder / "response.json")
        Response.model_validate(response)
        assert upstream == upstream_pristine

    if streamed:
        upstream_events = parse_sse((folder / "upstream_stream.sse").read_text())
        for event in upstream_events:
            if isinstance(event.data, dict) and "error" not in event.data:
                ChatCompletionChunk.model_validate(event.data)
        upstream_pristine = copy.deepcopy(upstream_events)
        events, usage = run_stream(request, upstream_events)
        expected = parse_sse((folder / "stream.sse").read_text())
        assert [(event.name, event.data) for event in events] == [(event.name, event.data) for event in expected]
        assert upstream_events == upstream_pristine
        final = check_stream(request, events)
        if final["usage"] is not None:
            assert usage is not None
            assert (usage.input_tokens, usage.output_tokens) == (
                final["usage"]["input_tokens"],
                final["usage"]["output_tokens"],
            )
            assert usage.cached_tokens == final["usage"]["input_tokens_details"]["cached_tokens"]

    assert request == pristine


# -- behaviour not worth a fixture each ----------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Event:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
    data["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if delta is not None else []
    return Event(data={**data, **extra})


def test_unsupported_feature_carries_param() -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        translate_request({"model": "m", "input": [{"role": "user", "content": "hi"}, {"type": "web_search_call"}]})
    assert caught.value.param == "input[1].type"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": [{"type": "reasoning", "summary": []}]}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": ["hi"]}, "input[0]"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]}, None),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"model": "m", "input": "hi", "tools": [{"type": "custom", "name": "x"}]}, "tools[0].type"),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"model": "m", "input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ],
)
def test_malformed_or_unmappable_requests_are_400s(request_body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        translate_request(request_body)
    if param is not None:
        assert caught.value.param == param


def test_store_and_metadata_are_accepted_but_not_forwarded() -> None:
    chat = translate_request({"model": "m", "input": "hi", "store": True, "metadata": {"a": "b"}, "include": []})
    assert chat == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_safety_identifier_becomes_user_unless_user_is_given() -> None:
    assert translate_request({"input": "x", "safety_identifier": "s"})["user"] == "s"
    assert translate_request({"input": "x", "safety_identifier": "s", "user": "u"})["user"] == "u"


def test_usage_is_reported_as_it_arrives_and_after_the_end() -> None:
    translator = StreamTranslator({"model": "m", "input": "hi", "stream": True})
    assert translator.feed(chunk({"content": "a"}))[1] is None
    events, usage = translator.feed(chunk({}, finish="stop"))
    assert usage is None
    assert not any(event.name == "response.completed" for event in events)
    usage_chunk = chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    events, usage = translator.feed(usage_chunk)
    assert usage == Usage(input_tokens=3, output_tokens=1)
    assert events[-1].name == "response.completed"
    assert events[-1].data["response"]["usage"]["total_tokens"] == 4
    assert translator.feed(Event(data=DONE)) == ([], usage)
    assert translator.finish() == []


def test_stream_without_usage_completes_on_done_or_finish() -> None:
    for end in ([Event(data=DONE)], []):
        translator = StreamTranslator({"model": "m", "input": "hi"})
        events = translator.feed(chunk({"content": "a"}))[0] + translator.feed(chunk({}, finish="stop"))[0]
        for event in end:
            events += translator.feed(event)[0]
        events += translator.finish()
        assert events[-1].name == "response.completed"
        assert events[-1].data["response"]["usage"] is None
        check_stream({}, events)


def test_usage_in_the_finish_chunk_completes_at_once() -> None:
    translator = StreamTranslator({"input": "hi"})
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    events = translator.feed(chunk({"content": "a"}, finish="stop", usage=usage))[0]
    assert events[-1].name == "response.completed"
    check_stream({}, events)


def test_empty_upstream_stream_fails_cleanly() -> None:
    for first in ([Event(data=DONE)], []):
        translator = StreamTranslator({"model": "m", "input": "hi"})
        events = []
        for event in first:
            events += translator.feed(event)[0]
        events += translator.finish()
        assert [event.name for event in events] == [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed",
        ]
        check_stream({}, events)


def test_vllm_error_chunk_with_integer_code() -> None:
    translator = StreamTranslator({"input": "hi"})
    error = {"object": "error", "message": "boom", "type": "BadRequestError", "param": None, "code": 400}
    events = translator.feed(chunk({"content": "a"}))[0] + translator.feed(Event(data={"error": error}))[0]
    assert events[-2].data["code"] == "BadRequestError"
    assert events[-1].data["response"]["error"] == {"code": "server_error", "message": "boom"}
    assert translator.feed(chunk({"content": "more"})) == ([], None)
    check_stream({}, events)


def test_tool_call_name_arriving_late_and_repeated_names() -> None:
    translator = StreamTranslator({"input": "hi"})
    events: list[Event] = []
    deltas = [
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "f", "arguments": ":1"}}]},
        {"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "f", "arguments": "}"}}]},
    ]
    for delta in deltas:
        events += translator.feed(chunk(delta))[0]
    events += translator.feed(chunk({}, finish="tool_calls"))[0] + translator.feed(Event(data=DONE))[0]
    final = check_stream({}, events)
    assert final["output"] == [
        {
            "type": "function_call",
            "id": "fc_call_x",
            "call_id": "call_x",
            "name": "f",
            "arguments": '{"a":1}',
            "status": "completed",
        }
    ]


# -- properties ----------------------------------------------------------------------------------------------------

TEXT = st.text(max_size=12)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=9)
CALL_ID = st.text(ALNUM, min_size=1, max_size=6).map("call_".__add__)
ARGUMENTS = st.dictionaries(NAME, st.integers() | TEXT, max_size=2).map(json.dumps)
IMAGE_URL = st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="])
INPUT_TEXT = st.builds(lambda text: {"type": "input_text", "text": text}, TEXT)
INPUT_IMAGE = st.builds(
    lambda url, detail: {"type": "input_image", "image_url": url, "detail": detail},
    IMAGE_URL,
    st.sampled_from(["auto", "low", "high"]),
)
USER_MESSAGE = st.builds(
    lambda content, typed: {"role": "user", "content": content} | ({"type": "message"} if typed else {}),
    TEXT | st.lists(INPUT_TEXT | INPUT_IMAGE, max_size=3),
    st.booleans(),
)
SYSTEM_MESSAGE = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["system", "developer"]),
    TEXT | st.lists(INPUT_TEXT, max_size=2),
)
OUTPUT_PART = st.builds(lambda text: {"type": "output_text", "text": text, "annotations": []}, TEXT) | st.builds(
    lambda text: {"type": "refusal", "refusal": text}, TEXT
)
ASSISTANT_MESSAGE = st.builds(lambda content: {"role": "assistant", "content": content}, TEXT) | st.builds(
    lambda parts: {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": parts},
    st.lists(OUTPUT_PART, max_size=3),
)
FUNCTION_CALL = st.builds(
    lambda call_id, name, arguments: {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    },
    CALL_ID,
    NAME,
    ARGUMENTS,
)
FUNCTION_CALL_OUTPUT = st.builds(
    lambda call_id, output: {"type": "function_call_output", "call_id": call_id, "output": output},
    CALL_ID,
    TEXT | st.lists(INPUT_TEXT, max_size=2),
)
REASONING = st.just({"type": "reasoning", "id": "rs_1", "summary": []})
ITEM = USER_MESSAGE | SYSTEM_MESSAGE | ASSISTANT_MESSAGE | FUNCTION_CALL | FUNCTION_CALL_OUTPUT | REASONING
SCHEMA = st.just({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
TOOL = st.fixed_dictionaries(
    {"type": st.just("function"), "name": NAME},
    optional={"description": TEXT, "parameters": SCHEMA, "strict": st.booleans()},
)
FORMAT = (
    st.just({"type": "text"})
    | st.just({"type": "json_object"})
    | st.fixed_dictionaries(
        {"type": st.just("json_schema"), "name": NAME, "schema": SCHEMA},
        optional={"strict": st.booleans(), "description": TEXT},
    )
)
REQUEST = st.fixed_dictionaries(
    {"model": st.just("gpt-4o-mini"), "input": TEXT | st.lists(ITEM, min_size=1, max_size=8)},
    optional={
        "instructions": TEXT,
        "tools": st.lists(TOOL, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | NAME.map(lambda n: {"type": "function", "name": n}),
        "parallel_tool_calls": st.booleans(),
        "text": FORMAT.map(lambda fmt: {"format": fmt}),
        "max_output_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "user": TEXT,
        "metadata": st.dictionaries(NAME, TEXT, max_size=2),
        "store": st.booleans(),
        "stream": st.booleans(),
        "reasoning": st.sampled_from(["low", "medium", "high"]).map(lambda effort: {"effort": effort}),
    },
)


def _parts(content: Any) -> list[tuple[str, ...]]:
    if isinstance(content, str):
        return [("text", content)]
    out: list[tuple[str, ...]] = []
    for part in content:
        if part["type"] in ("input_text", "text"):
            out.append(("text", part["text"]))
        elif part["type"] == "input_image":
            out.append(("image", part["image_url"], part["detail"]))
        else:
            out.append(("image", part["image_url"]["url"], part["image_url"]["detail"]))
    return out


def _texts(content: Any) -> list[str]:
    return [content] if isinstance(content, str) else [part["text"] for part in content]


def conversation_of_responses(request: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a Responses request says, flattened into atoms a chat conversation can hold too."""
    atoms: list[tuple[Any, ...]] = []
    if "instructions" in request:
        atoms.append(("system", [("text", request["instructions"])]))
    items = request["input"]
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items:
        kind = item.get("type", "message")
        if kind == "message" and item["role"] == "assistant":
            content = item["content"]
            if isinstance(content, str):
                atoms.append(("assistant", content, None))
            else:
                text = "".join(part["text"] for part in content if part["type"] == "output_text")
                refusals = [part["refusal"] for part in content if part["type"] == "refusal"]
                atoms.append(("assistant", text, "".join(refusals) if refusals else None))
        elif kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            atoms.append((role, _parts(item["content"])))
        elif kind == "function_call":
            atoms.append(("call", item["call_id"], item["name"], item["arguments"]))
        elif kind == "function_call_output":
            atoms.append(("output", item["call_id"], _texts(item["output"])))
    return atoms


def conversation_of_chat(chat: dict[str, Any]) -> list[tuple[Any, ...]]:
    atoms: list[tuple[Any, ...]] = []
    for message in chat["messages"]:
        role = message["role"]
        if role == "assistant":
            if message["content"] is not None:
                atoms.append(("assistant", message["content"], message.get("refusal")))
            for call in message.get("tool_calls", []):
                atoms.append(("call", call["id"], call["function"]["name"], call["function"]["arguments"]))
        elif role == "tool":
            atoms.append(("output", message["tool_call_id"], _texts(message["content"])))
        else:
            atoms.append((role, _parts(message["content"])))
    return atoms


def settings_of_responses(request: dict[str, Any]) -> dict[str, Any]:
    tools = [(t["name"], t.get("description"), t.get("parameters"), t.get("strict")) for t in request.get("tools", [])]
    choice = request.get("tool_choice")
    fmt = request.get("text", {}).get("format", {"type": "text"})
    return {
        "tools": tools,
        "tool_choice": ("function", choice["name"]) if isinstance(choice, dict) else choice,
        "format": None
        if fmt["type"] == "text"
        else (fmt["type"], fmt.get("name"), fmt.get("schema"), fmt.get("strict")),
        "format_description": fmt.get("description"),
        "max_tokens": request.get("max_output_tokens"),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "parallel_tool_calls": request.get("parallel_tool_calls"),
        "user": request.get("user"),
        "effort": request.get("reasoning", {}).get("effort"),
        "stream": bool(request.get("stream")),
        "model": request["model"],
    }


def settings_of_chat(chat: dict[str, Any]) -> dict[str, Any]:
    tools = [
        (f["name"], f.get("description"), f.get("parameters"), f.get("strict"))
        for f in (tool["function"] for tool in chat.get("tools", []))
    ]
    choice = chat.get("tool_choice")
    fmt = chat.get("response_format")
    schema = fmt.get("json_schema", {}) if fmt else {}
    return {
        "tools": tools,
        "tool_choice": ("function", choice["function"]["name"]) if isinstance(choice, dict) else choice,
        "format": None
        if fmt is None
        else (fmt["type"], schema.get("name"), schema.get("schema"), schema.get("strict")),
        "format_description": schema.get("description"),
        "max_tokens": chat.get("max_tokens"),
        "temperature": chat.get("temperature"),
        "top_p": chat.get("top_p"),
        "parallel_tool_calls": chat.get("parallel_tool_calls"),
        "user": chat.get("user"),
        "effort": chat.get("reasoning_effort"),
        "stream": bool(chat.get("stream")) and chat.get("stream_options") == {"include_usage": True},
        "model": chat["model"],
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUEST)
def test_request_translation_preserves_what_chat_can_express(request: dict[str, Any]) -> None:
    if isinstance(request["input"], list):
        for item in request["input"]:
            INPUT_ITEM.validate_python(item)  # the generator speaks the real API
    pristine = copy.deepcopy(request)
    if not conversation_of_responses(request):  # e.g. only reasoning items: nothing for the upstream to answer
        with pytest.raises(UnsupportedFeature):
            translate_request(request)
        return
    chat = translate_request(request)
    assert request == pristine
    check_chat_request(chat)
    assert conversation_of_chat(chat) == conversation_of_responses(request)
    assert settings_of_chat(chat) == settings_of_responses(request)
    assert translate_request(request) == chat  # deterministic


# A streamed completion: text pieces, refusal pieces, tool calls with argument pieces, how it ends.
PIECES = st.lists(st.text(max_size=6), max_size=4)
STREAM_CALL = st.tuples(CALL_ID, NAME, PIECES)
USAGE = st.none() | st.builds(
    lambda prompt, completion, cached, reasoning: {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
        "completion_tokens_details": {"reasoning_tokens": min(reasoning, completion)},
    },
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),
)
STREAM_REQUEST = st.fixed_dictionaries(
    {"model": st.just("gpt-4o-mini"), "input": TEXT, "stream": st.just(True)},
    optional={
        "instructions": TEXT,
        "tools": st.lists(TOOL, max_size=2),
        "text": FORMAT.map(lambda fmt: {"format": fmt}),
        "max_output_tokens": st.integers(1, 100),
        "metadata": st.dictionaries(NAME, TEXT, max_size=2),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=STREAM_REQUEST,
    upstream_id=st.text(ALNUM, min_size=1, max_size=10).map("chatcmpl-".__add__),
    text=PIECES,
    refusal=PIECES,
    calls=st.lists(STREAM_CALL, max_size=3, unique_by=lambda call: call[0]),
    calls_in_one_chunk=st.booleans(),
    repeat_names=st.booleans(),
    finish_reason=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    usage=USAGE,
    send_done=st.booleans(),
)
def test_stream_ends_in_the_unary_translation(
    request: dict[str, Any],
    upstream_id: str,
    text: list[str],
    refusal: list[str],
    calls: list[tuple[str, str, list[str]]],
    calls_in_one_chunk: bool,
    repeat_names: bool,
    finish_reason: str,
    usage: dict[str, Any] | None,
    send_done: bool,
) -> None:
    base = {"id": upstream_id, "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini-x"}

    def chunk_of(delta: dict[str, Any], finish: str | None = None) -> Event:
        return Event(data={**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    upstream = [chunk_of({"role": "assistant", "content": ""})]
    upstream += [chunk_of({"content": piece}) for piece in text]
    upstream += [chunk_of({"refusal": piece}) for piece in refusal]
    call_deltas = []
    for index, (call_id, name, pieces) in enumerate(calls):
        first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        call_deltas.append(first)
        for piece in pieces:
            again = {"id": call_id, "function": {"name": name, "arguments": piece}} if repeat_names else {}
            call_deltas.append({"index": index, "function": {"arguments": piece}} | again)
    if calls_in_one_chunk and call_deltas:
        upstream.append(chunk_of({"tool_calls": call_deltas}))
    else:
        upstream += [chunk_of({"tool_calls": [delta]}) for delta in call_deltas]
    upstream.append(chunk_of({}, finish_reason))
    if usage is not None:
        upstream.append(Event(data={**base, "choices": [], "usage": usage}))
    if send_done:
        upstream.append(Event(data=DONE))

    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) or None,
        "refusal": "".join(refusal) or None,
    }
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": "".join(pieces)}}
            for call_id, name, pieces in calls
        ]
    unary = {
        **base,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }

    events, seen_usage = run_stream(request, upstream)
    final = check_stream(request, events)
    expected = translate_response(unary, request)
    Response.model_validate(expected)
    assert final == expected
    assert events[-1].name == (
        "response.incomplete" if finish_reason in ("length", "content_filter") else "response.completed"
    )
    if usage is not None:
        assert seen_usage is not None
        assert seen_usage.input_tokens == usage["prompt_tokens"]
        assert seen_usage.cached_tokens == usage["prompt_tokens_details"]["cached_tokens"]
