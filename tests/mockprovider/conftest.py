"""Mock providers served on loopback, with the official openai SDK and a raw httpx client on each.

Stopping a uvicorn server takes a tenth of a second, so the tests share one default server in the session's
event loop (its faults and stats are reset before each test) and start their own only for other settings.
Test modules here run in the session loop: ``pytestmark = pytest.mark.asyncio(loop_scope="session")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest_asyncio

from tests.mockprovider.served import Serve, Served, start_served


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def shared_mock() -> AsyncIterator[Served]:
    async with AsyncExitStack() as stack:
        yield await start_served(stack, {})


@pytest_asyncio.fixture(loop_scope="session")
async def mock(shared_mock: Served) -> Served:
    """The shared default provider, with no queued faults and fresh stats."""
    shared_mock.provider.reset()
    return shared_mock


@pytest_asyncio.fixture(loop_scope="session")
async def serve() -> AsyncIterator[Serve]:
    """``await serve(client_key=..., **settings)`` starts a provider of the test's own; all stop at teardown."""
    async with AsyncExitStack() as stack:

        async def start(*, client_key: str = "x", **settings: Any) -> Served:
            return await start_served(stack, settings, client_key)

        yield start
