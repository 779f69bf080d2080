"""Relay an OpenAI-format chat stream as bytes, touching only what metering and the client's request need.

The gateway always asks the upstream for ``stream_options.include_usage`` so it can meter. When the client did
not ask for usage, the relay removes what that added (the ``"usage":null`` field of every chunk and the final
usage-only chunk), so the client receives exactly what it asked for. Events are decoded only when they carry
usage; everything else is forwarded as the upstream wrote it.
"""

from __future__ import annotations

from typing import Any

import orjson

from interlock.gateway.metering import Usage, usage_from_openai
from interlock.gateway.sse import DONE, EventSplitter, event_data, split_events

__all__ = ["OpenAIStreamRelay"]

_USAGE_KEY = b'"usage"'
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')
_NULL_USAGE = (b',"usage":null', b', "usage": null')


class OpenAIStreamRelay:
    __slots__ = ("_splitter", "client_wants_usage", "saw_done", "usage")

    def __init__(self, *, client_wants_usage: bool) -> None:
        self._splitter = EventSplitter()
        self.client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self.saw_done = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send the client for this upstream chunk (whole events only; may be empty)."""
        block = self._splitter.feed(chunk)
        if block:
            if _USAGE_KEY in block:
                block = self._filter_usage(block)
            if DONE in block:
                self.saw_done = True
        return block

    def finish(self) -> bytes:
        """Whatever was left unterminated when the upstream closed."""
        tail = self._splitter.flush()
        return self._filter_usage(tail) if _USAGE_KEY in tail else tail

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
        data = event_data(event)
        if data is None:
            return True
        try:
            chunk: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        return self.client_wants_usage or bool(chunk.get("choices"))
