"""``compile_config(backends, routes) -> GatewayConfig``: pure, shared by the operator and ``interlock up``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson

from interlock.gatewayconfig.model import (
    BackendConfig,
    CircuitBreakerConfig,
    CredentialRef,
    DiscoveryConfig,
    GatewayConfig,
    ModelPrice,
    PickerConfig,
    QueueingConfig,
    RetryConfig,
    RouteConfig,
    SpilloverConfig,
    TargetConfig,
    TimeoutConfig,
)
from interlock.resources.common import parse_duration
from interlock.resources.llmbackend import ENGINE_PORTS, LLMBackend
from interlock.resources.problems import closest
from interlock.resources.route import Route, RouteFallback

__all__ = [
    "ENGINE_KEY",
    "SELF_HOSTED_PORT",
    "compile_config",
    "engine_key_secret",
    "self_hosted_pods_service",
    "self_hosted_url",
]

SELF_HOSTED_PORT = 8000
ENGINE_KEY = "api-key"


def engine_key_secret(name: str) -> str:
    """The Secret with the API key the operator generates for a self-hosted backend's engine (key ``api-key``)."""
    return f"{name}-engine-key"


def self_hosted_url(name: str, namespace: str) -> str:
    """The in-cluster URL of the Service the operator creates for a self-hosted backend."""
    return f"http://{name}.{namespace}.svc:{SELF_HOSTED_PORT}/v1"


def self_hosted_pods_service(name: str) -> str:
    """The headless Service the operator creates beside a self-hosted backend's Service: one DNS address per ready
    pod, which the gateway resolves to pick among the pods itself."""
    return f"{name}-pods"


def _backend_config(backend: LLMBackend) -> BackendConfig:
    spec = backend.spec
    discovery = DiscoveryConfig()
    if spec.url is not None:
        url: str | None = str(spec.url).rstrip("/")
    elif spec.endpoints is not None:
        urls = tuple(str(e.url).rstrip("/") for e in spec.endpoints)
        url, discovery = urls[0], DiscoveryConfig(mode="static", endpoints=urls)
    elif spec.serving is not None:
        name, namespace = backend.metadata.name, backend.metadata.namespace
        url = self_hosted_url(name, namespace)
        discovery = DiscoveryConfig(
            mode="dns",
            host=f"{self_hosted_pods_service(name)}.{namespace}.svc",
            port=ENGINE_PORTS[spec.serving.engine],
        )
    else:
        url = None  # the embedded mock provider
    ref = spec.credentials_secret_ref
    credentials = CredentialRef(secret=ref.name, key=ref.key) if ref else None
    if credentials is None and spec.serving is not None:
        # A self-hosted engine demands the key the operator generated for it; the gateways send it.
        credentials = CredentialRef(secret=engine_key_secret(backend.metadata.name), key=ENGINE_KEY)
    models = {
        m.name: ModelPrice(
            input_per_million=m.pricing.input_per_million,
            output_per_million=m.pricing.output_per_million,
            cached_input_per_million=(
                m.pricing.cached_input_per_million
                if m.pricing.cached_input_per_million is not None
                else m.pricing.input_per_million
            ),
        )
        for m in spec.models
    }
    return BackendConfig(
        name=backend.metadata.name,
        provider=spec.provider.value,
        url=url,
        discovery=discovery,
        picker=PickerConfig(
            load_weight=spec.picker.load_weight,
            kv_cache_weight=spec.picker.kv_cache_weight,
            kv_cache_threshold=spec.picker.kv_cache_threshold,
            prefix_weight=spec.picker.prefix_weight,
            queue_weight=spec.picker.queue_weight,
            batch_size=spec.picker.batch_size or spec.queueing.max_inflight_per_endpoint,
            metrics_max_age_s=parse_duration(spec.picker.metrics_max_age),
            scrape_interval_s=parse_duration(spec.picker.scrape_interval),
        ),
        queueing=QueueingConfig(
            max_inflight_per_endpoint=spec.queueing.max_inflight_per_endpoint,
            max_queued=spec.queueing.max_queued,
            max_queued_per_tenant=spec.queueing.max_queued_per_tenant,
            max_wait_s=parse_duration(spec.queueing.max_wait),
            headroom=spec.queueing.headroom,
            headroom_target=spec.queueing.headroom_target,
        ),
        credentials=credentials,
        models=models,
        max_output_tokens={m.name: m.max_output_tokens for m in spec.models if m.max_output_tokens},
        max_concurrency=spec.limits.max_concurrency,
        circuit_breaker=CircuitBreakerConfig(
            consecutive_failures=spec.circuit_breaker.consecutive_failures,
            cooldown_s=parse_duration(spec.circuit_breaker.cooldown),
        ),
    )


def _missing_target(entry: RouteFallback, backends: dict[str, BackendConfig]) -> str | None:
    backend = backends.get(entry.backend)
    if backend is None:
        guess = closest(entry.backend, list(backends))
        if guess is not None:
            return f"backend {entry.backend!r} does not exist; did you mean {guess!r}?"
        return f"backend {entry.backend!r} does not exist (LLMBackends here: {', '.join(sorted(backends)) or 'none'})"
    if entry.model not in backend.models:
        served = ", ".join(sorted(backend.models))
        return f"backend {entry.backend!r} does not serve model {entry.model!r} (it serves: {served})"
    return None


def _spill_target(route: Route, backends: dict[str, BackendConfig]) -> RouteFallback | str:
    """The spill-over's backend and model, or why it cannot be served. Without ``model``, the backend's only
    model, else the Route's public model name if the backend serves it."""
    spill = route.spec.spillover
    assert spill is not None
    name = spill.backend_name
    model = spill.model
    backend = backends.get(name)
    if model is None and backend is not None:
        if len(backend.models) == 1:
            model = next(iter(backend.models))
        elif route.spec.model in backend.models:
            model = route.spec.model
        else:
            served = ", ".join(sorted(backend.models))
            return (
                f"spillover: backend {name!r} serves several models ({served}) and not {route.spec.model!r}: "
                "name one with spillover.model"
            )
    entry = RouteFallback(backend=name, model=model or route.spec.model)
    return _missing_target(entry, backends) or entry


def _route_config(route: Route, spill: RouteFallback | None) -> RouteConfig:
    spec = route.spec
    return RouteConfig(
        name=route.metadata.name,
        model=spec.model,
        targets=tuple(TargetConfig(backend=t.backend, model=t.model, weight=t.weight) for t in spec.targets),
        fallbacks=tuple(TargetConfig(backend=f.backend, model=f.model, weight=1) for f in spec.fallbacks),
        retry=RetryConfig(
            attempts=spec.retry.attempts,
            backoff_s=parse_duration(spec.retry.backoff),
            on=tuple(spec.retry.retry_on),
        ),
        timeouts=TimeoutConfig(
            request_s=parse_duration(spec.timeouts.request),
            first_token_s=parse_duration(spec.timeouts.first_token),
        ),
        tenants=tuple(spec.tenants),
        requests_per_minute=spec.limits.requests_per_minute,
        tokens_per_minute=spec.limits.tokens_per_minute,
        priority=spec.priority,
        spillover=(
            SpilloverConfig(
                target=TargetConfig(backend=spill.backend, model=spill.model),
                first_token_s=parse_duration(spec.spillover.when_predicted_first_token),
            )
            if spec.spillover is not None and spill is not None
            else None
        ),
    )


def _content_hash(config: GatewayConfig) -> str:
    body = config.model_dump(mode="json", by_alias=True, exclude={"version"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def compile_config(
    backends: Iterable[LLMBackend],
    routes: Iterable[Route],
    *,
    namespace: str = "default",
    gateway: str = "default",
) -> GatewayConfig:
    """Compile the objects of one namespace into the config of one gateway.

    Routes of other gateways or namespaces are ignored. A route that cannot be served (a missing backend, a model
    the backend does not serve, a public model name another route already claims) is left out and listed in
    ``rejected`` with the reason, so one bad route never takes down the others.
    """
    backend_configs = {
        b.metadata.name: _backend_config(b)
        for b in sorted(backends, key=lambda b: b.metadata.name)
        if b.metadata.namespace == namespace
    }
    route_configs: dict[str, RouteConfig] = {}
    rejected: dict[str, str] = {}
    mine = [r for r in routes if r.metadata.namespace == namespace and r.spec.gateway == gateway]
    for route in sorted(mine, key=lambda r: r.metadata.name):
        entries: list[RouteFallback] = [*route.spec.targets, *route.spec.fallbacks]
        problems = [p for entry in entries if (p := _missing_target(entry, backend_configs))]
        spill = _spill_target(route, backend_configs) if route.spec.spillover is not None else None
        if isinstance(spill, str):
            problems.append(spill)
        owner = route_configs.get(route.spec.model)
        if owner is not None:
            problems.append(f"model {route.spec.model!r} is already served by route {owner.name!r}")
        if problems:
            rejected[route.metadata.name] = "; ".join(problems)
            continue
        route_configs[route.spec.model] = _route_config(route, spill if isinstance(spill, RouteFallback) else None)
    config = GatewayConfig(
        gateway=f"{namespace}/{gateway}", backends=backend_configs, routes=route_configs, rejected=rejected
    )
    return config.model_copy(update={"version": _content_hash(config)})
