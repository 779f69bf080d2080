"""Anthropic Messages stream in, OpenAI chat-completion chunks out: the stream half of ``openai_anthropic``.

- ``message_start`` gives the chunk ``id``/``model`` and the first chunk, ``delta: {role: assistant, content: ""}``.
- ``text_delta`` becomes ``content``; ``thinking_delta`` becomes the non-standard ``reasoning_content``;
  ``signature_delta``, ``citations_delta``, ``ping``, ``content_block_stop`` and unknown events produce nothing.
- Each ``tool_use`` block becomes one OpenAI tool call: a first delta with ``index`` (counting tool calls only),
  ``id``, ``type`` and ``function.name`` with empty ``arguments``, then each ``input_json_delta`` fragment as
  ``arguments``. The structured-output tool (``structured_output``) instead streams its JSON as ``content``.
- ``message_delta`` becomes a chunk with ``finish_reason`` (``stop`` for the structured-output tool); at
  ``message_stop`` a usage chunk (``choices: []``) follows when the client set ``stream_options.include_usage``
  (the other chunks then carry ``"usage": null``, as OpenAI's do), then ``[DONE]``.
- An ``error`` event becomes one OpenAI error chunk, then ``[DONE]``; nothing is translated after it.

``created`` is 0 in every chunk (Anthropic sends no time, and translators do not read the clock).
"""

from __future__ import annotations

from typing import Any

from interlock.gateway.translate.anthropic_usage import openai_usage
from interlock.gateway.translate.base import DONE, Event
from interlock.gateway.translate.error_events import openai_error_chunk
from interlock.gateway.translate.stop_reasons import finish_reason
from interlock.gateway.translate.structured_output import schema_tool_name
from interlock.gateway.usage.metering import Usage, usage_from_anthropic

__all__ = ["StreamTranslator"]

_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class StreamTranslator:
    """One per streamed request: ``feed`` each Anthropic event, then ``finish`` when the upstream has ended."""

    __slots__ = (
        "_blocks",
        "_counts",
        "_done",
        "_finished",
        "_forced",
        "_id",
        "_include_usage",
        "_model",
        "_started",
        "_structured",
        "_tool_calls",
        "_usage_now",
    )

    def __init__(self, request: dict[str, Any]) -> None:
        options = request.get("stream_options")
        self._include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self._forced = schema_tool_name(request)
        model = request.get("model")
        self._model = model if isinstance(model, str) else ""
        self._id = ""
        self._started = False
        self._blocks: dict[Any, tuple[str, int]] = {}  # Anthropic block index -> (kind, OpenAI tool-call index)
        self._tool_calls = 0
        self._structured = False
        self._counts: dict[str, int] = {}
        self._usage_now: Usage | None = None  # ``_counts`` as Usage, rebuilt only when they change
        self._finished = False
        self._done = False

    def feed(self, event: Event) -> tuple[list[Event], Usage | None]:
        data = event.data
        if self._done or not isinstance(data, dict):
            return [], self._usage()
        kind = data.get("type", event.name)
        out: list[Event] = []
        if kind == "message_start":
            message = _dict(data.get("message"))
            self._id = message.get("id") or self._id
            self._model = message.get("model") or self._model
            self._count(message.get("usage"))
            self._start(out)
        elif kind == "content_block_start":
            self._start(out)
            self._block_start(data, out)
        elif kind == "content_block_delta":
            self._start(out)
            self._block_delta(data, out)
        elif kind == "message_delta":
            self._start(out)
            self._count(data.get("usage"))
            delta = _dict(data.get("delta"))
            self._finish(finish_reason(delta.get("stop_reason")), out)
        elif kind == "message_stop":
            self._start(out)
            self._finish("stop", out)
            out.extend(self._close())
        elif kind == "error":
            out += [Event(openai_error_chunk(data)), Event(DONE)]
            self._done = True
        return out, self._usage()

    def finish(self) -> list[Event]:
        """What the client is still owed when the upstream ended: the usage chunk if due, and ``[DONE]``.

        A stream cut before ``message_delta`` gets no invented ``finish_reason``: its absence tells the truth.
        """
        return [] if self._done else self._close()

    def _usage(self) -> Usage | None:
        return self._usage_now

    def _count(self, usage: Any) -> None:
        """Anthropic's counts are cumulative: a later event's value replaces an earlier one."""
        if isinstance(usage, dict):
            for field in _USAGE_FIELDS:
                value = usage.get(field)
                if isinstance(value, int) and not isinstance(value, bool):
                    self._counts[field] = value
            if self._counts:
                self._usage_now = usage_from_anthropic(self._counts)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Event:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return Event(chunk)

    def _start(self, out: list[Event]) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))

    def _finish(self, finish: str, out: list[Event]) -> None:
        if self._finished:
            return
        self._finished = True
        if finish == "tool_calls" and self._tool_calls == 0:
            finish = "stop"  # only the structured-output tool was called
        out.append(self._chunk({}, finish))

    def _close(self) -> list[Event]:
        self._done = True
        usage = self._usage()
        if not (self._include_usage and self._finished and usage is not None):
            return [Event(DONE)]
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self._model,
            "choices": [],
            "usage": openai_usage(usage),
        }
        return [Event(chunk), Event(DONE)]

    def _block_start(self, data: dict[str, Any], out: list[Event]) -> None:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return
        index, kind = data.get("index"), block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            if block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
        elif kind == "thinking":
            self._blocks[index] = ("thinking", -1)
            if block.get("thinking"):
                out.append(self._chunk({"reasoning_content": block["thinking"]}))
        elif (
            kind == "tool_use"
            and self._forced is not None
            and not self._structured
            and block.get("name") == self._forced
        ):
            self._structured = True
            self._blocks[index] = ("structured", -1)
        elif kind == "tool_use":
            call = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = ("tool", call)
            function = {"name": block.get("name"), "arguments": ""}
            delta = {"tool_calls": [{"index": call, "id": block.get("id"), "type": "function", "function": function}]}
            out.append(self._chunk(delta))

    def _block_delta(self, data: dict[str, Any], out: list[Event]) -> None:
        entry = self._blocks.get(data.get("index"))
        delta = data.get("delta")
        if entry is None or not isinstance(delta, dict):
            return
        block, call = entry
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "thinking_delta" and delta.get("thinking"):
            out.append(self._chunk({"reasoning_content": delta["thinking"]}))
        elif kind == "input_json_delta" and delta.get("partial_json"):
            fragment = delta["partial_json"]
            if block == "structured":
                out.append(self._chunk({"content": fragment}))
            elif block == "tool":
                out.append(self._chunk({"tool_calls": [{"index": call, "function": {"arguments": fragment}}]}))
