"""Per-request context handed to endpoints, and the long-lived services they use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from interlock.gateway.asgi import Receive, Scope, Send
from interlock.gateway.auth import Principal
from interlock.gateway.errors import InvalidRequestError, ModelNotFoundError
from interlock.gateway.guard import GuardClock
from interlock.gateway.routing import RoutePlan, Target
from interlock.gateway.runtime import Runtime
from interlock.gateway.settings import GatewaySettings
from interlock.telemetry.metrics import GatewayMetrics

__all__ = ["Authenticator", "RequestContext", "Services", "optional", "parse_json_object", "require"]


class Authenticator(Protocol):
    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal: ...


@dataclass(slots=True)
class Services:
    """What lives as long as the app: settings, metrics, auth, and the current runtime (swapped on reload)."""

    settings: GatewaySettings
    metrics: GatewayMetrics
    authenticator: Authenticator
    clock: GuardClock = field(default_factory=GuardClock)
    runtime: Runtime | None = None


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

    def attempting(self, target: Target) -> None:
        """Note the target of the current upstream attempt, for headers and metrics."""
        self.backend = target.backend.name
        self.upstream_model = target.model

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
