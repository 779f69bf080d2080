from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest_asyncio

from tests.gateway.contract_server import ContractServer
from tests.gateway.harness import Factory, Gateway, Servers, Upstream, start_gateway, start_upstream


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest_asyncio.fixture
async def servers(stack: AsyncExitStack) -> Servers:
    return Servers(stack)


@pytest_asyncio.fixture
async def upstream(servers: Servers) -> Factory:
    """``await upstream(**mock_settings)`` starts a mock provider on loopback for this test."""

    async def start(**settings: Any) -> Upstream:
        return await start_upstream(servers, **settings)

    return start


@pytest_asyncio.fixture
async def gateway(stack: AsyncExitStack, servers: Servers) -> Factory:
    """``await gateway(config_or_source, **gateway_settings)`` starts a gateway on loopback for this test."""

    async def start(source: Any, **kwargs: Any) -> Gateway:
        return await start_gateway(stack, servers, source, **kwargs)

    return start


@pytest_asyncio.fixture
async def control_plane(stack: AsyncExitStack) -> ContractServer:
    """A real HTTP control plane speaking the gateway contract, with in-memory state (``contract_server``)."""
    server = ContractServer()
    await server.start()
    stack.push_async_callback(server.stop)
    return server
