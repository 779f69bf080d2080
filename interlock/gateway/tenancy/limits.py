"""``Enforcer``: a tenant's limits, checked when a request has its route and before any upstream sees it.

In order: the token buckets (the tenant's requests/min and tokens/min, then the route's per-tenant ones; see
``ratelimit``), the monthly budget, the concurrency cap. Like OpenAI's limits, a request refused by the budget or
the concurrency cap still counts against requests/min. Every refusal is a 429 in the client's envelope with
``Retry-After``; whenever the request meets a bucket, the ``x-ratelimit-*`` headers say where it stands (on
successes too).

Admission reserves, settlement corrects: an admitted request takes its worst case (``reservation``: input bound
plus output cap) from the token buckets and, for a tenant with a budget, its worst-case cost from the budget;
``settle`` replaces both with the real usage and cost when the answer is known (``release`` gives back whatever a
request that never got that far still holds). The budget admits while the spend known for sure (the snapshot's
spend plus this gateway's own spend since the snapshot, ``SpendLedger``) plus the reservations in flight is under
the budget, so concurrent requests overrun it by at most the reservation of the one that crossed it: in this
process, or across every replica when Redis holds the budget (``redisbudget``). Concurrency is counted per
replica; requests/min and tokens/min are exact across replicas when the buckets live in Redis. Nothing here
allocates or awaits for a tenant without limits.
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
from interlock.gateway.tenancy.redisbudget import RedisBudget, month_of
from interlock.gateway.tenancy.redisclient import RedisError, RedisUnavailable
from interlock.gateway.tenancy.reservation import reserve_usd
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
        self.budgets = RedisBudget(redis.client, prefix=redis.prefix) if redis is not None else None
        self.memory = MemoryBuckets()
        self.inflight: dict[str, int] = {}
        """Tenant id -> requests in flight, for tenants with a concurrency cap."""
        self.reserved: dict[str, float] = {}
        """Tenant id -> USD reserved by this process's requests in flight (the budget's view without Redis)."""

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
            tokens = ctx.reserve_input + ctx.reserve_output if caps[1] or caps[3] else 0
            if self.redis is None:
                decision = self.memory.take(tenant_id, route.model, caps, tokens)
            else:
                decision = await self.redis.acquire(tenant_id, route.model, caps, tokens)
            ctx.caps = caps
            if decision.allowed:
                ctx.reserved_tokens = tokens
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
            await self._reserve_budget(ctx, plan, tenant_id, limits.spent_usd, budget)
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

    async def _reserve_budget(
        self, ctx: RequestContext, plan: RoutePlan, tenant_id: str, spent_usd: float, budget: float
    ) -> None:
        """Admit against the monthly budget and reserve the request's worst-case cost, or refuse (429)."""
        amount = reserve_usd(plan, ctx.services, ctx.reserve_input, ctx.reserve_output)
        known = spent_usd + (self.ledger.spent(tenant_id) if self.ledger is not None else 0.0)
        now = time.time()
        decided = False
        if self.budgets is not None and self.redis is not None and self.redis.healthy:
            ident = self.budgets.reservation_id()
            try:
                shared = await self.budgets.admit(
                    tenant_id,
                    floor=known,
                    budget=budget,
                    amount=amount,
                    ident=ident,
                    lifetime_s=plan.config.timeouts.request_s,
                    now=now,
                )
            except (RedisUnavailable, RedisError) as exc:
                self.redis.trip(exc)
            else:
                decided = True
                total, in_flight = shared.total, shared.reserved
                if shared.admitted:
                    ctx.budget_ticket, ctx.budget_month, ctx.reserved_usd = ident, month_of(now), amount
        if not decided:
            total, in_flight = known, self.reserved.get(tenant_id, 0.0)
            if total + in_flight < budget:
                self.reserved[tenant_id] = in_flight + amount
                ctx.reserved_usd = amount
        if total + in_flight >= budget:
            held = f" and ${in_flight:.4f} is reserved by requests in flight" if in_flight > 0 else ""
            self._refuse(
                ctx,
                InsufficientQuotaError(
                    f"You exceeded your current quota: this month's budget is ${budget:.2f}, "
                    f"${total:.4f} has been spent{held}. It resets at the start of next month (UTC).",
                    headers=_retry_after(seconds_to_month_end(now)),
                ),
            )

    def _refuse(self, ctx: RequestContext, error: RateLimitError) -> None:
        ctx.admitted = False
        self.metrics.rate_limited(ctx.tenant, ctx.route_model)
        raise error

    def settle(self, ctx: RequestContext, tokens: int, cost_usd: float) -> None:
        """The request's real usage is known: replace its reservations by it (tokens and budget)."""
        principal = ctx.principal
        if principal is None:
            return
        tenant_id = principal.tenant_id
        caps = ctx.caps
        if caps is not None and (caps[1] or caps[3]):
            delta = tokens - ctx.reserved_tokens
            ctx.reserved_tokens = 0
            if self.redis is None:
                self.memory.debit(tenant_id, ctx.route_model, caps, delta)
            else:
                self.redis.debit(tenant_id, ctx.route_model, caps, delta)
        if ctx.budget_ticket:
            ticket, ctx.budget_ticket = ctx.budget_ticket, ""
            assert self.budgets is not None
            self.budgets.settle(tenant_id, ident=ticket, cost=cost_usd, month=ctx.budget_month)
            ctx.reserved_usd = 0.0
        elif ctx.reserved_usd:
            left = self.reserved.get(tenant_id, 0.0) - ctx.reserved_usd
            ctx.reserved_usd = 0.0
            if left > 1e-12:
                self.reserved[tenant_id] = left
            else:
                self.reserved.pop(tenant_id, None)

    def release(self, ctx: RequestContext) -> None:
        """The request is over: give back its concurrency slot, and whatever it still holds of its reservations
        (a request that ended before its usage was known)."""
        if ctx.reserved_tokens or ctx.reserved_usd:
            self.settle(ctx, 0, 0.0)
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
