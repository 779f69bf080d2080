"""The Responses API side of ``responses_openai``: response objects, output items and the stream translator.

``StreamTranslator`` turns the chat.completion.chunk stream of an upstream into the Responses API's semantic
events. The builders here (``response_object``, ``message_item``, ``function_call_item``, ``response_usage``,
``outcome``) are shared with ``responses_openai.translate_response``, so a streamed answer ends in the very
``response`` object a unary one would get.

Stream shape: ``response.created`` and ``response.in_progress`` on the first upstream chunk; each output item
(the assistant message, then one ``function_call`` per tool call, in order of first appearance) opens with
``response.output_item.added`` and streams its deltas; every item stays open until the upstream has finished,
then all are closed in output order (``*.done``, ``response.content_part.done``, ``response.output_item.done``)
and ``response.completed`` (or ``response.incomplete``) carries the full response with usage. Chat streams send
usage in a chunk after the finish chunk, so the completion waits for that chunk, ``[DONE]`` or ``finish()``.

An upstream error chunk (``{"error": {...}}``) becomes an ``error`` event followed by ``response.failed``; so
does an upstream that ends before its finish chunk. The gateway can feed its own ``{"error": {...}}`` event to
close a stream the same way. The Responses API has no ``[DONE]`` terminator: the terminal event ends the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlock.gateway.translate.base import DONE, Event
from interlock.gateway.usage.metering import Usage, usage_from_openai

__all__ = [
    "StreamTranslator",
    "function_call_item",
    "message_item",
    "outcome",
    "response_object",
    "response_usage",
]

# Codes that ``response.error.code`` may carry; anything else an upstream reports becomes ``server_error``.
_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def outcome(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    """The response ``status`` and ``incomplete_details`` for a chat ``finish_reason``."""
    reason = _INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_usage(usage: Any) -> dict[str, Any] | None:
    """A chat completions ``usage`` object as the Responses API's; None when absent or malformed."""
    normalised = usage_from_openai(usage)
    if normalised is None:
        return None
    reasoning = _dict(usage.get("completion_tokens_details")).get("reasoning_tokens")
    return {
        "input_tokens": normalised.input_tokens,
        "input_tokens_details": {
            "cached_tokens": normalised.cached_tokens,
            "cache_write_tokens": normalised.cache_creation_tokens,
        },
        "output_tokens": normalised.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning if isinstance(reasoning, int) else 0},
        "total_tokens": normalised.input_tokens + normalised.output_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, parts: list[tuple[str, str]], status: str) -> dict[str, Any]:
    """The assistant ``message`` output item; ``parts`` are ``("output_text" | "refusal", text)`` pairs."""
    content = [_text_part(text) if kind == "output_text" else _refusal_part(text) for kind, text in parts]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def function_call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """A ``function_call`` output item; its id is derived from the call id."""
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    request: dict[str, Any],
    *,
    response_id: str,
    created_at: Any,
    model: Any,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Responses API ``response`` object; request parameters are echoed back as the API does."""
    text = request.get("text")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if isinstance(created_at, int | float) else 0,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": _str(request.get("instructions")),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model if isinstance(model, str) else _str(request.get("model")) or "",
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "reasoning": request.get("reasoning") if isinstance(request.get("reasoning"), dict) else None,
        "temperature": request.get("temperature"),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "usage": usage,
        "metadata": request.get("metadata") or {},
    }


@dataclass(slots=True)
class _Message:
    item_id: str
    output_index: int
    parts: list[list[str]] = field(default_factory=list)  # [kind, text], in content_index order

    def part(self, kind: str) -> tuple[int, list[str]] | None:
        for index, part in enumerate(self.parts):
            if part[0] == kind:
                return index, part
        return None


@dataclass(slots=True)
class _Call:
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    output_index: int | None = None  # None until announced with response.output_item.added


class StreamTranslator:
    """Chat completion chunks in, Responses API stream events out; one instance per streamed request."""

    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._sequence = 0
        self._started = False
        self._ended = False
        self._upstream_id = "stream"
        self._created: Any = 0
        self._model: Any = None
        self._items: list[_Message | _Call] = []  # announced items, in output_index order
        self._message: _Message | None = None
        self._calls: dict[Any, _Call] = {}  # by the upstream's tool call index
        self._finish_reason: Any = None
        self._usage_raw: Any = None
        self._usage: Usage | None = None

    def feed(self, event: Event) -> tuple[list[Event], Usage | None]:
        data = event.data
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            self._usage_raw = data["usage"]
            self._usage = usage_from_openai(self._usage_raw)
        if self._ended:
            return [], self._usage
        out: list[Event] = []
        if data == DONE:
            if self._started:
                self._complete(out)
            else:
                self._fail(out, {"message": "The upstream stream ended without a response."})
        elif isinstance(data, dict) and data.get("error"):
            self._fail(out, _dict(data["error"]) or {"message": str(data["error"])})
        elif isinstance(data, dict):
            self._start(out, data)
            for choice in data.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._delta(out, _dict(choice.get("delta")))
                    if choice.get("finish_reason"):
                        self._finish_reason = choice["finish_reason"]
            if self._finish_reason and self._usage_raw is not None:
                self._complete(out)
        return out, self._usage

    def finish(self) -> list[Event]:
        out: list[Event] = []
        if self._ended:
            return out
        if self._finish_reason:
            self._complete(out)
        else:
            self._fail(out, {"message": "The upstream stream ended before the response was complete."})
        return out

    # -- events --------------------------------------------------------------------------------------------------

    def _emit(self, out: list[Event], kind: str, **payload: Any) -> None:
        out.append(Event(name=kind, data={"type": kind, **payload, "sequence_number": self._sequence}))
        self._sequence += 1

    def _response(
        self, status: str, output: list[dict[str, Any]] | None = None, usage: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        return response_object(
            self._request,
            response_id=f"resp_{self._upstream_id}",
            created_at=self._created,
            model=self._model,
            status=status,
            output=output or [],
            usage=usage,
            **extra,
        )

    def _start(self, out: list[Event], chunk: dict[str, Any]) -> None:
        if self._started:
            return
        self._started = True
        self._upstream_id = _str(chunk.get("id")) or self._upstream_id
        self._created = chunk.get("created", 0)
        self._model = chunk.get("model")
        self._emit(out, "response.created", response=self._response("in_progress"))
        self._emit(out, "response.in_progress", response=self._response("in_progress"))

    def _ensure_message(self, out: list[Event]) -> _Message:
        if self._message is None:
            self._message = _Message(f"msg_{self._upstream_id}", len(self._items))
            self._items.append(self._message)
            self._emit(
                out,
                "response.output_item.added",
                output_index=self._message.output_index,
                item=message_item(self._message.item_id, [], "in_progress"),
            )
        return self._message

    def _append_part(self, out: list[Event], kind: str, delta: str) -> None:
        message = self._ensure_message(out)
        found = message.part(kind)
        if found is None:
            found = len(message.parts), [kind, ""]
            message.parts.append(found[1])
            part = _text_part("") if kind == "output_text" else _refusal_part("")
            self._emit(out, "response.content_part.added", **self._where(message, found[0]), part=part)
        index, part_state = found
        part_state[1] += delta
        if not delta:
            return
        if kind == "output_text":
            self._emit(out, "response.output_text.delta", **self._where(message, index), delta=delta, logprobs=[])
        else:
            self._emit(out, "response.refusal.delta", **self._where(message, index), delta=delta)

    @staticmethod
    def _where(message: _Message, content_index: int) -> dict[str, Any]:
        return {"item_id": message.item_id, "output_index": message.output_index, "content_index": content_index}

    def _delta(self, out: list[Event], delta: dict[str, Any]) -> None:
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._append_part(out, "output_text", content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._append_part(out, "refusal", refusal)
        tool_calls = delta.get("tool_calls")
        for position, tool_call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
            if isinstance(tool_call, dict):
                self._tool_call_delta(out, tool_call, position)

    def _tool_call_delta(self, out: list[Event], tool_call: dict[str, Any], position: int) -> None:
        key = tool_call.get("index", position)
        call = self._calls.setdefault(key, _Call())
        function = _dict(tool_call.get("function"))
        # Identifiers arrive once; some servers repeat them in every delta, so the first one wins.
        call.call_id = call.call_id or _str(tool_call.get("id"))
        call.name = call.name or _str(function.get("name"))
        arguments = _str(function.get("arguments")) or ""
        call.arguments += arguments
        if call.output_index is None:
            if call.name:  # announce once the name is known; arguments seen so far go out as one delta
                self._announce(out, call, key)
                arguments = call.arguments
            else:
                return
        if arguments:
            self._emit(
                out,
                "response.function_call_arguments.delta",
                item_id=f"fc_{call.call_id}",
                output_index=call.output_index,
                delta=arguments,
            )

    def _announce(self, out: list[Event], call: _Call, key: Any) -> None:
        call.call_id = call.call_id or f"call_{self._upstream_id}_{key}"
        call.output_index = len(self._items)
        self._items.append(call)
        item = function_call_item(call.call_id, call.name or "", "", "in_progress")
        self._emit(out, "response.output_item.added", output_index=call.output_index, item=item)

    # -- the end -------------------------------------------------------------------------------------------------

    def _complete(self, out: list[Event]) -> None:
        self._ended = True
        status, details = outcome(self._finish_reason)
        for key, call in self._calls.items():
            if call.output_index is None:  # a call whose name never arrived
                self._announce(out, call, key)
        if not self._items:  # nothing was generated: the answer is an empty message
            self._append_part(out, "output_text", "")
        final: list[dict[str, Any]] = []
        for item in self._items:
            done = self._close(out, item, "incomplete" if status == "incomplete" else "completed")
            final.append(done)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        response = self._response(status, final, response_usage(self._usage_raw), incomplete_details=details)
        self._emit(out, kind, response=response)

    def _close(self, out: list[Event], item: _Message | _Call, status: str) -> dict[str, Any]:
        if isinstance(item, _Call):
            call_id = item.call_id or ""
            where = {"item_id": f"fc_{call_id}", "output_index": item.output_index}
            self._emit(out, "response.function_call_arguments.done", **where, arguments=item.arguments)
            done = function_call_item(call_id, item.name or "", item.arguments, status)
        else:
            for index, (kind, text) in enumerate(item.parts):
                where = self._where(item, index)
                if kind == "output_text":
                    self._emit(out, "response.output_text.done", **where, text=text, logprobs=[])
                    part = _text_part(text)
                else:
                    self._emit(out, "response.refusal.done", **where, refusal=text)
                    part = _refusal_part(text)
                self._emit(out, "response.content_part.done", **where, part=part)
            done = message_item(item.item_id, [(kind, text) for kind, text in item.parts], status)
        self._emit(out, "response.output_item.done", output_index=item.output_index, item=done)
        return done

    def _partial_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for item in self._items:
            if isinstance(item, _Call):
                items.append(function_call_item(item.call_id or "", item.name or "", item.arguments, "incomplete"))
            else:
                items.append(message_item(item.item_id, [(k, t) for k, t in item.parts], "incomplete"))
        return items

    def _fail(self, out: list[Event], error: dict[str, Any]) -> None:
        if not self._started:
            self._start(out, {})
        self._ended = True
        message = _str(error.get("message")) or "The upstream failed."
        code = _str(error.get("code")) or _str(error.get("type"))
        self._emit(out, "error", code=code, message=message, param=_str(error.get("param")))
        failed = {"code": code if code in _ERROR_CODES else "server_error", "message": message}
        response = self._response("failed", self._partial_items(), response_usage(self._usage_raw), error=failed)
        self._emit(out, "response.failed", response=response)
