"""The gateway <-> control-plane contract: the snapshot gateways poll and the usage batches they push.

Plain pydantic, no web framework, so the gateway can import it without the control plane's dependencies.
JSON fields are snake_case. Both directions are versioned by their paths (``/v1/gateway/...``).

- ``GET /v1/gateway/snapshot?gateway_id=G[&since=V]`` with ``If-None-Match``: what changes rarely (tenants with
  quotas, keys, prices), versioned by a counter the control plane bumps on every change (the ETag); 304 when
  unchanged, answered before anything is built. With ``since`` (the version the gateway holds) the answer is a
  delta (``base_version`` = V): only the tenants and keys changed since, and the ids of those removed; a full
  snapshot (``base_version`` null) when V is too old or unknown. Its ``spent_usd``/``ingested_seq`` are as of
  when it was built: the spend document below is what keeps them current.
- ``GET /v1/gateway/spend?gateway_id=G`` with ``If-None-Match``: what changes all the time, small: this month's
  spend of the tenants that have a budget and ``ingested_seq``, the highest ``seq`` of G's own usage events
  already counted in it, so G can add exactly the spend the document misses.
- ``POST /v1/gateway/usage``: a batch of usage events. Each has an ``idempotency_id``; an id seen before is
  acknowledged again but not counted twice, so a gateway may resend after any failure. Events are judged one by
  one: one the control plane refuses for good is listed in ``rejected`` (and dead-lettered there) while the
  others are counted, so one bad event never blocks the ones after it.
- ``POST /v1/gateway/status``: the gateway's own state (loaded config version, readiness, routes, backends and
  their circuit breakers), sent every few seconds off the request path; the console shows the latest per gateway.
- All three need a gateway credential (``interlock.contract.gatewaycred``) whose scope covers the ``gateway_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GATEWAY_SNAPSHOT_PATH",
    "GATEWAY_SPEND_PATH",
    "GATEWAY_STATUS_PATH",
    "GATEWAY_USAGE_PATH",
    "MAX_STATUS_ITEMS",
    "BackendStatus",
    "GatewayStatusReport",
    "KeyRecord",
    "PriceRecord",
    "QuotaRecord",
    "RejectedEvent",
    "RouteStatus",
    "Snapshot",
    "SpanRecord",
    "SpendSnapshot",
    "TenantRecord",
    "UsageBatch",
    "UsageBatchResult",
    "UsageEvent",
]

GATEWAY_SNAPSHOT_PATH = "/v1/gateway/snapshot"
GATEWAY_USAGE_PATH = "/v1/gateway/usage"
GATEWAY_SPEND_PATH = "/v1/gateway/spend"
GATEWAY_STATUS_PATH = "/v1/gateway/status"
MAX_STATUS_ITEMS = 500
"""Routes (and backends) one status report may carry: a gateway with more sends the first ones by name."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class QuotaRecord(_Record):
    """Per-tenant limits; 0 (or None for the budget) means unlimited."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_concurrency: int = 0
    monthly_budget_usd: float | None = None
    priority: Literal["critical", "standard", "sheddable"] = "standard"
    """The tenant's class in a saturated self-hosted pool's queue, where its Route sets none."""


class TenantRecord(_Record):
    id: str
    name: str
    quota: QuotaRecord = Field(default_factory=QuotaRecord)
    spent_usd: float = 0.0
    """Cost of this calendar month (UTC) counted so far, from every gateway."""


class KeyRecord(_Record):
    id: str
    tenant_id: str
    prefix: str
    """The 8 characters after ``sk-il-``: narrows the hash comparison to one or a few keys."""
    sha256: str
    """Hex SHA-256 of the whole key. Keys are 256-bit random, so a fast hash is enough; the plaintext is never
    stored."""
    expires_at: datetime | None = None


class PriceRecord(_Record):
    """A price override for (backend, model), in USD per million tokens; wins over the manifests' prices."""

    backend: str
    model: str
    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None


class Snapshot(_Record):
    version: str
    generated_at: datetime
    tenants: list[TenantRecord]
    keys: list[KeyRecord]
    prices: list[PriceRecord] = Field(default_factory=list)
    """Always all of them (there are few)."""
    ingested_seq: int = 0
    base_version: str | None = None
    """Set on a delta: the version it applies to; ``tenants`` and ``keys`` then hold only what changed."""
    removed_tenants: list[str] = Field(default_factory=list)
    removed_keys: list[str] = Field(default_factory=list)
    """Keys revoked, expired or deleted since ``base_version`` (a delta only)."""


class SpendSnapshot(_Record):
    """This month's spend (UTC) of the tenants with a monthly budget, from every gateway, and this gateway's
    ``ingested_seq``; ``version`` (the ETag) is a hash of the content."""

    version: str
    month: str
    ingested_seq: int = 0
    spent_usd: dict[str, float] = Field(default_factory=dict)


class SpanRecord(_Record):
    """One step of a request: ``auth``, ``route``, ``upstream`` (one per attempt), ``respond``."""

    name: str
    start_ms: float
    """Milliseconds since the request arrived."""
    duration_ms: float
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class UsageEvent(_Record):
    """One request, as the gateway metered it."""

    idempotency_id: str = Field(min_length=8, max_length=64)
    gateway_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=1, description="Per-gateway, strictly increasing.")
    started_at: datetime
    tenant_id: str
    key_id: str
    route: str
    backend: str
    model: str
    status: int
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_tokens: int = Field(ge=0, default=0)
    cache_creation_tokens: int = Field(ge=0, default=0)
    usage_estimated: bool = False
    spilled_over: bool = False
    """Served by the route's spill-over target because the self-hosted pool would have answered too late."""
    cost_usd: float = Field(ge=0)
    latency_ms: float = Field(ge=0)
    ttft_ms: float | None = None
    trace_id: str
    spans: list[SpanRecord] = Field(default_factory=list)


class UsageBatch(_Record):
    events: list[UsageEvent] = Field(max_length=5000)


class RejectedEvent(_Record):
    """An event the control plane refused for good (kept in its dead-letter table with the reason): resending it
    cannot help, so the gateway must not."""

    index: int
    """Position of the event in the batch."""
    idempotency_id: str | None = None
    seq: int | None = None
    reason: str


class UsageBatchResult(_Record):
    """The answer to a usage batch. Every event of the batch is in exactly one of the three counts, so a gateway
    is done with the whole batch when it gets this answer (HTTP 200)."""

    accepted: int
    """Events counted now."""
    duplicates: int
    """Events whose ``idempotency_id`` was already counted (acknowledged, not counted again)."""
    rejected: list[RejectedEvent] = Field(default_factory=list)
    """Events refused for good (malformed, a ``gateway_id`` outside the credential's scope, a ``seq`` outside the
    window); each is in the control plane's dead-letter table, never counted."""


class RouteStatus(_Record):
    name: str = Field(max_length=256)
    targets: list[str] = Field(default_factory=list, max_length=64)
    """``backend/model`` of each target the route sends to, then its fallbacks, in order."""


class BackendStatus(_Record):
    name: str = Field(max_length=256)
    provider: str = Field(default="", max_length=64)
    breaker_open: bool = False
    inflight: int = Field(default=0, ge=0)
    unusable_reason: str | None = Field(default=None, max_length=512)


class GatewayStatusReport(_Record):
    """What one gateway reports about itself; the latest report per ``gateway_id`` is kept."""

    gateway_id: str = Field(min_length=1, max_length=128)
    config_version: str | None = Field(default=None, max_length=128)
    ready: bool
    loaded_at: float | None = None
    """Unix time the config was loaded."""
    last_error: str | None = Field(default=None, max_length=2000)
    routes: list[RouteStatus] = Field(default_factory=list, max_length=MAX_STATUS_ITEMS)
    backends: list[BackendStatus] = Field(default_factory=list, max_length=MAX_STATUS_ITEMS)
