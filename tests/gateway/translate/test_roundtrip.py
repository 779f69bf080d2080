"""Properties of the OpenAI <-> Anthropic translators: a round trip through the other API keeps what both can say.

Requests: OpenAI -> Anthropic -> OpenAI and Anthropic -> OpenAI -> Anthropic preserve, up to a normaliser that
keeps only what the middle API can express, the system prompt, the turns (roles, texts, tool calls with ids,
names and arguments, tool results), tools, tool choice, stop sequences, max_tokens, sampling and user. Responses
and streams likewise: a stream translated twice gives the same final text, tool calls, finish and usage, read with
the SDKs' own stream accumulators. Every translated object is also validated with the SDK types.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.gateway.translate import anthropic_openai, openai_anthropic
from interlock.gateway.translate.base import DONE, Event
from tests.gateway.translate.wire import (
    anthropic_stream_message,
    check_anthropic_message,
    check_openai_chunk,
    check_openai_completion,
    openai_stream_completion,
)

EXAMPLES = settings(max_examples=200, deadline=None)

# -- strategies ----------------------------------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
texts = st.text(max_size=10)
words = texts.map(lambda s: s if s.strip() else s + "w")  # what survives everywhere: Anthropic drops blank texts
names = st.builds(str.__add__, st.sampled_from(_ALNUM[:52]), st.text(_ALNUM + "_", max_size=8))
suffixes = st.text(_ALNUM, min_size=3, max_size=6)
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6
)
arguments = st.dictionaries(names, json_values, max_size=3)
schemas = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(names, st.just({"type": "string"}), max_size=3)}
)


@st.composite
def openai_content(draw: st.DrawFn, *, allow_blank: bool = True) -> Any:
    pieces = texts if allow_blank else words
    if draw(st.booleans()):
        return draw(pieces)
    return [{"type": "text", "text": text} for text in draw(st.lists(pieces, min_size=1, max_size=3))]


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(st.lists(st.tuples(names, st.none() | texts, schemas), max_size=3, unique_by=lambda t: t[0]))
    messages: list[dict[str, Any]] = [
        {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(openai_content())}
        for _ in range(draw(st.integers(0, 2)))
    ]
    ids = iter(range(1000))
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(openai_content())})
        if not draw(st.booleans()):
            continue
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | openai_content())}
        calls: list[dict[str, Any]] = []
        with_calls: bool = draw(st.booleans())
        if tools and with_calls:
            for _ in range(draw(st.integers(1, 3))):
                name = draw(st.sampled_from([t[0] for t in tools]))
                args = json.dumps(draw(arguments), ensure_ascii=draw(st.booleans()))
                call_id = f"call_{draw(suffixes)}{next(ids)}"
                calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": args}})
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(openai_content())})
    request: dict[str, Any] = {"model": draw(names), "messages": messages}
    if tools:
        request["tools"] = [
            {"type": "function", "function": {"name": n, "parameters": p, **({"description": d} if d else {})}}
            for n, d, p in tools
        ]
        choice = draw(st.sampled_from([None, "auto", "none", "required", "named"]))
        if choice == "named":
            named = draw(st.sampled_from([t[0] for t in tools]))
            request["tool_choice"] = {"type": "function", "function": {"name": named}}
        elif choice is not None:
            request["tool_choice"] = choice
        if draw(st.booleans()):
            request["parallel_tool_calls"] = draw(st.booleans())
    optional = {
        "stop": st.none() | words | st.lists(words, max_size=4),
        "max_tokens": st.integers(1, 100_000),
        "max_completion_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "user": names,
        "stream": st.booleans(),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            request[key] = draw(values)
    return request


@st.composite
def anthropic_content(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(texts)
    return [{"type": "text", "text": text} for text in draw(st.lists(texts, min_size=1, max_size=3))]


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(st.lists(st.tuples(names, st.none() | texts, schemas), max_size=3, unique_by=lambda t: t[0]))
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids the next user turn answers
    ids = iter(range(1000))
    for _ in range(draw(st.integers(1, 4))):
        content = draw(anthropic_content())
        if pending:
            results = []
            for tool_use_id in pending:
                result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
                if draw(st.booleans()):
                    result["content"] = draw(anthropic_content())
                if draw(st.booleans()):
                    result["is_error"] = draw(st.booleans())
                results.append(result)
            content = results + ([{"type": "text", "text": content}] if isinstance(content, str) else content)
        messages.append({"role": "user", "content": content})
        pending = []
        if not draw(st.booleans()):
            continue
        reply = draw(anthropic_content())
        with_calls: bool = draw(st.booleans())
        if tools and with_calls:
            reply = [{"type": "text", "text": reply}] if isinstance(reply, str) else reply
            for _ in range(draw(st.integers(1, 3))):
                pending.append(f"toolu_{draw(suffixes)}{next(ids)}")
                name = draw(st.sampled_from([t[0] for t in tools]))
                reply.append({"type": "tool_use", "id": pending[-1], "name": name, "input": draw(arguments)})
        messages.append({"role": "assistant", "content": reply})
    request: dict[str, Any] = {"model": draw(names), "max_tokens": draw(st.integers(1, 100_000)), "messages": messages}
    if draw(st.booleans()):
        request["system"] = draw(anthropic_content())
    if tools:
        request["tools"] = [{"name": n, "input_schema": p, **({"description": d} if d else {})} for n, d, p in tools]
        kind = draw(st.sampled_from([None, "auto", "any", "tool", "none"]))
        if kind is not None:
            choice: dict[str, Any] = {"type": kind}
            if kind == "tool":
                choice["name"] = draw(st.sampled_from([t[0] for t in tools]))
            if kind != "none" and draw(st.booleans()):
                choice["disable_parallel_tool_use"] = draw(st.booleans())
            request["tool_choice"] = choice
    optional = {
        "stop_sequences": st.lists(words, max_size=4),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 500),
        "metadata": st.fixed_dictionaries({"user_id": names}),
        "stream": st.booleans(),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            request[key] = draw(values)
    return request


# -- normalisers: the subset of a request that both APIs can express ------------------------------------------------


def _texts(content: Any, *, keep_blank: bool = False) -> list[str]:
    if content is None:
        return []
    parts = [content] if isinstance(content, str) else [p["text"] for p in content]
    return [p for p in parts if keep_blank or p.strip()]


def _turns(items: list[tuple[str, list[tuple[str, Any]]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """Drop empty messages and merge adjacent ones of the same role, as alternation requires.

    In a user turn tool results come first; in an assistant turn the texts are one string (OpenAI has one).
    """
    merged: list[tuple[str, list[tuple[str, Any]]]] = []
    for role, parts in items:
        if not parts:
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(parts)
        else:
            merged.append((role, list(parts)))
    out: list[tuple[str, tuple[Any, ...]]] = []
    for role, parts in merged:
        if role == "user":
            results = [p for p in parts if p[0] == "result"]
            out.append((role, tuple(results + [p for p in parts if p[0] != "result"])))
        else:
            text = "".join(p[1] for p in parts if p[0] == "text")
            calls = [p for p in parts if p[0] == "call"]
            out.append((role, (text, *calls)))
    return out


def normal_openai(request: dict[str, Any]) -> dict[str, Any]:
    system: list[str] = []
    items: list[tuple[str, list[tuple[str, Any]]]] = []
    for message in request["messages"]:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            system += _texts(content)
        elif role == "user":
            items.append(("user", [("text", t) for t in _texts(content)]))
        elif role == "assistant":
            parts: list[tuple[str, Any]] = [("text", t) for t in _texts(content)]
            for call in message.get("tool_calls") or []:
                args = json.loads(call["function"]["arguments"])
                parts.append(("call", (call["id"], call["function"]["name"], args)))
            items.append(("assistant", parts))
        else:
            result = content if isinstance(content, str) else "\n".join(_texts(content))
            items.append(("user", [("result", (message["tool_call_id"], result))]))
    tools = [
        (t["function"]["name"], t["function"].get("description"), t["function"]["parameters"])
        for t in request.get("tools") or []
    ]
    choice = request.get("tool_choice", "auto") if tools else None
    parallel = request.get("parallel_tool_calls") is not False or choice == "none" or not tools
    stop = request.get("stop")
    temperature = request.get("temperature")
    return {
        "system": "\n".join(system) or None,
        "turns": _turns(items),
        "tools": tools,
        "tool_choice": choice,
        "parallel": parallel,
        "stop": [stop] if isinstance(stop, str) else stop or None,
        "max_tokens": request.get("max_completion_tokens") or request.get("max_tokens") or 4096,
        "temperature": min(temperature, 1.0) if temperature is not None else None,
        "top_p": request.get("top_p") if temperature is None else None,
        "user": request.get("user"),
        "stream": request.get("stream"),
    }


def normal_anthropic(request: dict[str, Any]) -> dict[str, Any]:
    system = request.get("system")
    system_text = "\n".join(_texts(system, keep_blank=True)) if system else ""
    items: list[tuple[str, list[tuple[str, Any]]]] = []
    for message in request["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        parts: list[tuple[str, Any]] = []
        if message["role"] == "assistant":
            text = "".join(b["text"] for b in blocks if b["type"] == "text")
            parts += [("text", text)] if text.strip() else []
            parts += [("call", (b["id"], b["name"], b["input"])) for b in blocks if b["type"] == "tool_use"]
        else:
            for block in blocks:
                if block["type"] == "tool_result":
                    result = "\n".join(_texts(block.get("content"), keep_blank=True))
                    result = ("Error: " if block.get("is_error") else "") + result
                    parts.append(("result", (block["tool_use_id"], result)))
                elif block["text"].strip():
                    parts.append(("text", block["text"]))
        items.append((message["role"], parts))
    tools = [(t["name"], t.get("description"), t["input_schema"]) for t in request.get("tools") or []]
    choice = request.get("tool_choice") if tools else None
    temperature = request.get("temperature")
    return {
        "system": system_text if system_text.strip() else None,
        "turns": _turns(items),
        "tools": tools,
        "tool_choice": (choice or {}).get("type"),
        "tool_name": (choice or {}).get("name"),
        "parallel": not (choice or {}).get("disable_parallel_tool_use"),
        "stop": request.get("stop_sequences") or None,
        "max_tokens": request["max_tokens"],
        "temperature": temperature,
        "top_p": request.get("top_p") if temperature is None else None,
        "user": (request.get("metadata") or {}).get("user_id"),
        "stream": request.get("stream"),
    }


# -- request properties -------------------------------------------------------------------------------------------


@EXAMPLES
@given(openai_requests())
def test_openai_request_round_trip(request: dict[str, Any]) -> None:
    pristine = copy.deepcopy(request)
    expected = normal_openai(request)
    if not expected["turns"]:  # only blank texts: nothing Anthropic accepts
        with pytest.raises(ValueError, match="at least one user or assistant message"):
            openai_anthropic.translate_request(request)
        return
    anthropic = openai_anthropic.translate_request(request)
    back = anthropic_openai.translate_request(anthropic)
    assert request == pristine
    if expected["tool_choice"] is None and back.get("tool_choice") == "auto":
        back = {k: v for k, v in back.items() if k != "tool_choice"}  # auto is the default
    assert normal_openai(back) == expected


@EXAMPLES
@given(anthropic_requests())
def test_anthropic_request_round_trip(request: dict[str, Any]) -> None:
    pristine = copy.deepcopy(request)
    expected = normal_anthropic(request)
    openai = anthropic_openai.translate_request(request)
    assert request == pristine
    if not expected["turns"]:  # only blank texts: nothing Anthropic accepts
        with pytest.raises(ValueError, match="at least one user or assistant message"):
            openai_anthropic.translate_request(openai)
        return
    back = openai_anthropic.translate_request(openai)
    assert normal_anthropic(back) == expected
    if request.get("stream"):
        assert openai["stream_options"] == {"include_usage": True}


# -- response properties ------------------------------------------------------------------------------------------

usages = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))


@st.composite
def openai_responses(draw: st.DrawFn) -> dict[str, Any]:
    prompt, cached, completion = draw(usages)
    cached = min(cached, prompt)
    calls = [
        {
            "id": f"call_{draw(suffixes)}{i}",
            "type": "function",
            "function": {"name": draw(names), "arguments": json.dumps(draw(arguments))},
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    message: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | texts)}
    finish = draw(st.sampled_from(["stop", "length", "content_filter"]))
    if calls:
        message["tool_calls"] = calls
        finish = draw(st.sampled_from(["tool_calls", "stop", "length"]))
    return {
        "id": f"chatcmpl-{draw(suffixes)}",
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(names),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def _openai_outcome(response: dict[str, Any]) -> tuple[Any, ...]:
    choice = response["choices"][0]
    message = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or []
    ]
    finish = choice["finish_reason"]
    if calls and finish == "stop":
        finish = "tool_calls"
    usage = response["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    return (message["content"] or None, calls, finish, usage["prompt_tokens"], cached, usage["completion_tokens"])


@EXAMPLES
@given(openai_responses())
def test_openai_response_round_trip(response: dict[str, Any]) -> None:
    pristine = copy.deepcopy(response)
    message = anthropic_openai.translate_response(response, {"model": "m", "max_tokens": 10, "messages": []})
    check_anthropic_message(message)
    back = openai_anthropic.translate_response(message, {"model": "m", "messages": []})
    check_openai_completion(back)
    assert response == pristine
    assert _openai_outcome(back) == _openai_outcome(response)


stop_reasons = st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "pause_turn", "refusal"])


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": t} for t in draw(st.lists(texts, max_size=2))]
    blocks += [
        {"type": "tool_use", "id": f"toolu_{draw(suffixes)}{i}", "name": draw(names), "input": draw(arguments)}
        for i in range(draw(st.integers(0, 3)))
    ]
    has_calls = any(b["type"] == "tool_use" for b in blocks)
    fresh, read, written = draw(usages)
    return {
        "id": f"msg_{draw(suffixes)}",
        "type": "message",
        "role": "assistant",
        "model": draw(names),
        "content": blocks,
        "stop_reason": draw(st.sampled_from(["tool_use", "max_tokens"]) if has_calls else stop_reasons),
        "stop_sequence": None,
        "usage": {
            "input_tokens": fresh,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "output_tokens": draw(st.integers(0, 10**6)),
        },
    }


def _anthropic_outcome(message: dict[str, Any]) -> tuple[Any, ...]:
    text = "".join(b["text"] for b in message["content"] if b["type"] == "text") or None
    calls = [(b["id"], b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]
    reason = {"stop_sequence": "end_turn", "pause_turn": "end_turn"}.get(message["stop_reason"], message["stop_reason"])
    usage = message["usage"]
    prompt = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    return (text, calls, reason, prompt, usage["cache_read_input_tokens"], usage["output_tokens"])


@EXAMPLES
@given(anthropic_messages())
def test_anthropic_response_round_trip(message: dict[str, Any]) -> None:
    pristine = copy.deepcopy(message)
    completion = openai_anthropic.translate_response(message, {"model": "m", "messages": []})
    check_openai_completion(completion)
    back = anthropic_openai.translate_response(completion, {"model": "m", "max_tokens": 10, "messages": []})
    check_anthropic_message(back)
    assert message == pristine
    assert _anthropic_outcome(back) == _anthropic_outcome(message)


# -- stream properties --------------------------------------------------------------------------------------------


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@dataclass(frozen=True)
class Segment:
    """A run of text deltas (``pieces``), or one tool call whose JSON arguments are cut at ``cuts``."""

    pieces: list[str] | None = None
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)


segments = st.one_of(
    st.builds(Segment, pieces=st.lists(texts, min_size=1, max_size=3)),
    st.builds(Segment, name=names, args=arguments, cuts=st.lists(st.integers(0, 40), max_size=4)),
)


@st.composite
def openai_streams(draw: st.DrawFn) -> tuple[list[Event], dict[str, Any]]:
    """An upstream OpenAI chunk stream, and what it says: text, tool calls, finish reason, usage."""
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        return Event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    events = [chunk({"role": "assistant", "content": ""})]
    text, calls = "", list[tuple[str, str, str]]()
    for segment in draw(st.lists(segments, max_size=5)):
        if segment.pieces is not None:
            for piece in segment.pieces:
                events.append(chunk({"content": piece}))
                text += piece
        else:
            name, cuts = segment.name, segment.cuts
            call_id, payload = f"call_{len(calls)}", json.dumps(segment.args)
            first = {
                "index": len(calls),
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [first]}))
            for fragment in _split(payload, cuts):
                events.append(chunk({"tool_calls": [{"index": len(calls), "function": {"arguments": fragment}}]}))
            calls.append((call_id, name, payload))
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))
    events.append(chunk({}, finish))
    usage = None
    if draw(st.booleans()):
        prompt, cached, completion = draw(usages)
        usage = (prompt, min(cached, prompt), completion)
        details = {"cached_tokens": usage[1]}
        counts = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        events.append(Event({**base, "choices": [], "usage": {**counts, "prompt_tokens_details": details}}))
    if draw(st.booleans()):
        events.append(Event(DONE))
    return events, {"text": text or None, "calls": calls, "finish": finish, "usage": usage}


def _run(translator: Any, events: list[Event]) -> tuple[list[Event], Any]:
    out: list[Event] = []
    usage = None
    for event in events:
        produced, seen = translator.feed(event)
        out += produced
        usage = seen if seen is not None else usage
    return out + translator.finish(), usage


@EXAMPLES
@given(openai_streams())
def test_openai_stream_round_trip(stream: tuple[list[Event], dict[str, Any]]) -> None:
    events, said = stream
    pristine = copy.deepcopy(events)
    middle, usage_in = _run(anthropic_openai.StreamTranslator({"model": "m", "max_tokens": 10, "messages": []}), events)
    assert all(event.name == event.data["type"] for event in middle)  # the accumulator below validates them
    message = anthropic_stream_message(middle)
    client = {"model": "m", "messages": [], "stream_options": {"include_usage": True}}
    out, usage_out = _run(openai_anthropic.StreamTranslator(client), middle)
    assert all(event.name is None for event in out)  # the accumulator below validates them
    assert events == pristine
    assert out[-1].data == DONE
    final = openai_stream_completion(out)
    choice = final.choices[0]
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    usage = final.usage
    details = usage.prompt_tokens_details if usage is not None else None
    got_usage = usage and (usage.prompt_tokens, details.cached_tokens if details else None, usage.completion_tokens)
    # Anthropic's message_start must carry usage, so an upstream without usage reads as zeros on the far side;
    # the first translator reports none, which is what makes the gateway estimate.
    expected_usage = said["usage"] or (0, 0, 0)
    got = {"text": choice.message.content or None, "calls": calls, "finish": choice.finish_reason, "usage": got_usage}
    assert got == {**said, "usage": expected_usage}
    assert [(b.id, b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"] == calls
    assert (usage_in is None) == (said["usage"] is None)
    assert usage_out is not None
    assert (usage_out.input_tokens, usage_out.cached_tokens, usage_out.output_tokens) == expected_usage


@st.composite
def anthropic_streams(draw: st.DrawFn) -> tuple[list[Event], dict[str, Any]]:
    """An upstream Anthropic event stream, and what it says: text, tool calls, stop reason, usage."""

    def event(data: dict[str, Any]) -> Event:
        return Event(data, data["type"])

    fresh, read, written = draw(usages)
    usage = {
        "input_tokens": fresh,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events = [event({"type": "message_start", "message": message})]
    text, calls = "", []
    for index, segment in enumerate(draw(st.lists(segments, max_size=5))):
        if segment.pieces is not None:
            events.append(
                event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            )
            for piece in segment.pieces:
                events.append(
                    event(
                        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
                    )
                )
                text += piece
        else:
            block = {"type": "tool_use", "id": f"toolu_{index}", "name": segment.name, "input": {}}
            events.append(event({"type": "content_block_start", "index": index, "content_block": block}))
            for fragment in _split(json.dumps(segment.args), segment.cuts):
                delta = {"type": "input_json_delta", "partial_json": fragment}
                events.append(event({"type": "content_block_delta", "index": index, "delta": delta}))
            calls.append((f"toolu_{index}", segment.name, segment.args))
        events.append(event({"type": "content_block_stop", "index": index}))
        if draw(st.booleans()):
            events.append(event({"type": "ping"}))
    reason = "tool_use" if calls else draw(st.sampled_from(["end_turn", "max_tokens"]))
    output = draw(st.integers(0, 10**6))
    ending: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": output},
    }
    events += [event(ending), event({"type": "message_stop"})]
    counts = (fresh + read + written, read, output)
    return events, {"text": text or None, "calls": calls, "stop": reason, "usage": counts}


@EXAMPLES
@given(anthropic_streams())
def test_anthropic_stream_round_trip(stream: tuple[list[Event], dict[str, Any]]) -> None:
    events, said = stream
    pristine = copy.deepcopy(events)
    middle, usage_in = _run(openai_anthropic.StreamTranslator({"model": "m", "messages": [], "stream": True}), events)
    for event in middle:
        check_openai_chunk(event)
    out, usage_out = _run(anthropic_openai.StreamTranslator({"model": "m", "max_tokens": 10, "messages": []}), middle)
    assert all(event.name == event.data["type"] for event in out)  # the accumulator below validates them
    assert events == pristine
    message = anthropic_stream_message(out)
    text = "".join(b.text for b in message.content if b.type == "text") or None
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert {"text": text, "calls": calls, "stop": message.stop_reason, "usage": said["usage"]} == said
    assert usage_in is not None
    assert (usage_in.input_tokens, usage_in.cached_tokens, usage_in.output_tokens) == said["usage"]
    # The client asked no usage of the OpenAI leg, so the second translator never saw any.
    assert usage_out is None
