"""A mock provider served on loopback, with the official openai and anthropic SDKs and a raw httpx client on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai

from interlock.asgiserver import EmbeddedServer
from interlock.mockprovider import MockProvider, MockSettings, create_app

__all__ = ["Serve", "Served", "start_served"]


@dataclass
class Served:
    provider: MockProvider
    root: str  # http://127.0.0.1:<port>
    client: openai.AsyncOpenAI  # based at <root>/v1
    http: httpx.AsyncClient  # raw, based at <root>
    anthropic: anthropic.AsyncAnthropic  # based at <root>: the SDK appends /v1/messages itself


Serve = Callable[..., Awaitable[Served]]


async def start_served(stack: AsyncExitStack, settings: dict[str, Any], api_key: str = "x") -> Served:
    provider = create_app(MockSettings.model_validate(settings))
    server = EmbeddedServer(provider, lifespan="off")
    root = await server.start()
    stack.push_async_callback(server.stop)
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=api_key, max_retries=0, timeout=10)
    stack.push_async_callback(client.close)
    http = httpx.AsyncClient(base_url=root, timeout=10)
    stack.push_async_callback(http.aclose)
    claude = anthropic.AsyncAnthropic(base_url=root, api_key=api_key, max_retries=0, timeout=10)
    stack.push_async_callback(claude.close)
    return Served(provider, root, client, http, claude)
