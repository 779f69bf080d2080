"""Turn an upstream's stream into the client's stream: relayed as bytes when both speak the same API,
translated event by event otherwise.

Same-API relays decode only the events that carry usage. For OpenAI chat, the gateway always asks the upstream
for ``stream_options.include_usage`` so it can meter; when the client did not ask for usage, the relay removes
what that added (the ``"usage":null`` field of every chunk and the final usage-only chunk), so the client
receives exactly what it asked for.

Every relay also knows how to end a stream with an error in the client's API: OpenAI chat gets an error chunk
and ``[DONE]``; Anthropic an ``error`` event; a translated stream gets the error in the upstream's format fed
through its translator, so the client sees it in the translator's own, well-sequenced form.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from interlock.gateway.errors import AttemptFailure, GatewayError
from interlock.gateway.translate.base import DONE as DONE_DATA
from interlock.gateway.translate.base import Event, StreamTranslator
from interlock.gateway.upstream.sse import (
    DONE,
    EventSplitter,
    encode_data,
    encode_event,
    event_data,
    parse_event,
    split_events,
)
from interlock.gateway.usage.metering import Usage, usage_from_anthropic, usage_from_openai

__all__ = ["AnthropicStreamRelay", "OpenAIStreamRelay", "StreamRelay", "TranslatingRelay", "encode"]

_USAGE_KEY = b'"usage"'
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')
_NULL_USAGE = (b',"usage":null', b', "usage": null')


class StreamRelay(Protocol):
    @property
    def usage(self) -> Usage | None:
        """Usage seen in the stream so far."""

    def feed(self, chunk: bytes) -> bytes:
        """Bytes for the client for this upstream chunk (whole events only; may be empty)."""

    def finish(self) -> bytes:
        """What the client still needs once the upstream has ended."""

    def error(self, error: GatewayError) -> bytes:
        """The end of the client's stream, reporting ``error`` in the client's API."""


def encode(event: Event) -> bytes:
    payload = b"[DONE]" if event.data == DONE_DATA else orjson.dumps(event.data)
    return encode_event(event.name, payload) if event.name else encode_data(payload)


class OpenAIStreamRelay:
    """OpenAI chat in, OpenAI chat out."""

    __slots__ = ("_splitter", "client_wants_usage", "held_done", "saw_done", "usage")

    def __init__(self, *, client_wants_usage: bool) -> None:
        self._splitter = EventSplitter()
        self.client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self.saw_done = False
        self.held_done = False
        """``[DONE]`` came without usage for a client that asked for it: held back, for the gateway to send its
        estimate's usage chunk first (``Exchange.stream``)."""

    def feed(self, chunk: bytes) -> bytes:
        block = self._splitter.feed(chunk)
        if block:
            if _USAGE_KEY in block:
                block = self._filter_usage(block)
            if DONE in block:
                self.saw_done = True
                if self.client_wants_usage and self.usage is None:
                    block = block.replace(DONE, b"")
                    self.held_done = True
        return block

    def finish(self) -> bytes:
        tail = self._splitter.flush()
        return self._filter_usage(tail) if _USAGE_KEY in tail else tail

    def error(self, error: GatewayError) -> bytes:
        return encode_data(error.openai_body()) + DONE

    def _filter_usage(self, block: bytes) -> bytes:
        if not self.client_wants_usage:
            for null_usage in _NULL_USAGE:
                block = block.replace(null_usage, b"")
        if not any(marker in block for marker in _USAGE_OBJECT):
            return block
        kept = []
        for event in split_events(block):
            if any(marker in event for marker in _USAGE_OBJECT) and not self._take_usage(event):
                continue
            kept.append(event)
        return b"".join(kept)

    def _take_usage(self, event: bytes) -> bool:
        """Record the event's usage; return whether the event should still reach the client."""
        chunk = _json_payload(event)
        if chunk is None:
            return True
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        return self.client_wants_usage or bool(chunk.get("choices"))


class AnthropicStreamRelay:
    """Anthropic Messages in and out; decodes only ``message_start`` and ``message_delta`` (they carry usage)."""

    __slots__ = ("_splitter", "usage")

    def __init__(self) -> None:
        self._splitter = EventSplitter()
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        block = self._splitter.feed(chunk)
        if block and (b"message_start" in block or b"message_delta" in block):
            for event in split_events(block):
                if b"message_start" in event or b"message_delta" in event:
                    self._take_usage(event)
        return block

    def finish(self) -> bytes:
        return self._splitter.flush()

    def error(self, error: GatewayError) -> bytes:
        return encode_event("error", error.anthropic_body())

    def _take_usage(self, event: bytes) -> None:
        payload = _json_payload(event)
        if payload is None:
            return
        if payload.get("type") == "message_start" and isinstance(payload.get("message"), dict):
            self.usage = usage_from_anthropic(payload["message"].get("usage"), self.usage)
        elif payload.get("type") == "message_delta":
            self.usage = usage_from_anthropic(payload.get("usage"), self.usage)


class TranslatingRelay:
    """Any other pair: decode each upstream event, translate it, encode the client's events."""

    __slots__ = ("_splitter", "_translator", "_upstream_error", "usage")

    def __init__(self, translator: StreamTranslator, *, upstream_error: Any) -> None:
        self._splitter = EventSplitter()
        self._translator = translator
        self._upstream_error = upstream_error
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        block = self._splitter.feed(chunk)
        if not block:
            return b""
        out: list[bytes] = []
        for raw in split_events(block):
            name, data = parse_event(raw)
            if data is None:
                continue  # comments and keepalives end here; the gateway sends its own
            try:
                payload: Any = DONE_DATA if data == b"[DONE]" else orjson.loads(data)
            except orjson.JSONDecodeError:
                raise AttemptFailure("protocol", "the backend sent a stream event that is not JSON") from None
            events, usage = self._translator.feed(Event(payload, name))
            if usage is not None:
                self.usage = usage
            out.extend(encode(event) for event in events)
        return b"".join(out)

    def finish(self) -> bytes:
        tail = self._splitter.flush()
        return (self.feed(tail) if tail else b"") + b"".join(encode(e) for e in self._translator.finish())

    def error(self, error: GatewayError) -> bytes:
        events, _ = self._translator.feed(self._upstream_error(error))
        return b"".join(encode(e) for e in [*events, *self._translator.finish()])


def _json_payload(event: bytes) -> dict[str, Any] | None:
    data = event_data(event)
    if data is None:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None
