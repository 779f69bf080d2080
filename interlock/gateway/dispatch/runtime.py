"""``Runtime``: a loaded ``GatewayConfig`` turned into route plans and live backends.

A reload builds a new Runtime and swaps one reference; requests already running keep the plan they started
with. Backends whose config and credentials did not change are carried over, with their connection pools and
breaker state; the ones that went away are returned so the caller can close them once they are idle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from interlock.gateway.dispatch.apis import UPSTREAM_API
from interlock.gateway.dispatch.credentials import SecretResolver
from interlock.gateway.dispatch.plan import BackendRuntime, RoutePlan, Target
from interlock.gateway.pool import EndpointPool
from interlock.gateway.pool.discovery import Resolver, system_resolver
from interlock.gateway.pool.fairqueue import FairQueue
from interlock.gateway.pool.pool import PickerSettings
from interlock.gateway.pool.scorer import PickerWeights
from interlock.gateway.pool.upkeep import PoolUpkeep
from interlock.gateway.upstream.client import BackendClient
from interlock.gatewayconfig.model import BackendConfig, GatewayConfig, RouteConfig, TargetConfig

__all__ = ["Runtime", "build_runtime"]

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(slots=True)
class Runtime:
    config: GatewayConfig
    backends: dict[str, BackendRuntime]
    routes: dict[str, RoutePlan]
    models_body: bytes
    """``GET /v1/models`` for a caller who may use every route, pre-encoded."""

    def models_for(self, tenant: str) -> bytes:
        if all(not plan.tenants for plan in self.routes.values()):
            return self.models_body
        return _models_body([p for p in self.routes.values() if p.allows(tenant)])


def _auth_headers(config: BackendConfig, key: str | None) -> dict[str, str]:
    if not key:
        return {}
    if config.provider == "anthropic":
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    return {"authorization": f"Bearer {key}"}


def _backend(
    config: BackendConfig,
    resolver: SecretResolver,
    previous: BackendRuntime | None,
    *,
    mock_url: str | None,
    connect_timeout_s: float,
    dns_resolver: Resolver,
) -> BackendRuntime:
    key = resolver.resolve(config.credentials) if config.credentials else None
    fingerprint = hashlib.sha256(key.encode()).hexdigest() if key else ""
    if previous is not None and previous.config == config and previous.key_fingerprint == fingerprint:
        return previous
    if config.credentials and key is None:
        reason = (
            f"backend {config.name!r} has no credentials: "
            f"secret {config.credentials.secret!r} key {config.credentials.key!r} was not found"
        )
        return BackendRuntime(config, None, unusable_reason=reason)
    url = config.url or mock_url
    if url is None:
        return BackendRuntime(config, None, unusable_reason=f"backend {config.name!r} has no URL")
    headers = _auth_headers(config, key)

    def make_client(base_url: str) -> BackendClient:
        return BackendClient(
            name=config.name,
            base_url=base_url,
            auth_headers=headers,
            connect_timeout_s=connect_timeout_s,
            secrets=(key,) if key else (),
        )

    try:
        client = make_client(url)
        for endpoint_url in config.discovery.endpoints:
            make_client(endpoint_url)  # every URL is checked at load, not at first pick
    except ValueError as exc:
        return BackendRuntime(config, None, unusable_reason=str(exc))
    api = UPSTREAM_API[config.provider]
    discovery = config.discovery
    if discovery.mode == "url":
        return BackendRuntime(config, client, api=api, key_fingerprint=fingerprint)
    pool, upkeep = _pool(config, url, make_client, dns_resolver)
    queue = None
    queueing = config.queueing
    if queueing.max_inflight_per_endpoint > 0:
        limit = queueing.max_inflight_per_endpoint
        queue = FairQueue(
            config.name,
            lambda: pool.has_room(limit),
            capacity=lambda: len(pool.endpoints) * limit,
            max_queued=queueing.max_queued,
            max_queued_per_tenant=queueing.max_queued_per_tenant,
            max_wait_s=queueing.max_wait_s,
            headroom=queueing.headroom,
            headroom_target=queueing.headroom_target,
        )
        upkeep.on_scraped = queue.release  # fresh engine metrics may show room no request's end announced
    return BackendRuntime(config, client, api=api, key_fingerprint=fingerprint, pool=pool, upkeep=upkeep, queue=queue)


def _pool(
    config: BackendConfig, url: str, make_client: Callable[[str], BackendClient], dns_resolver: Resolver
) -> tuple[EndpointPool, PoolUpkeep]:
    picker = config.picker
    settings = PickerSettings(
        weights=PickerWeights(
            load=picker.load_weight,
            kv_cache=picker.kv_cache_weight,
            kv_threshold=picker.kv_cache_threshold,
            prefix=picker.prefix_weight,
            queue=picker.queue_weight,
        ),
        metrics_max_age_s=picker.metrics_max_age_s,
        batch_size=picker.batch_size,
    )
    pool = EndpointPool(config.name, make_client, settings)
    discovery = config.discovery
    # Until DNS answers, the backend's own URL (the Service's virtual IP) is the one endpoint.
    pool.set_urls(discovery.endpoints if discovery.mode == "static" else (url,))
    upkeep = PoolUpkeep(
        pool,
        make_client,
        fallback_url=url,
        dns_host=discovery.host if discovery.mode == "dns" else None,
        dns_port=discovery.port,
        refresh_s=discovery.refresh_s,
        resolver=dns_resolver,
        scrape_interval_s=picker.scrape_interval_s,
    )
    return pool, upkeep


def _targets(entries: tuple[TargetConfig, ...], backends: dict[str, BackendRuntime]) -> tuple[Target, ...]:
    return tuple(
        Target(
            backend=backends[e.backend],
            model=e.model,
            weight=e.weight,
            price=backends[e.backend].config.models.get(e.model),
            max_output_tokens=backends[e.backend].config.max_output_tokens.get(e.model, 0),
        )
        for e in entries
    )


def _spill_plan(route: RouteConfig, backends: dict[str, BackendRuntime]) -> RoutePlan | None:
    if route.spillover is None:
        return None
    return RoutePlan(
        config=route,
        targets=_targets((route.spillover.target,), backends),
        fallbacks=(),
        retry_on=frozenset(route.retry.on),
        tenants=frozenset(route.tenants),
    )


def _model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "interlock"}


def _models_body(plans: list[RoutePlan]) -> bytes:
    data = [_model_object(p.config.model) for p in plans]
    return orjson.dumps({"object": "list", "data": sorted(data, key=lambda m: str(m["id"]))})


def build_runtime(
    config: GatewayConfig,
    resolver: SecretResolver,
    previous: Runtime | None = None,
    *,
    mock_url: str | None = None,
    connect_timeout_s: float = 10.0,
    dns_resolver: Resolver = system_resolver,
) -> tuple[Runtime, list[BackendRuntime]]:
    """Build the runtime for ``config``; also return the previous backends that are no longer used.

    New backends with a pool are not started here: the caller starts them (``BackendRuntime.start``) in the loop.
    """
    old = previous.backends if previous else {}
    backends = {
        name: _backend(
            cfg,
            resolver,
            old.get(name),
            mock_url=mock_url,
            connect_timeout_s=connect_timeout_s,
            dns_resolver=dns_resolver,
        )
        for name, cfg in config.backends.items()
    }
    kept = {id(b) for b in backends.values()}
    retired = [b for b in old.values() if id(b) not in kept]
    routes = {
        model: RoutePlan(
            config=route,
            targets=_targets(route.targets, backends),
            fallbacks=_targets(route.fallbacks, backends),
            retry_on=frozenset(route.retry.on),
            tenants=frozenset(route.tenants),
            spill_plan=_spill_plan(route, backends),
            spill_after_s=route.spillover.first_token_s if route.spillover is not None else 0.0,
            model_body=orjson.dumps(_model_object(model)),
        )
        for model, route in config.routes.items()
    }
    runtime = Runtime(config=config, backends=backends, routes=routes, models_body=_models_body(list(routes.values())))
    return runtime, retired
