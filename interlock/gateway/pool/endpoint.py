"""One endpoint of a backend: its client, the gateway's own counts, and the engine's scraped state with its age."""

from __future__ import annotations

from urllib.parse import urlsplit

from interlock.gateway.upstream.client import BackendClient

__all__ = ["Endpoint", "endpoint_label"]


def endpoint_label(url: str) -> str:
    """The endpoint's name in metrics and logs: host and port (bounded: config or DNS gives them, never a client)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


class Endpoint:
    """Counts are plain attributes: the hot path increments them, the metrics collector reads them at scrape time."""

    __slots__ = (
        "batch_size",
        "bit",
        "blocks_seen",
        "client",
        "down_until",
        "engine_load",
        "external_load",
        "inflight",
        "kv_capacity_tokens",
        "kv_usage",
        "label",
        "picks_load",
        "picks_prefix",
        "picks_stale",
        "prefix_hit_rate",
        "prompt_tokens_seen",
        "running",
        "scrape_errors",
        "scraped_at",
        "sent_blocks",
        "slot",
        "tokens_per_block",
        "url",
        "waiting",
    )

    def __init__(self, url: str, client: BackendClient, slot: int) -> None:
        self.url = url
        self.label = endpoint_label(url)
        self.client = client
        self.slot = slot
        self.bit = 1 << slot
        self.inflight = 0
        """Requests the gateway has sent here and not finished."""
        self.down_until = 0.0
        """After a connection failure, the endpoint is skipped until then (``time.monotonic``)."""
        # The engine's own state, from its /metrics; scraped_at None: never scraped successfully.
        self.running = 0.0
        self.waiting = 0.0
        self.engine_load = 0.0
        self.external_load = 0.0
        """What the engine ran or queued beyond the gateway's own requests when last scraped (other gateways'
        traffic): the part of the engine's load the gateway cannot count itself. Its own in-flight count is exact
        and current; the engine's total is up to a scrape interval old, which at high rates misleads."""
        self.kv_usage = 0.0
        self.prefix_hit_rate: float | None = None
        # How much of what the gateway sends the engine's KV cache holds (``PoolUpkeep``): prefix blocks sent here
        # (counted on the hot path), and, at the last scrape that measured, that count and the engine's prompt
        # tokens; prompt tokens per block sent (smoothed); the engine's KV cache in tokens.
        self.sent_blocks = 0
        self.blocks_seen = 0
        self.prompt_tokens_seen: float | None = None
        self.tokens_per_block: float | None = None
        self.kv_capacity_tokens: float | None = None
        self.batch_size = 0.0
        """The most requests the engine was seen running while others waited: its batch size (0: not seen)."""
        self.scraped_at: float | None = None
        self.scrape_errors = 0
        # Why the picker chose this endpoint: prefix affinity won, load/KV headroom (fresh metrics) won, or
        # metrics were stale and the least-in-flight rule chose it.
        self.picks_prefix = 0
        self.picks_load = 0
        self.picks_stale = 0

    def metrics_age(self, now: float) -> float | None:
        return None if self.scraped_at is None else now - self.scraped_at
