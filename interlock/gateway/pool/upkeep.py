"""A pool's background work: follow DNS (``dns`` discovery) and scrape each endpoint's engine metrics.

Both loops run off the hot path, bounded in time (a timeout per resolution and per scrape) and in bytes (an
engine's metrics body is capped). A failed resolution keeps the last endpoints; a name with no address leaves the
backend's own URL (the Service's virtual IP) as the only endpoint. A failed scrape leaves the endpoint's metrics
to age until the picker stops trusting them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from interlock.gateway.errors import AttemptFailure
from interlock.gateway.pool.discovery import Resolver, endpoint_urls
from interlock.gateway.pool.endpoint import Endpoint
from interlock.gateway.pool.pool import EndpointPool
from interlock.gateway.pool.scraper import parse_engine_metrics
from interlock.gateway.upstream.client import BackendClient

__all__ = ["PoolUpkeep"]

log = logging.getLogger("interlock.gateway.pool")

METRICS_BODY_LIMIT = 1 << 20
RESOLVE_TIMEOUT_S = 2.0
INDEX_SHARE_OF_KV = 1.2
"""The prefix index believes an endpoint holds this many times its KV cache's worth of the blocks it was sent:
an engine also keeps the blocks of answers and of requests still running, which the gateway does not count
(bench/routing/simulate.py: 1.0 and 1.5 did worse than 1.2 on the prefix-heavy workload, 0.8 much worse)."""
MIN_BLOCKS_TO_MEASURE = 16


class PoolUpkeep:
    """Start with ``start()`` inside the event loop; ``stop()`` cancels and closes what it opened."""

    def __init__(
        self,
        pool: EndpointPool,
        make_client: Callable[[str], BackendClient],
        *,
        fallback_url: str,
        dns_host: str | None = None,
        dns_port: int | None = None,
        refresh_s: float = 2.0,
        resolver: Resolver | None = None,
        scrape_interval_s: float = 1.0,
        scrape_timeout_s: float = 1.0,
    ) -> None:
        self.pool = pool
        self._make_client = make_client
        self._fallback_url = fallback_url
        self._dns_host = dns_host
        self._dns_port = dns_port
        self._refresh_s = refresh_s
        self._resolver = resolver
        self._scrape_interval_s = scrape_interval_s
        self._scrape_timeout_s = scrape_timeout_s
        self._metrics_clients: dict[str, BackendClient] = {}
        self._retiring: list[Endpoint] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.resolutions = 0
        self.resolve_errors = 0
        self.on_scraped: Callable[[], None] | None = None
        """Called after each round of scrapes (the backend's queue looks for room)."""

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        if self._dns_host is not None and self._resolver is not None:
            self._tasks.append(loop.create_task(self._discover_forever()))
        if self._scrape_interval_s > 0:
            self._tasks.append(loop.create_task(self._scrape_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for client in self._metrics_clients.values():
            await client.close()
        self._metrics_clients.clear()
        for endpoint in self._retiring:
            await endpoint.client.close()
        self._retiring = []

    # --- discovery ---------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Resolve the name once and apply the result."""
        assert self._dns_host is not None
        assert self._resolver is not None
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                addresses = await self._resolver(self._dns_host)
            urls = endpoint_urls(addresses, self._fallback_url, self._dns_port) or [self._fallback_url]
        except (OSError, TimeoutError, ValueError) as exc:
            self.resolve_errors += 1
            log.warning("backend %r: resolving %s failed (%s); keeping its endpoints", self.pool.backend,
                        self._dns_host, exc)  # fmt: skip
            return
        self.resolutions += 1
        before = {e.url for e in self.pool.endpoints}
        self._retiring += self.pool.set_urls(urls)
        if set(urls) != before:
            log.info("backend %r: endpoints now %s", self.pool.backend, ", ".join(urls))

    async def _discover_forever(self) -> None:
        while True:
            await self.refresh()
            await self._close_idle()
            await asyncio.sleep(self._refresh_s)

    async def _close_idle(self) -> None:
        idle = [e for e in self._retiring if e.inflight == 0]
        self._retiring = [e for e in self._retiring if e.inflight]
        for endpoint in idle:
            await endpoint.client.close()
            client = self._metrics_clients.pop(endpoint.url, None)
            if client is not None:
                await client.close()

    # --- engine metrics ------------------------------------------------------------------------------------

    async def scrape(self) -> None:
        """Scrape every endpoint once, concurrently."""
        endpoints = self.pool.endpoints
        await asyncio.gather(*(self._scrape_one(e) for e in endpoints))

    async def _scrape_one(self, endpoint: Endpoint) -> None:
        client = self._metrics_clients.get(endpoint.url)
        if client is None:
            url = urlsplit(endpoint.url)
            client = self._metrics_clients[endpoint.url] = self._make_client(f"{url.scheme}://{url.netloc}")
        inflight_before = endpoint.inflight
        try:
            async with asyncio.timeout(self._scrape_timeout_s):
                response = await client.get("/metrics")
                body = await response.read_capped(METRICS_BODY_LIMIT)
                if body is None:
                    response.close()  # over the cap: the rest is never read
                else:
                    response.release()
        except (AttemptFailure, OSError, TimeoutError) as exc:
            endpoint.scrape_errors += 1
            log.debug("backend %r: scraping %s failed: %s", self.pool.backend, endpoint.label, exc)
            return
        if response.status != 200 or body is None:
            endpoint.scrape_errors += 1
            return
        sample = parse_engine_metrics(body.decode("utf-8", "replace"))
        if sample is None:
            endpoint.scrape_errors += 1
            return
        endpoint.running = sample.running
        endpoint.waiting = sample.waiting
        endpoint.engine_load = sample.running + sample.waiting
        # The engine counted its requests at some moment during the scrape; the gateway's own count moved
        # meanwhile. Requests that ended while the answer travelled would otherwise pass for another gateway's
        # load for a whole scrape interval (a free slot taken for a full one), so the larger count is taken.
        endpoint.external_load = max(0.0, endpoint.engine_load - max(inflight_before, endpoint.inflight))
        endpoint.kv_usage = sample.kv_usage
        if sample.waiting > 0 and sample.running > endpoint.batch_size:
            endpoint.batch_size = sample.running
        if sample.prefix_queries:
            endpoint.prefix_hit_rate = (sample.prefix_hits or 0.0) / sample.prefix_queries
        self._bound_prefix_index(endpoint, sample.prompt_tokens, sample.kv_capacity_tokens)
        endpoint.scraped_at = time.monotonic()

    def _bound_prefix_index(self, endpoint: Endpoint, prompt_tokens: float | None, capacity: float | None) -> None:
        """Size the endpoint's share of the prefix index to its KV cache (``PrefixIndex.set_limit``).

        The cache is in tokens, the index in blocks of request bytes: the engine's prompt tokens over the blocks
        the gateway sent it between two scrapes convert one to the other. Where other gateways send to the same
        engine, its tokens count theirs too, so each gateway's share shrinks with its share of the engine's
        traffic, as it should: their prompts take room in the same cache.
        """
        endpoint.kv_capacity_tokens = capacity
        if capacity is None or prompt_tokens is None:
            return
        last = endpoint.prompt_tokens_seen
        if last is None or prompt_tokens < last:  # the first reading, or the engine restarted
            endpoint.prompt_tokens_seen, endpoint.blocks_seen = prompt_tokens, endpoint.sent_blocks
            return
        blocks = endpoint.sent_blocks - endpoint.blocks_seen
        tokens = prompt_tokens - last
        if blocks < MIN_BLOCKS_TO_MEASURE or tokens <= 0:
            return  # too few to tell (or not admitted yet): measure over a longer stretch
        per_block = tokens / blocks
        endpoint.prompt_tokens_seen, endpoint.blocks_seen = prompt_tokens, endpoint.sent_blocks
        if per_block < 1:  # under a token per KB of prompt: not a reading to size anything by
            return
        known = endpoint.tokens_per_block
        endpoint.tokens_per_block = per_block if known is None else 0.7 * known + 0.3 * per_block
        self.pool.index.set_limit(endpoint.bit, int(capacity * INDEX_SHARE_OF_KV / endpoint.tokens_per_block))

    async def _scrape_forever(self) -> None:
        while True:
            await self.scrape()
            if self.on_scraped is not None:
                self.on_scraped()
            if self._dns_host is None:
                await self._close_idle()
            await asyncio.sleep(self._scrape_interval_s)
