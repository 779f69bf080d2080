"""Run a reconcile per key, never two at once for one key, and fold the requests that pile up meanwhile into one.

Every Route of a gateway asks for that gateway's reconcile; 200 routes created at once must not compile and apply
the gateway 200 times. A caller waits for a run that started after its request (so what it changed is seen), and
every caller that was waiting while one run went on is served by the next single run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)


@dataclass
class _KeyState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    requested: int = 0  # tickets handed out
    done: int = 0  # every ticket up to this one was served by a successful run
    last_ok: float | None = None  # monotonic start of the last successful run
    runs: int = 0


class Coalescer(Generic[K]):
    """``await run(key)`` returns once a run of ``work(key)`` that started after the call has succeeded."""

    def __init__(self, work: Callable[[K], Awaitable[None]]) -> None:
        self._work = work
        self._states: dict[K, _KeyState] = {}

    def runs(self, key: K) -> int:
        """How many runs of ``key`` started (for tests and the benchmark)."""
        state = self._states.get(key)
        return state.runs if state else 0

    async def run(self, key: K, *, max_age: float | None = None) -> None:
        """Run (or join) a reconcile of ``key``; with ``max_age``, skip it if a good one started that recently.

        A failing run raises in the caller that ran it; callers it would have served run again themselves.
        """
        state = self._states.setdefault(key, _KeyState())
        if (
            max_age is not None
            and state.requested == state.done
            and state.last_ok is not None
            and time.monotonic() - state.last_ok < max_age
        ):
            return
        state.requested += 1
        ticket = state.requested
        async with state.lock:
            if state.done >= ticket:
                return
            covers, started = state.requested, time.monotonic()
            state.runs += 1
            await self._work(key)
            state.done, state.last_ok = max(state.done, covers), started
