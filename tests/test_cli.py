"""The ``interlock`` command's other entry points, as processes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import openai
import pytest

import interlock
from interlock.cli import build_parser
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
    port, ops_port = free_port(), free_port()
    env = {**os.environ, "INTERLOCK_GATEWAY_API_KEYS": '["sk-il-cluster"]'}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "gateway", "--config", str(config_file), "--port", str(port),
        "--ops-port", str(ops_port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}") as ops:

            async def ready() -> bool:
                try:
                    return (await ops.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=20, interval=0.1, what="gateway ready on its ops port")
            assert "interlock_requests_total" in (await ops.get("/metrics")).text
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            for path in ("/readyz", "/metrics"):
                assert (await http.get(path)).status_code == 404, f"{path} is not on the client port"
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


async def test_version():
    code, out = await run("--version")
    assert (code, out) == (0, f"interlock {interlock.__version__}\n")


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action, str]]:
    """(command, option, its line(s) of --help) for every option of the command and its subcommands."""
    found = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = [("interlock", parser)] + [(f"interlock {n}", p) for s in subs for n, p in s.choices.items()]
    for name, command in commands:
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            found.append((name, action, formatter._expand_help(action) if action.help else ""))
    return found


def test_every_option_has_help_that_says_its_default():
    options = _options(build_parser())
    assert len(options) > 20
    for command, action, text in options:
        flag = "/".join(action.option_strings)
        assert text, f"{command} {flag} has no help text"
        assert "default" in text, f"{command} {flag}: the help does not say the default: {text!r}"


@pytest.mark.parametrize("where", ["before", "after"])
async def test_global_options_work_before_and_after_the_subcommand(tmp_path, where):
    out = tmp_path / "crds"
    options = ["--log-level", "debug", "--log-format", "json"]
    command = ["render-crds", "--out", str(out)]
    args = [*options, *command] if where == "before" else [*command, *options]
    parsed = build_parser().parse_args(args)
    assert (parsed.log_level, parsed.log_format) == ("DEBUG", "json")
    code, printed = await run(*args)
    assert code == 0, printed
    assert sorted(p.name for p in out.iterdir()) == sorted(render_crds())


async def test_json_logs_are_one_object_per_line(tmp_path):
    config_file = tmp_path / "gateway.json"
    config_file.write_text("{}")
    port = free_port()
    env = {**os.environ, "INTERLOCK_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "gateway", "--config", str(config_file), "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=20, interval=0.1, what="gateway up")
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            out, _ = await proc.communicate()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines, "the gateway logged nothing"
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    assert any("gateway config" in line["message"] and "loaded" in line["message"] for line in lines)


async def test_gateway_port_in_use_is_one_line(tmp_path):
    config_file = tmp_path / "gateway.json"
    config_file.write_text("{}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = await run("gateway", "--config", str(config_file), "--port", str(port))
    assert code == 1
    assert out == (
        f"interlock gateway: cannot listen on 127.0.0.1:{port}: the address is already in use (another server is "
        "running there); choose another with --port or INTERLOCK_GATEWAY_PORT\n"
    )
