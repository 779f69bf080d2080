"""Noticing at once that the client went away, while the mock waits (a fault's delay, stream pacing).

Once the body is read, ASGI reports a disconnect only through ``receive()``. A watcher task reads it; the
waits here wake as soon as it fires, so a stream stops generating within the event loop's latency, not at its
next chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from interlock.mockprovider.asgi import Receive

__all__ = ["DisconnectWatch"]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class DisconnectWatch:
    """Call ``close()`` before sending the last body message: afterwards ``receive()`` reports a disconnect."""

    __slots__ = ("_on_disconnect", "_sleeper", "_task", "gone")

    def __init__(self, receive: Receive, on_disconnect: Callable[[float], None]) -> None:
        self.gone = False
        self._on_disconnect = on_disconnect
        self._sleeper: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task = None
        self._on_disconnect(time.monotonic())
        if self._sleeper is not None:
            _wake(self._sleeper)

    async def sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds or until the client leaves; True while the client is still there.

        At least ``delay`` seconds of ``time.monotonic``: a loop's timers may fire early by their granularity
        (uvloop's is a millisecond), and a simulated decode step must not be shorter than the model says."""
        if self.gone:
            return False
        if delay <= 0:
            return True
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + delay
        while True:
            self._sleeper = sleeper = loop.create_future()
            timer = loop.call_later(delay, _wake, sleeper)
            try:
                await sleeper
            finally:
                timer.cancel()
                self._sleeper = None
            delay = deadline - time.monotonic()
            if self.gone or delay <= 0:
                return not self.gone

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
