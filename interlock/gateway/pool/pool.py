"""``EndpointPool``: a backend's endpoints, kept in step with discovery, and the per-request pick.

The pick is in memory and allocation-light: hash the prefix (``prefix.prefix_hashes``), look it up in the
bounded index, score each endpoint (``scorer``), remember the blocks for the chosen one. The endpoint list is
replaced (never mutated) when discovery changes it, so a pick in progress always sees one consistent list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from interlock.gateway.pool.endpoint import Endpoint
from interlock.gateway.pool.prefix import PrefixIndex, prefix_hashes
from interlock.gateway.pool.scorer import PickerWeights, pick
from interlock.gateway.upstream.client import BackendClient

__all__ = ["EndpointPool", "PickerSettings"]


@dataclass(frozen=True, slots=True)
class PickerSettings:
    weights: PickerWeights = field(default_factory=PickerWeights)
    metrics_max_age_s: float = 5.0
    block_bytes: int = 1024
    max_blocks: int = 32
    index_capacity: int = 1 << 16
    down_s: float = 2.0
    batch_size: int = 0
    """The engines' batch slots as configured; 0: learned from their metrics (``PoolUpkeep``)."""


class EndpointPool:
    """The endpoints of one backend."""

    def __init__(self, backend: str, make_client: Callable[[str], BackendClient], settings: PickerSettings) -> None:
        self.backend = backend
        self.settings = settings
        self._make_client = make_client
        self.endpoints: tuple[Endpoint, ...] = ()
        self.index = PrefixIndex(settings.index_capacity)
        self._next_slot = 0
        self._start = 0
        self._depths: dict[int, int] = {}
        self._matched: dict[int, float] = {}

    # --- discovery (off the hot path) -----------------------------------------------------------------

    def set_urls(self, urls: Iterable[str]) -> list[Endpoint]:
        """Make the pool's endpoints these URLs, keeping the endpoints (and their state) of URLs it had;
        return the endpoints that left, for the caller to close once idle."""
        wanted = list(dict.fromkeys(urls))
        have = {e.url: e for e in self.endpoints}
        kept: list[Endpoint] = []
        for url in wanted:
            endpoint = have.pop(url, None)
            if endpoint is None:
                endpoint = Endpoint(url, self._make_client(url), self._next_slot)
                endpoint.batch_size = float(self.settings.batch_size)
                self._next_slot += 1
            kept.append(endpoint)
        self.endpoints = tuple(kept)
        for gone in have.values():
            self.index.forget(gone.bit)
        return list(have.values())

    # --- the hot path ------------------------------------------------------------------------------------

    def prefix(self, body: bytes) -> list[int]:
        return prefix_hashes(body, self.settings.block_bytes, self.settings.max_blocks)

    def pick(self, hashes: list[int]) -> Endpoint:
        """The endpoint for a request whose prefix blocks are ``hashes``; its blocks are remembered for it."""
        endpoints = self.endpoints
        now = time.monotonic()
        candidates = endpoints
        for e in endpoints:
            if e.down_until > now:  # rare: only after a connection failure
                candidates = tuple(e for e in endpoints if e.down_until <= now) or endpoints
                break
        self._start += 1
        if len(candidates) == 1:
            chosen = candidates[0]
            chosen.picks_stale += 1
            if hashes:
                self.index.add(hashes, chosen.bit)
                chosen.sent_blocks += len(hashes)
            return chosen
        settings = self.settings
        oldest = now - settings.metrics_max_age_s
        use_engine = True
        mask = 0
        for e in candidates:
            mask |= e.bit
            scraped = e.scraped_at
            if scraped is None or scraped < oldest:
                use_engine = False
        matched = self._matched
        if matched:
            matched.clear()
        if hashes:
            depths = self._depths
            if depths:
                depths.clear()
            if self.index.match(hashes, mask, depths):
                total = len(hashes)
                for i, e in enumerate(candidates):
                    depth = depths.get(e.slot)
                    if depth:
                        matched[i] = depth / total
        index = pick(candidates, matched, settings.weights, use_engine=use_engine, start=self._start)
        chosen = candidates[index]
        if matched and matched.get(index, 0.0) >= max(matched.values()):
            chosen.picks_prefix += 1
        elif use_engine:
            chosen.picks_load += 1
        else:
            chosen.picks_stale += 1
        if hashes:
            self.index.add(hashes, chosen.bit)
            chosen.sent_blocks += len(hashes)
        return chosen

    def has_room(self, limit: int) -> bool:
        """Whether some endpoint carries fewer than ``limit`` requests: the gateway's own in flight, plus with
        fresh metrics what the engine ran beyond them (other gateways' traffic)."""
        oldest = time.monotonic() - self.settings.metrics_max_age_s
        for e in self.endpoints:
            load: float = e.inflight
            scraped = e.scraped_at
            if scraped is not None and scraped >= oldest:
                load += e.external_load
            if load < limit:
                return True
        return False

    def mark_down(self, endpoint: Endpoint) -> None:
        """A connection to it failed: skip it for a while (the pod may be gone before DNS says so)."""
        endpoint.down_until = time.monotonic() + self.settings.down_s

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()
        self.endpoints = ()
