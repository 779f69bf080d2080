"""The ``LLMBackend`` custom resource: one upstream, external (``url``) or self-hosted (``serving``)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, HttpUrl, model_validator

from interlock.resources.common import Duration, ObjectMeta, SpecModel
from interlock.resources.conditions import Condition

__all__ = [
    "ENGINE_PORTS",
    "Autoscaling",
    "AutoscalingMetric",
    "BackendLimits",
    "CircuitBreaker",
    "Endpoint",
    "LLMBackend",
    "LLMBackendSpec",
    "LLMBackendStatus",
    "ModelCache",
    "ModelPricing",
    "Picker",
    "Provider",
    "Queueing",
    "SecretKeyRef",
    "ServedModel",
    "Serving",
    "ServingEngine",
]


_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


class Provider(StrEnum):
    """Wire protocol of the upstream. vllm speaks the OpenAI API; mock is Interlock's offline provider."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    VLLM = "vllm"
    MOCK = "mock"


class ServingEngine(StrEnum):
    """Inference engine the operator runs for a self-hosted backend."""

    VLLM = "vllm"
    TGI = "tgi"
    LLAMACPP = "llamacpp"


ENGINE_PORTS: dict[ServingEngine, int] = {ServingEngine.VLLM: 8000, ServingEngine.TGI: 80, ServingEngine.LLAMACPP: 8080}
"""The port each engine listens on in its pod (what the headless Service's DNS addresses are called on)."""


class SecretKeyRef(SpecModel):
    """A key in a Secret in the same namespace. The value is mounted into the gateway, never copied."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(default="api-key", min_length=1, max_length=253, description="Key inside the Secret.")


class ModelPricing(SpecModel):
    """Prices in USD per million tokens, used for metering and budgets."""

    input_per_million: float = Field(default=0.0, ge=0, description="USD per million input tokens.")
    output_per_million: float = Field(default=0.0, ge=0, description="USD per million output tokens.")
    cached_input_per_million: float | None = Field(
        default=None, ge=0, description="USD per million cached input tokens; defaults to the input price."
    )


class ServedModel(SpecModel):
    """A model this backend serves."""

    name: str = Field(min_length=1, max_length=256, description="Model name as the upstream knows it.")
    pricing: ModelPricing = Field(default_factory=ModelPricing, description="Prices for metering.")
    context_window: int | None = Field(default=None, gt=0, description="Context window in tokens.")
    max_output_tokens: int | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="Most tokens the model answers with. A request without max_tokens reserves this much output "
        "against its tenant's budget and tokens per minute until its real usage is known (unset: the gateway's "
        "default, 4096).",
    )


class ModelCache(SpecModel):
    """A PersistentVolumeClaim that keeps downloaded weights across restarts."""

    size: str = Field(
        default="100Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$",
        description="Requested storage, a Kubernetes quantity.",
    )
    storage_class_name: str | None = Field(default=None, description="StorageClass of the claim.")


class AutoscalingMetric(StrEnum):
    """What an autoscaler scales a self-hosted backend on."""

    QUEUE = "queue"
    GPU = "gpu"


class Autoscaling(SpecModel):
    """Present when an autoscaler (a KEDA ScaledObject where KEDA is installed, else an HPA on custom metrics) owns
    the number of inference pods; the operator then never sets it."""

    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest inference pods (0 needs KEDA).")
    max_replicas: int = Field(ge=1, le=1000, description="Most inference pods.")
    metric: AutoscalingMetric = Field(
        default=AutoscalingMetric.QUEUE,
        description="queue: requests waiting in the engine per pod; gpu: GPU utilisation in percent (DCGM).",
    )
    target: float | None = Field(
        default=None, gt=0, description="Target per pod (default: 5 waiting requests, or 80 percent GPU)."
    )

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}")
        return self


class Serving(SpecModel):
    """Present when the operator should run GPU inference pods for this backend."""

    engine: ServingEngine = Field(default=ServingEngine.VLLM, description="Inference engine.")
    image: str | None = Field(
        default=None, min_length=1, description="Container image; a pinned default per engine when omitted."
    )
    model: str = Field(min_length=1, description="Weights to load, for example meta-llama/Llama-3.1-8B-Instruct.")
    replicas: int = Field(default=1, ge=0, le=1000, description="Number of inference pods.")
    gpus: int = Field(default=1, ge=0, le=64, description="nvidia.com/gpu per pod; the tensor-parallel size.")
    args: list[str] = Field(default_factory=list, description="Extra engine arguments.")
    env: list[dict[str, Any]] = Field(default_factory=list, description="Extra environment variables (EnvVar).")
    resources: dict[str, Any] = Field(default_factory=dict, description="Extra resource requests and limits.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector for the pods.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations for the pods.")
    model_cache: ModelCache | None = Field(default=None, description="PVC for model weights.")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Present: an autoscaler owns the replica count (replicas is then ignored)."
    )
    runtime_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="RuntimeClass of the pods (for example nvidia)."
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Names of image pull Secrets for the engine image (beside the operator's)."
    )
    hugging_face_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a Hugging Face token (gated weights); passed as HF_TOKEN."
    )
    shm_size: str | None = Field(
        default=None,
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        description="Size limit of /dev/shm (memory-backed; NCCL needs it for tensor parallelism); unset: no limit.",
    )


class BackendLimits(SpecModel):
    """Protects the upstream; 0 means unlimited."""

    max_concurrency: int = Field(default=0, ge=0, description="Requests in flight to this backend at once.")
    requests_per_minute: int = Field(default=0, ge=0, description="Requests per minute to this backend.")
    tokens_per_minute: int = Field(default=0, ge=0, description="Tokens per minute to this backend.")


class CircuitBreaker(SpecModel):
    """Take the backend out of rotation after consecutive failures."""

    consecutive_failures: int = Field(default=5, ge=1, le=1000, description="Failures in a row that open the breaker.")
    cooldown: Duration = Field(default="30s", description="How long the backend stays out of rotation.")


MAX_ENDPOINTS = 256


class Endpoint(SpecModel):
    """One replica of the same engine, reached at its own URL."""

    url: HttpUrl = Field(
        description="Base URL of this replica, for example http://127.0.0.1:8001/v1.",
        json_schema_extra={"pattern": "^https?://"},
    )


class Picker(SpecModel):
    """How the gateway picks one of several endpoints per request (``endpoints``, or the pods of ``serving``).

    Lower score wins: loadWeight x requests queued and running + kvCacheWeight x KV-cache usage above
    kvCacheThreshold (scaled 0 to 1) - prefixWeight x the share of the prompt's prefix the endpoint was recently
    sent (docs/routing.md).
    """

    load_weight: float = Field(default=1.0, ge=0, le=1000, description="Weight of one request queued or running.")
    kv_cache_weight: float = Field(
        default=1.0, ge=0, le=1000, description="Weight of a full KV cache, in requests' worth."
    )
    kv_cache_threshold: float = Field(
        default=0.8,
        ge=0,
        lt=1,
        description="KV-cache usage (0 to 1) below which headroom does not count: the KV term grows from 0 here to "
        "kvCacheWeight at a full cache. Below it an engine admits the next request's blocks anyway, and a "
        "difference read up to a scrape ago would only steer ties.",
    )
    prefix_weight: float = Field(
        default=8.0,
        ge=0,
        le=1000,
        description="Weight of a whole-prefix match, in requests' worth: how much busier than the least loaded "
        "endpoint the one holding the conversation may be and still win.",
    )
    queue_weight: float = Field(
        default=4.0,
        ge=0,
        le=1000,
        description="Extra weight of each request that would wait for a slot instead of running: one beyond the "
        "engine's batch size (batchSize, or learned from its metrics).",
    )
    batch_size: int = Field(
        default=0,
        ge=0,
        le=100000,
        description="The engine's batch slots when known (vLLM --max-num-seqs, TGI --max-concurrent-requests, "
        "llama.cpp --parallel); 0: queueing.maxInflightPerEndpoint if set, and learned from the engine's metrics "
        "(the most it was seen running while others waited).",
    )
    metrics_max_age: Duration = Field(
        default="5s", description="Engine metrics older than this are ignored: the pick falls back to least in flight."
    )
    scrape_interval: Duration = Field(
        default="1s", description="How often the gateway reads each endpoint's engine metrics; 0s: never."
    )


class Queueing(SpecModel):
    """Tenant-fair queueing at the gateway when every endpoint of the backend is saturated (docs/routing.md)."""

    max_inflight_per_endpoint: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="An endpoint is saturated at this many requests in flight (the gateway's own, or the engine's "
        "running + waiting, whichever is larger); 0 turns queueing off.",
    )
    max_queued: int = Field(default=1000, ge=1, le=1_000_000, description="Requests waiting at most, all tenants.")
    max_queued_per_tenant: int = Field(default=100, ge=1, le=1_000_000, description="Requests waiting per tenant.")
    max_wait: Duration = Field(default="30s", description="Longest wait in the queue; then 503 with Retry-After.")
    headroom: int = Field(
        default=1,
        ge=0,
        le=100_000,
        description="Slots a tenant holding at least its fair share leaves free while other tenants are active, so "
        "that a quieter tenant's next request starts at once instead of waiting for one to free; 0: none. The least "
        "kept free when headroomTarget is set.",
    )
    headroom_target: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="Keep as many slots free as it takes, from the quieter tenants' measured concurrency, for at most "
        "this share of their requests to find none free (at most their fair share of the slots less what they hold, "
        "and a quarter of the pool); 0: headroom only.",
    )


class LLMBackendSpec(SpecModel):
    """Desired state of an LLMBackend."""

    provider: Provider = Field(description="Wire protocol of the upstream: openai, anthropic, vllm or mock.")
    url: HttpUrl | None = Field(
        default=None,
        description="Base URL of an external upstream, for example https://api.openai.com/v1.",
        json_schema_extra={"pattern": "^https?://"},
    )
    endpoints: list[Endpoint] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ENDPOINTS,
        description="Several replicas of one engine, each with its own URL, instead of url; the gateway picks one "
        "per request from their load, KV-cache headroom and prompt-prefix affinity (docs/routing.md).",
    )
    picker: Picker = Field(
        default_factory=Picker, description="How one of several endpoints is picked per request (weights)."
    )
    queueing: Queueing = Field(
        default_factory=Queueing, description="Per-tenant queues when every endpoint is saturated (endpoints, serving)."
    )
    credentials_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding the upstream API key; mounted into the gateway only."
    )
    models: list[ServedModel] = Field(min_length=1, description="Models this backend serves, with prices.")
    serving: Serving | None = Field(default=None, description="Present when the operator runs the model itself.")
    limits: BackendLimits = Field(default_factory=BackendLimits, description="Limits that protect the upstream.")
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker, description="When to take the backend out of rotation."
    )

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if self.url is not None and self.serving is not None:
            raise ValueError("set either url (external upstream) or serving (self-hosted), not both")
        if self.endpoints is not None and (self.url is not None or self.serving is not None):
            raise ValueError("endpoints replaces url and serving: set only one of the three")
        if self.url is None and self.endpoints is None and self.serving is None and self.provider is not Provider.MOCK:
            raise ValueError(f"provider {self.provider.value!r} needs url, endpoints (external upstream) or serving")
        if self.endpoints is not None:
            urls = [str(e.url).rstrip("/") for e in self.endpoints]
            dupes = sorted({u for u in urls if urls.count(u) > 1})
            if dupes:
                raise ValueError(f"endpoints lists {', '.join(map(repr, dupes))} more than once")
        if self.serving is not None and self.provider not in (Provider.VLLM, Provider.OPENAI):
            raise ValueError(
                f"serving runs an OpenAI-compatible engine: provider must be vllm or openai, "
                f"not {self.provider.value!r}"
            )
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models lists {', '.join(map(repr, dupes))} more than once")
        return self


class LLMBackendStatus(SpecModel):
    """Observed state of an LLMBackend, written by the operator."""

    conditions: list[Condition] = Field(default_factory=list, description="Ready and its leaf conditions.")
    url: str | None = Field(default=None, description="Resolved endpoint the gateway calls.")
    ready_replicas: int | None = Field(default=None, description="Inference pods ready (self-hosted only).")
    replicas: int | None = Field(default=None, description="Inference pods (the scale subresource's status).")
    selector: str | None = Field(default=None, description="Label selector of the inference pods (for autoscalers).")
    observed_generation: int | None = Field(default=None, description="Last generation reconciled.")


class LLMBackend(SpecModel):
    """An upstream that serves models: a hosted API, a self-hosted engine, or the built-in mock."""

    model_config = SpecModel.model_config | {"extra": "ignore"}

    api_version: Literal["interlock.dev/v1alpha1"] = Field(default="interlock.dev/v1alpha1", description="API version.")
    kind: Literal["LLMBackend"] = Field(default="LLMBackend", description="Kind.")
    metadata: ObjectMeta = Field(description="Object metadata.")
    spec: LLMBackendSpec = Field(description="Desired state.")
    status: LLMBackendStatus | None = Field(default=None, description="Observed state.")

    @model_validator(mode="after")
    def _check_name(self) -> Self:
        # The name becomes a Service name (self-hosted) and is referenced from Route targets: a DNS-1035 label.
        if not _DNS_1035.fullmatch(self.metadata.name):
            raise ValueError(
                f"metadata.name {self.metadata.name!r} must be a DNS-1035 label: lower-case letters, digits and "
                "'-', starting with a letter, at most 63 characters"
            )
        return self

    @property
    def name(self) -> str:
        return self.metadata.name
