"""Helpers shared by the test suite: polling with a deadline, serving ASGI apps on loopback."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


async def eventually(
    check: Callable[[], T] | Callable[[], Awaitable[T]], *, within: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy (awaiting it when it is a coroutine); fail at the deadline.

    Tests wait for conditions this way, never with a bare sleep.
    """
    deadline = time.monotonic() + within
    while True:
        result = check()
        last: Any = await result if inspect.isawaitable(result) else result
        if last:
            return cast(T, last)
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {what or check!r} (last: {last!r})")
        await asyncio.sleep(interval)
