"""The gateway ASGI application: endpoint table, request context, config reloads, lifespan.

``create_gateway_app`` wires the pieces; ``GatewayApp`` is the core that the middleware wraps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlock import tokenizer
from interlock.asgiserver import EmbeddedServer
from interlock.contract.controlplane import GatewayStatusReport
from interlock.gateway.context import Authenticator, RequestContext, Services
from interlock.gateway.controlplane.link import ControlPlaneLink
from interlock.gateway.controlplane.statusreport import build_report
from interlock.gateway.dispatch.apis import API
from interlock.gateway.dispatch.credentials import CredentialWatcher, SecretResolver, resolve_all
from interlock.gateway.dispatch.plan import BackendRuntime
from interlock.gateway.dispatch.runtime import build_runtime
from interlock.gateway.endpoints.chat import chat_completions
from interlock.gateway.endpoints.embeddings import embeddings
from interlock.gateway.endpoints.health import OpsApp, healthz
from interlock.gateway.endpoints.messages import count_tokens, messages
from interlock.gateway.endpoints.models import MODEL_PREFIX, list_models, retrieve_model
from interlock.gateway.endpoints.responses import responses
from interlock.gateway.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from interlock.gateway.http.asgi import ASGIApp, Receive, Scope, Send, read_body, send_bytes
from interlock.gateway.http.guard import ClientDisconnected
from interlock.gateway.http.middleware import REQUEST_ID_KEY, ErrorBoundaryMiddleware, RequestIdMiddleware
from interlock.gateway.pool import Endpoint as PoolEndpoint
from interlock.gateway.pool.discovery import Resolver, system_resolver
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.structured.pool import SchemaWorkers
from interlock.gateway.tenancy.auth import SnapshotAuthenticator, StaticKeyAuthenticator
from interlock.gateway.tenancy.limits import Enforcer
from interlock.gateway.tenancy.redisbuckets import RedisBuckets
from interlock.gateway.tracespans import end_trace
from interlock.gatewayconfig.loader import ConfigLoader, ConfigSource
from interlock.gatewayconfig.model import GatewayConfig
from interlock.telemetry.metrics import DisabledMetrics, GatewayMetrics

if TYPE_CHECKING:
    from interlock.telemetry.tracing import Tracing

__all__ = ["GatewayApp", "create_gateway_app"]

log = logging.getLogger("interlock.gateway")

Handler = Callable[[RequestContext], Awaitable[None]]
_CLIENT_CLOSED = 499  # nginx's status for "client closed request", for metrics only


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    handler: Handler
    api: API = API.CHAT
    """Whose error envelope the endpoint answers with."""
    reads_body: bool = True
    operation: str | None = "chat"
    """``gen_ai.operation.name`` of its traces; None: not traced (it reaches no model)."""


class GatewayApp:
    """Routes requests to endpoints; owns the current runtime and swaps it when the config changes."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        source: ConfigSource,
        resolver: SecretResolver,
        authenticator: Authenticator,
        metrics: GatewayMetrics | None = None,
        mock_app_factory: Callable[[], Any] | None = None,
        link: ControlPlaneLink | None = None,
        enforcer: Enforcer | None = None,
        tracing: Tracing | None = None,
        dns_resolver: Resolver = system_resolver,
    ) -> None:
        """``dns_resolver``: how backends with ``dns`` discovery resolve their pods' names (tests give their own)."""
        self.services = Services(settings=settings, metrics=metrics or GatewayMetrics(), authenticator=authenticator)
        self.services.enforcer = self.enforcer = enforcer
        self.services.schemas = SchemaWorkers(
            workers=settings.structured_workers,
            budget_s=settings.structured_budget_s,
            on_trip=self.services.metrics.limit_trip,
        )
        self.services.tracing = tracing
        self.link = link
        if link is not None:
            self.services.policy = link.source
            self.services.usage = link.recorder
            self.services.metrics.pipeline = link.pipeline_state
        self.resolver = resolver
        self.dns_resolver = dns_resolver
        self.loader = ConfigLoader(source, self.apply_config, interval_s=settings.config_poll_interval_s)
        self._applying = asyncio.Lock()
        self.credentials = CredentialWatcher(
            resolver, self._credentials_changed, interval_s=settings.config_poll_interval_s
        )
        self._mock_app_factory = mock_app_factory
        self._mock_server: EmbeddedServer | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.ops_app = OpsApp(self.services, self.loader, link, enforcer)
        """The ASGI app of the ops port: ``/readyz`` and ``/metrics`` are served there, not on the client port."""
        self.services.metrics.breakers = self._breakers
        self.services.metrics.pools = self._pools
        self.services.metrics.queues = self._queues
        self._endpoints: dict[str, Endpoint] = {
            "/v1/chat/completions": Endpoint("POST", chat_completions),
            "/v1/embeddings": Endpoint("POST", embeddings, operation="embeddings"),
            "/v1/models": Endpoint("GET", list_models, reads_body=False, operation=None),
            "/v1/messages": Endpoint("POST", messages, API.MESSAGES),
            "/v1/messages/count_tokens": Endpoint("POST", count_tokens, API.MESSAGES, operation=None),
            "/v1/responses": Endpoint("POST", responses, API.RESPONSES),
        }
        self._model_endpoint = Endpoint("GET", retrieve_model, reads_body=False, operation=None)

    def _breakers(self) -> list[tuple[str, bool]]:
        runtime = self.services.runtime
        if runtime is None:
            return []
        now = time.monotonic()
        return [(name, backend.breaker_open(now)) for name, backend in runtime.backends.items()]

    def _pools(self) -> list[tuple[str, tuple[PoolEndpoint, ...]]]:
        runtime = self.services.runtime
        if runtime is None:
            return []
        return [(name, b.pool.endpoints) for name, b in runtime.backends.items() if b.pool is not None]

    def _queues(self) -> list[tuple[str, dict[str, int]]]:
        runtime = self.services.runtime
        if runtime is None:
            return []
        return [(name, b.queue.waiting) for name, b in runtime.backends.items() if b.queue is not None]

    # --- config -----------------------------------------------------------------------------------------

    async def apply_config(self, config: GatewayConfig) -> None:
        async with self._applying:  # one at a time: a slower, older apply never replaces a newer runtime
            await self._apply(config)

    async def _apply(self, config: GatewayConfig) -> None:
        mock_url = None
        if any(b.url is None and b.provider == "mock" for b in config.backends.values()):
            mock_url = await self._embedded_mock_url()
        previous = self.services.runtime
        runtime, retired = build_runtime(
            config,
            await resolve_all(self.resolver, config),
            previous,
            mock_url=mock_url,
            connect_timeout_s=self.services.settings.connect_timeout_s,
            dns_resolver=self.dns_resolver,
        )
        for backend in runtime.backends.values():
            backend.start()  # no-op for backends carried over (already started) and those without a pool
        self.services.runtime = runtime
        if self.link is not None:
            self.link.reporter.wake()
        carried = {id(b) for b in previous.backends.values()} if previous is not None else set()
        for backend in runtime.backends.values():
            if backend.unusable_reason and id(backend) not in carried:  # said once, when it becomes so
                log.warning("%s: its routes answer 503 until that is fixed", backend.unusable_reason)
        if retired:
            task = asyncio.create_task(self._retire(retired))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _credentials_changed(self) -> None:
        """A mounted Secret changed (a rotated key): rebuild the backends whose key changed, keep the rest."""
        async with self._applying:  # the config current when it runs, not when the change was seen
            if self.services.runtime is not None:
                await self._apply(self.services.runtime.config)

    async def _embedded_mock_url(self) -> str:
        if self._mock_server is None:
            if self._mock_app_factory is None:
                raise ValueError("the config has a mock backend without url, and no embedded mock provider")
            self._mock_server = EmbeddedServer(self._mock_app_factory(), lifespan="off")
            await self._mock_server.start()
            log.info("embedded mock provider listening on %s", self._mock_server.url)
        return f"{self._mock_server.url}/v1"

    @staticmethod
    async def _retire(backends: list[BackendRuntime], grace_s: float = 600.0) -> None:
        """Close clients of removed backends once their in-flight requests are done (bounded by a grace)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + grace_s
        while any(b.inflight for b in backends) and loop.time() < until:  # noqa: ASYNC110 - rare, coarse poll
            await asyncio.sleep(0.5)
        for backend in backends:
            await backend.close()

    # --- ASGI ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # The tokenizer (usage estimates, and the calibration sample the first answers with usage take) costs
        # ~0.1-0.2 s of CPU to build. Built lazily, on the loop, at the first answer, that stalled every stream of
        # the gateway for as long (bench/RESULTS.md, helper "quiet2"); built here, in a thread, before serving.
        await asyncio.to_thread(tokenizer.encoding)
        self.services.clock.start()
        if self.link is not None:
            await self.link.start()
        await self.loader.start()
        await self.credentials.start()
        if self.link is not None:
            self.link.reporter.start(self.status_report)

    def status_report(self) -> GatewayStatusReport:
        """What the control plane's console shows about this gateway (sent by the link's reporter)."""
        link = self.link
        ready = self.loader.status.ready and (link is None or link.ready)
        gateway_id = self.services.settings.gateway_id
        return build_report(gateway_id, self.loader.status, self.services.runtime, ready)

    async def shutdown(self) -> None:
        """The server has finished its requests: write and send their usage, then close everything."""
        await self.credentials.stop()
        await self.loader.stop()
        await self.services.clock.stop()
        if self.link is not None:
            await self.link.stop()
        if self.enforcer is not None:
            await self.enforcer.close()
        await self.services.schemas.close()
        if self.services.tracing is not None:
            await asyncio.to_thread(self.services.tracing.shutdown)  # exports what is still batched
        for task in list(self._retiring):
            task.cancel()
        runtime = self.services.runtime
        if runtime is not None:
            for backend in runtime.backends.values():
                await backend.close()
        if self._mock_server is not None:
            await self._mock_server.stop()
            self._mock_server = None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        endpoint = self._endpoints.get(path)
        if endpoint is None and path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
            endpoint = self._model_endpoint
        if endpoint is None:
            await self._plain(scope, send, path)
            return
        services = self.services
        runtime = services.runtime
        if endpoint.method != scope["method"]:
            error: GatewayError = InvalidRequestError(
                f"Method {scope['method']} is not allowed on {path}; use {endpoint.method}.",
                code="method_not_allowed",
            )
            await send_bytes(send, 405, error.openai_body(), headers=[(b"allow", endpoint.method.encode())])
            return
        if runtime is None:
            error = ServiceUnavailableError("The gateway has not loaded a configuration yet.", code="not_ready")
            await send_bytes(send, error.status, error.openai_body(), headers=[(b"retry-after", b"1")])
            return
        ctx = RequestContext(
            scope=scope,
            receive=receive,
            send=send,
            services=services,
            runtime=runtime,
            request_id=scope.get(REQUEST_ID_KEY, ""),
            started=asyncio.get_running_loop().time(),
            clock=time.perf_counter(),
        )
        authorization = x_api_key = content_length = traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                x_api_key = value
            elif name == b"content-length":
                content_length = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        if services.tracing is not None and endpoint.operation is not None:
            trace = ctx.trace = services.tracing.start_request(endpoint.operation, path, traceparent, tracestate)
            if trace is not None:
                ctx.trace_head = trace.head
        services.metrics.inflight += 1
        try:
            ctx.principal = services.authenticator.authenticate(authorization, x_api_key)
            ctx.auth_s = time.perf_counter() - ctx.clock
            if endpoint.reads_body:
                ctx.body = await read_body(receive, services.settings.max_body_bytes, content_length)
            await endpoint.handler(ctx)
        except GatewayError as exc:
            if isinstance(exc, PayloadTooLargeError):
                services.metrics.limit_trip("body_bytes")
            headers = [*ctx.response_headers, *((k.encode(), v.encode()) for k, v in exc.headers.items())]
            if ctx.backend:
                headers.append((b"x-interlock-backend", ctx.backend.encode()))
            if not ctx.status:  # not metered yet (a failed structured-output answer was)
                ctx.status = exc.status
                services.metrics.request_done(ctx.labels, exc.status, ctx.elapsed())
            ctx.record_usage()
            if endpoint.api is API.MESSAGES:
                await send_bytes(send, exc.status_for_anthropic(), exc.anthropic_body(), headers=headers)
            else:
                await send_bytes(send, exc.status, exc.openai_body(), headers=headers)
        except ClientDisconnected:
            log.debug("client went away during request %s", ctx.request_id)
            ctx.status = _CLIENT_CLOSED
            services.metrics.request_done(ctx.labels, _CLIENT_CLOSED, ctx.elapsed())
        finally:
            services.metrics.inflight -= 1
            ctx.record_usage()  # if the endpoint did not already (errors, a client gone)
            if services.enforcer is not None and (ctx.slot_tenant or ctx.reserved_tokens or ctx.reserved_usd):
                services.enforcer.release(ctx)
            if ctx.trace is not None:
                end_trace(ctx, time.perf_counter())

    async def _plain(self, scope: Scope, send: Send, path: str) -> None:
        """Endpoints without auth, body or routing: only ``/healthz`` (``/readyz`` and ``/metrics`` are on the
        ops port)."""
        if path == "/healthz":
            await healthz(send)
        else:
            error = NotFoundError(f"Unknown path {scope['method']} {path}.", code="unknown_url")
            await send_bytes(send, error.status, error.openai_body())


def create_gateway_app(
    *,
    settings: GatewaySettings,
    source: ConfigSource,
    resolver: SecretResolver,
    authenticator: Authenticator | None = None,
    metrics: GatewayMetrics | None = None,
    mock_app_factory: Callable[[], Any] | None = None,
    tracing: Tracing | None = None,
    dns_resolver: Resolver = system_resolver,
) -> tuple[ASGIApp, GatewayApp]:
    """The middleware-wrapped ASGI app to serve, and the core for callers that manage it (tests, ``up``).

    With ``settings.control_plane_url``, keys, limits and budgets come from the control plane's snapshot (the
    ``api_keys`` stay valid beside them as break-glass keys) and usage events go to it; without, ``api_keys`` are
    the keys and no events leave the gateway. ``authenticator`` replaces the settings' key checks. Route limits
    apply in both modes; their buckets live in Redis when ``redis_url`` is set.
    """
    metrics = metrics or (GatewayMetrics() if settings.metrics_enabled else DisabledMetrics())
    link = ControlPlaneLink(settings) if settings.control_plane_url else None
    if authenticator is None:
        static = StaticKeyAuthenticator(settings.api_keys) if settings.api_keys else None
        if link is not None:
            authenticator = SnapshotAuthenticator(link.source, fallback=static)
        else:
            authenticator = static or StaticKeyAuthenticator(())
    redis = None
    if settings.redis_url:
        redis = RedisBuckets(settings.redis_url, prefix=settings.redis_key_prefix, timeout_s=settings.redis_timeout_s)
    enforcer = Enforcer(metrics=metrics, ledger=link.ledger if link is not None else None, redis=redis)
    core = GatewayApp(
        settings=settings,
        source=source,
        resolver=resolver,
        authenticator=authenticator,
        metrics=metrics,
        mock_app_factory=mock_app_factory,
        link=link,
        enforcer=enforcer,
        tracing=tracing,
        dns_resolver=dns_resolver,
    )
    # The request id outermost, so even the error boundary's 500 carries it.
    return RequestIdMiddleware(ErrorBoundaryMiddleware(core)), core
