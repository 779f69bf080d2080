"""Turn an upstream's stream into the client's stream: relayed as bytes when both speak the same API,
translated event by event otherwise.

Every event is checked before it goes on: it must be SSE (``sse.parse_strict``), no larger than the gateway's
``max_sse_event_bytes``, and carry JSON (or ``[DONE]``); a stream that ends without a single event is broken too.
A broken stream raises ``AttemptFailure("protocol")``, which the exchange turns into one in-stream error event in
the client's API and a proper end: the client never receives garbage, nor an empty "successful" answer.

Same-API relays forward the upstream's bytes as they are. For OpenAI chat, the gateway always asks the upstream
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
    DEFAULT_MAX_EVENT_BYTES,
    DONE,
    EventSplitter,
    SSEError,
    encode_data,
    encode_event,
    parse_strict,
    split_events,
)
from interlock.gateway.usage.metering import Usage, usage_from_anthropic, usage_from_openai

__all__ = ["AnthropicStreamRelay", "OpenAIStreamRelay", "StreamRelay", "TranslatingRelay", "encode"]

_USAGE_KEY = b'"usage"'
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')
_NULL_USAGE = (b',"usage":null', b', "usage": null')
_NO_EVENTS = "the stream ended without a single event"
_SEP = b"\n\n"


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


def broken(exc: SSEError | str) -> AttemptFailure:
    """The failure of an attempt whose stream broke (``exc``: what was wrong)."""
    limit = exc.limit if isinstance(exc, SSEError) else None
    return AttemptFailure("protocol", f"the backend's stream is broken: {exc}", limit=limit)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise SSEError("an event's data is not JSON") from None
    if not isinstance(payload, dict):
        raise SSEError("an event's data is not a JSON object")
    return payload


class OpenAIStreamRelay:
    """OpenAI chat in, OpenAI chat out."""

    __slots__ = ("_max", "_splitter", "client_wants_usage", "events", "held_done", "saw_done", "usage")

    def __init__(self, *, client_wants_usage: bool, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._splitter = EventSplitter(max_event_bytes)
        self._max = max_event_bytes
        self.client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self.saw_done = False
        self.events = 0
        self.held_done = False
        """``[DONE]`` came without usage for a client that asked for it: held back, for the gateway to send its
        estimate's usage chunk first (``Exchange.stream``)."""

    def feed(self, chunk: bytes) -> bytes:
        try:
            block = self._splitter.feed(chunk)
            return self._relay(block) if block else block
        except SSEError as exc:
            raise broken(exc) from None

    def finish(self) -> bytes:
        try:
            tail = self._splitter.flush()
            out = self._relay(tail) if tail else tail
        except SSEError as exc:
            raise broken(exc) from None
        if not self.events:
            raise broken(_NO_EVENTS)
        return out

    def error(self, error: GatewayError) -> bytes:
        return encode_data(error.openai_body()) + DONE

    def _relay(self, block: bytes) -> bytes:
        """Check every event of ``block``; take usage from the chunk that carries it; drop what the client did
        not ask for."""
        if not self.client_wants_usage and _USAGE_KEY in block:
            for null_usage in _NULL_USAGE:
                block = block.replace(null_usage, b"")
        if block.find(_SEP) == len(block) - 2:  # one event: the usual read
            return block if self._keep(block) else b""
        events = split_events(block)
        kept = [event for event in events if self._keep(event)]
        return block if len(kept) == len(events) else b"".join(kept)

    def _keep(self, event: bytes) -> bool:
        """Check one event; whether it goes on to the client. (The usual ``data: {...}`` event is checked inline:
        this runs for every chunk of every stream.)"""
        if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2 and len(event) <= self._max:
            data = event[6:-2]
        else:
            _, parsed = parse_strict(event, self._max)
            if parsed is None:
                return True
            data = parsed
        self.events += 1
        if data == b"[DONE]":
            self.saw_done = True
            if self.client_wants_usage and self.usage is None:
                self.held_done = True
                return False
            return True
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise SSEError("an event's data is not JSON") from None
        if type(payload) is not dict:
            raise SSEError("an event's data is not a JSON object")
        if _USAGE_OBJECT[0] in data or _USAGE_OBJECT[1] in data:
            return self._take_usage(payload)
        return True

    def _take_usage(self, chunk: dict[str, Any]) -> bool:
        """Record the chunk's usage; return whether the chunk should still reach the client."""
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        return self.client_wants_usage or bool(chunk.get("choices"))


class AnthropicStreamRelay:
    """Anthropic Messages in and out; checks every event, takes usage from ``message_start`` and
    ``message_delta``."""

    __slots__ = ("_max", "_splitter", "events", "usage")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._splitter = EventSplitter(max_event_bytes)
        self._max = max_event_bytes
        self.usage: Usage | None = None
        self.events = 0

    def feed(self, chunk: bytes) -> bytes:
        try:
            block = self._splitter.feed(chunk)
            if block:
                self._check(block)
        except SSEError as exc:
            raise broken(exc) from None
        return block

    def finish(self) -> bytes:
        try:
            tail = self._splitter.flush()
            if tail:
                self._check(tail)
        except SSEError as exc:
            raise broken(exc) from None
        if not self.events:
            raise broken(_NO_EVENTS)
        return tail

    def error(self, error: GatewayError) -> bytes:
        return encode_event("error", error.anthropic_body())

    def _check(self, block: bytes) -> None:
        for event in (block,) if block.find(_SEP) == len(block) - 2 else split_events(block):
            _, data = parse_strict(event, self._max)
            if data is None:
                continue
            self.events += 1
            payload = _json_object(data)
            kind = payload.get("type")
            if kind == "message_start" and isinstance(payload.get("message"), dict):
                self.usage = usage_from_anthropic(payload["message"].get("usage"), self.usage)
            elif kind == "message_delta":
                self.usage = usage_from_anthropic(payload.get("usage"), self.usage)


class TranslatingRelay:
    """Any other pair: decode each upstream event, translate it, encode the client's events."""

    __slots__ = ("_events", "_max", "_splitter", "_translator", "_upstream_error", "usage")

    def __init__(
        self, translator: StreamTranslator, *, upstream_error: Any, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        self._splitter = EventSplitter(max_event_bytes)
        self._max = max_event_bytes
        self._translator = translator
        self._upstream_error = upstream_error
        self._events = 0
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        try:
            block = self._splitter.feed(chunk)
            return self._translate(block) if block else b""
        except SSEError as exc:
            raise broken(exc) from None

    def _translate(self, block: bytes) -> bytes:
        out: list[bytes] = []
        for raw in split_events(block):
            name, data = parse_strict(raw, self._max)
            if data is None:
                continue  # comments and keepalives end here; the gateway sends its own
            self._events += 1
            payload: Any = DONE_DATA if data == b"[DONE]" else _json_object(data)
            events, usage = self._translator.feed(Event(payload, name))
            if usage is not None:
                self.usage = usage
            out.extend(encode(event) for event in events)
        return b"".join(out)

    def finish(self) -> bytes:
        try:
            tail = self._splitter.flush()
            out = self._translate(tail) if tail else b""
        except SSEError as exc:
            raise broken(exc) from None
        if not self._events:
            raise broken(_NO_EVENTS)
        return out + b"".join(encode(e) for e in self._translator.finish())

    def error(self, error: GatewayError) -> bytes:
        events, _ = self._translator.feed(self._upstream_error(error))
        return b"".join(encode(e) for e in [*events, *self._translator.finish()])
