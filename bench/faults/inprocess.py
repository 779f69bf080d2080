"""One gateway with everything around it, all in this process, for the hostile-upstream and slow-client cases,
which look inside the gateway: the real control plane (SQLite in a temporary directory) with a tenant and its key,
an upstream, the gateway on its client and ops ports with its HTTP limits, traces into an in-memory exporter, and
every log line captured.

``Stack`` then answers what the cases count: the usage rows the control plane holds, and every place a secret
could have leaked to (responses the case saw, log lines, spans, usage rows).
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from interlock.asgiserver import EmbeddedServer
from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.gateway.app import GatewayApp, create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver
from interlock.gateway.http.serve import server_options
from interlock.gateway.settings import GatewaySettings
from interlock.gatewayconfig import StaticConfigSource, compile_config
from interlock.resources import LLMBackend, Route
from interlock.telemetry.tracing import configure_tracing

__all__ = ["LogCapture", "Stack", "backend", "gateway_stack", "route"]


class LogCapture(logging.Handler):
    """Every log record of the root and uvicorn loggers (which do not propagate), formatted with tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
        self._levels: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> LogCapture:
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.addHandler(self)
            lg.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self._loggers, self._levels, strict=True):
            lg.removeHandler(self)
            lg.setLevel(level)


def backend(name: str, url: str, *, provider: str = "openai", models: Iterable[str] = ("ok",), **spec: Any) -> Any:
    body = {
        "provider": provider,
        "url": url,
        "models": [{"name": m, "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}} for m in models],
        "credentialsSecretRef": {"name": name, "key": "key"},
        **spec,
    }
    return LLMBackend.model_validate(
        {"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend", "metadata": {"name": name}, "spec": body}
    )


def route(model: str, backend_name: str, target: str, **spec: Any) -> Any:
    body = {"model": model, "targets": [{"backend": backend_name, "model": target}], **spec}
    return Route.model_validate(
        {"apiVersion": "interlock.dev/v1alpha1", "kind": "Route", "metadata": {"name": model}, "spec": body}
    )


@dataclass
class Stack:
    gateway: GatewayApp
    url: str
    ops_url: str
    key: str
    """The tenant's client key."""
    admin: httpx.AsyncClient
    """The control plane, as its admin."""
    client: httpx.AsyncClient
    """The gateway, with the tenant's key."""
    tenant_id: str
    secrets: dict[str, str]
    """Backend name -> its upstream credential."""
    spans: InMemorySpanExporter
    logs: LogCapture
    seen: list[bytes] = field(default_factory=list)
    """What the case's clients received (status line, headers and body of each response)."""

    async def usage_rows(self) -> list[dict[str, Any]]:
        response = await self.admin.get("/v1/usage", params={"tenant_id": self.tenant_id, "limit": 1000})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows

    def leaks(self) -> list[str]:
        """Where an upstream credential showed up, one entry per response, log line or span (empty: nowhere)."""
        places = [
            *((f"response {n}", seen) for n, seen in enumerate(self.seen, start=1)),
            *(("a log line", line.encode()) for line in self.logs.lines),
            *((f"span {s.name}", s.to_json().encode()) for s in self.spans.get_finished_spans()),
        ]
        found = []
        for where, text in places:
            for name, secret in self.secrets.items():
                middle = len(secret) // 2
                if secret.encode() in text or secret[middle - 8 : middle + 8].encode() in text:
                    found.append(f"{name}'s key in {where}")
        return found

    async def leaks_in_usage(self) -> list[str]:
        rows = orjson.dumps(await self.usage_rows())
        return [f"{name}'s key in usage rows" for name, s in self.secrets.items() if s.encode() in rows]


@asynccontextmanager
async def gateway_stack(
    backends: list[Any], routes: list[Any], upstreams: dict[str, Any], **settings: Any
) -> AsyncIterator[Stack]:
    """The stack for ``backends`` and ``routes``; ``upstreams`` maps a backend's name to the ASGI app serving it
    (its ``url`` in the manifest is replaced by the app's). ``settings`` override the gateway's."""
    from interlock.api import ApiSettings, create_app, dispose_app, ensure_bootstrap, migrate

    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="interlock-faults-")))
        logs = stack.enter_context(LogCapture())
        admin_token = secrets.token_urlsafe(32)
        signing_key = secrets.token_urlsafe(32)
        database_url = f"sqlite+aiosqlite:///{tmp / 'cp.db'}"
        await migrate(database_url)
        api = create_app(
            ApiSettings(
                database_url=database_url,
                admin_token=SecretStr(admin_token),
                gateway_signing_key=SecretStr(signing_key),
            )
        )
        stack.push_async_callback(dispose_app, api)
        async with api.state.sessions() as session:
            first = await ensure_bootstrap(session=session)
        assert first.key is not None
        plane = EmbeddedServer(api, lifespan="off")
        plane_url = await plane.start()
        stack.push_async_callback(plane.stop)

        servers: dict[str, str] = {}
        for name, app in upstreams.items():
            server = EmbeddedServer(app, lifespan="off")
            servers[name] = await server.start()
            stack.push_async_callback(server.stop)
        keys = {b.metadata.name: f"sk-upstream-{b.metadata.name}-{secrets.token_urlsafe(24)}" for b in backends}
        placed = [
            b.model_copy(update={"spec": b.spec.model_copy(update={"url": f"{servers[b.metadata.name]}/v1"})})
            if b.metadata.name in servers
            else b
            for b in backends
        ]
        compiled = compile_config(placed, routes)
        assert not compiled.rejected, compiled.rejected

        exporter = InMemorySpanExporter()
        tracing = configure_tracing("interlock-gateway", processor=SimpleSpanProcessor(exporter), environ={})
        gateway_settings = GatewaySettings(
            **{
                "control_plane_url": plane_url,
                "control_plane_token": mint_gateway_credential(signing_key.encode(), "faults/hostile"),
                "gateway_id": f"faults/hostile/{secrets.token_hex(4)}",
                "spool_path": tmp / "spool",
                "snapshot_interval_s": 0.2,
                "usage_sync_interval_s": 0.02,
                "usage_retry_max_s": 0.2,
                **settings,
            }
        )
        app, core = create_gateway_app(
            settings=gateway_settings,
            source=StaticConfigSource(compiled),
            resolver=MappingSecretResolver({name: {"key": key} for name, key in keys.items()}),
            tracing=tracing,
        )
        options = server_options(gateway_settings, core.services.metrics)
        ops = EmbeddedServer(core.ops_app, lifespan="off", **options)
        ops_url = await ops.start()
        stack.push_async_callback(ops.stop)
        server = EmbeddedServer(app, lifespan="on", **server_options(gateway_settings, core.services.metrics))
        url = await server.start()
        stack.push_async_callback(server.stop)  # first to stop: its last usage events still reach the plane

        admin = httpx.AsyncClient(base_url=plane_url, headers={"authorization": f"Bearer {admin_token}"}, timeout=30)
        stack.push_async_callback(admin.aclose)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        headers = {"authorization": f"Bearer {first.key}"}
        client = httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits)
        stack.push_async_callback(client.aclose)
        yield Stack(core, url, ops_url, first.key, admin, client, first.tenant_id, keys, exporter, logs)
