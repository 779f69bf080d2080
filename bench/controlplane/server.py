"""One real ``interlock api`` process (uvicorn) on a free loopback port, and its CPU time from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx

__all__ = ["ADMIN_TOKEN", "SIGNING_KEY", "ApiProcess"]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "bench-admin-token-0123456789abcdefXYZ"
SIGNING_KEY = "bench-gateway-signing-key-0123456789abcdefXYZ"
_TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ApiProcess:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ApiProcess:
        env = {**os.environ, "DATABASE_URL": self.database_url, "INTERLOCK_API_ENVIRONMENT": "development",
               "INTERLOCK_API_ADMIN_TOKEN": ADMIN_TOKEN, "INTERLOCK_API_GATEWAY_SIGNING_KEY": SIGNING_KEY}  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "interlock", "--log-level", "WARNING", "api", "--port", str(self.port),
            env=env, cwd=ROOT,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise SystemExit("interlock api did not start")

    async def __aexit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            await self._process.wait()

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the API process so far."""
        assert self._process is not None
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
