"""``python -m interlock.mockprovider`` serves the mock in its own process, driven over the control endpoints."""

from __future__ import annotations

import asyncio
import socket
import sys

import httpx
import pytest

from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_module_serves_the_mock_in_another_process() -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "interlock.mockprovider", "--port", str(port), "--chunk-delay", "0.001", "--stream-chunks", "5"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/v1/models")).status_code == 200
                except httpx.TransportError:
                    return process.returncode is not None  # ends the wait; the assertion below reports it

            await eventually(up, within=10, interval=0.05, what="mock provider listening")
            assert process.returncode is None
            await http.post("/_mock/faults", json=[{"status": 503, "retry_after": 1}])
            failed = await http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
            assert (failed.status_code, failed.headers["retry-after"]) == (503, "1")
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            streamed = await http.post("/v1/chat/completions", json=body)
            assert streamed.text.count('"content":') == 6  # the role chunk and five pieces
            stats = (await http.get("/_mock/stats")).json()
            assert stats["by_path"] == {"/v1/models": 1, "/v1/chat/completions": 2}
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
