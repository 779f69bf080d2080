"""Run ASGI apps with uvicorn inside an event loop that is already running (``interlock up``, the embedded
mock provider, tests), and bind listening sockets up front, so a command can tell "port in use" in one line before
it has written anything."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["EmbeddedServer", "ListenError", "bind_listener"]


class ListenError(Exception):
    """A port that cannot be listened on; the message says which, why, and what to do."""


_REASONS = {
    errno.EADDRINUSE: "the address is already in use (another server is running there)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "that address is not on this machine",
}


def bind_listener(host: str, port: int, *, option: str, host_option: str = "--host") -> socket.socket:
    """A socket bound and listening on ``host:port``, for uvicorn to serve on; ``ListenError`` names ``option``
    (the flag or setting that chose the port, or ``host_option`` when the address is the problem) when it cannot
    be had."""
    if not 0 <= port <= 65535:
        raise ListenError(f"cannot listen on {host}:{port}: a port is 0 to 65535 (0: any free port); see {option}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).split(" (while attempting")[0].lower()
        # Negative numbers are getaddrinfo's: the host name does not resolve.
        address = (exc.errno or 0) < 0 or exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
        fix = host_option if address else option
        raise ListenError(f"cannot listen on {host}:{port}: {reason}; choose another with {fix}") from None
    except UnicodeError as exc:  # a host name that is not a valid name at all
        raise ListenError(f"cannot listen on {host}:{port}: {exc}; choose another with {host_option}") from None
    sock.setblocking(False)
    return sock


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
        options.setdefault("log_config", None)  # the process's logging (text or JSON) applies to uvicorn too
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

    async def start(self, timeout_s: float = 10.0, *, sock: socket.socket | None = None) -> str:
        """Serve (on ``sock`` when given, bound by ``bind_listener``) and return the URL once listening."""
        self._task = asyncio.create_task(self.server.serve(sockets=[sock] if sock is not None else None))
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
