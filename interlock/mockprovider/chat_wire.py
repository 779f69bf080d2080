"""A ``ChatAnswer`` on the wire, as OpenAI sends it: one JSON body, or SSE chunks ending in ``data: [DONE]``.

With ``include_usage`` every chunk carries ``"usage": null`` and one more chunk, with no choices, carries the
usage; without it there is no usage anywhere in the stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from interlock.mockprovider.chat_answer import ChatAnswer

__all__ = ["DONE", "completion_body", "completion_chunks"]

DONE = b"data: [DONE]\n\n"


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def completion_body(answer: ChatAnswer, model: str, *, with_usage: bool = True) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    body: dict[str, Any] = {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
    }
    if with_usage:
        body["usage"] = answer.usage
    return orjson.dumps(body)


class _ChunkWriter:
    __slots__ = ("_base", "_include_usage")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._include_usage = include_usage

    def choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def usage(self, usage: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps({**self._base, "choices": [], "usage": usage}) + b"\n\n"


def completion_chunks(answer: ChatAnswer, model: str, *, include_usage: bool) -> Iterator[bytes]:
    """The data events of the stream, without the final ``[DONE]``."""
    writer = _ChunkWriter(model, include_usage)
    if answer.tool_calls:
        for index, call in enumerate(answer.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            delta: dict[str, Any] = {"tool_calls": [head]}
            if index == 0:
                delta = {"role": "assistant", "content": None, **delta}
            yield writer.choice(delta)
            for fragment in call.fragments:
                yield writer.choice({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    else:
        yield writer.choice({"role": "assistant", "content": ""})
        for piece in answer.pieces:
            yield writer.choice({"content": piece})
    yield writer.choice({}, answer.finish_reason)
    if include_usage:
        yield writer.usage(answer.usage)
