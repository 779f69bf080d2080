"""Limits on what a client may cost the gateway before a request reaches it: header bytes and time, body time,
idle keep-alive connections. Envoy's listener limits and Go's ``http.Server`` timeouts are the model.

uvicorn enforces none of these for httptools (a client may send headers forever, one byte a minute), so
``limited_protocol`` subclasses its ``HttpToolsProtocol`` (the class is passed to uvicorn as ``http=``):

- **header bytes** (``max_header_bytes``): the request line and headers of one request, counted as they arrive;
  over the limit the client gets ``431`` and the connection closes. Bytes are counted per read, so a read that
  also carries the previous request's body counts in full: the limit is never looser than configured.
- **header timeout** (``header_timeout_s``): from the connection's start (its first request) or a request's first
  byte (later ones) to the end of its headers; then ``408`` and close. This is what stops slowloris.
- **body timeout** (``body_timeout_s``): from the end of the headers to the end of the body; then ``408`` (when
  no response has started) and close; the request sees a disconnect.
- **idle timeout** (``idle_timeout_s``): a keep-alive connection without a request in flight is closed (uvicorn's
  ``timeout_keep_alive``).

Each trip counts in ``interlock_limit_trips_total{limit}``. Timeouts are checked by one sweep per server every
``tick_s`` (a quarter of the shortest timeout, at most one second), not by a timer per request: a request only
stores a deadline. A timeout therefore fires up to one tick late.

What it relies on in uvicorn (pinned in ``pyproject.toml``, checked by ``tests/gateway/test_http_limits.py``):
``HttpToolsProtocol``'s parser callbacks (``on_message_begin``, ``on_headers_complete``, ``on_message_complete``),
``data_received``, ``connection_made``/``connection_lost``, ``timeout_keep_alive_handler``, and its ``cycle``
(``response_started``, ``disconnected``, ``message_event``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpLimits", "LimitedHttpToolsProtocol", "limited_protocol"]

log = logging.getLogger("interlock.gateway")

_HEAD, _BODY, _NONE = 1, 2, 0
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0

    @property
    def tick_s(self) -> float:
        return min(1.0, self.header_timeout_s / 4, self.body_timeout_s / 4)


def _error_response(status: int, message: str, code: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        _REASONS[status],
        len(body),
        body,
    )


class _Sweeper:
    """One server's limits and trip counter; expires its connections' header and body deadlines, one tick at a
    time."""

    def __init__(self, limits: HttpLimits, on_trip: Callable[[str], None]) -> None:
        self.limits = limits
        self.on_trip = on_trip
        self.tick_s = limits.tick_s
        self.active: set[LimitedHttpToolsProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, protocol: LimitedHttpToolsProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.active.add(protocol)
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self.tick_s, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        if not self.active:
            self._handle = None  # restarted by the next connection
            return
        self._handle = loop.call_later(self.tick_s, self._tick)  # first: one connection's failure stops no sweep
        now = loop.time()
        for protocol in [p for p in self.active if p.phase and p.deadline <= now]:
            try:
                protocol.expire()
            except Exception:  # a transport in a state nobody expected: drop it, keep sweeping
                log.exception("closing a connection past its limit failed")
                protocol.transport.abort()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``HttpLimits`` (made per server by ``limited_protocol``)."""

    sweeper: ClassVar[_Sweeper] = _Sweeper(HttpLimits(), lambda limit: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = self.sweeper.limits
        self.on_trip = self.sweeper.on_trip
        self.phase = _NONE
        self.deadline = 0.0
        self._head_bytes = 0

    # --- connection ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter(_HEAD, self.limits.header_timeout_s)
        self.sweeper.add(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = _NONE
        self.sweeper.active.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.phase == _HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
                self._refuse(
                    431,
                    f"The request's headers exceed the limit of {self.limits.max_header_bytes} bytes.",
                    "request_header_too_large",
                    "header_bytes",
                )

    # --- parser callbacks -----------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase != _HEAD:  # a later request on a kept-alive connection: its clock starts now
            self._enter(_HEAD, self.limits.header_timeout_s)
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._enter(_BODY, self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.phase = _NONE
        super().on_message_complete()

    # --- limits ---------------------------------------------------------------------------------------------

    def _enter(self, phase: int, timeout_s: float) -> None:
        self.phase = phase
        self.deadline = self.loop.time() + timeout_s

    def expire(self) -> None:
        """The sweep found this connection past its header or body deadline."""
        phase, self.phase = self.phase, _NONE
        if self.transport.is_closing():
            return
        if phase == _HEAD:
            self._refuse(
                408,
                f"The request's headers did not arrive within {self.limits.header_timeout_s:g}s.",
                "request_timeout",
                "header_timeout",
            )
            return
        self.on_trip("body_timeout")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(
                _error_response(
                    408,
                    f"The request's body did not arrive within {self.limits.body_timeout_s:g}s.",
                    "request_timeout",
                )
            )
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() now answers http.disconnect, its send() nothing
            cycle.message_event.set()
        self.transport.close()

    def _refuse(self, status: int, message: str, code: str, limit: str) -> None:
        self.phase = _NONE
        self.on_trip(limit)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # between requests: the client is owed nothing else
            self.transport.write(_error_response(status, message, code))
        self.transport.close()

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self.on_trip("idle_timeout")
        super().timeout_keep_alive_handler()


def limited_protocol(limits: HttpLimits, on_trip: Callable[[str], None]) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for one uvicorn server (``uvicorn.Config(http=...)``), with its limits and trip counter.
    Pass ``timeout_keep_alive=limits.idle_timeout_s`` to the same config."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"sweeper": _Sweeper(limits, on_trip)})
