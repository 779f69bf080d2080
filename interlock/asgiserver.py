"""Run ASGI apps with uvicorn inside an event loop that is already running (``interlock up``, the embedded
mock provider, tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["EmbeddedServer"]


class _QuietServer(uvicorn.Server):
    """Leaves signal handling to the owner of the loop, which may run several servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        options.setdefault("log_level", "warning")
        options.setdefault("access_log", False)
        options.setdefault("lifespan", "auto")
        self.server = _QuietServer(uvicorn.Config(app, host=host, port=port, **options))
        self.host = host
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> str:
        self._task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(timeout_s):
            while not self.server.started:
                if self._task.done():
                    await self._task
                    raise RuntimeError("server exited during startup")
                await asyncio.sleep(0.01)
        return self.url

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        await self._task
        self._task = None
