"""The ``interlock`` command's other entry points, as processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import openai

from interlock.gatewayconfig import compile_config
from interlock.resources import load_manifests
from interlock.resources.crdgen import render_crds
from interlock.resources.manifests import manifest_files
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_render_crds_writes_the_generated_files(tmp_path):
    code, out = await run("render-crds", "--out", str(tmp_path))
    assert code == 0, out
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(render_crds())
    for name in written:
        assert (tmp_path / name).read_text() == (ROOT / "operator" / "crds" / name).read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_gateway_command_serves_a_compiled_config_file(tmp_path):
    manifests = load_manifests(manifest_files(ROOT / "examples" / "local"))
    config_file = tmp_path / "gateway.json"
    config_file.write_bytes(compile_config(manifests.backends, manifests.routes).to_json())
    port = free_port()
    env = {**os.environ, "INTERLOCK_GATEWAY_API_KEYS": '["sk-il-cluster"]'}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "gateway", "--config", str(config_file), "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=20, interval=0.1, what="gateway ready")
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-il-cluster", max_retries=0
        ) as client:
            answer = await client.chat.completions.create(
                model="chat-default", messages=[{"role": "user", "content": "Hello"}]
            )
            assert answer.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why it stopped.
            assert await proc.wait() in (0, -signal.SIGTERM)


async def test_gateway_command_without_a_config_says_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    code, out = await run("gateway", env=env)
    assert code == 2
    assert "INTERLOCK_GATEWAY_CONFIG_FILE" in out
