"""Gateways wired to a control plane (``ContractServer``) for the enforcement and usage tests."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.gateway.contract_server import TOKEN, ContractServer, gateway_id
from tests.gateway.harness import Factory, Gateway, Upstream, backend, config, route

__all__ = ["HELLO", "chat_config", "client_for", "cp_settings", "start_cp_gateway"]

HELLO = [{"role": "user", "content": "Hello there"}]


def chat_config(up: Upstream, **route_spec: Any) -> Any:
    return config(backend("a", up.url), route("chat", [("a", "m1")], **route_spec))


def cp_settings(cp: ContractServer, spool: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "control_plane_url": cp.url,
        "control_plane_token": TOKEN,
        "gateway_id": gateway_id(f"gw-{uuid.uuid4().hex[:8]}"),
        "spool_path": spool,
        "snapshot_interval_s": 0.1,
        "usage_sync_interval_s": 0.01,
        "usage_retry_max_s": 0.2,
    }
    settings.update(overrides)
    return settings


async def start_cp_gateway(
    gateway: Factory, cp: ContractServer, up: Upstream, tmp_path: Path, *, key: str, **overrides: Any
) -> Gateway:
    gw: Gateway = await gateway(
        chat_config(up, **overrides.pop("route_spec", {})),
        keys=None,
        api_key=key,
        **cp_settings(cp, tmp_path / "spool", **overrides),
    )
    return gw


def client_for(gw: Gateway, key: str, stack: AsyncExitStack) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=f"{gw.root}/v1", api_key=key, max_retries=0, timeout=20)
    stack.push_async_callback(client.close)
    return client


async def ops_get(gw: Gateway, path: str) -> httpx.Response:
    """``GET path`` where the gateway serves ``/readyz`` and ``/metrics`` (the one place to repoint when they move
    to the ops port)."""
    return await gw.ops.get(path)
