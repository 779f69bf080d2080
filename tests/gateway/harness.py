"""Real servers for gateway tests: mock upstreams and a gateway on loopback, configured from manifests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from interlock.asgiserver import EmbeddedServer
from interlock.gateway.app import GatewayApp, create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver, SecretResolver
from interlock.gateway.http.serve import server_options
from interlock.gateway.pool.discovery import Resolver, system_resolver
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
from interlock.gatewayconfig import ConfigSource, GatewayConfig, StaticConfigSource, compile_config
from interlock.mockprovider import MockProvider, MockSettings, create_app
from interlock.resources import LLMBackend, Route
from interlock.telemetry.tracing import Tracing

__all__ = [
    "KEY",
    "Gateway",
    "Servers",
    "Upstream",
    "backend",
    "config",
    "route",
    "start_gateway",
    "start_upstream",
]

KEY = "sk-il-test-key"


@dataclass
class Upstream:
    provider: MockProvider
    root: str

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    @property
    def requests(self) -> int:
        return self.provider.stats.total


@dataclass
class Gateway:
    core: GatewayApp
    root: str
    client: openai.AsyncOpenAI
    http: httpx.AsyncClient
    source: ConfigSource
    ops: httpx.AsyncClient
    """The ops port: /healthz, /readyz, /metrics."""

    def reload(self, new: GatewayConfig) -> Awaitable[None]:
        assert isinstance(self.source, StaticConfigSource)
        self.source.set(new)
        return self.core.loader.check()


class Servers:
    """Servers of one test, stopped together: uvicorn takes a tenth of a second to notice a stop request."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._servers: list[EmbeddedServer] = []
        stack.push_async_callback(self._stop_all)

    async def start(self, app: Any, **options: Any) -> str:
        server = EmbeddedServer(app, **options)
        self._servers.append(server)
        return await server.start()

    async def _stop_all(self) -> None:
        await asyncio.gather(*(server.stop() for server in self._servers))


async def start_upstream(servers: Servers, **settings: Any) -> Upstream:
    provider = create_app(MockSettings.model_validate(settings))
    root = await servers.start(provider, lifespan="off")
    return Upstream(provider, root)


async def start_gateway(
    stack: AsyncExitStack,
    servers: Servers,
    source: GatewayConfig | ConfigSource,
    *,
    keys: Mapping[str, str] | Iterable[str] | None = (KEY,),
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    resolver: SecretResolver | None = None,
    api_key: str = KEY,
    tracing: Tracing | None = None,
    dns_resolver: Resolver = system_resolver,
    **settings: Any,
) -> Gateway:
    """``keys=None``: the keys come from the settings (``api_keys``, the control plane's snapshot)."""
    if isinstance(source, GatewayConfig):
        source = StaticConfigSource(source)
    gateway_settings = GatewaySettings(**settings)
    app, core = create_gateway_app(
        settings=gateway_settings,
        source=source,
        resolver=resolver or MappingSecretResolver(secrets or {}),
        authenticator=StaticKeyAuthenticator(keys) if keys is not None else None,
        mock_app_factory=lambda: create_app(MockSettings()),
        tracing=tracing,
        dns_resolver=dns_resolver,
    )
    metrics = core.services.metrics
    ops_root = await servers.start(core.ops_app, lifespan="off", **server_options(gateway_settings, metrics))
    root = await servers.start(app, lifespan="on", **server_options(gateway_settings, metrics))
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=api_key, max_retries=0, timeout=20)
    stack.push_async_callback(client.close)
    http = httpx.AsyncClient(base_url=root, timeout=20, headers={"authorization": f"Bearer {api_key}"})
    stack.push_async_callback(http.aclose)
    ops = httpx.AsyncClient(base_url=ops_root, timeout=20)
    stack.push_async_callback(ops.aclose)
    return Gateway(core, root, client, http, source, ops)


def backend(name: str, url: str | None, *, models: Sequence[str] = ("m1",), **spec: Any) -> dict[str, Any]:
    """An LLMBackend manifest; ``url=None`` with ``provider="mock"`` is the embedded mock."""
    body: dict[str, Any] = {
        "provider": "openai",
        "models": [{"name": m, "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}} for m in models],
        **spec,
    }
    if url is not None:
        body["url"] = url
    return {"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend", "metadata": {"name": name}, "spec": body}


def route(
    model: str,
    targets: Sequence[tuple[str, str] | tuple[str, str, int]],
    *,
    fallbacks: Sequence[tuple[str, str]] = (),
    name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Route manifest. Targets are ``(backend, model)`` or ``(backend, model, weight)``."""
    return {
        "apiVersion": "interlock.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": name or model},
        "spec": {
            "model": model,
            "targets": [{"backend": t[0], "model": t[1], "weight": t[2] if len(t) > 2 else 1} for t in targets],
            "fallbacks": [{"backend": b, "model": m} for b, m in fallbacks],
            **spec,
        },
    }


def config(*manifests: dict[str, Any]) -> GatewayConfig:
    """Compile manifests the way the operator and ``interlock up`` do."""
    backends = [LLMBackend.model_validate(m) for m in manifests if m["kind"] == "LLMBackend"]
    routes = [Route.model_validate(m) for m in manifests if m["kind"] == "Route"]
    compiled = compile_config(backends, routes)
    assert not compiled.rejected, compiled.rejected
    return compiled


Factory = Callable[..., Awaitable[Any]]
