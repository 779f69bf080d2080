"""``python -m interlock.mockprovider`` in a child process, for the tests of the module's command line."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import httpx

from tests.support import eventually

__all__ = ["mock_process"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def mock_process(*args: str, ready_path: str) -> AsyncIterator[httpx.AsyncClient]:
    """The module serving with ``args`` on a free port, once ``ready_path`` answers 200; a client for it."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "interlock.mockprovider", "--port", str(port), *args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def up() -> bool:
                try:
                    return (await http.get(ready_path)).status_code == 200
                except httpx.TransportError:
                    return process.returncode is not None  # ends the wait; the assertion below reports it

            await eventually(up, within=10, interval=0.05, what="mock provider listening")
            assert process.returncode is None
            yield http
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
