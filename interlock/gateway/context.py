"""Per-request context handed to endpoints, and the long-lived services they use."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from interlock.gateway.dispatch.plan import RoutePlan, Target
from interlock.gateway.dispatch.runtime import Runtime
from interlock.gateway.errors import InvalidRequestError, ModelNotFoundError, ServiceUnavailableError
from interlock.gateway.http.asgi import Receive, Scope, Send
from interlock.gateway.http.guard import GuardClock
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.structured.pool import SchemaWorkers
from interlock.gateway.tenancy.auth import PolicyProvider, Principal
from interlock.gateway.tenancy.ratelimit import Caps
from interlock.gateway.usage.metering import Usage
from interlock.gatewayconfig.model import ModelPrice
from interlock.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:
    from interlock.telemetry.tracing import RequestSpan, Tracing

__all__ = [
    "Admission",
    "Authenticator",
    "RequestContext",
    "Services",
    "UsageSink",
    "optional",
    "parse_json_object",
    "require",
]


class Authenticator(Protocol):
    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal: ...


class Admission(Protocol):
    """A tenant's limits around one request (``tenancy.limits.Enforcer``). A protocol, so that this module needs
    not import the modules that take a ``RequestContext``."""

    async def admit(self, ctx: RequestContext, plan: RoutePlan) -> None: ...

    def settle(self, ctx: RequestContext, tokens: int, cost_usd: float) -> None: ...

    def release(self, ctx: RequestContext) -> None: ...

    async def close(self) -> None: ...


class UsageSink(Protocol):
    """Where finished requests' usage events go (``usage.recorder.UsageRecorder``)."""

    def record(self, ctx: RequestContext, finished: float) -> None: ...

    @property
    def refusing(self) -> str | None:
        """Why the sink cannot take more events now (new metered requests are refused), or None."""


@dataclass(slots=True)
class Services:
    """What lives as long as the app: settings, metrics, auth, limits, usage events, and the current runtime
    (swapped on reload). ``policy`` (the control plane's snapshot) and ``usage`` exist only with a control plane."""

    settings: GatewaySettings
    metrics: GatewayMetrics
    authenticator: Authenticator
    clock: GuardClock = field(default_factory=GuardClock)
    runtime: Runtime | None = None
    enforcer: Admission | None = None
    policy: PolicyProvider | None = None
    usage: UsageSink | None = None
    tracing: Tracing | None = None
    schemas: SchemaWorkers = field(default_factory=SchemaWorkers)
    """The schema worker processes of strict json_schema requests (started on first use)."""

    def price(self, target: Target) -> ModelPrice | None:
        """The target's price: the snapshot's override when there is one, else the manifests' price."""
        source = self.policy
        policy = source.policy if source is not None else None
        if policy is None:
            return target.price
        return policy.price(target.backend.name, target.model, target.price)


@dataclass(slots=True)
class RequestContext:
    scope: Scope
    receive: Receive
    send: Send
    services: Services
    runtime: Runtime
    request_id: str
    started: float
    """Event-loop clock at arrival; deadlines are measured from here."""
    principal: Principal | None = None
    body: bytes = b""
    route_model: str = ""
    backend: str = ""
    upstream_model: str = ""
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # --- enforcement and metering ---
    clock: float = 0.0
    """``time.perf_counter()`` at arrival: spans and usage latency are measured from here (sub-millisecond)."""
    auth_s: float = 0.0
    admit_s: float = 0.0
    attempts: list[list[Any]] = field(default_factory=list)
    """Upstream attempts: [backend, model, start s, end s, status, failure kind or None], relative to ``clock``."""
    queued: list[tuple[str, float, float, str | None]] = field(default_factory=list)
    """Waits in a backend's fair queue: (backend, start s, end s, refusal or None), relative to ``clock``."""
    spilled: bool = False
    """Served by the route's spill-over target because the pool would have answered too late."""
    admitted: bool = False
    recorded: bool = False
    """The usage event is written (``record_usage``)."""
    caps: Caps | None = None
    reserve_input: int = 0
    """The request's worst case in tokens (``tenancy.reservation``): input bound and output cap."""
    reserve_output: int = 0
    reserved_tokens: int = 0
    """Tokens taken from the token buckets at admission, until settled with the real usage."""
    reserved_usd: float = 0.0
    """Budget reserved at admission (in memory, or in Redis under ``budget_ticket``), until settled."""
    budget_ticket: str = ""
    budget_month: str = ""
    slot_tenant: str = ""
    """The tenant whose concurrency slot this request holds."""
    status: int = 0
    """The status recorded for metrics and the usage event; 0 until recorded."""
    usage: Usage | None = None
    cost_usd: float = 0.0
    first_token_s: float | None = None
    # --- tracing (only for a sampled request) ---
    trace: RequestSpan | None = None
    trace_head: bytes = b""
    """Header lines carrying the trace context upstream (``traceparent``); empty when the request is not traced."""

    @property
    def tenant(self) -> str:
        return self.principal.tenant if self.principal else ""

    def route(self, model: str) -> RoutePlan:
        """The route for a public model name, if the caller may use it (otherwise it does not exist for them)."""
        plan = self.runtime.routes.get(model)
        if plan is None or not plan.allows(self.tenant):
            raise ModelNotFoundError(
                f"The model {model!r} does not exist or you do not have access to it.", param="model"
            )
        self.route_model = model
        return plan

    async def admit(self, plan: RoutePlan) -> None:
        """Apply the caller's limits for this route (429 when one refuses); 503 while the usage spool cannot take
        the request's usage event."""
        usage = self.services.usage
        if usage is not None:
            why = usage.refusing
            if why is not None:
                raise ServiceUnavailableError(
                    f"The gateway cannot record usage right now ({why}); please try again later.",
                    code="usage_spool_full",
                    headers={"retry-after": "5"},
                )
        enforcer = self.services.enforcer
        if enforcer is not None:
            await enforcer.admit(self, plan)
        else:
            self.admitted = True
        self.admit_s = time.perf_counter() - self.clock

    def record_usage(self) -> None:
        """Settle the request's reservations and write its usage event, once: ``Exchange`` calls this right before
        the last byte of the answer leaves, so that a gateway killed after the client has its answer still has the
        event."""
        if self.recorded or not self.admitted:
            return
        self.recorded = True
        services = self.services
        enforcer = services.enforcer
        if enforcer is not None and (self.reserved_tokens or self.reserved_usd or self.caps is not None):
            # settled here, with no await before the event's cost reaches the spend ledger: no admission in
            # between can see the budget without both this request's reservation and its cost
            used = self.usage
            enforcer.settle(self, used.input_tokens + used.output_tokens if used is not None else 0, self.cost_usd)
        if services.usage is not None:
            services.usage.record(self, time.perf_counter())

    def queue_waited(self, backend: str, waited_s: float, refusal: str | None) -> None:
        """The request waited ``waited_s`` in ``backend``'s fair queue, let in (``refusal`` None) or refused."""
        end = time.perf_counter() - self.clock
        self.queued.append((backend, end - waited_s, end, refusal))
        self.services.metrics.queue_wait(backend, self.tenant, waited_s, refusal)

    def attempting(self, target: Target) -> None:
        """Note the target of the current upstream attempt, for headers, metrics and spans."""
        self.backend = name = target.backend.name
        self.upstream_model = target.model
        self.attempts.append([name, target.model, time.perf_counter() - self.clock, 0.0, 0, None])

    def attempt_done(self, status: int, failure: str | None = None) -> None:
        """The current upstream attempt answered ``status`` (0: no HTTP answer) or failed with ``failure``."""
        attempt = self.attempts[-1]
        attempt[3] = time.perf_counter() - self.clock
        attempt[4] = status
        attempt[5] = failure

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.tenant, self.route_model, self.backend, self.upstream_model)

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.started


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object; 400 otherwise."""
    if not body:
        raise InvalidRequestError("The request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The request body must be a JSON object, not {type(data).__name__}.")
    return data


def require(payload: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """A required field of the given JSON type; 400 naming the field otherwise."""
    value = payload.get(name)
    if value is None:
        raise InvalidRequestError(
            f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
        )
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected {what}, but got {_json_type(value)}.",
            param=name,
            code="invalid_type",
        )
    return value


def optional(payload: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if payload.get(name) is None:
        return None
    return require(payload, name, kind, what)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
