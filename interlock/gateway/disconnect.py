"""Cancel upstream work the moment the client goes away.

ASGI reports a disconnect only through ``receive()``, which nobody reads once the body is in. While a request
waits on its upstream, a watcher task reads it and cancels the request task, which closes the upstream
connection on its way out, so the upstream sees the disconnect at once instead of generating for nobody.

The watcher is a task, and a task costs more than a whole fast request's routing work; so it starts only once
the request has run for ``arm_after_s`` (a timer handle until then). Requests that finish sooner never pay for
it, and a client that leaves is noticed within that delay.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from interlock.gateway.asgi import Receive

__all__ = ["ClientDisconnected", "cancel_on_disconnect"]

ARM_AFTER_S = 0.05


class ClientDisconnected(Exception):
    """The client closed the connection before the response was complete."""


class cancel_on_disconnect:  # lower case: it reads as a statement, ``with cancel_on_disconnect(receive):``
    __slots__ = ("_arm_after_s", "_handle", "_receive", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive, arm_after_s: float = ARM_AFTER_S) -> None:
        self._receive = receive
        self._arm_after_s = arm_after_s
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.gone = False

    def __enter__(self) -> cancel_on_disconnect:
        self._task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self._arm_after_s, self._arm)
        return self

    def _arm(self) -> None:
        self._handle = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                if self._task is not None:
                    self._task.cancel()
                return

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if self.gone and self._task is not None and self._task.uncancel() == 0:
            raise ClientDisconnected from None
