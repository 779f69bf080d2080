"""``EventStreamWriter``: sends one SSE response, with a comment keepalive while the stream is silent.

The response is committed (status and headers sent) on the first write or the first keepalive; from then on the
status cannot change, so errors become in-stream events. The keepalive is driven by a timer handle, not a task
per stream, and only spawns a task on the rare tick that actually has to write.
"""

from __future__ import annotations

import asyncio

from interlock.gateway.http.asgi import Send
from interlock.gateway.upstream.sse import KEEPALIVE

__all__ = ["EventStreamWriter"]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamWriter:
    __slots__ = (
        "_closed",
        "_handle",
        "_keepalive_s",
        "_last_write",
        "_lock",
        "_loop",
        "_send",
        "_task",
        "backend",
        "committed",
        "extra_headers",
    )

    def __init__(self, send: Send, *, keepalive_s: float) -> None:
        self._send = send
        self._keepalive_s = keepalive_s
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._last_write = self._loop.time()
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.committed = False
        self.backend = ""
        self.extra_headers: list[tuple[bytes, bytes]] = []

    def start_keepalive(self) -> None:
        self._handle = self._loop.call_later(self._keepalive_s, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        idle = self._loop.time() - self._last_write
        if idle >= self._keepalive_s * 0.999 and (self._task is None or self._task.done()):
            self._task = self._loop.create_task(self.write(KEEPALIVE))
            idle = 0.0
        self._handle = self._loop.call_later(self._keepalive_s - idle, self._tick)

    async def _commit(self) -> None:
        self.committed = True
        headers = [*_SSE_HEADERS, *self.extra_headers]
        if self.backend:
            headers.append((b"x-interlock-backend", self.backend.encode()))
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def write(self, data: bytes) -> None:
        if not data or self._closed:
            return
        self._last_write = self._loop.time()
        async with self._lock:
            if not self.committed:
                await self._commit()
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def close(self, final: bytes = b"") -> None:
        """Send ``final`` (if any) and end the response; stops the keepalive."""
        if self._handle is not None:
            self._handle.cancel()
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            if not self.committed:
                await self._commit()
            await self._send({"type": "http.response.body", "body": final, "more_body": False})

    def cancel(self) -> None:
        """Stop the keepalive without writing (the client is gone)."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
        if self._task is not None:
            self._task.cancel()
