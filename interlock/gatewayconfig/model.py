"""``GatewayConfig``: the versioned, Kubernetes-free contract between the compiler and the gateway.

The operator writes it into a ConfigMap; ``interlock up`` builds it in memory from the same manifests.
It never contains secret values, only references that the gateway resolves from mounted files.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "SCHEMA_VERSION",
    "BackendConfig",
    "CircuitBreakerConfig",
    "CredentialRef",
    "DiscoveryConfig",
    "GatewayConfig",
    "ModelPrice",
    "PickerConfig",
    "QueueingConfig",
    "RetryConfig",
    "RouteConfig",
    "SpilloverConfig",
    "TargetConfig",
    "TimeoutConfig",
]

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class CredentialRef(_Model):
    """Where the gateway finds a backend's API key: a Secret key, mounted as a file."""

    secret: str
    key: str


class ModelPrice(_Model):
    """USD per million tokens; cached input defaults to the input price at compile time."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    cached_input_per_million: float = 0.0


class CircuitBreakerConfig(_Model):
    consecutive_failures: int = 5
    cooldown_s: float = 30.0


class DiscoveryConfig(_Model):
    """How the gateway finds a backend's endpoints, the replicas it picks among per request (docs/routing.md).

    ``url``: one endpoint, the backend's ``url`` (an external API, or a Service's virtual IP).
    ``static``: ``endpoints`` lists each replica's base URL (``spec.endpoints``; ``interlock up``).
    ``dns``: ``host`` is a headless Service's name; the gateway resolves it off the hot path every ``refreshS``
    seconds and calls each address on ``port`` (the engine's port in its pod) with the scheme and path of ``url``.
    While it resolves to nothing (no ready pod, or DNS failing from the start) the gateway calls ``url`` itself;
    on a failure after a success it keeps the last addresses.
    """

    mode: Literal["url", "static", "dns"] = "url"
    endpoints: tuple[str, ...] = ()
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    refresh_s: float = Field(2.0, gt=0)


class PickerConfig(_Model):
    """The endpoint picker's weights and the engine metrics' freshness (``LLMBackend.spec.picker``)."""

    load_weight: float = 1.0
    kv_cache_weight: float = 1.0
    kv_cache_threshold: float = Field(0.8, ge=0, lt=1)
    prefix_weight: float = 8.0
    queue_weight: float = 4.0
    batch_size: int = 0
    """The engines' batch slots as configured (0: unknown until learned from their metrics)."""
    metrics_max_age_s: float = 5.0
    scrape_interval_s: float = 1.0


class QueueingConfig(_Model):
    """Per-tenant queues at saturation (``LLMBackend.spec.queueing``); ``max_inflight_per_endpoint`` 0: off."""

    max_inflight_per_endpoint: int = 0
    max_queued: int = 1000
    max_queued_per_tenant: int = 100
    max_wait_s: float = 30.0
    headroom: int = 1
    headroom_target: float = 0.005


class BackendConfig(_Model):
    """One upstream. ``url`` is None only for the embedded mock provider (and may be for ``static`` discovery)."""

    name: str
    provider: Literal["openai", "anthropic", "vllm", "mock"]
    url: str | None
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    picker: PickerConfig = Field(default_factory=PickerConfig)
    queueing: QueueingConfig = Field(default_factory=QueueingConfig)
    credentials: CredentialRef | None = None
    models: dict[str, ModelPrice]
    max_output_tokens: dict[str, int] = Field(
        default_factory=dict, description="Model -> the most tokens it answers with, where the manifest says."
    )
    max_concurrency: int = 0
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)


class TargetConfig(_Model):
    backend: str
    model: str
    weight: int = 1


class RetryConfig(_Model):
    attempts: int = 2
    backoff_s: float = 0.25
    on: tuple[Literal["connect", "timeout", "429", "5xx"], ...] = ("connect", "429", "5xx")


class TimeoutConfig(_Model):
    request_s: float = 300.0
    first_token_s: float = 30.0


class SpilloverConfig(_Model):
    """Send to ``target`` what the pool would answer later than ``first_token_s`` (``Route.spec.spillover``)."""

    target: TargetConfig
    first_token_s: float = 2.0


class RouteConfig(_Model):
    """A public model name and its compiled routing policy."""

    name: str
    model: str
    targets: tuple[TargetConfig, ...]
    fallbacks: tuple[TargetConfig, ...] = ()
    retry: RetryConfig = Field(default_factory=RetryConfig)
    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig)
    tenants: tuple[str, ...] = ()
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    priority: Literal["critical", "standard", "sheddable"] | None = None
    """None: the tenant's quota priority (standard without one)."""
    spillover: SpilloverConfig | None = None


class GatewayConfig(_Model):
    """Everything one gateway needs to serve its routes. ``version`` is a hash of the content."""

    schema_version: Literal[1] = 1
    gateway: str = "default/default"
    version: str = ""
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    rejected: dict[str, str] = Field(
        default_factory=dict, description="Route objects left out of this config, with the reason."
    )

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys), the form stored in the ConfigMap."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes | str) -> GatewayConfig:
        return cls.model_validate_json(data)
