"""Gateway processes (``python -m interlock gateway``) for tests that need more than one, or a real restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.support import eventually

__all__ = ["GatewayProcess", "free_port", "gateway_process", "tail"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(log: Path) -> str:
    return log.read_text()[-2000:]


class GatewayProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path, ops_port: int) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.ops_port = ops_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The ops port: /readyz and /metrics."""
        return f"http://127.0.0.1:{self.ops_port}"

    async def stop(self) -> int:
        """SIGTERM, the way Kubernetes stops a pod: uvicorn finishes its requests, then the lifespan shutdown."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            return await self.proc.wait()


@asynccontextmanager
async def gateway_process(
    config_file: Path, env: Mapping[str, str], log: Path, *, port: int | None = None
) -> AsyncIterator[GatewayProcess]:
    """A gateway process serving ``config_file`` with ``env`` added to the environment, ready when yielded."""
    port = port or free_port()
    ops_port = free_port()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "interlock", "--log-level", "WARNING", "gateway",
            "--config", str(config_file), "--port", str(port), "--ops-port", str(ops_port),
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out,
        )  # fmt: skip
    gateway = GatewayProcess(proc, port, log, ops_port)
    try:
        async with httpx.AsyncClient(base_url=gateway.ops_url) as http:

            async def ready() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"gateway exited with {proc.returncode}: {tail(log)}")
                try:
                    return (await http.get(f"{gateway.ops_url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False
                # (the client port answers once the config is loaded, which /readyz has just said)

            await eventually(ready, within=30, interval=0.05, what="gateway process ready")
        yield gateway
    finally:
        code = await gateway.stop()
        assert code in (0, -signal.SIGTERM), f"gateway exited with {code}: {tail(log)}"
