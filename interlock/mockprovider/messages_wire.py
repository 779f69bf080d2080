"""A ``MessagesAnswer`` on the wire, as Anthropic sends it: one Message body, or named SSE events.

The stream is ``message_start`` (the message with empty content; usage with the input counts and
``output_tokens`` 1), then per content block ``content_block_start``, its deltas and ``content_block_stop`` (a
``ping`` right after the first block starts), then ``message_delta`` (stop reason, stop sequence, the final
``output_tokens``) and ``message_stop``. Deltas: a ``text_delta`` per token; ``thinking_delta`` per token, then
one ``signature_delta``; ``input_json_delta`` fragments (the first one empty, as Anthropic sends it) that
concatenate to the tool input's JSON. Each event is ``event: <type>\\ndata: <json>\\n\\n``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from interlock.mockprovider.messages_answer import MessagesAnswer

__all__ = ["message_body", "message_events"]


def _message_id() -> str:
    return "msg_01" + uuid.uuid4().hex[:22]


def _event(kind: str, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


def _blocks(answer: MessagesAnswer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking:
        blocks.append({"type": "thinking", "thinking": "".join(answer.thinking), "signature": answer.signature})
    if answer.text:
        blocks.append({"type": "text", "text": "".join(answer.text)})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": orjson.loads(call.arguments)}
        for call in answer.tool_calls
    )
    return blocks


def _message(answer: MessagesAnswer, model: str, content: list[dict[str, Any]], streaming: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": None if streaming else answer.stop_reason,
        "stop_sequence": None if streaming else answer.stop_sequence,
    }
    return message


def message_body(answer: MessagesAnswer, model: str, *, with_usage: bool = True) -> bytes:
    message = _message(answer, model, _blocks(answer), streaming=False)
    if with_usage:
        message["usage"] = answer.usage
    return orjson.dumps(message)


def message_events(answer: MessagesAnswer, model: str, *, with_usage: bool = True) -> Iterator[bytes]:
    """Every event of the stream, ``message_stop`` included."""
    message = _message(answer, model, [], streaming=True)
    if with_usage:
        message["usage"] = {**answer.usage, "output_tokens": min(1, answer.usage["output_tokens"])}
    yield _event("message_start", message=message)
    index = 0
    if answer.thinking:
        yield _event(
            "content_block_start", index=index, content_block={"type": "thinking", "thinking": "", "signature": ""}
        )
        yield _event("ping")
        for piece in answer.thinking:
            yield _event("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": piece})
        yield _event(
            "content_block_delta", index=index, delta={"type": "signature_delta", "signature": answer.signature}
        )
        yield _event("content_block_stop", index=index)
        index += 1
    if answer.text:
        yield _event("content_block_start", index=index, content_block={"type": "text", "text": ""})
        if index == 0:
            yield _event("ping")
        for piece in answer.text:
            yield _event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        yield _event("content_block_stop", index=index)
        index += 1
    for call in answer.tool_calls:
        start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        yield _event("content_block_start", index=index, content_block=start)
        if index == 0:
            yield _event("ping")
        for fragment in ("", *call.fragments):
            yield _event(
                "content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": fragment}
            )
        yield _event("content_block_stop", index=index)
        index += 1
    if index == 0:
        yield _event("ping")
    delta: dict[str, Any] = {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence}
    if with_usage:
        yield _event("message_delta", delta=delta, usage={"output_tokens": answer.usage["output_tokens"]})
    else:
        yield _event("message_delta", delta=delta)
    yield _event("message_stop")
