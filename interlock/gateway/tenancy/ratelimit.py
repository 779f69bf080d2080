"""Token buckets for requests/min and tokens/min, per tenant and per (tenant, route); the in-memory kind.

Each request meets up to four buckets, in this order (``Slot``): the tenant's requests and tokens, and the
route's requests and tokens for that tenant. A bucket's capacity is its per-minute limit and it refills at
limit/60 per second; a capacity of 0 means no such limit. Admission is all or nothing: a request bucket must hold
one whole token, a token bucket must be positive, and only when every bucket agrees does each request bucket give
one up and each token bucket give up the request's reservation (its worst case: the input's upper bound plus the
output cap, ``tenancy.reservation``). A token bucket can go negative, which refuses the next requests until it has
refilled, so concurrent requests overrun tokens/min by at most the reservation of the one that crossed it. When
the answer's real usage is known the reservation is settled (``debit`` of the difference: a refund, usually).

``MemoryBuckets`` is per process (one replica); ``redisbuckets.RedisBuckets`` makes the same decisions in Redis,
exact across replicas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Caps", "Decision", "MemoryBuckets", "Slot"]

Caps = tuple[int, int, int, int]
"""Limits of one request, by ``Slot``; 0 = none."""


class Slot(IntEnum):
    TENANT_REQUESTS = 0
    TENANT_TOKENS = 1
    ROUTE_REQUESTS = 2
    ROUTE_TOKENS = 3

    @property
    def counts_tokens(self) -> bool:
        return bool(self & 1)

    def describe(self, route: str) -> str:
        what = "tokens" if self.counts_tokens else "requests"
        where = "for your organization" if self < 2 else f"for your organization on model {route!r}"
        return f"{what} per minute {where}"


@dataclass(slots=True)
class Decision:
    allowed: bool
    refused: int
    """The ``Slot`` that refused (the one that frees up last), or -1."""
    retry_after_s: float
    remaining: list[int]
    """Per slot, what is left after this request (floored, 0 when negative); meaningless where the cap is 0."""


class MemoryBuckets:
    """Buckets in this process. Idle buckets (full again) are dropped now and then."""

    _SWEEP_EVERY = 8192

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, int], list[float]] = {}
        """(tenant id, route or "", slot) -> [level, last update, capacity]."""
        self._ops = 0

    def _state(self, key: tuple[str, str, int], cap: int, now: float) -> list[float]:
        state = self._buckets.get(key)
        if state is None:
            state = self._buckets[key] = [float(cap), now, cap]
            return state
        level = state[0] + (now - state[1]) * cap / 60.0
        state[0] = level if level < cap else float(cap)
        state[1] = now
        state[2] = cap
        return state

    def take(self, tenant_id: str, route: str, caps: Caps, tokens: int = 0) -> Decision:
        """Admit or refuse; when admitted, take one request and ``tokens`` (the reservation) from the buckets."""
        now = self._clock()
        self._ops += 1
        if self._ops >= self._SWEEP_EVERY:
            self._sweep(now)
        states: list[list[float] | None] = [None, None, None, None]
        refused = -1
        wait = 0.0
        for slot in range(4):
            cap = caps[slot]
            if not cap:
                continue
            state = states[slot] = self._state((tenant_id, route if slot >= 2 else "", slot), cap, now)
            level = state[0]
            short = (1e-6 - level if level <= 0 else 0.0) if slot & 1 else 1.0 - level
            if short > 0:
                seconds = short * 60.0 / cap
                if seconds >= wait:
                    wait, refused = seconds, slot
        if refused < 0:
            for slot in range(4):
                taken = states[slot]
                if taken is not None:
                    taken[0] -= float(tokens) if slot & 1 else 1.0
        remaining = [0 if s is None or s[0] <= 0 else math.floor(s[0]) for s in states]
        return Decision(refused < 0, refused, wait, remaining)

    def debit(self, tenant_id: str, route: str, caps: Caps, tokens: int) -> None:
        """Charge ``tokens`` more to the request's token buckets (they may go negative); a negative amount is a
        refund (a reservation larger than the real usage), up to the capacity."""
        if not tokens:
            return
        now = self._clock()
        for slot, key in ((1, (tenant_id, "", 1)), (3, (tenant_id, route, 3))):
            cap = caps[slot]
            if cap:
                state = self._state(key, cap, now)
                state[0] = min(float(cap), state[0] - tokens)

    def _sweep(self, now: float) -> None:
        self._ops = 0
        full = [key for key, (level, stamp, cap) in self._buckets.items() if level + (now - stamp) * cap / 60 >= cap]
        for key in full:  # a full bucket is the same as none
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
