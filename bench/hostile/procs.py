"""Processes for the hostile-input benchmarks: upstreams and an ``interlock gateway`` from manifests, started in
a work directory, waited for, and stopped; the gateway's memory from ``/proc``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from interlock.gatewayconfig import compile_config
from interlock.resources import LLMBackend, Route

__all__ = ["CLIENT_KEY", "Running", "free_port", "gateway", "rss_mb", "upstream"]

CLIENT_KEY = "sk-bench-client-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory (``VmRSS``) of one process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    url: str
    ops_url: str = ""


async def _spawn(argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out, start_new_session=True
        )


async def _ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{proc} exited; see {log}")
            try:
                if (await http.get(url)).status_code in (200, 404):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"not ready within 60s: {url}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@asynccontextmanager
async def upstream(work: Path, name: str, text: str | None = None) -> AsyncIterator[Running]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.hostile.upstream", "--port", str(port)]
    if text is not None:
        (work / f"{name}.txt").write_text(text)
        argv += ["--text-file", str(work / f"{name}.txt")]
    log = work / f"{name}.log"
    proc = await _spawn(argv, log)
    try:
        await _ready(f"http://127.0.0.1:{port}/", proc, log)
        yield Running(proc, f"http://127.0.0.1:{port}/v1")
    finally:
        await _stop(proc)


@asynccontextmanager
async def gateway(
    work: Path,
    upstreams: Mapping[str, str],
    routes: Mapping[str, tuple[str, str]],
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Running]:
    """``interlock gateway`` with an OpenAI backend per ``upstreams`` entry (name -> URL, credential ``sk-up``) and
    ``routes`` (public model -> (backend, upstream model)); clients use ``CLIENT_KEY``."""
    backends: list[Any] = [
        LLMBackend.model_validate(
            {
                "apiVersion": "interlock.dev/v1alpha1",
                "kind": "LLMBackend",
                "metadata": {"name": name},
                "spec": {
                    "provider": "openai",
                    "url": url,
                    "credentialsSecretRef": {"name": "upstream", "key": "api-key"},
                    "models": [{"name": m} for m in sorted({m for (b, m) in routes.values() if b == name})],
                },
            }
        )
        for name, url in upstreams.items()
    ]
    manifests: list[Any] = [
        Route.model_validate(
            {
                "apiVersion": "interlock.dev/v1alpha1",
                "kind": "Route",
                "metadata": {"name": model},
                "spec": {"model": model, "targets": [{"backend": b, "model": m}], "retry": {"attempts": 1}},
            }
        )
        for model, (b, m) in routes.items()
    ]
    config = work / "gateway.json"
    config.write_bytes(compile_config(backends, manifests).to_json())
    secrets = work / "secrets" / "upstream"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "api-key").write_text("sk-up-0123456789")
    port, ops_port = free_port(), free_port()
    argv = [
        sys.executable, "-m", "interlock", "--log-level", "warning", "gateway",
        "--config", str(config), "--port", str(port), "--ops-port", str(ops_port),
    ]  # fmt: skip
    log = work / "gateway.log"
    settings = {
        "INTERLOCK_GATEWAY_API_KEYS": json.dumps([CLIENT_KEY]),
        "INTERLOCK_GATEWAY_SECRETS_DIR": str(work / "secrets"),
        "OTEL_SDK_DISABLED": "true",
        **(env or {}),
    }
    proc = await _spawn(argv, log, settings)
    try:
        await _ready(f"http://127.0.0.1:{ops_port}/readyz", proc, log)
        yield Running(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}")
    finally:
        await _stop(proc)
