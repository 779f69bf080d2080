"""``Enforcer``: a tenant's limits, checked when a request has its route and before any upstream sees it.

In order: the token buckets (the tenant's requests/min and tokens/min, then the route's per-tenant ones; see
``ratelimit``), the monthly budget, the concurrency cap. Like OpenAI's limits, a request refused by the budget or
the concurrency cap still counts against requests/min. Every refusal is a 429 in the client's envelope with
``Retry-After``; whenever the request meets a bucket, the ``x-ratelimit-*`` headers say where it stands (on
successes too). Tokens are charged after the response with the real usage (``charge``).

The budget is the snapshot's spend plus this gateway's own spend since the snapshot (``SpendLedger``), so the
request after the one that crossed the budget is refused, without waiting on the control plane. Concurrency is
counted per replica; requests/min and tokens/min are exact across replicas when the buckets live in Redis.
Nothing here allocates or awaits for a tenant without limits.
"""

from __future__ import annotations

import math
import time

from interlock.gateway.context import RequestContext
from interlock.gateway.dispatch.plan import RoutePlan
from interlock.gateway.errors import InsufficientQuotaError, RateLimitError
from interlock.gateway.tenancy.policy import seconds_to_month_end
from interlock.gateway.tenancy.ratelimit import Caps, Decision, MemoryBuckets, Slot
from interlock.gateway.tenancy.redisbuckets import RedisBuckets
from interlock.gateway.usage.ledger import SpendLedger
from interlock.telemetry.metrics import GatewayMetrics

__all__ = ["Enforcer"]

_LIMIT_REQUESTS = b"x-ratelimit-limit-requests"
_REMAINING_REQUESTS = b"x-ratelimit-remaining-requests"
_LIMIT_TOKENS = b"x-ratelimit-limit-tokens"
_REMAINING_TOKENS = b"x-ratelimit-remaining-tokens"


def _headers(caps: Caps, decision: Decision) -> list[tuple[bytes, bytes]]:
    """The ``x-ratelimit-*`` headers: the tenant's own limits, or the route's where the tenant has none."""
    headers = []
    requests = 0 if caps[0] else 2
    if caps[requests]:
        headers.append((_LIMIT_REQUESTS, b"%d" % caps[requests]))
        headers.append((_REMAINING_REQUESTS, b"%d" % decision.remaining[requests]))
    tokens = 1 if caps[1] else 3
    if caps[tokens]:
        headers.append((_LIMIT_TOKENS, b"%d" % caps[tokens]))
        headers.append((_REMAINING_TOKENS, b"%d" % decision.remaining[tokens]))
    return headers


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds)))}


class Enforcer:
    """See the module docstring. ``redis`` (optional) holds the buckets; otherwise they live in this process."""

    def __init__(
        self,
        *,
        metrics: GatewayMetrics,
        ledger: SpendLedger | None = None,
        redis: RedisBuckets | None = None,
    ) -> None:
        self.metrics = metrics
        self.ledger = ledger
        self.redis = redis
        self.memory = MemoryBuckets()
        self.inflight: dict[str, int] = {}
        """Tenant id -> requests in flight, for tenants with a concurrency cap."""

    async def admit(self, ctx: RequestContext, plan: RoutePlan) -> None:
        """Let the request through or raise the 429 of the first limit it hits."""
        principal = ctx.principal
        assert principal is not None  # endpoints run after authentication
        limits = principal.limits
        route = plan.config
        tenant_id = principal.tenant_id  # static keys' tenants share one UNLIMITED policy but not their buckets
        ctx.admitted = True
        if (
            limits.requests_per_minute
            or limits.tokens_per_minute
            or route.requests_per_minute
            or route.tokens_per_minute
        ):
            caps = (
                limits.requests_per_minute,
                limits.tokens_per_minute,
                route.requests_per_minute,
                route.tokens_per_minute,
            )
            if self.redis is None:
                decision = self.memory.take(tenant_id, route.model, caps)
            else:
                decision = await self.redis.acquire(tenant_id, route.model, caps)
            ctx.caps = caps
            ctx.response_headers.extend(_headers(caps, decision))
            if not decision.allowed:
                slot = Slot(decision.refused)
                limit = caps[slot]
                self._refuse(
                    ctx,
                    RateLimitError(
                        f"Rate limit reached for {slot.describe(route.model)}: limit {limit}. "
                        f"Please try again in {decision.retry_after_s:.1f}s.",
                        headers=_retry_after(decision.retry_after_s),
                    ),
                )
        budget = limits.monthly_budget_usd
        if budget is not None:
            spent = limits.spent_usd + (self.ledger.spent(tenant_id) if self.ledger is not None else 0.0)
            if spent >= budget:
                self._refuse(
                    ctx,
                    InsufficientQuotaError(
                        f"You exceeded your current quota: this month's budget is ${budget:.2f} and "
                        f"${spent:.4f} has been spent. It resets at the start of next month (UTC).",
                        headers=_retry_after(seconds_to_month_end(time.time())),
                    ),
                )
        cap = limits.max_concurrency
        if cap:
            running = self.inflight.get(tenant_id, 0)
            if running >= cap:
                self._refuse(
                    ctx,
                    RateLimitError(
                        f"Too many concurrent requests for your organization: limit {cap}. "
                        "Please try again when one of them has finished.",
                        code="concurrency_limit_exceeded",
                        headers=_retry_after(1),
                    ),
                )
            self.inflight[tenant_id] = running + 1
            ctx.slot_tenant = tenant_id

    def _refuse(self, ctx: RequestContext, error: RateLimitError) -> None:
        ctx.admitted = False
        self.metrics.rate_limited(ctx.tenant, ctx.route_model)
        raise error

    def charge(self, ctx: RequestContext, tokens: int) -> None:
        """Charge the response's real token usage to the request's token buckets."""
        caps = ctx.caps
        if caps is None or tokens <= 0 or not (caps[1] or caps[3]):
            return
        assert ctx.principal is not None
        tenant_id = ctx.principal.tenant_id
        if self.redis is None:
            self.memory.debit(tenant_id, ctx.route_model, caps, tokens)
        else:
            self.redis.debit(tenant_id, ctx.route_model, caps, tokens)

    def release(self, ctx: RequestContext) -> None:
        """The request is over: give back its concurrency slot."""
        tenant_id = ctx.slot_tenant
        if tenant_id:
            ctx.slot_tenant = ""
            left = self.inflight[tenant_id] - 1
            if left:
                self.inflight[tenant_id] = left
            else:
                del self.inflight[tenant_id]

    @property
    def status(self) -> dict[str, object]:
        if self.redis is not None:
            return self.redis.status
        return {"store": "memory", "healthy": True, "last_error": None}

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
