"""Compiled routing state: backends with their breaker and concurrency counters, routes as ready-to-use plans.

Everything here is built when a config loads, so a request only looks up a dict and walks a short tuple.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from interlock.gateway.dispatch.apis import API
from interlock.gateway.pool import EndpointPool
from interlock.gateway.pool.fairqueue import FairQueue
from interlock.gateway.pool.upkeep import PoolUpkeep
from interlock.gateway.upstream.client import BackendClient
from interlock.gateway.usage.calibration import PromptCalibration
from interlock.gatewayconfig.model import BackendConfig, ModelPrice, RouteConfig

__all__ = ["BackendRuntime", "RoutePlan", "Target"]


class BackendRuntime:
    """One upstream: its client, circuit breaker, in-flight count and prompt calibration. Survives reloads while its
    config holds.

    A backend with several endpoints (``static`` or ``dns`` discovery) has a ``pool`` that picks one per request,
    kept current by ``upkeep`` (started with ``start()``); ``client`` is then unused. Without one, ``client``
    calls the backend's ``url``.
    """

    __slots__ = (
        "_failures",
        "_open_until",
        "api",
        "calibration",
        "client",
        "config",
        "inflight",
        "key_fingerprint",
        "pool",
        "queue",
        "unusable_reason",
        "upkeep",
    )

    def __init__(
        self,
        config: BackendConfig,
        client: BackendClient | None,
        *,
        api: API = API.CHAT,
        key_fingerprint: str = "",
        unusable_reason: str | None = None,
        pool: EndpointPool | None = None,
        upkeep: PoolUpkeep | None = None,
        queue: FairQueue | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.queue = queue
        """With a pool and ``queueing``: where requests wait while every endpoint is saturated."""
        self.upkeep = upkeep
        self.api = api
        """The wire API the upstream speaks."""
        self.client = client
        self.key_fingerprint = key_fingerprint
        self.unusable_reason = unusable_reason
        self.inflight = 0
        self.calibration = PromptCalibration()
        """What this backend's chat template adds to a prompt estimate, learned from its usage reports."""
        self._failures = 0
        self._open_until = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        """Start the pool's discovery and scraping (inside the event loop); no-op without a pool."""
        if self.upkeep is not None:
            self.upkeep.start()

    async def close(self) -> None:
        """Stop the background work and close every connection."""
        if self.upkeep is not None:
            await self.upkeep.stop()
        if self.pool is not None:
            await self.pool.close()
        if self.client is not None:
            await self.client.close()

    def unavailable_reason(self, now: float) -> str | None:
        """Why this backend must be skipped right now, or None when it may take a request."""
        if self.unusable_reason is not None:
            return self.unusable_reason
        if self._open_until > now:
            return f"backend {self.name!r} is cooling down after {self._failures} consecutive failures"
        cap = self.config.max_concurrency
        if cap and self.inflight >= cap:
            return f"backend {self.name!r} is at its concurrency limit ({cap})"
        return None

    def breaker_open(self, now: float) -> bool:
        """Whether the circuit breaker keeps requests away now (``now``: ``time.monotonic()``)."""
        return self._open_until > now

    def record_success(self) -> None:
        self._failures = 0

    def record_failure(self) -> None:
        self._failures += 1
        breaker = self.config.circuit_breaker
        if self._failures >= breaker.consecutive_failures:
            self._open_until = time.monotonic() + breaker.cooldown_s


@dataclass(frozen=True, slots=True)
class Target:
    """A backend and the model name to send it, with the model's price and output cap (0: not declared)."""

    backend: BackendRuntime
    model: str
    weight: int
    price: ModelPrice | None
    max_output_tokens: int = 0


@dataclass(slots=True)
class RoutePlan:
    """A route compiled for the hot path."""

    config: RouteConfig
    targets: tuple[Target, ...]
    fallbacks: tuple[Target, ...]
    retry_on: frozenset[str] = field(default_factory=frozenset)
    tenants: frozenset[str] = field(default_factory=frozenset)
    spill_plan: RoutePlan | None = None
    """The route's spill-over target as a plan of its own: where requests go that the pool would answer later
    than ``spill_after_s``."""
    spill_after_s: float = 0.0
    model_body: bytes = b""
    """``GET /v1/models/{model}``, pre-encoded."""

    @property
    def name(self) -> str:
        return self.config.name

    def output_cap(self, default: int) -> int:
        """The most tokens any of the route's models answers with (``default`` for a model that does not say)."""
        return max((t.max_output_tokens or default for t in (*self.targets, *self.fallbacks)), default=default)

    def allows(self, tenant: str) -> bool:
        return not self.tenants or tenant in self.tenants

    def candidates(self) -> Iterator[Target]:
        """Targets in weighted random order (without replacement), then fallbacks in their declared order."""
        pool = [t for t in self.targets if t.weight > 0]
        while len(pool) > 1:
            bounds = list(accumulate(t.weight for t in pool))
            yield pool.pop(bisect_right(bounds, random.random() * bounds[-1]))
        yield from pool
        yield from self.fallbacks
