"""OpenAI chat-completion chunks in, Anthropic Messages stream out: the stream half of ``anthropic_openai``.

The events follow the order the Anthropic SDK's accumulator expects:

- ``message_start`` first (``id`` from the first chunk with a ``msg_`` prefix; ``usage.input_tokens`` 0 unless
  that chunk carried usage), before any block.
- Blocks are numbered from 0 in the order they open and closed (``content_block_stop``) when the next one opens:
  text deltas make a ``text`` block with ``text_delta``s; each OpenAI tool call (by its ``index``) a ``tool_use``
  block (``id``, ``name``, ``input: {}``) with each ``arguments`` fragment as an ``input_json_delta``; reasoning
  deltas (``reasoning_content``, or vLLM's ``reasoning``) a ``thinking`` block, only when the client enabled
  ``thinking``. A fragment for a tool call whose block was already closed (servers that interleave parallel
  calls) still goes to that call's block index, which the SDK accumulates by index.
- OpenAI sends usage in a chunk after the one with ``finish_reason`` (the request translation asks for it), so
  the last block is closed and ``message_delta`` (``stop_reason``, and usage with every input count as well as
  ``output_tokens``) plus ``message_stop`` are sent once both have arrived, or at ``[DONE]``, or in ``finish()``
  when the upstream ended without ``[DONE]``. Without upstream usage the ``message_delta`` says
  ``output_tokens: 0`` and ``feed`` reports no usage, so the gateway estimates it.
- Tool-call ``arguments`` fragments are relayed as they come: unlike the unary translation (``{"_raw": ...}``)
  a stream cannot repair arguments that turn out not to be JSON without holding the whole call back.
- An error chunk becomes one Anthropic ``error`` event, and the stream ends there (as Anthropic's own do).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from interlock.gateway.translate.anthropic_usage import anthropic_usage
from interlock.gateway.translate.base import DONE, Event
from interlock.gateway.translate.error_events import anthropic_error_event, openai_stream_error
from interlock.gateway.translate.stop_reasons import stop_reason
from interlock.gateway.usage.metering import Usage, usage_from_openai

__all__ = ["StreamTranslator", "message_id", "thinking_enabled"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message_id(upstream_id: Any) -> str:
    """Anthropic's ``msg_``-prefixed id for an upstream completion id."""
    text = upstream_id if isinstance(upstream_id, str) else ""
    return text if text.startswith("msg_") else f"msg_{text}"


def thinking_enabled(request: dict[str, Any]) -> bool:
    """Whether the client's Messages request turned extended thinking on."""
    thinking = request.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _event(data: dict[str, Any]) -> Event:
    return Event(data, data["type"])


class StreamTranslator:
    """One per streamed request: ``feed`` each OpenAI chunk, then ``finish`` when the upstream has ended."""

    __slots__ = (
        "_done",
        "_finish",
        "_matched",
        "_model",
        "_next_block",
        "_open",
        "_open_kind",
        "_refused",
        "_started",
        "_stop_sequences",
        "_thinking",
        "_tools",
        "_usage",
    )

    def __init__(self, request: dict[str, Any]) -> None:
        model = request.get("model")
        self._model = model if isinstance(model, str) else ""
        self._thinking = thinking_enabled(request)
        self._stop_sequences = request.get("stop_sequences")
        self._started = False
        self._next_block = 0
        self._open: int | None = None
        self._open_kind = ""
        self._tools: dict[Any, int] = {}  # OpenAI tool-call index -> Anthropic block index
        self._finish: Any = None
        self._matched: Any = None
        self._refused = False
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: Event) -> tuple[list[Event], Usage | None]:
        data = event.data
        if self._done:
            return [], self._usage_copy()
        if data == DONE:
            return self._close(), self._usage_copy()
        if not isinstance(data, dict):
            return [], self._usage_copy()
        error = openai_stream_error(data)
        if error is not None:
            self._done = True
            return [_event(anthropic_error_event(error))], self._usage_copy()
        usage = usage_from_openai(data.get("usage"))
        if usage is not None:
            self._usage = usage
        out: list[Event] = []
        self._start(data, out)
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                self._matched = choice.get("stop_reason")
        if self._finish is not None and self._usage is not None:
            out.extend(self._close())
        return out, self._usage_copy()

    def finish(self) -> list[Event]:
        """Close the message when the upstream ended without ``[DONE]``: last block, ``message_delta``, stop."""
        return [] if self._done else self._close()

    def _usage_copy(self) -> Usage | None:
        return dataclasses.replace(self._usage) if self._usage is not None else None

    def _start(self, chunk: dict[str, Any], out: list[Event]) -> None:
        if self._started:
            return
        self._started = True
        usage = anthropic_usage(self._usage) if self._usage is not None else {"input_tokens": 0}
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 0},
        }
        out.append(_event({"type": "message_start", "message": message}))

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if self._thinking and isinstance(reasoning, str) and reasoning:
            index = self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            out.append(self._block_delta(index, {"type": "thinking_delta", "thinking": reasoning}))
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                self._refused = self._refused or field == "refusal"
                index = self._block("text", {"type": "text", "text": ""}, out)
                out.append(self._block_delta(index, {"type": "text_delta", "text": text}))
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                continue
            key = call.get("index", position)
            function = _dict(call.get("function"))
            known = self._tools.get(key)
            if known is not None:
                index = known
            else:
                block: dict[str, Any] = {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{key}",
                    "name": function.get("name") or "",
                    "input": {},
                }
                index = self._block("tool", block, out)
                self._tools[key] = index
            fragment = function.get("arguments")
            if isinstance(fragment, str) and fragment:
                out.append(self._block_delta(index, {"type": "input_json_delta", "partial_json": fragment}))

    def _block(self, kind: str, content_block: dict[str, Any], out: list[Event]) -> int:
        """The open block's index if it is a ``kind`` block that continues; else close it and open a new one."""
        if self._open is not None and kind == self._open_kind and kind != "tool":
            return self._open
        self._close_block(out)
        index = self._next_block
        self._next_block += 1
        self._open, self._open_kind = index, kind
        out.append(_event({"type": "content_block_start", "index": index, "content_block": content_block}))
        return index

    def _close_block(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(_event({"type": "content_block_stop", "index": self._open}))
            self._open, self._open_kind = None, ""

    @staticmethod
    def _block_delta(index: int, delta: dict[str, Any]) -> Event:
        return _event({"type": "content_block_delta", "index": index, "delta": delta})

    def _close(self) -> list[Event]:
        out: list[Event] = []
        self._start({}, out)
        self._close_block(out)
        finish = "content_filter" if self._refused else self._finish
        reason, sequence = stop_reason(
            finish, tool_calls=bool(self._tools), matched=self._matched, stop_sequences=self._stop_sequences
        )
        usage = anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage}
        out += [_event(delta), _event({"type": "message_stop"})]
        self._done = True
        return out
