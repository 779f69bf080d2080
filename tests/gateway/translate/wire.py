"""Test support for translators: SSE text as ``Event`` lists and back, and SDK validation of what they produce."""

from __future__ import annotations

import json
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState, ParsedChatCompletionSnapshot
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from interlock.gateway.translate.base import DONE, Event

__all__ = [
    "anthropic_stream_message",
    "check_anthropic_event",
    "check_anthropic_message",
    "check_openai_chunk",
    "check_openai_completion",
    "openai_stream_completion",
    "parse_sse",
    "render_sse",
]

_ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def parse_sse(text: str) -> list[Event]:
    """Raw SSE text as events: the ``event:`` name (None when absent) and the JSON (or ``[DONE]``) data.

    Comments (``:`` lines) and events without data are skipped; multi-line data is joined with newlines.
    """
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            payload = "\n".join(data)
            events.append(Event(payload if payload == DONE else json.loads(payload), name))
    return events


def render_sse(events: list[Event]) -> str:
    """Events as they go on the wire (compact JSON), the inverse of ``parse_sse``."""
    out = []
    for event in events:
        data = event.data if event.data == DONE else json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
        out.append((f"event: {event.name}\n" if event.name else "") + f"data: {data}\n\n")
    return "".join(out)


def check_openai_completion(body: dict[str, Any]) -> None:
    ChatCompletion.model_validate(body)


def check_anthropic_message(body: dict[str, Any]) -> None:
    Message.model_validate(body)


def check_openai_chunk(event: Event) -> None:
    """A chat-completion chunk, an OpenAI error chunk, or ``[DONE]``."""
    assert event.name is None
    if event.data == DONE:
        return
    if "error" in event.data:
        error = event.data["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str)
        return
    ChatCompletionChunk.model_validate(event.data)


def check_anthropic_event(event: Event) -> None:
    """A Messages stream event (its name is its type), or an ``error`` event."""
    assert event.name == event.data["type"]
    if event.name == "error":
        assert set(event.data["error"]) == {"type", "message"}
        return
    if event.name != "ping":
        _ANTHROPIC_EVENT.validate_python(event.data)


def anthropic_stream_message(events: list[Event]) -> Message:
    """The message the Anthropic SDK's own accumulator builds from a stream (which it refuses when out of order).

    ``accumulate_event`` is the SDK's internal ``MessageStream`` step, used here because it is the reference
    for what the SDK accepts; a stream that ends in ``error`` raises, as the SDK does.
    """
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        if event.name == "error":
            raise AssertionError(f"stream error: {event.data}")
        if event.name == "ping":
            continue
        parsed = _ANTHROPIC_EVENT.validate_python(event.data)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None, "the stream had no message_start"
    return Message.model_validate(snapshot.model_dump())


def openai_stream_completion(events: list[Event]) -> ParsedChatCompletionSnapshot:
    """The completion the OpenAI SDK's stream accumulator builds from chunks up to ``[DONE]``.

    It is the SDK's own snapshot (``get_final_completion`` would refuse a ``length`` finish): a stream cut short
    has no ``finish_reason``, as it should.
    """
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for event in events:
        if event.data == DONE:
            break
        if "error" in event.data:
            raise AssertionError(f"stream error: {event.data}")
        state.handle_chunk(ChatCompletionChunk.model_validate(event.data))
    return state.current_completion_snapshot
