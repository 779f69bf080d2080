"""The ``Route`` custom resource: a public model name and how requests for it are served."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from interlock.resources.common import Duration, ObjectMeta, SpecModel
from interlock.resources.conditions import Condition

__all__ = [
    "Priority",
    "RetryOn",
    "RetryPolicy",
    "Route",
    "RouteFallback",
    "RouteLimits",
    "RouteSpec",
    "RouteStatus",
    "RouteTarget",
    "RouteTimeouts",
    "Spillover",
]

RetryOn = Literal["connect", "timeout", "429", "5xx"]

DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("connect", "429", "5xx")

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class RouteFallback(SpecModel):
    """A backend and model tried when every target has failed or is cooling down."""

    backend: str = Field(min_length=1, max_length=253, pattern=_DNS_LABEL, description="LLMBackend name.")
    model: str = Field(min_length=1, max_length=256, description="Model name on that backend.")


class RouteTarget(RouteFallback):
    """A weighted choice among healthy targets."""

    weight: int = Field(default=1, ge=0, le=10000, description="Relative weight; 0 takes it out of rotation.")


class RetryPolicy(SpecModel):
    """Retries of one target before moving on, with exponential backoff and jitter."""

    attempts: int = Field(default=2, ge=1, le=10, description="Tries per target, the first included.")
    backoff: Duration = Field(default="250ms", description="Base backoff; doubles per retry, with full jitter.")
    # Not ``on``: YAML 1.1 parsers (kubectl's included) read an unquoted ``on:`` key as the boolean true.
    retry_on: list[RetryOn] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description="Failures that are retried: connect, timeout, 429, 5xx.",
    )


class RouteTimeouts(SpecModel):
    """Deadlines for one client request."""

    request: Duration = Field(default="300s", description="Total time for the request, retries included.")
    first_token: Duration = Field(default="30s", description="Time for a streaming upstream to send its first event.")


class RouteLimits(SpecModel):
    """Per-tenant limits on this route; 0 means unlimited."""

    requests_per_minute: int = Field(default=0, ge=0, description="Requests per minute per tenant.")
    tokens_per_minute: int = Field(default=0, ge=0, description="Tokens per minute per tenant.")


Priority = Literal["critical", "standard", "sheddable"]

SPILLOVER_ONE_TARGET = "spillover needs exactly one of target and backend"


class Spillover(SpecModel):
    """Where requests go when the self-hosted pool would answer them too late.

    The issue's form names the LLMBackend as ``target``; ``backend`` is the same, spelled as in ``targets`` and
    ``fallbacks``. Exactly one of the two. ``model`` may be left out when the backend serves one model, or serves
    the Route's public model name (resolved when the Route is compiled).
    """

    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=_DNS_LABEL,
        description="LLMBackend to spill over to (a hosted API); the same as backend, exactly one of the two.",
    )
    backend: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=_DNS_LABEL,
        description="LLMBackend to spill over to; the same as target, exactly one of the two.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Model name to send that backend; optional when it serves one model or the Route's model.",
    )
    when_predicted_first_token: Duration = Field(
        default="2s",
        description="Spill over when the pool's predicted time to first token (its queue and recent service "
        "times) is above this.",
    )

    @model_validator(mode="after")
    def _check_target(self) -> Self:
        if (self.target is None) == (self.backend is None):
            raise ValueError(SPILLOVER_ONE_TARGET)
        return self

    @property
    def backend_name(self) -> str:
        """The LLMBackend named by ``target`` or ``backend``."""
        name = self.target if self.target is not None else self.backend
        assert name is not None  # the validator saw to it
        return name


class RouteSpec(SpecModel):
    """Desired state of a Route."""

    model: str = Field(min_length=1, max_length=256, description="The name clients send as model.")
    gateway: str = Field(
        default="default",
        max_length=63,
        pattern=_DNS_LABEL,
        description="Gateway in this namespace that serves it.",
    )
    # Bounded so the CRD's CEL rules over targets x fallbacks stay within the API server's cost budget.
    targets: list[RouteTarget] = Field(min_length=1, max_length=64, description="Weighted targets.")
    fallbacks: list[RouteFallback] = Field(
        default_factory=list, max_length=16, description="Tried in order when targets fail."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retry policy per target.")
    timeouts: RouteTimeouts = Field(default_factory=RouteTimeouts, description="Request deadlines.")
    tenants: list[str] = Field(default_factory=list, description="Tenants allowed to use the route; empty allows all.")
    limits: RouteLimits = Field(default_factory=RouteLimits, description="Per-tenant limits on this route.")
    priority: Priority | None = Field(
        default=None,
        description="When a self-hosted pool is saturated: critical waits ahead of standard; sheddable is refused "
        "at once (503 with Retry-After). Unset: the tenant's quota priority, standard if it has none.",
    )
    spillover: Spillover | None = Field(
        default=None, description="Send to this target the requests the pool would answer too late."
    )

    @model_validator(mode="after")
    def _check_targets(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for entry in [*self.targets, *self.fallbacks]:
            key = (entry.backend, entry.model)
            if key in seen:
                raise ValueError(f"target {entry.backend}/{entry.model} is listed more than once")
            seen.add(key)
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("at least one target needs a weight above 0")
        return self


class RouteStatus(SpecModel):
    """Observed state of a Route, written by the operator."""

    conditions: list[Condition] = Field(default_factory=list, description="Accepted, Ready and leaf conditions.")
    observed_generation: int | None = Field(default=None, description="Last generation reconciled.")


class Route(SpecModel):
    """A public model name, its weighted targets, fallbacks, retries, timeouts and limits."""

    model_config = SpecModel.model_config | {"extra": "ignore"}

    api_version: Literal["interlock.dev/v1alpha1"] = Field(default="interlock.dev/v1alpha1", description="API version.")
    kind: Literal["Route"] = Field(default="Route", description="Kind.")
    metadata: ObjectMeta = Field(description="Object metadata.")
    spec: RouteSpec = Field(description="Desired state.")
    status: RouteStatus | None = Field(default=None, description="Observed state.")

    @property
    def name(self) -> str:
        return self.metadata.name
